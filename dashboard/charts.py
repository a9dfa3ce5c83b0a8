"""Plotly figures for the dashboard, built server-side and drawn by the local plotly.js.

Plotly reads a little HTML in its text fields, so every user-supplied string (segment, version,
value and feature names) goes through `plain()` before it reaches a figure.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from monitoring.metrics.registry import COUNT, HIGHER, LOWER, SECONDS, SHARE
from monitoring.metrics.series import Point

# One palette for every chart: the metric, its interval, bounds, alerts, immature windows.
LINE = "#2563eb"
BAND = "rgba(37, 99, 235, 0.15)"
BOUND = "#dc2626"
ALERT = "#b91c1c"
IMMATURE = "rgba(245, 158, 11, 0.14)"
PARTIAL = "#64748b"  # the hatching of a window not over yet (dashes are for estimates)
BAR = "#0f766e"
EVENT = "#7c3aed"
ESTIMATE = "#0369a1"  # the estimate before outcomes: dashed, with its own lighter band
ESTIMATE_BAND = "rgba(3, 105, 161, 0.10)"
SPARK_WIDTH, SPARK_HEIGHT = 120, 28
# How a value of each unit reads on a chart: (hover format, axis tick format), d3 style.
UNIT_FORMATS = {SHARE: (".2%", ".0%"), COUNT: (",.0f", ","), SECONDS: (",.0f", ",")}
PLAIN_FORMAT = (".4g", "")


def plain(text: str) -> str:
    """A user string as text Plotly shows literally (it renders some HTML tags otherwise).

    Only &, < and > are escaped: with no < left no tag can form, and Plotly decodes &lt;, &gt;
    and &amp; but shows &quot; and &#x27; as typed, so quotes stay quotes.
    """
    return html.escape(str(text), quote=False)


@dataclass
class Immature:
    """A window whose outcomes are still arriving, with the share of its expected outcomes
    arrived so far (monitoring.metrics.maturity); a sum over them is `incomplete`."""

    start: str
    end: str
    share: float | None
    incomplete: bool = False


@dataclass
class Projected:
    """An immature window's sum projected to full maturity, with its 95% interval."""

    x: str
    value: float
    low: float
    high: float


@dataclass
class Partial:
    """A window not over yet: drawn hatched, its value so far as an open marker."""

    start: datetime
    end: datetime
    label: str  # "today so far", "first day, from 14:00"
    why: str = "not judged until it ends"  # the hover's reason


@dataclass
class Marker:
    x: str
    y: float
    text: str


# Figures are plain dicts in Plotly's JSON schema: plotly.graph_objects validates every
# property on the way in, which cost about a second per page with a few dozen shapes.
AXIS = {"gridcolor": "#e5e7eb", "zerolinecolor": "#d1d5db", "automargin": True}


def layout(*, title: str, x_title: str, y_title: str, x_type: str | None = None) -> dict:
    x_axis = {**AXIS, "title": {"text": x_title}}
    if x_type:
        x_axis["type"] = x_type
    return {
        "title": {"text": title, "font": {"size": 15}},
        "xaxis": x_axis,
        "yaxis": {**AXIS, "title": {"text": y_title}},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "height": 320,
        "showlegend": False,
        "hovermode": "closest",
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "font": {"family": "system-ui, sans-serif", "color": "#1f2933"},
        "shapes": [],
        "annotations": [],
    }


def bound_line(label: str, value: float) -> tuple[dict, dict]:
    line = {"color": BOUND, "width": 1.5}  # solid: dashed lines are for estimates
    shape = {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "yref": "y",
        "y0": value,
        "y1": value,
        "line": line,
    }
    font = {"size": 10, "color": BOUND}
    note = {
        "text": label,
        "xref": "paper",
        "x": 0,
        "yref": "y",
        "y": value,
        "showarrow": False,
        "xanchor": "left",
        "yanchor": "bottom",
        "font": font,
        "bgcolor": "rgba(255, 255, 255, 0.85)",  # readable over a dense hourly line
    }
    return shape, note


