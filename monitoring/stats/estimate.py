"""Binary classification performance estimated before the outcomes (confidence-based
performance estimation, as NannyML's CBPE), from score histograms alone.

A version's scores are calibrated once on a labelled reference: the share of positives in
each score bin, made non-decreasing by isotonic regression (weighted by the bin's labelled
rows) and interpolated linearly over bins without labels. A window's expected confusion
counts are then the calibrated chances summed over its predictions, by the class each was
given; its expected ROC AUC counts each prediction as a positive of weight p and a negative
of weight 1 - p. Nothing here reads a row: the inputs are per-bin counts.

The interval is where the realised value would fall if the calibration holds: the outcomes
are drawn, per bin, as binomials of the calibrated chance (a parametric bootstrap of the
expected counts, each binomial by its normal approximation), and the metric of each draw
taken. Its percentiles bound the realised value, so a realised value outside them says the
relation between scores and outcomes has changed. ROC AUC, a function of every bin's draw,
takes the same binomials through the delta method instead (its gradient per bin), which
matches the draws' spread to a few parts in a thousand at a thousandth of their cost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import isotonic_regression

from monitoring.stats.auc import SCORE_BINS, ScoreHistogram, score_bin_index
from monitoring.stats.moments import CONFIDENCE, z_value

ESTIMATED_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
DRAWS = 400  # bootstrap draws per window: percentiles at 95% move by about 0.1 point
SEED = 20260301  # fixed, so an answer is the same every time it is asked


@dataclass(frozen=True)
class AllScoreHistogram:
    """Every scored prediction per score bin, by the class it was given (positive or not),
    and of those the ones with an outcome (judged), plus the score sums per bin."""

    predicted_positive: np.ndarray
    predicted_negative: np.ndarray
    judged_positive: np.ndarray  # judged and predicted positive
    judged_negative: np.ndarray  # judged and predicted negative
    score_sums: np.ndarray

    def __add__(self, other: AllScoreHistogram) -> AllScoreHistogram:
        return AllScoreHistogram(
            self.predicted_positive + other.predicted_positive,
            self.predicted_negative + other.predicted_negative,
            self.judged_positive + other.judged_positive,
            self.judged_negative + other.judged_negative,
            self.score_sums + other.score_sums,
        )

    @property
    def n(self) -> int:
        return int(self.predicted_positive.sum() + self.predicted_negative.sum())

    def judged(self) -> AllScoreHistogram:
        """The judged predictions alone (what realised values are computed on)."""
        return AllScoreHistogram(
            self.judged_positive,
            self.judged_negative,
            self.judged_positive,
            self.judged_negative,
            self.score_sums * 0,  # not kept per judged row
        )


def all_score_histogram(
    scores: np.ndarray, predicted_positive: np.ndarray, judged: np.ndarray, n_bins: int = SCORE_BINS
) -> AllScoreHistogram:
    """The histogram of raw rows (tests, reference rows): scores, whether each was predicted
    positive, and whether each has an outcome."""
    scores = np.asarray(scores, dtype=float)
    index = score_bin_index(scores, n_bins)
    positive, judged = np.asarray(predicted_positive, bool), np.asarray(judged, bool)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(index[mask], minlength=n_bins).astype(np.int64)

    return AllScoreHistogram(
        count(positive),
        count(~positive),
        count(positive & judged),
        count(~positive & judged),
        np.bincount(index, weights=scores, minlength=n_bins),
    )


def bin_centres(n_bins: int = SCORE_BINS) -> np.ndarray:
    return (np.arange(n_bins) + 0.5) / n_bins


def calibration_fit(reference: ScoreHistogram) -> np.ndarray | None:
    """P(positive) per score bin from a labelled reference's histogram: the isotonic fit of
    each labelled bin's positive share (weighted by its labelled rows) at the bin centres,
    interpolated linearly between them and held flat beyond the outer ones. None without
    labelled rows."""
    labelled = reference.positives + reference.negatives
    present = np.flatnonzero(labelled)
    if not present.size:
        return None
    share = reference.positives[present] / labelled[present]
    fitted = isotonic_regression(share, weights=labelled[present].astype(float)).x
    centres = bin_centres(reference.n_bins)
    return np.interp(centres, centres[present], fitted)


@dataclass(frozen=True)
class Versioned:
    """One version's histogram in a window, with its calibration."""

    histogram: AllScoreHistogram
    rates: np.ndarray


