"""What Canary knows about each metric: the one place that names a metric's words, unit, kind,
tasks, good direction, interval and how a window's value comes from the aggregates.

A key is either a fixed metric ("roc_auc") or a family's prefix with a name ("value:revenue",
"missing_rate:tenure_months"). Everything that names a metric reads it here: the series, the
comparisons and sensitivity, the alert rules and the pages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, replace

from common.time import duration_words
from factory.models import Task
from monitoring.metrics import measures
from monitoring.metrics.measures import Compute, Count, MeanOf, Share
from monitoring.metrics.windows import MetricError
from monitoring.models import NO_DATA_METRICS, NO_DATA_ONLY_METRICS, SketchKind
from monitoring.stats.direct_loss import LOSS_METRICS
from monitoring.stats.estimate import ESTIMATED_METRICS, MULTICLASS_ESTIMATED_METRICS

# Kinds: what sort of number a metric is, which decides how two windows of it compare.
PROPORTION = "proportion"  # k of n rows
MEAN = "mean"  # mean of a per-row value
RATIO = "ratio"  # a ratio of confusion counts (F1)
ROOT_MEAN_SQUARE = "root mean square"
AUC = "auc"
QUANTILE = "quantile"
SUM = "sum"
COUNT = "count"
DISTANCE = "distance"  # a drift test's statistic
ESTIMATE = "estimate"  # a metric estimated before the outcomes, or its gap to the realised
# The two-sample comparison of each kind (monitoring.metrics.reports); counts and sums are
# totals, not estimates with a sampling error, and have none.
COMPARISON = {
    PROPORTION: "proportion",
    MEAN: "mean",
    RATIO: "delta",
    ROOT_MEAN_SQUARE: "delta",
    QUANTILE: "delta",
    AUC: "auc",
    DISTANCE: "drift",
}

# Units, and how a person reads a value of each.
SHARE = "share"  # 0 to 1, read as a percentage
SCORE = "score"  # 0 to 1, read as a number
SECONDS = "seconds"
NUMBER = "number"  # in the unit of the outcome or the business value
UNIT_TEXT = {SHARE: "%", COUNT: "count", SECONDS: "seconds", SCORE: "0 to 1", NUMBER: ""}

HIGHER, LOWER, NEITHER = "higher", "lower", "neither"  # which direction is good

# Interval of a window's value.
WILSON = "Wilson"
WILSON_JACCARD = "Wilson of the Jaccard index, mapped to F1"
NORMAL = "normal"
NORMAL_MSE = "normal of the mean squared error, square-rooted"
HANLEY_MCNEIL = "Hanley-McNeil from the score histogram"
POISSON = "Poisson"  # no band on charts; headlines give the exact (Garwood) interval; rules
# judge a count with standard error sqrt(count)
EXPECTED_COUNTS = "bootstrap of the expected counts: where the realised value should fall"
EXPECTED_LOSS = "normal of the expected errors' spread: where the realised value should fall"
NO_INTERVAL = "none"

# What a metric reads beyond the hourly sums.
SUMS = "sums"
SKETCH = "sketch"
VALUES = "values"
QUARANTINE = "quarantine"
MISSING = "missing"
DRIFT = "drift"
UNMATCHED = "unmatched"
ESTIMATES = "estimates"  # the all-scores histograms and each version's calibration
GAPS = "gaps"  # the same on judged predictions, beside the realised value

# Metrics realised from outcomes: a window's value moves until its outcomes have arrived, so
# rules on them wait for mature windows (monitoring.metrics.maturity).
REALISED = frozenset(
    {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier", "macro_f1"}
    | {"mae", "rmse", "mape", "bias"}
)
REALISED_FAMILIES = frozenset(("value", "value_sum"))

UNIT_RANGE = (0.0, 1.0)
NON_NEGATIVE = (0.0, None)
UNBOUNDED = (None, None)


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    kind: str
    unit: str
    good: str
    interval: str
    compute: Compute | None
    _: KW_ONLY
    tasks: tuple[str, ...] = ()  # empty: every task
    limits: tuple[float | None, float | None] = UNBOUNDED  # the values it can take
    source: str = SUMS
    sketch: str | None = None  # the sketch kind merged per window, when source is SKETCH
    listed: bool = True  # among a model's metrics (charts, forms, the API's list)
    reads: str = ""  # its windows are those of this metric (a pseudo-metric)
    output: str = ""  # the model output it summarises ("score", "prediction")
    family: str = ""  # the prefix of a family ("value"), with `name` the rest of the key
    name: str = ""

    @property
    def no_data(self) -> bool:
        """Whether a no_data rule may count it."""
        return self.key in NO_DATA_METRICS

    @property
    def no_data_only(self) -> bool:
        """Whether only a no_data rule may watch it."""
        return self.key in NO_DATA_ONLY_METRICS

    @property
    def realised(self) -> bool:
        """Whether its windows are computed from outcomes (and so are partial while young)."""
        return self.key in REALISED or self.family in REALISED_FAMILIES

    @property
    def comparison(self) -> str | None:
        return COMPARISON.get(self.kind)

    @property
    def axis(self) -> str:
        """The axis title: its words and unit."""
        unit = UNIT_TEXT[self.unit]
        return f"{self.label} ({unit})" if unit else self.label

    def fits(self, task: str) -> bool:
        return not self.tasks or task in self.tasks

    def format(self, value: float) -> str:
        """A value as a person reads it: a share as a percentage, a count whole."""
        if self.unit == SHARE:
            return f"{value:.1%}"
        if self.unit == COUNT:
            return f"{value:,.0f}"
        if self.unit == SECONDS:
            return duration_text(value)
        return f"{value:.4g}"


BINARY, MULTICLASS, REGRESSION = Task.BINARY, Task.MULTICLASS, Task.REGRESSION
CLASSIFICATION = (BINARY, MULTICLASS)

# In the order a model lists them: those of every task, then each task's.
METRICS = (
    Metric(
        "predictions",
        "Predictions",
        COUNT,
        COUNT,
        NEITHER,
        POISSON,
        Count("predictions"),
        limits=NON_NEGATIVE,
    ),
    Metric(
        "label_coverage",
        "Label coverage",
        PROPORTION,
        SHARE,
        HIGHER,
        WILSON,
        Share("labelled", ("predictions",)),
        limits=UNIT_RANGE,
    ),
    Metric(
        "label_delay_p50",
        "Median label delay",
        QUANTILE,
        SECONDS,
        LOWER,
        NO_INTERVAL,
        measures.delay_median,
        limits=NON_NEGATIVE,
        source=SKETCH,
        sketch=SketchKind.DELAY,
    ),
    Metric(
        "mean_score",
        "Mean score",
        MEAN,
        SCORE,
        NEITHER,
        NORMAL,
        MeanOf("scored", "score_sum", "score_sq_sum"),
        limits=UNIT_RANGE,
        output="score",
    ),
    Metric(
        "mean_prediction",
        "Mean prediction",
        MEAN,
        NUMBER,
        NEITHER,
        NORMAL,
        MeanOf("predicted_num", "prediction_sum", "prediction_sq_sum"),
        output="prediction",
    ),
    Metric(
        "quarantined",
        "Quarantined records",
        COUNT,
        COUNT,
        LOWER,
        NO_INTERVAL,
        measures.extra_count,
        limits=NON_NEGATIVE,
        source=QUARANTINE,
    ),
    Metric(
        "accuracy",
        "Accuracy",
        PROPORTION,
        SHARE,
        HIGHER,
        WILSON,
        Share("correct", ("judged",)),
        tasks=CLASSIFICATION,
        limits=UNIT_RANGE,
    ),
    Metric(
        "precision",
        "Precision",
        PROPORTION,
        SHARE,
        HIGHER,
        WILSON,
        Share("tp", ("tp", "fp")),
        tasks=(BINARY,),
        limits=UNIT_RANGE,
    ),
    Metric(
        "recall",
        "Recall",
        PROPORTION,
        SHARE,
        HIGHER,
        WILSON,
        Share("tp", ("tp", "fn")),
        tasks=(BINARY,),
        limits=UNIT_RANGE,
    ),
    Metric(
        "f1",
        "F1 score",
        RATIO,
        SCORE,
        HIGHER,
        WILSON_JACCARD,
        measures.f1,
        tasks=(BINARY,),
        limits=UNIT_RANGE,
    ),
    Metric(
        "roc_auc",
        "ROC AUC",
        AUC,
        SCORE,
        HIGHER,
        HANLEY_MCNEIL,
        measures.roc_auc,
        tasks=(BINARY,),
        limits=UNIT_RANGE,
        source=SKETCH,
        sketch=SketchKind.SCORE,
    ),
    Metric(
        "log_loss",
        "Log loss",
        MEAN,
        NUMBER,
        LOWER,
        NORMAL,
        MeanOf("probabilistic", "log_loss_sum", "log_loss_sq_sum"),
        tasks=(BINARY,),
        limits=NON_NEGATIVE,
    ),
    Metric(
        "brier",
        "Brier score",
        MEAN,
        SCORE,
        LOWER,
        NORMAL,
        MeanOf("probabilistic", "brier_sum", "brier_sq_sum"),
        tasks=(BINARY,),
        limits=UNIT_RANGE,
    ),
    Metric(
        "positive_rate",
        "Positive rate",
        PROPORTION,
        SHARE,
        NEITHER,
        WILSON,
        Share("predicted_positive", ("predictions",)),
        tasks=(BINARY,),
        limits=UNIT_RANGE,
    ),
    Metric(
        "macro_f1",
        "Macro F1 score",
        RATIO,
        SCORE,
        HIGHER,
        NO_INTERVAL,
        measures.macro_f1,
        tasks=(MULTICLASS,),
        limits=UNIT_RANGE,
        source=SKETCH,
        sketch=SketchKind.CONFUSION,
    ),
    Metric(
        "mae",
        "Mean absolute error",
        MEAN,
        NUMBER,
        LOWER,
        NORMAL,
        MeanOf("regressed", "abs_error_sum", "error_sq_sum"),  # |e|^2 = e^2
        tasks=(REGRESSION,),
        limits=NON_NEGATIVE,
    ),
    Metric(
        "rmse",
        "Root mean squared error",
        ROOT_MEAN_SQUARE,
        NUMBER,
        LOWER,
        NORMAL_MSE,
        measures.rmse,
        tasks=(REGRESSION,),
        limits=NON_NEGATIVE,
    ),
    Metric(
        "mape",
        "Mean absolute percentage error",
        MEAN,
        SHARE,
        LOWER,
        NORMAL,
        MeanOf("ape_n", "ape_sum", "ape_sq_sum"),
        tasks=(REGRESSION,),
        limits=NON_NEGATIVE,
    ),
    Metric(
        "bias",
        "Bias (mean error)",
        MEAN,
        NUMBER,
        NEITHER,
        NORMAL,
        MeanOf("regressed", "error_sum", "error_sq_sum"),
        tasks=(REGRESSION,),
    ),
    Metric(
        "unmatched_outcomes",
        "Unmatched outcomes",
        COUNT,
        COUNT,
        LOWER,
        NO_INTERVAL,
        None,
        limits=NON_NEGATIVE,
        source=UNMATCHED,
        listed=False,
    ),
    Metric(
        "outcomes",
        "Outcomes",
        COUNT,
        COUNT,
        NEITHER,
        NO_INTERVAL,
        None,
        limits=NON_NEGATIVE,
        listed=False,
        reads="label_coverage",  # labelled predictions = coverage x predictions
    ),
)
BY_KEY = {metric.key: metric for metric in METRICS}


def value_label(name: str) -> str:
    return name[:1].upper() + name[1:]


# A family's entry, with the name part of the key left empty; `label` makes the words.
FAMILIES: dict[str, tuple[Metric, Callable[[str], str]]] = {
    "value": (
        Metric("value:", "", MEAN, NUMBER, HIGHER, NORMAL, measures.value_mean, source=VALUES),
        lambda name: f"{value_label(name)} per labelled prediction",
    ),
    "value_sum": (
        Metric("value_sum:", "", SUM, NUMBER, HIGHER, NORMAL, measures.value_total, source=VALUES),
        lambda name: f"{value_label(name)} (sum)",
    ),
    "missing_rate": (
        Metric(
            "missing_rate:",
            "",
            PROPORTION,
            SHARE,
            LOWER,
            WILSON,
            measures.missing_share,
            limits=UNIT_RANGE,
            source=MISSING,
        ),
        lambda name: f"Missing rate of {name}",
    ),
    "drift": (
        Metric(
            "drift:",
            "",
            DISTANCE,
            NUMBER,
            LOWER,
            NO_INTERVAL,
            measures.drift_statistic,
            limits=NON_NEGATIVE,
            source=DRIFT,
        ),
        lambda name: f"Drift of {name}",
    ),
}


def estimated_words(name: str, first: bool = False) -> str:
    """The words of the metric a family estimates ("accuracy", "ROC AUC", "F1 score")."""
    words = BY_KEY[name].label if name in BY_KEY else name
    if first or not words[1:2].islower():
        return words
    return words[:1].lower() + words[1:]


# Families of metrics estimated before the outcomes, by task: the metrics they estimate.
ESTIMATED = {
    BINARY: ESTIMATED_METRICS,
    MULTICLASS: MULTICLASS_ESTIMATED_METRICS,
    REGRESSION: LOSS_METRICS,
}
FAMILIES["estimated"] = (
    Metric(
        "estimated:",
        "",
        ESTIMATE,
        SCORE,
        HIGHER,
        EXPECTED_COUNTS,
        measures.estimated,
        tasks=(BINARY, MULTICLASS),  # per estimated metric: `metric_find`
        limits=UNIT_RANGE,
        source=ESTIMATES,
    ),
    lambda name: f"Estimated {estimated_words(name)}",
)
FAMILIES["estimation_gap"] = (
    Metric(
        "estimation_gap:",
        "",
        ESTIMATE,
        SCORE,
        NEITHER,
        EXPECTED_COUNTS,
        measures.estimation_gap,
        tasks=(BINARY, MULTICLASS),
        limits=(-1.0, 1.0),
        source=GAPS,
    ),
    lambda name: f"{estimated_words(name, first=True)}: realised minus estimated",
)

# The metrics every new model gets default band rules on, most telling first.
HEADLINES = {
    BINARY: ("roc_auc", "accuracy", "positive_rate"),
    # No positive class, and class labels have no mean: the output's analogue of positive_rate
    # is the mean score, the model's confidence in the class it predicted (judged once the
    # client logs scores).
    MULTICLASS: ("accuracy", "macro_f1", "mean_score"),
    REGRESSION: ("mae", "mean_prediction"),
}
# The estimated headline every new model gets a default band rule on, where its task has one:
# the estimate moves in a model's first days, before any outcome can.
ESTIMATED_HEADLINE = {
    BINARY: "estimated:roc_auc",
    MULTICLASS: "estimated:accuracy",
    REGRESSION: "estimated:mae",
}
# The one metric an overview shows of a model (sparklines, the compare page's default).
OVERVIEW = {BINARY: "accuracy", MULTICLASS: "accuracy", REGRESSION: "predictions"}


def metric_find(key: str) -> Metric | None:
    """The metric of a key, a family's with its name filled in; None for an unknown key."""
    if key in BY_KEY:
        return BY_KEY[key]
    prefix, _, name = key.partition(":")
    if prefix not in FAMILIES or not name:
        return None
    metric, label = FAMILIES[prefix]
    if metric.source in (ESTIMATES, GAPS):
        tasks = tuple(task for task, names in ESTIMATED.items() if name in names)
        if not tasks:
            return None
        # read as the metric it estimates, for the tasks that estimate it
        metric = replace(metric, unit=BY_KEY[name].unit, tasks=tasks)
        if name in LOSS_METRICS:
            metric = loss_estimate_metric(metric)
    return replace(metric, key=key, label=label(name), family=prefix, name=name)


