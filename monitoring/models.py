from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone

from factory.models import MLModel, ModelVersion


class RecordKind(models.TextChoices):
    PREDICTIONS = "predictions"
    OUTCOMES = "outcomes"


class IngestBatch(models.Model):
    """One ingestion request (or command-line file) and its receipt."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="batches")
    kind = models.CharField(max_length=20, choices=RecordKind.choices)
    content_type = models.CharField(max_length=100, default="application/json")
    source = models.CharField(max_length=100, blank=True, default="")  # API key name or "cli"
    received = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.kind} batch {self.public_id}"


class Prediction(models.Model):
    """A decision the model made. `prediction` holds the canonical label text."""

    # Bulk facts: no database foreign keys (their per-row checks halved COPY's speed) and no
    # single-column indexes on them (model_id leads the composite ones). Django still cascades
    # deletions, and the batch row that every ingestion inserts in the same transaction keeps
    # its foreign key to the model: a model deleted meanwhile fails the ingestion or the delete.
    model = models.ForeignKey(
        MLModel, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    version = models.ForeignKey(
        ModelVersion,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    prediction_id = models.CharField(max_length=200)
    timestamp = models.DateTimeField()
    segment = models.CharField(max_length=200, blank=True, default="")
    prediction = models.CharField(max_length=200)
    prediction_num = models.FloatField(null=True)
    score = models.FloatField(null=True)
    # Multiclass: each class's probability ({"class": p}, summing to 1), as the sender gave it.
    scores = models.JSONField(null=True)
    features = models.JSONField(null=True)
    content_md5 = models.CharField(max_length=32)
    batch = models.ForeignKey(
        IngestBatch,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )

    class Meta:
        # On PostgreSQL the table is partitioned by month of `timestamp` (monitoring/ingest/
        # partitions.py), and a unique index there must hold the partition key: this one
        # serves lookups. A (model, prediction_id) stored once across months is the store's
        # rule, under a per-model lock (monitoring/ingest/store.py), checked in PredictionKey.
        constraints = [
            models.UniqueConstraint(
                fields=["model", "prediction_id", "timestamp"], name="prediction_unique_per_month"
            )
        ]
        indexes = [models.Index(fields=["model", "timestamp"], name="prediction_model_time")]

    def __str__(self) -> str:
        return f"prediction {self.prediction_id} at {self.timestamp.isoformat()}"


class PredictionKey(models.Model):
    """Each stored prediction's key, unique across months: how ingestion finds an id stored
    in another month (monitoring/ingest/store.py).

    The predictions' own unique index holds the month (a partitioned table's unique index
    must), so it cannot refuse a repeat in another month; this table, not partitioned, can,
    at the cost of one index entry per prediction. Retention deletes the keys of the months
    it drops (a BRIN index on `timestamp` finds them). Written on PostgreSQL only (SQLite
    checks the predictions table, one writer at a time)."""

    pk = models.CompositePrimaryKey("model_id", "prediction_id")
    model_id = models.BigIntegerField()
    prediction_id = models.CharField(max_length=200)
    timestamp = models.DateTimeField()

    def __str__(self) -> str:
        return f"key {self.prediction_id} of model {self.model_id}"


class Outcome(models.Model):
    """What actually happened. Every version is kept; the latest `observed_at` wins."""

    # No database foreign keys nor single-column indexes, as for Prediction.
    model = models.ForeignKey(
        MLModel, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    prediction_id = models.CharField(max_length=200)
    observed_at = models.DateTimeField()
    outcome = models.CharField(max_length=200, null=True)
    outcome_num = models.FloatField(null=True)
    values = models.JSONField(null=True)
    content_md5 = models.CharField(max_length=32)
    batch = models.ForeignKey(
        IngestBatch,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    # When it was stored: an outcome lives one raw horizon from its arrival, whenever it was
    # observed, so one for a prediction long gone is still kept (and counted as waiting).
    received_at = models.DateTimeField(db_default=Now())

    class Meta:
        # Partitioned by month of `received_at` on PostgreSQL; the store keeps one outcome
        # per (model, prediction_id, observed_at) across months, as for predictions.
        constraints = [
            models.UniqueConstraint(
                fields=["model", "prediction_id", "observed_at", "received_at"],
                name="outcome_unique_per_month",
            )
        ]

    def __str__(self) -> str:
        return f"outcome of {self.prediction_id} at {self.observed_at.isoformat()}"


class Label(models.Model):
    """The join's result: a prediction with its current outcome and label delay."""

    # Written only by the join, from the prediction and outcome rows it reads in the same
    # statement: no database foreign keys (three checks a row), no index but the two reads need.
    prediction = models.OneToOneField(
        Prediction,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="label",
        db_constraint=False,
    )
    model = models.ForeignKey(
        MLModel, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    outcome_ref = models.ForeignKey(
        Outcome, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    outcome = models.CharField(max_length=200, null=True)
    outcome_num = models.FloatField(null=True)
    values = models.JSONField(null=True)
    observed_at = models.DateTimeField()
    delay_s = models.FloatField()
    correct = models.BooleanField(null=True)
    hour = models.DateTimeField()  # the prediction's hour, whose aggregates this label changes

    class Meta:
        indexes = [models.Index(fields=["model", "hour"], name="label_model_hour")]

    def __str__(self) -> str:
        return f"label of prediction row {self.prediction_id}: {self.outcome}"


class QuarantinedRecord(models.Model):
    """A rejected record, kept with its reason so that nothing posted is lost."""

    batch = models.ForeignKey(IngestBatch, on_delete=models.CASCADE, related_name="quarantined")
    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=RecordKind.choices)
    index = models.PositiveIntegerField()
    prediction_id = models.CharField(max_length=200, blank=True, default="")
    code = models.CharField(max_length=40)
    field = models.CharField(max_length=200, blank=True, default="")
    message = models.TextField()
    raw = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when a corrected record was re-submitted and stored (or found already stored).
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        IngestBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "batch", "index"]
        indexes = [models.Index(fields=["model", "created_at"], name="quarantine_model_time")]

    def __str__(self) -> str:
        return f"{self.kind} record {self.index} of batch {self.batch_id}: {self.code}"


