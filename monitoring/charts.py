"""Plotly figures for the dashboard, built server-side and drawn by the local plotly.js."""

from __future__ import annotations

import json
from datetime import datetime

import plotly.graph_objects as go

from monitoring.metrics import Point

LINE = "#2563eb"
BAND = "rgba(37, 99, 235, 0.15)"
BOUND = "#dc2626"
EVENT = "#7c3aed"


def metric_figure(
    *,
    title: str,
    points: list[Point],
    y_title: str,
    bounds: list[tuple[str, float]] = (),
    annotations: list[tuple[datetime, str]] = (),
) -> dict:
    """A line of window values with its confidence ribbon, the rules' bounds and, as vertical
    marks, events such as rollouts (time, label)."""
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
            line={"color": LINE}, customdata=[p.n for p in points],
            hovertemplate="%{x|%Y-%m-%d %H:%M}: %{y:.4g} (n=%{customdata})<extra></extra>",
        )
    )  # fmt: skip
    for label, value in bounds:
        fig.add_hline(
            y=value, line={"color": BOUND, "dash": "dash"}, annotation_text=label,
            annotation_position="top left",
        )  # fmt: skip
    for at, label in annotations:
        # shape + annotation rather than add_vline, whose text placement fails on date axes
        fig.add_shape(
            type="line", x0=at.isoformat(), x1=at.isoformat(), xref="x", y0=0, y1=1,
            yref="paper", line={"color": EVENT, "dash": "dot", "width": 1},
        )  # fmt: skip
        fig.add_annotation(
            x=at.isoformat(), y=1, xref="x", yref="paper", text=label, showarrow=False,
            textangle=-90, xanchor="right", yanchor="top", font={"size": 10, "color": EVENT},
        )  # fmt: skip
    fig.update_layout(
        title={"text": title}, xaxis_title="window start (UTC)", yaxis_title=y_title,
        margin={"l": 60, "r": 20, "t": 50, "b": 50}, height=320, showlegend=False,
        template="plotly_white",
    )  # fmt: skip
    return json.loads(fig.to_json())
