"""Plotly figures for the dashboard, built server-side and drawn by the local plotly.js.

Plotly reads a little HTML in its text fields, so every user-supplied string (segment, version,
value and feature names) goes through `plain()` before it reaches a figure.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from monitoring.metrics.registry import COUNT, SECONDS, SHARE
from monitoring.metrics.series import Point

# One palette for every chart: the metric, its interval, bounds, alerts, immature windows.
LINE = "#2563eb"
BAND = "rgba(37, 99, 235, 0.15)"
BOUND = "#dc2626"
ALERT = "#b91c1c"
IMMATURE = "rgba(245, 158, 11, 0.14)"
BAR = "#0f766e"
EVENT = "#7c3aed"
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
    """A window whose labels are still arriving, with the share labelled so far."""

    start: str
    end: str
    coverage: float | None


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
    line = {"color": BOUND, "dash": "dash", "width": 1.5}
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
    }
    return shape, note


def immature_rect(window: Immature) -> tuple[dict, dict]:
    coverage = "?" if window.coverage is None else f"{window.coverage:.0%}"
    shape = {
        "type": "rect",
        "xref": "x",
        "yref": "paper",
        "x0": window.start,
        "x1": window.end,
        "y0": 0,
        "y1": 1,
        "fillcolor": IMMATURE,
        "line": {"width": 0},
        "layer": "below",
    }
    note = {
        "text": f"labels {coverage}",
        "xref": "x",
        "x": window.start,
        "yref": "paper",
        "y": 0,
        "showarrow": False,
        "textangle": -90,
        "xanchor": "left",
        "yanchor": "bottom",
        "font": {"size": 9, "color": "#92400e"},
    }
    return shape, note


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
) -> dict:
    """A line of window values with its confidence ribbon, the rules' bounds, alert markers
    and shaded immature windows, its numbers in the metric's `unit` (a share as a percentage).
    `rows_url` lets a click on a point open the rows behind it."""
    hover_format, tick_format = UNIT_FORMATS.get(unit, PLAIN_FORMAT)
    x = [p.start.isoformat() for p in points]
    data = []
    known = [p for p in points if p.ci_low is not None and p.ci_high is not None]
    if known:  # windows without an interval are left out, so the ribbon has no holes
        ribbon_x = [p.start.isoformat() for p in known]
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
    data.append(
        {
            "type": "scatter",
            "x": x,
            "y": [p.value for p in points],
            "mode": "lines+markers",
            "name": y_title,
            "line": {"color": LINE},
            "marker": {"color": LINE, "size": 6},
            "customdata": [[p.n, p.end.isoformat()] for p in points],
            "hovertemplate": (
                f"%{{x|%Y-%m-%d %H:%M}}: %{{y:{hover_format}}} (n=%{{customdata[0]:,}})"
                "<extra></extra>"
            ),
        }
    )
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
    decorations += [immature_rect(window) for window in immature]
    decorations += [event_line(at, label) for at, label in events]
    for shape, note in decorations:
        figure_layout["shapes"].append(shape)
        figure_layout["annotations"].append(note)
    figure_layout["meta"] = {"rows_url": rows_url}
    return {"data": data, "layout": figure_layout}


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


def heatmap_figure(
    *,
    title: str,
    x: list[str],
    rows: list[str],
    scores: list[list[float | None]],
    statistics: list[list[float | None]],
    hover: list[list[str]],
    row_urls: list[str],
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
            "xgap": 1,
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
    return {"data": data, "layout": figure_layout}


def threshold_figure(
    *,
    title: str,
    x: list[str],
    y: list[float | None],
    y_title: str,
    threshold: tuple[str, float] | None,
    hover: list[str] | None = None,
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