class JoinState(models.Model):
    """Per model: how far the incremental join has read. Its row lock is the join's claim."""

    model = models.OneToOneField(MLModel, on_delete=models.CASCADE, primary_key=True)
    outcome_high_water = models.BigIntegerField(default=0)
    prediction_high_water = models.BigIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"join of model {self.model_id} at outcome {self.outcome_high_water}"


class RetentionRun(models.Model):
    """One run of retention: what it removed, so that pages can say which raw rows are gone."""

    ran_at = models.DateTimeField()
    # Raw predictions, outcomes and labels before this moment are removed.
    raw_removed_before = models.DateTimeField()
    months_removed = models.JSONField(default=list)  # "2025-09", ... dropped by this run
    quarantine_removed = models.PositiveIntegerField(default=0)
    evaluations_removed = models.PositiveIntegerField(default=0)
    duration_ms = models.FloatField(default=0)

    class Meta:
        ordering = ["-ran_at", "-id"]

    def __str__(self) -> str:
        return f"retention at {self.ran_at.isoformat()}: raw rows before {self.raw_removed_before}"


class DirtyHour(models.Model):
    """An hour whose aggregates must be recomputed (new predictions or new labels in it)."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "hour"], name="dirty_hour_unique")]

    def __str__(self) -> str:
        return f"model {self.model_id} hour {self.hour.isoformat()}"


class JobStage(models.TextChoices):
    JOIN = "join"
    AGGREGATE = "aggregate"  # a range of hours whose aggregates could not be written
    TIMESTAMPS = "timestamps"  # predictions stored outside the accepted event-time window
    ESTIMATE = "estimate"  # freezing the versions' calibrations for estimated performance
    EVALUATE = "evaluate"
    NOTIFY = "notify"


class JobFailure(models.Model):
    """A stage of a model's jobs that failed, or a range of hours it could not aggregate.

    Open while the row exists: it is deleted when the stage (or the hours) succeed again.
    Failed hours are retried at `retry_at` (with backoff) or when new data arrives in them.
    """

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="+")
    stage = models.CharField(max_length=20, choices=JobStage.choices)
    first_hour = models.DateTimeField(null=True)  # aggregate: the hours first_hour..last_hour
    last_hour = models.DateTimeField(null=True)
    error = models.TextField()
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=1)
    retry_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["first_seen", "id"]
        indexes = [models.Index(fields=["model", "stage"], name="job_failure_model_stage")]

    def __str__(self) -> str:
        return f"{self.stage} of model {self.model_id} failing since {self.first_seen}"


class JobHealth(models.Model):
    """Per model: how many runs of its jobs in a row ended with a failure open, and whether
    the on-call list was told that its monitoring is failing."""

    model = models.OneToOneField(MLModel, on_delete=models.CASCADE, primary_key=True)
    failed_runs = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True)
    alerted_at = models.DateTimeField(null=True)  # "monitoring is failing" sent
    last_run_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"jobs of model {self.model_id}: {self.failed_runs} failed runs in a row"


class HourlyAggregate(models.Model):
    """What the charts and statistics need, per model, version, segment and hour of prediction."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    segment = models.CharField(max_length=200, blank=True, default="")
    hour = models.DateTimeField()
    predictions = models.PositiveIntegerField(default=0)
    scored = models.PositiveIntegerField(default=0)
    score_sum = models.FloatField(default=0)
    score_sq_sum = models.FloatField(default=0)
    labelled = models.PositiveIntegerField(default=0)
    correct = models.PositiveIntegerField(default=0)
    delay_s_sum = models.FloatField(default=0)
    # Labels with an outcome (value-only outcomes are labelled but not judged).
    judged = models.PositiveIntegerField(default=0)
    # Binary: confusion counts with the model's positive class (tn = judged - tp - fp - fn).
    tp = models.PositiveIntegerField(default=0)
    fp = models.PositiveIntegerField(default=0)
    fn = models.PositiveIntegerField(default=0)
    predicted_positive = models.PositiveIntegerField(default=0)
    # Numeric predictions (mean_prediction).
    predicted_num = models.PositiveIntegerField(default=0)
    prediction_sum = models.FloatField(default=0)
    prediction_sq_sum = models.FloatField(default=0)
    # Judged and scored rows: per-row log loss and Brier terms, summed and squared.
    probabilistic = models.PositiveIntegerField(default=0)
    log_loss_sum = models.FloatField(default=0)
    log_loss_sq_sum = models.FloatField(default=0)
    brier_sum = models.FloatField(default=0)
    brier_sq_sum = models.FloatField(default=0)
    # Regression, error = prediction - outcome: sums of e, e^2, |e|, e^4, and of APE (actual != 0).
    regressed = models.PositiveIntegerField(default=0)
    error_sum = models.FloatField(default=0)
    error_sq_sum = models.FloatField(default=0)
    abs_error_sum = models.FloatField(default=0)
    error_fourth_sum = models.FloatField(default=0)
    ape_n = models.PositiveIntegerField(default=0)
    ape_sum = models.FloatField(default=0)
    ape_sq_sum = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model", "version", "segment", "hour"], name="hourly_unique"
            )
        ]
        indexes = [models.Index(fields=["model", "hour"], name="hourly_model_hour")]

    def __str__(self) -> str:
        return (
            f"model {self.model_id} version {self.version_id} segment {self.segment!r} "
            f"hour {self.hour.isoformat()}"
        )