@dataclass(frozen=True)
class Expected:
    """Expected confusion counts and the positives and negatives per score bin."""

    tp: float
    fp: float
    fn: float
    tn: float
    positives: np.ndarray  # expected positives per bin, over every version
    negatives: np.ndarray


def expected_counts(parts: list[Versioned]) -> Expected:
    """The window's expected counts, each version's on its own calibration, summed."""
    tp = fp = fn = tn = 0.0
    positives = np.zeros(SCORE_BINS)
    negatives = np.zeros(SCORE_BINS)
    for part in parts:
        h, rates = part.histogram, part.rates
        tp += float(h.predicted_positive @ rates)
        fp += float(h.predicted_positive @ (1 - rates))
        fn += float(h.predicted_negative @ rates)
        tn += float(h.predicted_negative @ (1 - rates))
        counts = h.predicted_positive + h.predicted_negative
        positives = positives + counts * rates
        negatives = negatives + counts * (1 - rates)
    return Expected(tp, fp, fn, tn, positives, negatives)


def metric_of_counts(metric: str, tp, fp, fn, tn):
    """A metric of confusion counts (arrays of draws, or numbers); NaN where undefined."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "accuracy":
            return (tp + tn) / (tp + fp + fn + tn)
        if metric == "precision":
            return tp / (tp + fp)
        if metric == "recall":
            return tp / (tp + fn)
        if metric == "f1":
            return 2 * tp / (2 * tp + fp + fn)
    raise ValueError(f"no estimate of {metric!r}")


def auc_of_bins(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """ROC AUC of weights per score bin (last axis, in score order), pairs within a bin
    counted half; NaN without either class."""
    below = np.cumsum(negatives, axis=-1) - negatives
    pairs = positives.sum(axis=-1) * negatives.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(positives * (below + negatives / 2), axis=-1) / pairs


def point_estimate(metric: str, expected: Expected) -> float:
    if metric == "roc_auc":
        value = auc_of_bins(expected.positives, expected.negatives)
    else:
        value = metric_of_counts(metric, expected.tp, expected.fp, expected.fn, expected.tn)
    return float(value)


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None
    high: float | None
    n: int


def draws_of(parts: list[Versioned], metric: str, draws: int, seed: int) -> np.ndarray:
    """The metric's realised value in each draw of the outcomes. A bin's true positives
    are a binomial of its predictions and calibrated chance; their sums are drawn by their
    normal approximation (same mean and variance)."""
    rng = np.random.default_rng(seed)
    tp = total_draws(rng, draws, [(p.histogram.predicted_positive, p.rates) for p in parts])
    fn = total_draws(rng, draws, [(p.histogram.predicted_negative, p.rates) for p in parts])
    predicted_positive = sum(p.histogram.predicted_positive.sum() for p in parts)
    predicted_negative = sum(p.histogram.predicted_negative.sum() for p in parts)
    return metric_of_counts(metric, tp, predicted_positive - tp, fn, predicted_negative - fn)


def auc_standard_error(parts: list[Versioned]) -> float:
    """The standard error of the realised ROC AUC when each bin's positives are binomials
    of its predictions and calibrated chance: the delta method on `auc_of_bins`."""
    counts = sum(counts_of(p) for p in parts)
    mean = sum(counts_of(p) * p.rates for p in parts)
    variance = sum(counts_of(p) * p.rates * (1 - p.rates) for p in parts)
    negatives = counts - mean
    below = np.cumsum(negatives) - negatives  # negatives in lower bins
    above = mean.sum() - np.cumsum(mean)  # positives in higher bins
    positive_total, negative_total = mean.sum(), negatives.sum()
    pairs = positive_total * negative_total
    ranked = np.sum(mean * (below + negatives / 2))
    # d(ranked)/d(positives of bin k): a positive gained there is a negative lost there
    d_ranked = below + negatives / 2 - mean / 2 - above
    gradient = (d_ranked * pairs - ranked * (negative_total - positive_total)) / pairs**2
    return float(np.sqrt(np.sum(gradient**2 * variance)))


def counts_of(part: Versioned) -> np.ndarray:
    return part.histogram.predicted_positive + part.histogram.predicted_negative


def total_draws(rng, draws: int, parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Draws of the positives among the given predictions per bin (a sum of binomials)."""
    mean = sum(float(n @ rates) for n, rates in parts)
    variance = sum(float(n @ (rates * (1 - rates))) for n, rates in parts)
    total = sum(float(n.sum()) for n, _ in parts)
    return np.clip(mean + rng.standard_normal(draws) * np.sqrt(variance), 0, total)


