"""Explain's slice documents are encoded for all hours (or days) of a chunk at once
(`by_period`): each document must be byte for byte the one `slices_encode` writes for its
entries alone, since stored documents and their reader (`slices_decode`) keep that format."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from scipy import sparse

from monitoring.models import SLICE_SUM_FIELDS
from monitoring.pipeline.slice_aggregates import (
    LABELLED_KEY,
    MISSING,
    OTHER,
    SCORE_FIELDS,
    Keyed,
    SliceSums,
    by_period,
    slices_decode,
    slices_encode,
)

DAY = int(datetime(2026, 3, 9, tzinfo=UTC).timestamp())
HOURS = [DAY + 3600 * h for h in (0, 1, 7, 23)] + [DAY + 86400 + 3600 * h for h in (0, 5)]
SLICES = {
    "age": ["(-inf, 30)", "[30, 40)", "[40, 50)", "[50, inf)", MISSING],
    "plan": ["basic", "plus", "premium", OTHER, MISSING],
    "region": ["north", "south", MISSING],
}
VALUE_KEYS = [
    (name, statistic) for name in ("amount", "fee") for statistic in ("count", "total", "total_sq")
]
PAIRS = [("a", "a"), ("a", "b"), ("b", "a"), ("b", "b"), ("c", "a")]
REGRESSION = [i for i, name in enumerate(SLICE_SUM_FIELDS) if "error" in name or "ape" in name]


def chunk_sums(seed: int = 11) -> SliceSums:
    """A chunk's entries as `chunk_slices` leaves them (feature by feature, so the hours
    interleave): 2 versions, 3 segments, 6 hours over 2 days, 3 features, about 70% of the
    slices present; random sums (the regression ones zero but at 01:00 of the first day),
    score bins, values (no fee on the first day; cells of 0, as a day's subtracted hours
    leave) and class-pair counts, neither on sorted keys."""
    rng = np.random.default_rng(seed)
    keys = [
        (version, segment, hour, feature, slice_)
        for feature, slices in SLICES.items()
        for version in (4, 9)
        for segment in ("north", "south", "")
        for hour in HOURS
        for slice_ in slices
        if rng.uniform() < 0.7
    ]
    size = len(keys)
    version, segment, start, feature, slice_ = (
        np.array(c, dtype=object) for c in zip(*keys, strict=True)
    )
    start = start.astype(np.int64)
    sums = rng.integers(0, 40, (size, len(SLICE_SUM_FIELDS))).astype(float)
    sums[:, 2:4] = rng.uniform(0, 20, (size, 2))
    sums[np.ix_(start % 86400 != 3600, REGRESSION)] = 0.0
    entry, column, weight = random_cells(rng, size, len(VALUE_KEYS) + 1, 4)
    column[(start[entry] < DAY + 86400) & (column < len(VALUE_KEYS))] %= 3
    values = Keyed.of(entry, size, column, weight, [*VALUE_KEYS, LABELLED_KEY])
    entry, column, weight = random_cells(rng, size, len(PAIRS), 3)
    confusion = Keyed.of(entry, size, column, weight, PAIRS[::-1])
    entry, column, weight = random_cells(rng, size, len(SCORE_FIELDS), 6)
    scores = sparse.csr_matrix((weight, (entry, column)), shape=(size, len(SCORE_FIELDS)))
    return SliceSums(
        version.astype(np.int64),
        segment,
        start,
        feature,
        slice_,
        sums,
        scores,
        values,
        confusion,
    )


def random_cells(rng, size: int, width: int, per_entry: int):
    """Up to ``per_entry`` (entry, column, weight) cells an entry in ``width`` columns, one
    in ten of them 0."""
    entry = np.repeat(np.arange(size), rng.integers(0, per_entry + 1, size))
    column = rng.integers(0, width, entry.size)
    weight = rng.integers(1, 9, entry.size).astype(float)
    weight[rng.uniform(size=entry.size) < 0.1] = 0.0
    return entry, column, weight


def periods_of(sums: SliceSums, seconds: int) -> list[np.ndarray]:
    """Each period's entries, in their order in ``sums``."""
    period = sums.start - sums.start % seconds
    return [np.flatnonzero(period == start) for start in np.unique(period).tolist()]


@pytest.mark.parametrize("seconds", [3600, 86400])
def test_each_periods_document_is_that_of_its_entries_alone(seconds):
    # given
    sums = chunk_sums()

    # when
    documents = by_period(sums, seconds)

    # then
    alone = [slices_encode(sums.take(index)) for index in periods_of(sums, seconds)]
    assert [document for _, document in documents] == alone
    starts = sorted({int(start) - int(start) % seconds for start in sums.start})
    assert [int(start.timestamp()) for start, _ in documents] == starts


@pytest.mark.parametrize("seconds", [3600, 86400])
def test_each_periods_document_reads_back_as_its_entries(seconds):
    # given
    sums = chunk_sums()

    # when
    documents = by_period(sums, seconds)

    # then
    for (_, document), index in zip(documents, periods_of(sums, seconds), strict=True):
        assert_same_entries(slices_decode(document), sums.take(index))


def assert_same_entries(read: SliceSums, written: SliceSums) -> None:
    for name in ("version", "segment", "start", "feature", "slice"):
        assert getattr(read, name).tolist() == getattr(written, name).tolist()
    assert np.array_equal(read.sums, written.sums)
    assert np.array_equal(read.scores.toarray(), written.scores.toarray())
    for part in ("values", "confusion"):
        for key in getattr(written, part).keys:
            assert np.array_equal(
                getattr(read, part).column(key), getattr(written, part).column(key)
            )


def test_a_document_of_no_entries_reads_back_empty():
    assert len(slices_decode(slices_encode(SliceSums.empty()))) == 0


def test_concat_of_one_part_is_that_of_it_and_nothing_without_copies():
    # given: keys out of order, as a single feature's part holds them; then in order
    unsorted = chunk_sums(seed=5)
    both = SliceSums.concat([unsorted, SliceSums.empty()])

    # when
    alone, again = SliceSums.concat([unsorted]), SliceSums.concat([both])

    # then
    assert slices_encode(alone) == slices_encode(both) == slices_encode(again)
    assert alone.sums is unsorted.sums and alone.values.keys == both.values.keys
    assert again.values is both.values and again.confusion is both.confusion