class HourlyValue(models.Model):
    """Sums of one business value over the labelled predictions of an hour."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    segment = models.CharField(max_length=200, blank=True, default="")
    hour = models.DateTimeField()
    name = models.CharField(max_length=100)
    count = models.PositiveIntegerField(default=0)
    total = models.FloatField(default=0)
    total_sq = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model", "version", "segment", "hour", "name"], name="hourly_value_unique"
            )
        ]
        indexes = [models.Index(fields=["model", "name", "hour"], name="hourly_value_model_hour")]

    def __str__(self) -> str:
        return f"{self.name} of model {self.model_id} {self.segment!r} {self.hour.isoformat()}"


class SketchKind(models.TextChoices):
    SCORE = "score"  # ScoreHistogram of judged, scored predictions (binary)
    ALL_SCORES = "all_scores"  # every scored prediction by predicted class, judged or not (binary)
    DELAY = "delay"  # label delays on log bins
    CONFUSION = "confusion"  # multiclass {(actual, predicted): count}
    # Multiclass, one sketch per class (`name`), that class against the rest as a binary one:
    CLASS_SCORE = "class_score"  # SCORE's layout: judged rows, positive = the outcome is it
    CLASS_ALL = "class_all"  # ALL_SCORES' layout: every scored row, positive = predicted it
    NUMERICAL = "numerical"  # a feature's NumericHistogram on its FeatureBins edges
    CATEGORICAL = "categorical"  # a feature's category counts and missing count
    LOSS = "loss"  # regression: the rows' expected errors summed (monitoring.stats.direct_loss)


class Period(models.TextChoices):
    HOUR = "hour"
    DAY = "day"


class Sketch(models.Model):
    """A histogram or count table of one hour, or of one day (the sum of its hours).

    `data` is compact bytes (monitoring.stats.codec) or zlib'd JSON for category counts; `n`
    is how many values it holds, so windows can be sized without decoding. Bulk rows, written
    by COPY: no foreign-key constraints to check row by row at commit (Django still deletes
    them with their model or version).
    """

    # The unique index starts with the model: no index of its own to update on every row.
    model = models.ForeignKey(
        MLModel, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    segment = models.CharField(max_length=200, blank=True, default="")
    period = models.CharField(max_length=4, choices=Period.choices)
    start = models.DateTimeField()
    kind = models.CharField(max_length=12, choices=SketchKind.choices)
    name = models.CharField(max_length=200, blank=True, default="")
    n = models.PositiveIntegerField(default=0)
    missing = models.PositiveIntegerField(default=0)  # features: rows without a value
    data = models.BinaryField()

    class Meta:
        # One index serves uniqueness and the readers (a model's kind over a period's range),
        # so a COPY of sketch rows updates two indexes (this and the version's), not four.
        constraints = [
            models.UniqueConstraint(
                fields=["model", "kind", "period", "start", "version", "segment", "name"],
                name="sketch_unique_by_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name} {self.period} {self.start.isoformat()} (n={self.n})"


class FeatureBins(models.Model):
    """A feature's fixed bins for the whole model, frozen once and never again.

    Numerical edges come from the model's first registered reference that has the feature,
    else from the model's first days of predictions, every version's (monitoring.pipeline.bins).
    Every version's and every window's histograms are on them, so they add up across versions
    (DESIGN.md, Bins).
    """

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=12)  # numerical, categorical or unknown (all missing)
    edges = models.BinaryField()  # float64 little-endian; empty for categorical
    source = models.CharField(max_length=20)  # reference or predictions
    # The deciles of the reference the edges came from (explain's slices start from them).
    deciles = models.BinaryField(null=True)  # float64 little-endian
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "name"], name="feature_bins_model_unique")
        ]

    def __str__(self) -> str:
        return f"bins of {self.name} for model {self.model_id}"


class FeatureReference(models.Model):
    """A version's registered reference of one feature, counted on the model's bins, so a
    version's own drift reads no JSON and its reference adds up with the model's sketches.

    A row per feature of a known kind, written once the version has a reference (a registered
    reference never changes once set); ``reference`` is None where the reference lacks the
    feature or cannot be put on the model's bins (a profile sent on other edges).
    """

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    reference = models.BinaryField(null=True)
    deciles = models.BinaryField(null=True)  # float64 little-endian
    reference_rows = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "name"], name="feature_reference_unique")
        ]

    def __str__(self) -> str:
        return f"reference of {self.name} for version {self.version_id}"


class SliceBins(models.Model):
    """The slices `explain` cuts a feature into, frozen once per model and feature: deciles of
    the first version's fixed bins for a numerical feature (no edges for a categorical one).

    Frozen once and never again, so every version's and every day's slice rows add up, whatever
    bins the versions' own histograms use.
    """

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=12)  # numerical or categorical
    edges = models.BinaryField()  # interior decile edges, float64 little-endian

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="slice_bins_unique")]

    def __str__(self) -> str:
        return f"explain slices of {self.name} for model {self.model_id}"


class SliceDay(models.Model):
    """Explain's sums per slice of one day of a model (monitoring.pipeline.slice_aggregates):
    for each version, segment, feature and slice (a decile, a category, `(other)` or
    `(missing)`), the sums of `HourlyAggregate` (`SLICE_SUM_FIELDS`), the judged scores
    in 50 bins by outcome (ROC AUC), the labels' business values' sums (`value:NAME`) and the
    multiclass (outcome, prediction) counts (macro F1), in one compressed document: what
    `explain` and the feature page read.

    One row a day, not one per slice: a row per slice would store more rows than predictions
    where hours hold a few predictions each, and writing them would cost more than the rest of
    the aggregation.
    """

    model = models.ForeignKey(
        MLModel, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    day = models.DateTimeField()
    sums = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "day"], name="slice_day_unique")]

    def __str__(self) -> str:
        return f"slices of model {self.model_id} on {self.day.date().isoformat()}"


class SliceHour(models.Model):
    """The same entries for one hour: what its day's sums lose when the hour is aggregated
    again (late labels), so a day is updated without reading its other hours. Needed only
    while the hour can change: rows of sealed hours go with retention."""

    model = models.ForeignKey(
        MLModel, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    hour = models.DateTimeField()
    entries = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "hour"], name="slice_hour_unique")]

    def __str__(self) -> str:
        return f"slices of model {self.model_id} at {self.hour.isoformat()}"


# A slice holds the same sums as an hourly row but the label delay: explain does not
# decompose it.
SLICE_SUM_FIELDS = tuple(
    field.name
    for field in HourlyAggregate._meta.local_fields
    if isinstance(field, models.PositiveIntegerField | models.FloatField)
    and field.name != "delay_s_sum"
)
SLICE_COUNT_FIELDS = frozenset(
    name
    for name in SLICE_SUM_FIELDS
    if isinstance(HourlyAggregate._meta.get_field(name), models.PositiveIntegerField)
)


class CalibrationSource(models.TextChoices):
    """Where a version's calibration of scores came from, in the order they are tried."""

    SETTING = "estimation_reference", "the model's estimation reference window"
    REFERENCE_ROWS = "reference_rows", "the version's registered reference rows with outcomes"
    FIRST_DAYS = "first_days", "the version's first 7 days of labelled predictions"


