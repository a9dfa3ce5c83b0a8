from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.utils import timezone

from dashboard.charts import Partial
from factory.models import MLModel, ModelVersion, Rollout
from monitoring.metrics.traffic import version_starts
from monitoring.metrics.windows import WINDOW, window_start
from monitoring.models import HourlyAggregate


@dataclass
class Chart:
    dom_id: str
    metric: str
    title: str
    figure: dict
    summary: str
    rows_url: str = ""
    note: str = ""  # one line beside the chart: the smallest change it can show (sensitivity)

    @property
    def script_id(self) -> str:
        return f"{self.dom_id}-data"


# How far back the model page looks by default: the page's cost grows with the windows shown,
# never with the rows stored.
DEFAULT_DAYS = {"hour": 3, "day": 30, "week": 182}


DAYS_CHOICES = (3, 7, 30, 90, 182, 365)


@dataclass
class Scope:
    """The page's filters from GET params, passed to `metric_series`."""

    granularity: str = "day"
    version: str | None = None
    segment: str | None = None
    days: int | None = None  # the last so many days (to the end of the current window)
    # The model's first data: a span starts no earlier, so a young model's data fills the
    # charts instead of sitting in the right tenth of 182 empty days.
    first: datetime | None = None

    def span(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        if self.days is None:
            return None, None
        end = window_start(now, self.granularity) + WINDOW[self.granularity]
        start = window_start(end - timedelta(days=self.days), self.granularity)
        if self.first is not None and self.first < end:
            start = max(start, window_start(self.first, self.granularity))
        return start, end

    def series_args(self, now: datetime | None = None) -> dict:
        start, end = self.span(now or timezone.now())
        args = {"granularity": self.granularity, "version": self.version, "segment": self.segment}
        return {**args, "start": start, "end": end}

    def query(self) -> dict:
        """The filters as GET params for links (the time span is the link's own)."""
        args = {"granularity": self.granularity, "version": self.version, "segment": self.segment}
        return {k: v for k, v in args.items() if v is not None}


SECTION_CACHE_S = 300
HOUR_S = 3600


def cached(key: str, compute, seconds: int = SECTION_CACHE_S):
    """The section from the cache, or computed and kept for `seconds`: the rest of the span's
    data can still change it (a late baseline hour), for at most that long."""
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, seconds)
    return value


def model_versions(model: MLModel) -> list[str]:
    return list(ModelVersion.objects.filter(model=model).values_list("version", flat=True))


def model_first_hour(model: MLModel) -> datetime | None:
    """The hour of the model's first aggregated prediction (one index probe)."""
    hours = HourlyAggregate.objects.filter(model=model).order_by("hour")
    return hours.values_list("hour", flat=True).first()


def model_segments(model: MLModel) -> list[str]:
    segments = HourlyAggregate.objects.filter(model=model).values_list("segment", flat=True)
    return sorted(set(segments.distinct()))


def scope_suffix(scope: Scope) -> str:
    parts = [f"version {scope.version}"] if scope.version else []
    parts += [f"segment “{scope.segment}”"] if scope.segment is not None else []
    return f" ({', '.join(parts)})" if parts else ""


def rollout_annotations(model: MLModel) -> list[tuple]:
    """(time, label) of every plan change, for the model's charts."""
    history = Rollout.objects.filter(model=model).select_related("version")
    return [(r.created_at, f"{r.kind} {r.version.version} {r.traffic_percent:g}%") for r in history]


def chart_events(model: MLModel) -> list[tuple]:
    """(time, label) of what every chart of the model marks: each version's first prediction
    (recorded rollout or not; the model's first version begins the data, so is not marked)
    and each rollout."""
    starts = version_starts(model)[1:]
    marks = [(first, f"{version} began serving") for version, first in starts]
    return sorted(marks + rollout_annotations(model), key=lambda event: event[0])


IN_PROGRESS = {"hour": "this hour so far", "day": "today so far", "week": "this week so far"}


def window_partial(start: datetime, granularity: str, now: datetime) -> Partial | None:
    """The window starting at `start`, drawn as partial if it is not over yet."""
    end = start + WINDOW[granularity]
    return Partial(start, end, IN_PROGRESS[granularity]) if end > now else None


FROM = {"day": "%H:%M", "week": "%a %H:%M"}


def window_leading(first: datetime | None, granularity: str) -> Partial | None:
    """The model's first window, drawn as partial when its data starts within it (a model
    that began at 14:00 has ten hours in its first day): a late start must not read as a dip."""
    if first is None or granularity not in FROM:
        return None
    start = window_start(first, granularity)
    if start == first:
        return None
    why = "the model's data starts within it; not judged"
    label = f"first {granularity}, from {first.strftime(FROM[granularity])}"
    return Partial(start, start + WINDOW[granularity], label, why)
