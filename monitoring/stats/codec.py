"""Compact bytes for stored histograms: only the non-empty bins, zlib-compressed when large.

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
from monitoring.stats.estimate import AllScoreHistogram
from monitoring.stats.histograms import HistogramRows, NumericHistogram

_HEADER = struct.Struct("<IIHH")  # dense size, non-empty bins, arrays, scalars

# Under this many bytes an encoding is stored as it is, behind a zero byte (no zlib stream
# starts with one): zlib saves a few bytes there, but its setup costs about 0.1 ms a call,
# the largest single cost of aggregating hours of a few predictions each.
RAW = b"\x00"
SMALL = 2048


def pack(raw: bytes) -> bytes:
    return RAW + raw if len(raw) < SMALL else zlib.compress(raw, 1)


def unpack(data: bytes) -> bytes:
    data = bytes(data)
    return data[1:] if data[:1] == RAW else zlib.decompress(data)


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
    return pack(b"".join(parts))


def sparse_encode_groups(
    sizes: np.ndarray,
    bounds: np.ndarray,
    index: np.ndarray,
    arrays: list[np.ndarray],
    scalars: list[np.ndarray] = (),
) -> list[bytes]:
    """Many `sparse_encode`s at once, byte for byte the same: one per group.

    Group g has dense size ``sizes[g]`` and its non-empty bins at entries
    ``bounds[g]:bounds[g + 1]``, in ascending ``index`` order, with their values in each of
    ``arrays``; ``scalars`` are arrays with a value per group. Only the slicing and the
    compression are done a group at a time.
    """
    kinds = "".join("i" if a.dtype.kind in "iu" else "f" for a in arrays).encode()
    columns = [
        np.asarray(a, dtype="<i8" if a.dtype.kind in "iu" else "<f8").tobytes() for a in arrays
    ]
    positions = np.asarray(index, dtype="<u4").tobytes()
    scalar_rows = np.column_stack(scalars).astype("<f8") if len(scalars) else None
    out = []
    for g, size in enumerate(sizes.tolist()):
        start, end = int(bounds[g]), int(bounds[g + 1])
        parts = [
            _HEADER.pack(size, end - start, len(arrays), len(scalars)),
            scalar_rows[g].tobytes() if scalar_rows is not None else b"",
            positions[4 * start : 4 * end],
            kinds,
        ]
        parts += [column[8 * start : 8 * end] for column in columns]
        out.append(pack(b"".join(parts)))
    return out


def sparse_entries(data: bytes) -> tuple[int, np.ndarray, list[np.ndarray], list[float]]:
    """An encoding's dense size, its non-empty bins and each array's values there, and its
    scalars: what `sparse_decode` spreads out, left sparse."""
    raw = unpack(data)
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
        arrays.append(np.frombuffer(raw, "<i8" if kind == "i" else "<f8", n, offset))
        offset += 8 * n
    return size, index, arrays, scalars


def sparse_decode(data: bytes) -> tuple[list[np.ndarray], list[float]]:
    """The dense arrays and the scalars that `sparse_encode` was given."""
    size, index, values, scalars = sparse_entries(data)
    arrays = []
    for array in values:
        dense = np.zeros(size, dtype=np.int64 if array.dtype.kind == "i" else np.float64)
        dense[index] = array
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
        raw = unpack(item)
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


def sparse_merge_groups(groups: list[int], items: list[bytes]) -> dict[int, bytes]:
    """Many `sparse_merge`s at once: the items of each group summed (``groups[i]`` is item i's
    group; a group's items share their shape). The sums are vectorised over all items, and
    equal `sparse_merge`'s: each bin's values are added in the order of the items. An array
    is summed as integers where every item of its group holds integers there, else as floats
    (groups of different features can differ)."""
    if not items:
        return {}
    parsed = [sparse_entries(item) for item in items]
    kinds: dict[int, tuple[str, ...]] = {}
    for group, (_, _, arrays, _) in zip(groups, parsed, strict=True):
        mine = tuple(array.dtype.kind for array in arrays)
        kinds[group] = tuple(map(wider, kinds.get(group, mine), mine))
    merged: dict[int, bytes] = {}
    for signature in set(kinds.values()):
        picked = [i for i, group in enumerate(groups) if kinds[group] == signature]
        merged |= merge_parsed([groups[i] for i in picked], [parsed[i] for i in picked], signature)
    return merged


def wider(a: str, b: str) -> str:
    return "f" if "f" in (a, b) else "i"


def merge_parsed(groups: list[int], parsed: list, kinds: tuple[str, ...]) -> dict[int, bytes]:
    """`sparse_merge_groups` of parsed items whose arrays are summed as ``kinds`` say."""
    per_item = np.array([index.size for _, index, _, _ in parsed])
    of_entry = np.repeat(np.asarray(groups, dtype=np.int64), per_item)
    index = np.concatenate([index for _, index, _, _ in parsed]).astype(np.int64)
    keys, inverse = np.unique(of_entry << 32 | index, return_inverse=True)
    inverse = inverse.ravel()
    arrays = []
    for position, kind in enumerate(kinds):
        values = np.concatenate([arrays_[position] for _, _, arrays_, _ in parsed])
        total = np.bincount(inverse, weights=values, minlength=keys.size)
        arrays.append(total.astype(np.int64) if kind == "i" else total)
    members, firsts = np.unique(np.asarray(groups, dtype=np.int64), return_index=True)
    at = np.searchsorted(members, groups)
    scalars = [
        np.bincount(at, weights=[s[position] for _, _, _, s in parsed], minlength=members.size)
        for position in range(len(parsed[0][3]))
    ]
    sizes = np.array([parsed[i][0] for i in firsts.tolist()])
    bounds = np.searchsorted(keys >> 32, np.append(members, np.iinfo(np.int64).max))
    datas = sparse_encode_groups(sizes, bounds, keys & 0xFFFFFFFF, arrays, scalars)
    return dict(zip(members.tolist(), datas, strict=True))


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


def all_score_histogram_decode(data: bytes) -> AllScoreHistogram:
    """The layout `monitoring.pipeline.sketch_groups.all_score_sketches` writes."""
    arrays, _ = sparse_decode(data)
    return AllScoreHistogram(*arrays)


def counts_encode(counts: np.ndarray) -> bytes:
    return sparse_encode([np.asarray(counts, dtype=np.int64)])


def counts_decode(data: bytes) -> np.ndarray:
    (counts,), _ = sparse_decode(data)
    return counts