def loss_estimate_metric(metric: Metric) -> Metric:
    """A regression estimate's entry: its own computation, interval and limits, lower
    better for the estimate (an error), neither for its gap."""
    if metric.source == ESTIMATES:
        return replace(
            metric,
            compute=measures.loss_estimated,
            good=LOWER,
            interval=EXPECTED_LOSS,
            tasks=(REGRESSION,),
            limits=NON_NEGATIVE,
        )
    return replace(
        metric,
        compute=measures.loss_estimation_gap,
        interval=EXPECTED_LOSS,
        tasks=(REGRESSION,),
        limits=UNBOUNDED,
    )


def metric_get(key: str) -> Metric:
    metric = metric_find(key)
    if metric is None:
        raise MetricError(f"unknown metric {key!r}")
    return metric


def metric_label(key: str) -> str:
    """The words a person reads for a metric key ("ROC AUC", "Missing rate of tenure_months")."""
    metric = metric_find(key)
    return metric.label if metric else key


def metric_keys(task: str) -> list[str]:
    """The fixed metrics a model of the task lists: those of every task, then its own."""
    return [m.key for m in METRICS if m.listed and not m.tasks] + [
        m.key for m in METRICS if m.listed and task in m.tasks
    ]


def metric_family_keys(*, values: list[str], features: list[str]) -> list[str]:
    """The keys of a model's business values and features, in the order a model lists them."""
    keys = [f"value:{name}" for name in values] + [f"value_sum:{name}" for name in values]
    for feature in features:
        keys += [f"missing_rate:{feature}", f"drift:{feature}"]
    return keys


