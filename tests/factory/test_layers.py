"""The factory's place among the layers, and its endpoints in the OpenAPI schema."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
    return names


def test_factory_never_imports_monitoring_and_the_client_imports_neither():
    assert not {n for n in imported_modules(ROOT / "factory") if n.startswith("monitoring")}
    client = imported_modules(ROOT / "client")
    assert not {n for n in client if n.split(".")[0] in ("monitoring", "factory", "django")}


def test_the_schema_describes_the_factory_endpoints(client, db):
    schema = yaml.safe_load(client.get("/api/v1/schema/").content)
    paths = schema["paths"]
    for path, method in [
        ("/api/v1/models/{model}/versions", "post"),
        ("/api/v1/models/{model}/versions/{version}", "get"),
        ("/api/v1/models/{model}/gates", "put"),
        ("/api/v1/models/{model}/rollouts", "post"),
        ("/api/v1/models/{model}/rollouts/rollback", "post"),
        ("/api/v1/models/{model}/routing", "get"),
        ("/api/v1/models/{model}/audit", "get"),
        ("/api/v1/models/{model}/retrain-requests", "get"),
        ("/api/v1/models/{model}/retrain-settings", "put"),
    ]:
        assert method in paths[path], path
    register = paths["/api/v1/models/{model}/versions"]["post"]
    assert {"200", "201"} <= set(register["responses"])