class Calibration(models.Model):
    """A version's calibration of its scores to the chance of the positive class, frozen once
    chosen: estimates of every window of the version read it, so they do not move when later
    outcomes arrive. Chosen again only when the model's estimation reference is set again.

    `rates` holds P(positive) per score bin (`monitoring.stats.auc.SCORE_BINS`, float64), the
    isotonic fit of the labelled reference's positives per bin. A multiclass version's holds
    one such block per class of `classes`, each class calibrated against the rest.
    """

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="+")
    version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=24, choices=CalibrationSource.choices)
    reference_start = models.DateTimeField(null=True)
    reference_end = models.DateTimeField(null=True)
    labelled = models.PositiveIntegerField(default=0)  # reference rows with an outcome
    rates = models.BinaryField()  # float64 little-endian, one per score bin (per class)
    # Multiclass: the classes whose rates follow one another in `rates`; null for binary.
    classes = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"calibration of version {self.version_id} from {self.source}"


class ErrorModel(models.Model):
    """A regression version's model of each prediction's expected absolute and squared error
    (monitoring.stats.direct_loss), fitted once on a labelled reference: the jobs apply it to
    every row of the version's dirty hours and store the sums (`SketchKind.LOSS`), so that
    estimated MAE and RMSE are read from aggregates.

    A version without a reference of its own borrows the production version's model
    (`fitted_on` says whose); it is replaced, and the version's hours re-aggregated, when its
    own reference is ready or production's model changes. Chosen again, like `Calibration`,
    only when the model's estimation reference is set again.
    """

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="+")
    version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="+")
    fitted_on = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=24, choices=CalibrationSource.choices)
    reference_start = models.DateTimeField(null=True)
    reference_end = models.DateTimeField(null=True)
    labelled = models.PositiveIntegerField(default=0)  # reference rows it was fitted on
    terms = models.JSONField()  # ErrorModel.as_json(): intercepts, curves, levels, spreads
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"error model of version {self.version_id} from {self.source}"