def estimate_keys(task: str) -> list[str]:
    """The estimated metrics of a task and their gaps to the realised values."""
    names = ESTIMATED.get(task, ())
    return [f"estimated:{name}" for name in names] + [f"estimation_gap:{name}" for name in names]


def no_data_only_keys() -> list[str]:
    """Pseudo-metrics only a no_data rule watches (labelled predictions per window)."""
    return [m.key for m in METRICS if m.no_data_only]


def compared_keys(comparison: str) -> list[str]:
    """The fixed metrics compared between versions this way, in the order a model lists them."""
    return [m.key for m in METRICS if m.comparison == comparison]


def output_metrics() -> dict[str, str]:
    """{model output: the metric that summarises it} ("score": "mean_score")."""
    return {m.output: m.key for m in METRICS if m.output}


def metric_description() -> str:
    """Every metric key in one paragraph (the API schema's `metric` parameter)."""
    every = [m.key for m in METRICS if not m.tasks and not m.no_data_only]
    groups = [f"any model: {', '.join(every)}"]
    for task in (BINARY, MULTICLASS, REGRESSION):
        keys = [m.key for m in METRICS if task in m.tasks]
        groups.append(f"{task.replace('_', ' ')}: {', '.join(keys)}")
    families = []
    for prefix, (metric, label) in FAMILIES.items():
        name = {VALUES: "NAME", ESTIMATES: "METRIC", GAPS: "METRIC"}.get(metric.source, "FEATURE")
        families.append(f"{prefix}:{name} ({label(name)})")
    return (
        f"A metric key. For {'; '.join(groups)}. Per business value or feature: "
        f"{'; '.join(families)}."
    )


def duration_text(seconds: float) -> str:
    return duration_words(seconds)