def binary_estimate(
    parts: list[Versioned],
    metric: str,
    *,
    confidence: float = CONFIDENCE,
    draws: int = DRAWS,
    seed: int = SEED,
) -> Estimate:
    """A window's estimated metric with the interval its realised value should fall in."""
    parts = [part for part in parts if part.histogram.n]
    n = sum(part.histogram.n for part in parts)
    if not n:
        return Estimate(None, None, None, 0)
    value = point_estimate(metric, expected_counts(parts))
    if not np.isfinite(value):
        return Estimate(None, None, None, n)
    if metric == "roc_auc":
        half = z_value(confidence) * auc_standard_error(parts)
        return Estimate(value, max(value - half, 0.0), min(value + half, 1.0), n)
    sample = draws_of(parts, metric, draws, seed)
    sample = sample[np.isfinite(sample)]
    if not sample.size:
        return Estimate(value, None, None, n)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(sample, [tail, 100 - tail])
    return Estimate(value, float(min(low, value)), float(max(high, value)), n)


# --- multiclass ---

MULTICLASS_ESTIMATED_METRICS = ("accuracy", "macro_f1")


@dataclass(frozen=True)
class ClassVersioned:
    """One version's histograms in a window, one per class (that class against the rest:
    positive = predicted it), each with the class's calibration."""

    classes: dict[str, Versioned]

    @property
    def n(self) -> int:
        """Its scored predictions: each is in every class's histogram (a class its scores
        leave out counts as a score of 0)."""
        return max((part.histogram.n for part in self.classes.values()), default=0)

    def judged(self) -> ClassVersioned:
        return ClassVersioned(
            {
                label: replace(part, histogram=part.histogram.judged())
                for label, part in self.classes.items()
            }
        )


def multiclass_calibration_fit(references: dict[str, ScoreHistogram]) -> dict[str, np.ndarray]:
    """Each class's calibration against the rest (one-vs-rest isotonic, as binary); classes
    without labelled rows are left out."""
    fitted = {label: calibration_fit(reference) for label, reference in references.items()}
    return {label: rates for label, rates in fitted.items() if rates is not None}


@dataclass(frozen=True)
class ClassExpected:
    """Per class (in `labels` order): expected true positives, expected members (predicted
    or not), predictions of it, and the variance of the true positives under the
    calibration."""

    labels: list[str]
    tp: np.ndarray
    actual: np.ndarray
    predicted: np.ndarray
    tp_var: np.ndarray
    n: int


def class_expected(parts: list[ClassVersioned]) -> ClassExpected:
    """The window's expected counts per class, each version's on its own calibration, summed.

    Each class's calibrated chances come from its own one-vs-rest fit, so a prediction's
    chances over the classes need not sum to 1. NannyML normalises them per prediction; the
    histograms keep no prediction's classes together, so each version's are normalised in
    aggregate instead: scaled so that its expected members of all classes add up to its
    predictions."""
    labels = sorted({label for part in parts for label in part.classes})
    at = {label: i for i, label in enumerate(labels)}
    tp, actual, predicted, tp_var = (np.zeros(len(labels)) for _ in range(4))
    for part in parts:
        rows = [
            (at[label], v.histogram.predicted_positive, v.histogram.predicted_negative, v.rates)
            for label, v in part.classes.items()
        ]
        members = sum(float((pos + neg) @ rates) for _, pos, neg, rates in rows)
        scale = part.n / members if members > 0 else 1.0
        for i, positive, negative, rates in rows:
            tp[i] += scale * float(positive @ rates)
            actual[i] += scale * float((positive + negative) @ rates)
            predicted[i] += float(positive.sum())
            tp_var[i] += scale**2 * float(positive @ (rates * (1 - rates)))
    n = sum(part.n for part in parts)
    return ClassExpected(labels, tp, actual, predicted, tp_var, n)