class Granularity(models.TextChoices):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"


# The labels are the words a person reads on the rule form.
class RuleKind(models.TextChoices):
    STATIC = "static", "Fixed bounds"
    RELATIVE = "relative", "Change from a baseline, in percent"
    BAND = "band", "Band around the recent mean"
    NO_DATA = "no_data", "Too little data"


class Severity(models.TextChoices):
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class Sides(models.TextChoices):
    BOTH = "both", "Too low or too high"
    TOO_LOW = "too_low", "Only too low"
    TOO_HIGH = "too_high", "Only too high"


# What a no_data rule may count: silence of the predictions, or of the outcomes. Outcomes (the
# labelled predictions of a window) are watched by no_data rules only: other rules use their
# share, label coverage. The metric registry reads these two facts from here.
NO_DATA_METRICS = ("predictions", "outcomes")
NO_DATA_ONLY_METRICS = ("outcomes",)


class AlertRule(models.Model):
    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="alert_rules")
    metric = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=RuleKind.choices)
    lower = models.FloatField(null=True, blank=True)
    upper = models.FloatField(null=True, blank=True)
    percent = models.FloatField(null=True, blank=True)
    baseline_windows = models.PositiveIntegerField(default=14)
    k = models.FloatField(null=True, blank=True)
    min_count = models.PositiveIntegerField(default=100)
    granularity = models.CharField(max_length=10, choices=Granularity.choices, default="day")
    for_windows = models.PositiveIntegerField(default=1)
    cooldown_minutes = models.PositiveIntegerField(default=240)
    version = models.CharField(max_length=100, null=True, blank=True)
    segment = models.CharField(max_length=200, null=True, blank=True)
    severity = models.CharField(max_length=20, choices=Severity.choices, default="warning")
    recipients = models.JSONField(default=list, blank=True)
    # Which side(s) of a relative or band rule fire; static rules say it with lower/upper.
    sides = models.CharField(max_length=10, choices=Sides.choices, default="both")
    # relative: compare with this version's value in the same window instead of a trailing mean
    baseline_version = models.CharField(max_length=100, null=True, blank=True)
    # Hysteresis: a firing alert resolves only after this many judged windows back inside.
    resolve_windows = models.PositiveIntegerField(default=2)
    # While firing and not acknowledged, remind every this many minutes (0: never).
    repeat_minutes = models.PositiveIntegerField(default=1440)
    silenced_until = models.DateTimeField(null=True, blank=True)
    silence_reason = models.CharField(max_length=500, blank=True, default="")
    is_default = models.BooleanField(default=False)
    # When this rule's alert fires, the factory is asked to retrain (monitoring/alerts/retrain.py).
    requests_retrain = models.BooleanField(default=False)
    # Rules on realised metrics judge a window once this share of its expected outcomes has
    # arrived (null: the model's label_maturity).
    label_maturity = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(lower__isnull=True) | Q(upper__isnull=True) | Q(lower__lt=F("upper")),
                name="alert_rule_lower_below_upper",
            )
        ]

    def __str__(self) -> str:
        return f"{self.model.name}: {self.metric} {self.kind} #{self.pk}"

    def is_silenced(self, now: datetime) -> bool:
        """Messages about this rule wait until the silence ends; evaluation goes on."""
        return self.silenced_until is not None and self.silenced_until > now

    def clean(self) -> None:
        """The rule's own invariants; the first one broken is reported, under its field."""
        for field, message in self.invariants_broken():
            raise ValidationError({field: message})

    def invariants_broken(self) -> Iterator[tuple[str, str]]:
        kind, lower, upper = self.kind, self.lower, self.upper
        if kind == RuleKind.STATIC and lower is None and upper is None:
            yield "lower", "static rules need lower or upper"
        if lower is not None and upper is not None and lower >= upper:
            yield "upper", "must be greater than lower"
        if kind == RuleKind.RELATIVE and not (self.percent or 0) > 0:
            yield "percent", "relative rules need percent > 0"
        if kind == RuleKind.BAND and not (self.k or 0) > 0:
            yield "k", "band rules need k > 0"
        if kind in (RuleKind.RELATIVE, RuleKind.BAND) and self.baseline_windows < 1:
            yield "baseline_windows", "must be at least 1"
        if kind == RuleKind.NO_DATA and self.metric not in NO_DATA_METRICS:
            yield "metric", "no_data rules count predictions or outcomes"
        if kind != RuleKind.NO_DATA and self.metric in NO_DATA_ONLY_METRICS:
            yield "metric", "outcomes is for no_data rules; use label_coverage for the others"
        if self.baseline_version and kind != RuleKind.RELATIVE:
            yield "baseline_version", "only relative rules compare with another version"


