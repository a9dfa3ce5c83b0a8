"""A sparkline as a small PNG, drawn with NumPy and written with zlib.

Mail programs strip inline SVG and block images from other hosts, but show a PNG attached to
the message and referenced by `cid:`. A sparkline is a line, its bounds and its last point, so
it is drawn here (anti-aliased by each pixel's distance to the line) instead of pulling in a
plotting library. Drawn at `scale` times its shown size, so it stays sharp on dense screens.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise

import numpy as np

LINE = (31, 111, 235)
BOUND = (192, 57, 43)
BACKGROUND = (255, 255, 255)
LINE_WIDTH = 1.5  # in shown pixels
DASH = 4  # shown pixels on, then off, along a bound
LAST_POINT_RADIUS = 2.5


def sparkline_png(
    values: Sequence[float | None],
    *,
    bounds: Sequence[float] = (),
    width: int = 240,
    height: int = 48,
    scale: int = 2,
) -> bytes:
    """The values left to right (None leaves a gap), bounds dashed, the last value dotted."""
    if not any(v is not None for v in values):
        raise ValueError("a sparkline needs at least one value")
    canvas = np.empty((height * scale, width * scale, 3))
    canvas[:] = BACKGROUND
    y_of = y_scale([v for v in values if v is not None] + list(bounds), height * scale, scale)
    pad = 4 * scale
    xs = np.linspace(pad, width * scale - pad, len(values)) if len(values) > 1 else [width]
    for bound in bounds:
        paint(canvas, BOUND, dashed_row(canvas.shape, y_of(bound), scale))
    points = [(x, y_of(v)) if v is not None else None for x, v in zip(xs, values, strict=True)]
    paint(canvas, LINE, polyline_cover(canvas.shape, points, LINE_WIDTH * scale / 2))
    last = next(p for p in reversed(points) if p is not None)
    paint(canvas, BOUND, disc_cover(canvas.shape, last, LAST_POINT_RADIUS * scale))
    return png_encode(canvas.round().astype(np.uint8))


def y_scale(values: list[float], height_px: int, scale: int):
    """Pixel row of a value: the lowest value near the bottom, the highest near the top."""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    pad = 4 * scale

    def y_of(value: float) -> float:
        return height_px - pad - (value - low) / span * (height_px - 2 * pad)

    return y_of


@lru_cache(maxsize=4)
def pixel_centres(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """x and y of every pixel's centre (kept for the next picture of the same size)."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    xs, ys = cols + 0.5, rows + 0.5
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


def paint(canvas: np.ndarray, colour: tuple[int, int, int], cover: np.ndarray) -> None:
    """Blend the colour over the canvas where `cover` (0 to 1) says, in place."""
    alpha = np.clip(cover, 0, 1)[..., None]
    canvas *= 1 - alpha
    canvas += alpha * np.asarray(colour, dtype=float)


def edge(distance: np.ndarray, half_width: float) -> np.ndarray:
    """Coverage of a stroke by distance from its centre line, soft over one pixel."""
    return np.clip(half_width + 0.5 - distance, 0, 1)


def dashed_row(shape: tuple[int, ...], y: float, scale: int) -> np.ndarray:
    xs, ys = pixel_centres(shape)
    on = (xs // (DASH * scale)) % 2 == 0
    return edge(np.abs(ys - y), scale / 2) * on


def polyline_cover(shape, points: list[tuple[float, float] | None], half_width: float):
    """Coverage of the line through consecutive known points (a None breaks it)."""
    known = [(a, b) for a, b in pairwise(points) if a is not None and b is not None]
    segments = known or [(p, p) for p in points if p is not None]  # one point: a dot
    xs, ys = pixel_centres(shape)
    distance = np.full(xs.shape, np.inf)
    reach = half_width + 1  # pixels farther from a segment than this get none of it
    for (ax, ay), (bx, by) in segments:  # each over the pixels of its own bounding box
        rows = slice(max(int(min(ay, by) - reach), 0), int(max(ay, by) + reach) + 1)
        cols = slice(max(int(min(ax, bx) - reach), 0), int(max(ax, bx) + reach) + 1)
        px, py, box = xs[rows, cols], ys[rows, cols], distance[rows, cols]
        dx, dy = bx - ax, by - ay
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
        np.minimum(box, np.hypot(px - (ax + t * dx), py - (ay + t * dy)), out=box)
    return edge(distance, half_width)


def disc_cover(shape, centre: tuple[float, float], radius: float) -> np.ndarray:
    xs, ys = pixel_centres(shape)
    return np.clip(radius + 0.5 - np.hypot(xs - centre[0], ys - centre[1]), 0, 1)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_encode(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB image as PNG bytes: each row filtered with filter 0 (none), deflated."""
    height, width, _ = rgb.shape
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, -1)], axis=1)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows.tobytes()))
        + png_chunk(b"IEND", b"")
    )
