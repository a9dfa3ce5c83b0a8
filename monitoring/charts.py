"""Plotly figures for the dashboard, built server-side and drawn by the local plotly.js."""

from __future__ import annotations

import json

import plotly.graph_objects as go

from monitoring.metrics import Point

LINE = "#2563eb"
BAND = "rgba(37, 99, 235, 0.15)"
BOUND = "#dc2626"


def metric_figure(
    *, title: str, points: list[Point], y_title: str, bounds: list[tuple[str, float]] = ()
) -> dict:
    """A line of window values with its confidence ribbon and the rules' bounds."""
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
    fig.update_layout(
        title={"text": title}, xaxis_title="window start (UTC)", yaxis_title=y_title,
        margin={"l": 60, "r": 20, "t": 50, "b": 50}, height=320, showlegend=False,
        template="plotly_white",
    )  # fmt: skip
    return json.loads(fig.to_json())