class AlertState(models.TextChoices):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Direction(models.TextChoices):
    TOO_LOW = "too_low"
    TOO_HIGH = "too_high"
    NO_DATA = "no_data"


class Alert(models.Model):
    """One breach of a rule, from its first bad window until it is resolved."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="alerts")
    state = models.CharField(max_length=20, choices=AlertState.choices)
    direction = models.CharField(max_length=20, choices=Direction.choices)
    value = models.FloatField(null=True)
    n = models.PositiveIntegerField(default=0)
    lower = models.FloatField(null=True)
    upper = models.FloatField(null=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    started_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True)
    # The first breaching window: band and relative baselines stay frozen before it.
    first_window_start = models.DateTimeField(null=True)
    acknowledged_at = models.DateTimeField(null=True)
    acknowledged_by = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # At most one open alert per rule, so concurrent evaluators cannot open two.
            models.UniqueConstraint(
                fields=["rule"],
                condition=~models.Q(state="resolved"),
                name="one_open_alert_per_rule",
            )
        ]

    def __str__(self) -> str:
        return f"alert {self.pk} of rule {self.rule_id}: {self.state}"


class NotificationKind(models.TextChoices):
    FIRING = "firing"
    REMINDER = "reminder"
    RESOLVED = "resolved"
    # Someone acknowledged the alert in Canary: told to channels that track incidents
    # (PagerDuty), so the page stops there too.
    ACKNOWLEDGED = "acknowledged"


class Notification(models.Model):
    """One message about one alert state change; the unique key makes sending happen once."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=20, choices=NotificationKind.choices)
    channel = models.CharField(max_length=20, default="email")
    target = models.CharField(max_length=500, blank=True, default="")  # a webhook's URL
    sequence = models.PositiveIntegerField(default=0)  # reminders count 1, 2, ...
    recipients = models.JSONField(default=list)
    subject = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)  # the evaluation's time
    sent_at = models.DateTimeField(null=True)
    claimed_until = models.DateTimeField(null=True)
    claim_token = models.UUIDField(null=True)  # who holds it: one sender per group
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    # Settled without being told: a reminder that a message telling a newer change of its
    # alert (its firing or resolution, or a later reminder) made redundant. `sent_at` is
    # when that message went out.
    superseded = models.BooleanField(default=False)

    MAX_ATTEMPTS = 5  # a notification failing this often is given up (until the peer is back)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "kind", "channel", "target", "sequence"],
                name="notification_once_per_change",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.channel} notification of alert {self.alert_id}"

    def delivery_state(self, now: datetime) -> str:
        """sent; superseded (a newer message of its alert told it); failed (given up);
        retrying (failed, tried again later); held (its rule is silenced); or due (waiting
        for the next sending run)."""
        if self.sent_at:
            return "superseded" if self.superseded else "sent"
        if self.error and self.attempts >= self.MAX_ATTEMPTS:
            return "failed"
        if self.error:
            return "retrying"
        return "held" if self.alert.rule.is_silenced(now) else "due"


