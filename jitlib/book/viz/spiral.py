"""Chapter 4's static twin: the spiral samples of each target, with a slider over the ambient dimension D."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch

from jitlib.book.toy import grid_cell, spiral
from jitlib.book.viz.static import trace_slider
from jitlib.diffusion.targets import TARGETS

SYMBOL = {"x": "x", "eps": "ε", "v": "v"}
COLOR = {"x": "#1f77b4", "eps": "#d62728", "v": "#2ca02c"}
MAX_POINTS = 1000  # samples drawn per panel (the grid stores more; the picture does not need them)


def spiral_slider(grid: Mapping[str, Any], dims: Sequence[int]) -> go.Figure:
    """Samples of x-, ε- and v-prediction projected back to the plane (one panel each), one frame per D (slider)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1, cols=len(TARGETS), subplot_titles=[f"{SYMBOL[t]}-prediction" for t in TARGETS]
    )
    data = spiral(600, generator=torch.Generator().manual_seed(1)).numpy().astype(np.float32)
    for col in range(1, len(TARGETS) + 1):
        fig.add_trace(
            go.Scatter(
                x=data[:, 0],
                y=data[:, 1],
                mode="markers",
                marker=dict(size=2, color="#c8c8c8"),
                name="data",
                showlegend=col == 1,
                hoverinfo="skip",
            ),
            row=1,
            col=col,
        )
    for col, target in enumerate(TARGETS, start=1):
        fig.add_trace(
            go.Scatter(
                x=[],
                y=[],
                mode="markers",
                marker=dict(size=2, color=COLOR[target]),
                name=SYMBOL[target],
                showlegend=False,
                hoverinfo="skip",
            ),
            row=1,
            col=col,
        )
    frames = []
    for dim in dims:
        traces, layout = [], {}
        for col, target in enumerate(TARGETS, start=1):
            cell = grid_cell(grid, dim, target)
            pts = np.asarray(cell["samples"], dtype=np.float32)[:MAX_POINTS]
            lim = max(1.6, min(float(np.quantile(np.abs(pts), 0.99)), 60.0))
            traces.append(go.Scatter(x=pts[:, 0], y=pts[:, 1]))
            axis = "" if col == 1 else str(col)
            layout[f"xaxis{axis}"] = dict(range=[-lim, lim])
            layout[f"yaxis{axis}"] = dict(range=[-lim, lim])
        layout["title"] = dict(text=f"D = {dim}: samples projected back to the spiral's plane (grey: data)")
        frames.append((str(dim), traces, layout))
    fig.update_layout(height=470, margin=dict(l=40, r=10, t=80, b=10), legend=dict(orientation="h", y=-0.05))
    for col in range(1, len(TARGETS) + 1):
        axis = "" if col == 1 else str(col)
        fig.update_layout({f"yaxis{axis}": dict(scaleanchor=f"x{axis}", constrain="domain")})
    return trace_slider(frames, fig, prefix="D = ", traces=list(range(len(TARGETS), 2 * len(TARGETS))))
