"""Compact bytes for stored histograms: only the non-empty bins, zlib-compressed.

An hourly histogram is mostly empty bins; a busy day fills most of them. The encoding keeps
the indices of bins where any array is non-zero and each array's values there, plus a few
scalars, so a quiet hour costs tens of bytes and a full 1000-bin histogram about 20 kB.
The dense size is in the header, so encodings decode and merge without their edges.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from monitoring.stats.auc import ScoreHistogram
from monitoring.stats.histograms import HistogramRows, NumericHistogram

_HEADER = struct.Struct("<IIHH")  # dense size, non-empty bins, arrays, scalars


def sparse_encode(arrays: list[np.ndarray], scalars: list[float] = ()) -> bytes:
    """Arrays of equal length (int64 or float64 each) and float scalars, as bytes."""
    dense = [np.asarray(a) for a in arrays]
    nonzero = np.flatnonzero(np.any(np.vstack(dense) != 0, axis=0)) if dense else np.array([])
    parts = [
        _HEADER.pack(dense[0].size if dense else 0, nonzero.size, len(dense), len(scalars)),
        np.asarray(scalars, dtype="<f8").tobytes(),
        nonzero.astype("<u4").tobytes(),
        "".join("i" if a.dtype.kind in "iu" else "f" for a in dense).encode(),
    ]
    parts += [a[nonzero].astype("<i8" if a.dtype.kind in "iu" else "<f8").tobytes() for a in dense]
    return zlib.compress(b"".join(parts), 1)


def sparse_decode(data: bytes) -> tuple[list[np.ndarray], list[float]]:
    """The dense arrays and the scalars that `sparse_encode` was given."""
    raw = zlib.decompress(bytes(data))
    size, n, n_arrays, n_scalars = _HEADER.unpack_from(raw)
    offset = _HEADER.size
    scalars = np.frombuffer(raw, "<f8", n_scalars, offset).tolist()
    offset += 8 * n_scalars
    index = np.frombuffer(raw, "<u4", n, offset).astype(np.intp)
    offset += 4 * n
    kinds = raw[offset : offset + n_arrays].decode()
    offset += n_arrays
    arrays = []
    for kind in kinds:
        dtype = np.int64 if kind == "i" else np.float64
        values = np.frombuffer(raw, "<i8" if kind == "i" else "<f8", n, offset)
        offset += 8 * n
        dense = np.zeros(size, dtype=dtype)
        dense[index] = values
        arrays.append(dense)
    return arrays, scalars


def sparse_decode_rows(items: list[bytes], size: int, dtypes: tuple, n_scalars: int):
    """`sparse_decode` of many encodings of one shape at once: a (rows, size) matrix per array
    (of the given dtypes) and a (rows, n_scalars) matrix of the scalars, each item's values
    written straight into its row. ValueError names the first item of another shape.
    """
    arrays = [np.zeros((len(items), size), dtype) for dtype in dtypes]
    scalars = np.zeros((len(items), n_scalars))
    for row, item in enumerate(items):
        raw = zlib.decompress(bytes(item))
        dense, n, n_arrays, stored_scalars = _HEADER.unpack_from(raw)
        if (dense, n_arrays, stored_scalars) != (size, len(dtypes), n_scalars):
            raise ValueError(
                f"encoding {row} holds {n_arrays} arrays of {dense} and {stored_scalars} scalars,"
                f" not {len(dtypes)} of {size} and {n_scalars}"
            )
        offset = _HEADER.size
        scalars[row] = np.frombuffer(raw, "<f8", n_scalars, offset)
        offset += 8 * n_scalars
        index = np.frombuffer(raw, "<u4", n, offset)
        offset += 4 * n
        kinds = raw[offset : offset + n_arrays].decode()
        offset += n_arrays
        for array, kind in zip(arrays, kinds, strict=True):
            array[row, index] = np.frombuffer(raw, "<i8" if kind == "i" else "<f8", n, offset)
            offset += 8 * n
    return arrays, scalars


def histogram_encode(histogram: NumericHistogram) -> bytes:
    at_edges = np.append(histogram.at_edges, 0)  # same length as counts
    return sparse_encode(
        [histogram.counts, at_edges, histogram.sums], [histogram.sum_sq, histogram.missing]
    )


def sparse_merge(items: list[bytes]) -> bytes:
    """Element-wise sum of encodings of the same shape (hours into a day)."""
    decoded = [sparse_decode(item) for item in items]
    arrays = [sum(parts) for parts in zip(*(a for a, _ in decoded), strict=True)]
    scalars = [sum(parts) for parts in zip(*(s for _, s in decoded), strict=True)]
    return sparse_encode(arrays, scalars)


def histogram_decode(data: bytes, edges: np.ndarray) -> NumericHistogram:
    (counts, at_edges, sums), (sum_sq, missing) = sparse_decode(data)
    return NumericHistogram(edges, counts, at_edges[:-1], sums, sum_sq, int(missing))


def histograms_decode(items: list[bytes], edges: np.ndarray) -> HistogramRows:
    """`histogram_decode` of many encodings on the same edges, as rows."""
    (counts, at_edges, sums), scalars = sparse_decode_rows(
        items, edges.size + 1, (np.int64, np.int64, float), 2
    )
    return HistogramRows(
        edges, counts, at_edges[:, :-1], sums, scalars[:, 0], scalars[:, 1].astype(np.int64)
    )


def score_histogram_encode(histogram: ScoreHistogram) -> bytes:
    return sparse_encode([histogram.positives, histogram.negatives, histogram.score_sums])


def score_histogram_decode(data: bytes) -> ScoreHistogram:
    (positives, negatives, sums), _ = sparse_decode(data)
    return ScoreHistogram(positives, negatives, sums)


def counts_encode(counts: np.ndarray) -> bytes:
    return sparse_encode([np.asarray(counts, dtype=np.int64)])


def counts_decode(data: bytes) -> np.ndarray:
    (counts,), _ = sparse_decode(data)
    return counts