# Above this many immature windows in a row their coverage is written once for the run (the
# hover of each point still says it): one vertical note per hour would print over each other.
LABELLED_WINDOWS_MAX = 16


def immature_runs(windows: Sequence[Immature]) -> list[list[Immature]]:
    """Immature windows grouped into runs of adjacent ones, each shaded as one area."""
    runs: list[list[Immature]] = []
    for window in windows:
        if runs and runs[-1][-1].end == window.start:
            runs[-1].append(window)
        else:
            runs.append([window])
    return runs


def share_text(window: Immature) -> str:
    """ "62% of expected outcomes", and for a sum "incomplete: 62% of expected outcomes"."""
    share = "?" if window.share is None else f"{window.share:.0%}"
    return ("incomplete: " if window.incomplete else "") + f"{share} of expected outcomes"


def immature_shapes(windows: Sequence[Immature]) -> tuple[list[dict], list[dict]]:
    """One shaded area per run of immature windows, and its label coverage in words: per
    window when they are few enough to read, else once for the run (lowest to highest)."""
    shapes, notes = [], []
    font = {"size": 9, "color": "#92400e"}
    for run in immature_runs(windows):
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": run[0].start,
                "x1": run[-1].end,
                "y0": 0,
                "y1": 1,
                "fillcolor": IMMATURE,
                "line": {"width": 0},
                "layer": "below",
            }
        )
        if len(run) <= LABELLED_WINDOWS_MAX:
            notes += [
                {
                    "text": share_text(w),
                    "xref": "x",
                    "x": w.start,
                    "yref": "paper",
                    "y": 0,
                    "showarrow": False,
                    "textangle": -90,
                    "xanchor": "left",
                    "yanchor": "bottom",
                    "font": font,
                }
                for w in run
            ]
            continue
        known = [w.share for w in run if w.share is not None]
        spread = f"{min(known):.0%} to {max(known):.0%}" if known else "unknown"
        notes.append(
            {
                "text": f"outcomes arriving: {spread} of expected",
                "xref": "x",
                "x": run[0].start,
                "yref": "paper",
                "y": 0,
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "bottom",
                "font": font,
            }
        )
    return shapes, notes