class Verdict(models.TextChoices):
    OK = "ok"
    TOO_LOW = "too_low"
    TOO_HIGH = "too_high"
    NO_DATA = "no_data"  # a no_data rule's breach, or no judged window at all
    TOO_FEW = "too_few"  # the latest window has fewer than min_count observations
    NO_BASELINE = "no_baseline"  # band/relative without enough earlier windows
    IMMATURE = "immature", "Waiting for outcomes"  # too few of its expected outcomes are in yet
    ERROR = "error"  # the metric could not be computed; recorded, never alerted


class AlertEvaluation(models.Model):
    """One judgement of one rule in one evaluation run: the audit trail of every alert."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="evaluations")
    alert = models.ForeignKey(Alert, on_delete=models.SET_NULL, null=True, related_name="+")
    run_id = models.UUIDField()
    evaluated_at = models.DateTimeField()
    window_start = models.DateTimeField(null=True)
    window_end = models.DateTimeField(null=True)
    value = models.FloatField(null=True)
    lower = models.FloatField(null=True)
    upper = models.FloatField(null=True)
    n = models.PositiveIntegerField(default=0)
    verdict = models.CharField(max_length=20, choices=Verdict.choices)
    state = models.CharField(max_length=20, blank=True, default="")  # the alert's, after
    error = models.TextField(blank=True, default="")
    duration_ms = models.FloatField(default=0)

    class Meta:
        ordering = ["-evaluated_at", "-id"]
        indexes = [models.Index(fields=["rule", "evaluated_at"], name="evaluation_rule_time")]

    def __str__(self) -> str:
        return f"rule {self.rule_id} at {self.evaluated_at.isoformat()}: {self.verdict}"


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook"  # JSON with a Slack-compatible `text`, to any URL
    SLACK = "slack"  # a Slack incoming webhook: a message in blocks
    PAGERDUTY = "pagerduty", "PagerDuty"  # PagerDuty's Events API v2: trigger, acknowledge, resolve


# The kinds that are told when an alert is acknowledged: they keep an incident open until then.
ACKNOWLEDGING_CHANNELS = (ChannelKind.PAGERDUTY,)


class WebhookEndpoint(models.Model):
    """A channel beside e-mail that receives every alert notification of one model: a plain
    webhook, a Slack incoming webhook, or a PagerDuty service (its Events API URL and the
    service's integration key, `routing_key`)."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="webhooks")
    kind = models.CharField(max_length=20, choices=ChannelKind.choices, default="webhook")
    url = models.URLField(max_length=500)
    routing_key = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "kind", "url", "routing_key"], name="channel_unique_per_model"
            ),
            models.CheckConstraint(
                condition=~Q(kind="pagerduty") | ~Q(routing_key=""),
                name="pagerduty_channel_has_routing_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.url}"

    def clean(self) -> None:
        if self.kind == ChannelKind.PAGERDUTY and not self.routing_key.strip():
            raise ValidationError({"routing_key": "a PagerDuty channel needs its integration key"})
        if self.kind != ChannelKind.PAGERDUTY and self.routing_key:
            raise ValidationError({"routing_key": "only PagerDuty channels have a routing key"})

    @property
    def recipients(self) -> list[str]:
        """Who the notification is for, as its row keeps it: the service for PagerDuty."""
        return [self.routing_key] if self.kind == ChannelKind.PAGERDUTY else [self.url]


class DefaultRuleApplied(models.Model):
    """A metric whose default rules were created once, so deleting them is not undone."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="+")
    metric = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "metric"], name="default_rule_once")
        ]

    def __str__(self) -> str:
        return f"default rules on {self.metric} of model {self.model_id}"


class OutboxEmail(models.Model):
    """An e-mail the embedded mode kept instead of sending (no EMAIL_HOST): the dashboard's
    outbox shows it as its recipients would have read it. Only the newest are kept."""

    KEEP = 500  # messages; each is the whole MIME text, a few tens of kB with its chart

    sent_at = models.DateTimeField(default=timezone.now)
    from_email = models.CharField(max_length=300)
    to = models.JSONField(default=list)
    subject = models.CharField(max_length=1000)
    message = models.TextField()  # the MIME message as it would have gone out

    class Meta:
        ordering = ["-sent_at", "-id"]

    def __str__(self) -> str:
        return self.subject
