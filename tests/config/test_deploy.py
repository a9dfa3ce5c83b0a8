"""Secure defaults: what `manage.py check --deploy` says and how the app starts without a key."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

from config.env import secret_key_kept

ROOT = Path(__file__).resolve().parents[2]
SHOW_SETTINGS = (
    "import json; from django.conf import settings as s; print(json.dumps({k: getattr(s, k, None) "
    "for k in ('SECURE_SSL_REDIRECT', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
    "'SECURE_HSTS_SECONDS', 'SECURE_PROXY_SSL_HEADER', 'SECRET_KEY')}))"
)


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """manage.py with the given environment alone (none of the tests' own settings)."""
    environment = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "config.settings", **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def shown_settings(**env: str) -> dict:
    result = manage("shell", "--no-imports", "-c", SHOW_SETTINGS, **env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def production(**env: str) -> dict:
    return {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "canary.example.com",
        **env,
    }


def test_check_deploy_has_no_warning_with_debug_off_a_key_and_hosts():
    result = manage("check", "--deploy", **production())
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout, result.stdout + result.stderr


def test_debug_off_turns_on_https_redirect_secure_cookies_and_hsts():
    shown = shown_settings(**production())
    assert shown["SECURE_SSL_REDIRECT"] and shown["SESSION_COOKIE_SECURE"]
    assert shown["CSRF_COOKIE_SECURE"] and shown["SECURE_HSTS_SECONDS"] > 0
    assert shown["SECURE_PROXY_SSL_HEADER"] is None


def test_plain_http_and_a_proxy_are_settings():
    plain = shown_settings(**production(CANARY_HTTPS="false"))
    proxied = shown_settings(**production(CANARY_BEHIND_PROXY="true"))
    assert not plain["SECURE_SSL_REDIRECT"] and not plain["SESSION_COOKIE_SECURE"]
    assert plain["SECURE_HSTS_SECONDS"] == 0
    assert proxied["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_no_secret_key_with_debug_off_and_postgresql_stops_the_start():
    result = manage("check", DEBUG="false", DATABASE_URL="postgres://canary@127.0.0.1:5432/canary")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_the_embedded_mode_makes_its_own_key_once_and_keeps_it():
    # given: no SECRET_KEY, the embedded SQLite database
    first = shown_settings(DEBUG="false")
    # when
    second = shown_settings(DEBUG="false")
    # then
    assert first["SECRET_KEY"] == second["SECRET_KEY"]
    assert len(first["SECRET_KEY"]) >= 50
    assert "insecure" not in first["SECRET_KEY"]


def test_a_kept_key_is_readable_by_its_owner_alone(tmp_path):
    path = tmp_path / "var" / "secret_key"
    key = secret_key_kept(path)
    assert secret_key_kept(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(path.parent.iterdir()) == [path]
