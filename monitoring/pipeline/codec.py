"""Category counts and multiclass confusion tables as JSON (keys are text), zlib-compressed
when large (`monitoring.stats.codec.pack`)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

from monitoring.stats.codec import pack, unpack


def json_encode(data: dict) -> bytes:
    return pack(json.dumps(data, separators=(",", ":")).encode())


def json_decode(data: bytes) -> dict:
    return json.loads(unpack(data))


def categorical_encode(counts: dict[str, int], missing: int) -> bytes:
    return json_encode({"counts": counts, "missing": missing})


def categorical_merge(items: Iterable[bytes]) -> tuple[dict[str, int], int]:
    counts: Counter[str] = Counter()
    missing = 0
    for item in items:
        data = json_decode(item)
        counts.update(data["counts"])
        missing += data["missing"]
    return dict(counts), missing


def confusion_encode(pairs: dict[tuple[str, str], int]) -> bytes:
    return json_encode({"counts": [[a, p, int(c)] for (a, p), c in pairs.items()]})


def confusion_merge(items: Iterable[bytes]) -> dict[tuple[str, str], int]:
    total: Counter[tuple[str, str]] = Counter()
    for item in items:
        for actual, predicted, count in json_decode(item)["counts"]:
            total[(actual, predicted)] += count
    return dict(total)
