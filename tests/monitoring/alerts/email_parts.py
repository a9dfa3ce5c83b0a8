"""Reading a received alert e-mail as a mail program would: its parts, its inline pictures,
and a PNG's pixels (zlib and the PNG layout, nothing of Canary's)."""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BOUND_RGB = np.array([192, 57, 43])
LINE_RGB = np.array([31, 111, 235])


def bodies(message) -> tuple[str, str]:
    """The plain text and the HTML, with SMTP's CRLF line ends read as newlines."""
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text.replace("\r\n", "\n"), html.replace("\r\n", "\n")


def inline_images(message) -> dict[str, bytes]:
    """The message's inline pictures by Content-ID (without the angle brackets)."""
    return {
        part["Content-ID"].strip("<>"): part.get_content()
        for part in message.walk()
        if part.get_content_maintype() == "image"
    }


def png_pixels(png: bytes) -> np.ndarray:
    """The RGB pixels of an 8-bit RGB PNG whose rows are unfiltered; checks every CRC."""
    assert png[:8] == PNG_SIGNATURE
    chunks: dict[bytes, bytes] = {}
    at = 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + data) == crc, kind
        chunks[kind] = chunks.get(kind, b"") + data
        at += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2) and b"IEND" in chunks
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, -1)
    assert (rows[:, 0] == 0).all()  # filter type 0 on every row
    return rows[:, 1:].reshape(height, width, 3)


def near(pixels: np.ndarray, rgb: np.ndarray, tolerance: int = 40) -> np.ndarray:
    return np.abs(pixels.astype(int) - rgb).max(axis=2) <= tolerance


def dashed_rows(pixels: np.ndarray) -> list[int]:
    """Rows where the bound colour runs across at least a third of the picture, grouped: one
    number (the group's first row) per dashed line."""
    rows = np.flatnonzero(near(pixels, BOUND_RGB).mean(axis=1) > 1 / 3)
    return [int(r) for i, r in enumerate(rows) if i == 0 or r != rows[i - 1] + 1]


def shown_in_a_mail_program(message) -> str:
    """The e-mail's HTML with each cid: picture as a data: URL, as a mail program shows it."""
    _, html = bodies(message)
    for cid, png in inline_images(message).items():
        html = html.replace(f"cid:{cid}", "data:image/png;base64," + base64.b64encode(png).decode())
    return html