def partial_decorate(figure: dict, partial: Partial) -> None:
    """Hatch the window not over yet, over the plot's whole height (a bar on a hidden axis of
    its own, since shapes take no pattern), and name it at the top: a half-filled window must
    not read as a drop."""
    middle = partial.start + (partial.end - partial.start) / 2
    width_ms = (partial.end - partial.start).total_seconds() * 1000
    figure["data"].append(
        {
            "type": "bar",
            "x": [middle.isoformat()],
            "y": [1],
            "width": [width_ms],
            "yaxis": "y2",
            "name": partial.label,
            "marker": {
                "color": "rgba(0, 0, 0, 0)",
                "line": {"width": 0},
                "pattern": {"shape": "/", "fgcolor": PARTIAL, "size": 7, "solidity": 0.15},
            },
            "opacity": 0.6,
            "hovertemplate": f"{plain(partial.label)}: {plain(partial.why)}<extra></extra>",
        }
    )
    layout_ = figure["layout"]
    layout_["yaxis2"] = {"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True}
    layout_["annotations"].append(
        {
            "text": plain(partial.label),
            "xref": "x",
            "x": middle.isoformat(),
            "yref": "paper",
            "y": 1,
            "showarrow": False,
            "xanchor": "center",
            "yanchor": "bottom",
            "font": {"size": 10, "color": PARTIAL},
        }
    )


def event_line(at: datetime, label: str) -> tuple[dict, dict]:
    """A vertical mark for an event such as a rollout."""
    x = at.isoformat()
    shape = {
        "type": "line",
        "xref": "x",
        "x0": x,
        "x1": x,
        "yref": "paper",
        "y0": 0,
        "y1": 1,
        "line": {"color": EVENT, "dash": "dot", "width": 1},
    }
    note = {
        "text": plain(label),
        "xref": "x",
        "x": x,
        "yref": "paper",
        "y": 1,
        "showarrow": False,
        "textangle": -90,
        "xanchor": "right",
        "yanchor": "top",
        "font": {"size": 10, "color": EVENT},
    }
    return shape, note


def events_within(
    events: Sequence[tuple[datetime, str]], first: datetime | str, last: datetime | str
) -> list[tuple[datetime, str]]:
    """The events a chart spanning first to last shows: one outside would stretch its axis."""
    first, last = as_moment(first), as_moment(last)
    return [(at, label) for at, label in events if first <= at <= last]


def as_moment(moment: datetime | str) -> datetime:
    return datetime.fromisoformat(moment) if isinstance(moment, str) else moment


def events_draw(figure_layout: dict, events: Sequence[tuple[datetime, str]]) -> None:
    """Mark each event (a version's first prediction, a rollout) with a labelled vertical line."""
    for at, label in events:
        shape, note = event_line(at, label)
        figure_layout["shapes"].append(shape)
        figure_layout["annotations"].append(note)


@lru_cache(maxsize=8192)
def iso(moment: datetime) -> str:
    """A window's time as Plotly reads it; the same windows recur in every chart of a page."""
    return moment.isoformat()


def metric_figure(
    *,
    title: str,
    points: list[Point],
    y_title: str,
    bounds: Sequence[tuple[str, float]] = (),
    immature: Sequence[Immature] = (),
    markers: Sequence[Marker] = (),
    events: Sequence[tuple[datetime, str]] = (),
    rows_url: str = "",
    unit: str = "",
    partial: Partial | None = None,
    estimate: Sequence[Point] = (),
    projected: Sequence[Projected] = (),
    leading: Partial | None = None,
) -> dict:
    """A line of window values with its confidence ribbon, the rules' bounds, alert markers
    and shaded immature windows, its numbers in the metric's `unit` (a share as a percentage).
    `projected` sums of immature windows are drawn dotted with their interval, beside the
    known part.
    The `partial` window (not over yet) is left off the line: its value so far is an open
    marker in a hatched area; so is the `leading` one, the first window, when the model's
    data starts within it. `rows_url` lets a click on a point open the rows behind it.
    The `estimate` (the metric estimated before the outcomes) is drawn dashed with its band,
    beside the realised line, so windows still waiting for labels show it instead of nothing."""
    hover_format, tick_format = UNIT_FORMATS.get(unit, PLAIN_FORMAT)
    first = [p for p in points if leading is not None and p.start < leading.end]
    done = [p for p in points if partial is None or p.start < partial.start]
    done = done[len(first) :]
    data = estimate_traces(estimate, y_title, hover_format)
    known = [p for p in done if p.ci_low is not None and p.ci_high is not None]
    if known:  # windows without an interval are left out, so the ribbon has no holes
        ribbon_x = [iso(p.start) for p in known]
        data.append(
            {
                "type": "scatter",
                "x": ribbon_x + ribbon_x[::-1],
                "y": [p.ci_high for p in known] + [p.ci_low for p in known][::-1],
                "fill": "toself",
                "fillcolor": BAND,
                "line": {"width": 0},
                "mode": "lines",
                "hoverinfo": "skip",
                "name": "95% interval",
            }
        )
    hover = (
        f"%{{x|%Y-%m-%d %H:%M}}: %{{y:{hover_format}}} (n=%{{customdata[0]:,}}%{{customdata[2]}})"
        "<extra></extra>"
    )
    data.append(window_trace(done, y_title, hover))
    ongoing = [p for p in points if partial is not None and p.start >= partial.start]
    if ongoing:
        trace = window_trace(ongoing, f"{y_title}, so far", hover.replace(": %{y", " so far: %{y"))
        trace["mode"] = "markers"
        trace["marker"] = {"color": "white", "size": 8, "line": {"color": LINE, "width": 2}}
        data.append(trace)
    if projected:
        data.append(projection_trace(projected, hover_format))
    if first:
        trace = window_trace(first, f"{y_title}, {leading.label}", hover)
        trace["mode"] = "markers"
        trace["marker"] = {"color": "white", "size": 8, "line": {"color": LINE, "width": 2}}
        data.append(trace)
    if markers:
        data.append(
            {
                "type": "scatter",
                "x": [m.x for m in markers],
                "y": [m.y for m in markers],
                "mode": "markers",
                "name": "alerts",
                "text": [m.text for m in markers],
                "marker": {"color": ALERT, "symbol": "x", "size": 12},
                "hovertemplate": "%{text}<extra></extra>",
            }
        )
    figure_layout = layout(
        title=title, x_title="window start (UTC)", y_title=y_title, x_type="date"
    )
    if tick_format:
        figure_layout["yaxis"]["tickformat"] = tick_format
    decorations = [bound_line(label, value) for label, value in bounds]
    if points:
        events = events_within(events, points[0].start, points[-1].end)
        decorations += [event_line(at, label) for at, label in events]
    shapes, notes = immature_shapes(immature)
    figure_layout["shapes"] += shapes + [shape for shape, _ in decorations]
    figure_layout["annotations"] += notes + [note for _, note in decorations]
    figure_layout["meta"] = {"rows_url": rows_url}
    figure = {"data": data, "layout": figure_layout}
    for window in (leading if first else None, partial):
        if window is not None:
            partial_decorate(figure, window)
    return figure


def estimate_traces(points: Sequence[Point], y_title: str, hover_format: str) -> list[dict]:
    """The estimate's band (where the realised value should fall) and its dashed line."""
    known = [p for p in points if p.value is not None]
    if not known:
        return []
    x = [iso(p.start) for p in known]
    banded = [p for p in known if p.ci_low is not None and p.ci_high is not None]
    band_x = [iso(p.start) for p in banded]
    band = {
        "type": "scatter",
        "x": band_x + band_x[::-1],
        "y": [p.ci_high for p in banded] + [p.ci_low for p in banded][::-1],
        "fill": "toself",
        "fillcolor": ESTIMATE_BAND,
        "line": {"width": 0},
        "mode": "lines",
        "hoverinfo": "skip",
        "name": "estimate's 95% band",
    }
    line = {
        "type": "scatter",
        "x": x,
        "y": [p.value for p in known],
        "mode": "lines",
        "name": f"{y_title}, estimated before outcomes",
        "line": {"color": ESTIMATE, "width": 2, "dash": "dash"},
        "customdata": [[p.n] for p in known],
        "hovertemplate": f"%{{x|%Y-%m-%d %H:%M}}: estimated %{{y:{hover_format}}} "
        "(from n=%{customdata[0]:,} predictions)<extra></extra>",
    }
    return [band, line] if banded else [line]


def projection_trace(projected: Sequence[Projected], hover_format: str) -> dict:
    """Dotted markers at each immature window's projected sum, with its interval as bars."""
    return {
        "type": "scatter",
        "x": [p.x for p in projected],
        "y": [p.value for p in projected],
        "mode": "lines+markers",
        "name": "projected once all outcomes are in",
        "line": {"color": LINE, "width": 1.5, "dash": "dot"},
        "marker": {"color": "white", "size": 7, "line": {"color": LINE, "width": 1.5}},
        "error_y": {
            "type": "data",
            "symmetric": False,
            "array": [p.high - p.value for p in projected],
            "arrayminus": [p.value - p.low for p in projected],
            "color": LINE,
            "thickness": 1,
        },
        "hovertemplate": f"%{{x|%Y-%m-%d}}: projected %{{y:{hover_format}}} once all outcomes "
        "are in<extra></extra>",
    }


DOTTED_POINTS_MAX = 120  # more windows than this (an hourly month) are drawn thin


def window_trace(points: list[Point], name: str, hover: str) -> dict:
    """The windows' values as a line; the hover gives n and, while labels arrive, coverage."""
    return {
        "type": "scatter",
        "x": [iso(p.start) for p in points],
        "y": [p.value for p in points],
        "mode": "lines+markers",
        "name": name,
        "line": {"color": LINE, "width": 2 if len(points) <= DOTTED_POINTS_MAX else 1},
        "marker": {"color": LINE, "size": 6 if len(points) <= DOTTED_POINTS_MAX else 2},
        "customdata": [[p.n, iso(p.end), coverage_note(p)] for p in points],
        "hovertemplate": hover,
    }


def coverage_note(p: Point) -> str:
    """ ", labels 40%" while a window's labels are incomplete; nothing once all arrived."""
    if p.label_coverage is None or p.label_coverage >= 1:
        return ""
    return f", labels {p.label_coverage:.0%}"


def bar_figure(*, title: str, labels: list[str], values: list[float], x_title: str, y_title: str):
    data = [{"type": "bar", "x": labels, "y": values, "marker": {"color": BAR}}]
    return {"data": data, "layout": layout(title=title, x_title=x_title, y_title=y_title)}


def line_figure(*, title: str, x: list, y: list, x_title: str, y_title: str) -> dict:
    data = [
        {
            "type": "scatter",
            "x": x,
            "y": y,
            "mode": "lines+markers",
            "line": {"color": LINE},
            "marker": {"color": LINE, "size": 6},
        }
    ]
    return {"data": data, "layout": layout(title=title, x_title=x_title, y_title=y_title)}


def sparkline_points(values: Sequence[float | None]) -> str:
    """An SVG polyline's `points` for the known values, scaled into the sparkline's box."""
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    if not known:
        return ""
    low, high = min(v for _, v in known), max(v for _, v in known)
    span_x = max(len(values) - 1, 1)
    span_y = (high - low) or 1.0
    height = SPARK_HEIGHT - 4  # 2 px margin above and below
    return " ".join(
        f"{i / span_x * SPARK_WIDTH:.1f},{SPARK_HEIGHT - 2 - (v - low) / span_y * height:.1f}"
        for i, v in known
    )


# --- drift and data quality (model page drift section, feature page) --------------------------

REFERENCE = "#64748b"
# A score of 1, the threshold, is the middle of the scale.
DRIFT_SCALE = [
    [0.0, "#f8fafc"],
    [0.25, "#dbeafe"],
    [0.5, "#fde68a"],
    [0.75, "#f97316"],
    [1.0, "#b91c1c"],
]


GAPPED_COLUMNS_MAX = 120  # an hourly month's cells are under a pixel wide: no gap between


def heatmap_figure(
    *,
    title: str,
    x: list[str],
    rows: list[str],
    scores: list[list[float | None]],
    statistics: list[list[float | None]],
    hover: list[list[str]],
    row_urls: list[str],
    events: Sequence[tuple[datetime, str]] = (),
) -> dict:
    """Features by window, coloured by the drift score (the statistic against its threshold,
    1 = at the threshold); a click on a cell opens that row's URL (charts.js)."""
    data = [
        {
            "type": "heatmap",
            "x": x,
            "y": rows,
            "z": scores,
            "text": hover,
            "customdata": statistics,
            "hovertemplate": "%{text}<extra></extra>",
            "colorscale": DRIFT_SCALE,
            "zmin": 0,
            "zmax": 2,
            "xgap": 1 if len(x) <= GAPPED_COLUMNS_MAX else 0,  # else thinner than the gap
            "ygap": 1,
            "hoverongaps": False,
            "colorbar": {"title": {"text": "score"}, "thickness": 12},
        }
    ]
    figure_layout = layout(
        title=title, x_title="window start (UTC)", y_title="feature", x_type="date"
    )
    figure_layout["height"] = max(220, 90 + 28 * len(rows))
    figure_layout["yaxis"]["autorange"] = "reversed"
    figure_layout["meta"] = {"row_urls": row_urls}
    if x:
        events_draw(figure_layout, events_within(events, x[0], x[-1]))
    return {"data": data, "layout": figure_layout}


# The slices heatmap's colours: red where the metric is bad, green where good (reversed for a
# metric whose lower values are good), a neutral scale for one with no good direction.
GOOD_HIGH_SCALE = [[0.0, "#b91c1c"], [0.5, "#facc15"], [1.0, "#15803d"]]


def slice_heatmap_figure(
    *,
    title: str,
    x: list[str],
    rows: list[str],
    values: list[list[float | None]],
    hover: list[list[str]],
    y_title: str,
    good: str,
    unit: str,
    events: Sequence[tuple[datetime, str]] = (),
) -> dict:
    """A metric per slice (rows) per window (columns): where, and from when, it broke."""
    _, tick = UNIT_FORMATS.get(unit, PLAIN_FORMAT)
    trace = {
        "type": "heatmap",
        "x": x,
        "y": rows,
        "z": values,
        "text": hover,
        "hovertemplate": "%{text}<extra></extra>",
        "colorscale": GOOD_HIGH_SCALE if good in (HIGHER, LOWER) else "Viridis",
        "reversescale": good == LOWER,
        "xgap": 1 if len(x) <= GAPPED_COLUMNS_MAX else 0,
        "ygap": 1,
        "hoverongaps": False,
        "colorbar": {"thickness": 12, "tickformat": tick},
    }
    figure_layout = layout(title=title, x_title="day (UTC)", y_title=y_title, x_type="date")
    figure_layout["height"] = max(260, 110 + 26 * len(rows))
    figure_layout["yaxis"]["type"] = "category"
    if x:
        events_draw(figure_layout, events_within(events, x[0], x[-1]))
    return {"data": [trace], "layout": figure_layout}


def threshold_figure(
    *,
    title: str,
    x: list[str],
    y: list[float | None],
    y_title: str,
    threshold: tuple[str, float] | None,
    hover: list[str] | None = None,
    events: Sequence[tuple[datetime, str]] = (),
) -> dict:
    """A value per window with the line it must not cross (a drift threshold)."""
    trace = {
        "type": "scatter",
        "x": x,
        "y": y,
        "mode": "lines+markers",
        "connectgaps": False,
        "line": {"color": LINE},
        "marker": {"color": LINE, "size": 6},
    }
    if hover is not None:
        trace.update(text=hover, hovertemplate="%{text}<extra></extra>")
    figure_layout = layout(
        title=title, x_title="window start (UTC)", y_title=y_title, x_type="date"
    )
    if threshold is not None:
        shape, note = bound_line(*threshold)
        figure_layout["shapes"].append(shape)
        figure_layout["annotations"].append(note)
    if x:
        events_draw(figure_layout, events_within(events, x[0], x[-1]))
    return {"data": [trace], "layout": figure_layout}


def distribution_figure(
    *, title: str, labels: list[str], reference: list[float], current: list[float], x_title: str
) -> dict:
    """Reference against current shares, bar beside bar, per bin or category."""
    data = [
        {
            "type": "bar",
            "name": "reference",
            "x": labels,
            "y": reference,
            "marker": {"color": REFERENCE},
            "hovertemplate": "%{x}: %{y:.1%} of the reference<extra></extra>",
        },
        {
            "type": "bar",
            "name": "current",
            "x": labels,
            "y": current,
            "marker": {"color": BAR},
            "hovertemplate": "%{x}: %{y:.1%} of the current window<extra></extra>",
        },
    ]
    figure_layout = layout(title=title, x_title=x_title, y_title="share of values")
    legend = {"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"}
    figure_layout.update(barmode="group", showlegend=True, legend=legend)
    figure_layout["yaxis"]["tickformat"] = ".0%"
    figure_layout["xaxis"]["type"] = "category"
    return {"data": data, "layout": figure_layout}