def class_metric(metric: str, tp, missed, predicted, n: int, present: np.ndarray):
    """Accuracy or macro F1 of expected counts per class (last axis; draws before it):
    ``missed`` are a class's members not predicted it. Macro F1 averages the ``present``
    classes (any expected member or prediction), as scikit-learn's over the labels present."""
    if metric == "accuracy":
        return tp.sum(axis=-1) / n
    if metric == "macro_f1":
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = 2 * tp / (predicted + tp + missed)
        return np.where(present, f1, 0.0).sum(axis=-1) / max(int(present.sum()), 1)
    raise ValueError(f"no multiclass estimate of {metric!r}")


def multiclass_estimate(
    parts: list[ClassVersioned],
    metric: str,
    *,
    confidence: float = CONFIDENCE,
    draws: int = DRAWS,
    seed: int = SEED,
) -> Estimate:
    """A window's estimated accuracy or macro F1, with the interval its realised value should
    fall in if the calibration holds (a parametric bootstrap of the expected counts)."""
    parts = [part for part in parts if part.n]
    expected = class_expected(parts)
    if not expected.n:
        return Estimate(None, None, None, 0)
    missed = expected.actual - expected.tp
    present = expected.predicted + expected.actual > 0
    value = float(
        class_metric(metric, expected.tp, missed, expected.predicted, expected.n, present)
    )
    if not np.isfinite(value):
        return Estimate(None, None, None, expected.n)
    tp, missed = class_draws(expected, np.random.default_rng(seed), draws)
    sample = class_metric(metric, tp, missed, expected.predicted, expected.n, present)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(sample, [tail, 100 - tail])
    return Estimate(value, float(min(low, value)), float(max(high, value)), expected.n)


def class_draws(expected: ClassExpected, rng, draws: int) -> tuple[np.ndarray, np.ndarray]:
    """Draws of each class's true positives and of its members not predicted it.

    True positives are sums of binomials over the class's predictions, drawn by their normal
    approximations, independently (different predictions). The errors are then what those
    leave, shared among the classes missed as a multinomial of their expected shares (normal
    approximation, covariance errors x (diag(q) - q q')): one prediction's error is one class
    missed, so the classes' misses fall and rise together with the errors, and with every
    class's F1. Drawing the misses apart from the true positives left macro F1's interval too
    narrow (83% coverage at 95% on generated windows)."""
    shape = (draws, len(expected.labels))
    tp = expected.tp + rng.standard_normal(shape) * np.sqrt(expected.tp_var)
    tp = np.clip(tp, 0, expected.predicted)
    errors = (expected.predicted - tp).sum(axis=1, keepdims=True)
    missed = np.maximum(expected.actual - expected.tp, 0)
    share = missed / missed.sum() if missed.sum() > 0 else np.zeros_like(missed)
    root = np.sqrt(share) * rng.standard_normal(shape)  # covariance diag(q)
    noise = root - share * root.sum(axis=1, keepdims=True)
    return tp, np.maximum(errors * share + np.sqrt(errors) * noise, 0)


def window_estimate(parts: list, metric: str) -> Estimate:
    """The estimate of a window's parts: a multiclass model's (`ClassVersioned`) or a
    binary one's (`Versioned`)."""
    if parts and isinstance(parts[0], ClassVersioned):
        return multiclass_estimate(parts, metric)
    return binary_estimate(parts, metric)


def judged_parts(parts: list) -> list:
    """The parts restricted to their judged predictions (what a gap is computed on)."""
    return [
        part.judged()
        if isinstance(part, ClassVersioned)
        else replace(part, histogram=part.histogram.judged())
        for part in parts
    ]
