"""Plotly figures for the dashboard, built server-side and drawn by the local plotly.js.

Plotly reads a little HTML in its text fields, so every user-supplied string (segment, version,
value and feature names) goes through `plain()` before it reaches a figure.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from monitoring.metrics import Point

# One palette for every chart: the metric, its interval, bounds, alerts, immature windows.
LINE = "#2563eb"
BAND = "rgba(37, 99, 235, 0.15)"
BOUND = "#dc2626"
ALERT = "#b91c1c"
IMMATURE = "rgba(245, 158, 11, 0.14)"
BAR = "#0f766e"
SPARK_WIDTH, SPARK_HEIGHT = 120, 28


def plain(text: str) -> str:
    """A user string as text Plotly shows literally (it renders some HTML tags otherwise)."""
    return html.escape(str(text), quote=True)


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


def layout(fig: go.Figure, *, title: str, x_title: str, y_title: str) -> None:
    fig.update_layout(
        title={"text": title}, xaxis_title=x_title, yaxis_title=y_title,
        margin={"l": 60, "r": 20, "t": 50, "b": 50}, height=320, showlegend=False,
        template="plotly_white", hovermode="closest",
    )  # fmt: skip


def metric_figure(
    *,
    title: str,
    points: list[Point],
    y_title: str,
    bounds: Sequence[tuple[str, float]] = (),
    immature: Sequence[Immature] = (),
    markers: Sequence[Marker] = (),
    rows_url: str = "",
) -> dict:
    """A line of window values with its confidence ribbon, the rules' bounds, alert markers
    and shaded immature windows. `rows_url` lets a click on a point open the rows behind it."""
    x = [p.start.isoformat() for p in points]
    fig = go.Figure()
    if any(p.ci_low is not None for p in points):
        fig.add_trace(
            go.Scatter(
                x=x + x[::-1],
                y=[p.ci_high for p in points] + [p.ci_low for p in points][::-1],
                fill="toself", fillcolor=BAND, line={"width": 0}, mode="lines", hoverinfo="skip",
                name="95% interval",
            )
        )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=x, y=[p.value for p in points], mode="lines+markers", name=y_title,
            line={"color": LINE}, customdata=[[p.n, p.end.isoformat()] for p in points],
            hovertemplate="%{x|%Y-%m-%d %H:%M}: %{y:.4g} (n=%{customdata[0]})<extra></extra>",
        )
    )  # fmt: skip
    if markers:
        fig.add_trace(
            go.Scatter(
                x=[m.x for m in markers], y=[m.y for m in markers], mode="markers", name="alerts",
                marker={"color": ALERT, "symbol": "x", "size": 12}, text=[m.text for m in markers],
                hovertemplate="%{text}<extra></extra>",
            )
        )  # fmt: skip
    for label, value in bounds:
        fig.add_hline(
            y=value, line={"color": BOUND, "dash": "dash"}, annotation_text=label,
            annotation_position="top left",
        )  # fmt: skip
    for window in immature:
        coverage = "?" if window.coverage is None else f"{window.coverage:.0%}"
        fig.add_vrect(
            x0=window.start, x1=window.end, fillcolor=IMMATURE, line_width=0, layer="below",
            annotation_text=f"labels {coverage}", annotation_position="bottom left",
            annotation_font={"size": 9, "color": "#92400e"}, annotation_textangle=-90,
        )  # fmt: skip
    layout(fig, title=title, x_title="window start (UTC)", y_title=y_title)
    figure = json.loads(fig.to_json())
    figure["layout"]["meta"] = {"rows_url": rows_url}
    return figure


def bar_figure(*, title: str, labels: list[str], values: list[float], x_title: str, y_title: str):
    fig = go.Figure(go.Bar(x=labels, y=values, marker={"color": BAR}))
    layout(fig, title=title, x_title=x_title, y_title=y_title)
    return json.loads(fig.to_json())


def line_figure(*, title: str, x: list, y: list, x_title: str, y_title: str) -> dict:
    fig = go.Figure(go.Scatter(x=x, y=y, mode="lines+markers", line={"color": LINE}))
    layout(fig, title=title, x_title=x_title, y_title=y_title)
    return json.loads(fig.to_json())


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
