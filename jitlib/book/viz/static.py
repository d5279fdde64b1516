"""Static twins that move without a kernel: plotly figures whose slider steps through precomputed frames.

The rendered book has no kernel behind its ipywidgets, so each widget gets a twin built here from the same functions
the widget calls: the twin precomputes one frame per slider position and plotly's own slider switches between them
in the browser. Frames are either pictures (:func:`image_slider`, e.g. a matplotlib figure per setting rendered to
PNG by :func:`figure_pixels`) or plotly traces (:func:`trace_slider`). No figure has a fixed width: it fills the
text column and follows it.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import matplotlib.figure
    import plotly.graph_objects as go

COLUMN_PX = 720  # the text column of the rendered book at a desktop width, for choosing heights
SLIDER_PX = 110  # room under the plot for the slider and its label


def figure_pixels(fig: matplotlib.figure.Figure, dpi: int = 90) -> np.ndarray:
    """A matplotlib figure rendered to an (H, W, 3) uint8 array (Agg, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def png_uri(pixels: np.ndarray, colors: int = 256) -> str:
    """A data: URI of an (H, W, 3) uint8 image as PNG (quantised to ``colors`` colours: figures stay small)."""
    picture = Image.fromarray(np.ascontiguousarray(pixels))
    if colors < 256 or len(np.unique(pixels.reshape(-1, 3), axis=0)) > 256:
        picture = picture.quantize(colors=min(colors, 256), dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    picture.save(buffer, format="png", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def jpeg_uri(pixels: np.ndarray, quality: int = 80) -> str:
    """A data: URI of an (H, W, 3) uint8 image as JPEG: photographs and noise, which PNG cannot compress."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="jpeg", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _slider(labels: Sequence[str], prefix: str, active: int) -> dict[str, Any]:
    """A plotly slider whose step k shows frame ``labels[k]`` at once (no animation)."""
    steps = [
        dict(
            label=label,
            method="animate",
            args=[
                [label],
                dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0)),
            ],
        )
        for label in labels
    ]
    return dict(
        active=active, steps=steps, currentvalue=dict(prefix=prefix), pad=dict(t=30, b=10), len=1.0, x=0
    )


def image_slider(
    frames: Sequence[tuple[str, np.ndarray]],
    *,
    prefix: str,
    title: str = "",
    active: int = 0,
    titles: Sequence[str] | None = None,
    photo: bool = False,
) -> go.Figure:
    """A plotly figure showing one of ``frames`` (label, (H, W, 3) uint8 picture), chosen by a slider under it.

    ``photo=True`` stores the frames as JPEG (images and noise), otherwise as PNG (figures, line art).
    """
    import plotly.graph_objects as go

    if len(frames) < 2:
        raise ValueError(f"a slider needs at least 2 frames, got {len(frames)}")
    shapes = {pixels.shape for _, pixels in frames}
    if len(shapes) != 1:
        raise ValueError(f"all frames must have one shape, got {sorted(shapes)}")
    labels = [label for label, _ in frames]
    sources = [jpeg_uri(pixels) if photo else png_uri(pixels) for _, pixels in frames]
    heads = list(titles) if titles is not None else [title] * len(frames)
    height, width = frames[0][1].shape[:2]
    fig = go.Figure(
        data=[go.Image(source=sources[active], hoverinfo="skip")],
        frames=[
            go.Frame(name=label, data=[go.Image(source=src)], layout=dict(title=dict(text=head)))
            for label, src, head in zip(labels, sources, heads, strict=True)
        ],
    )
    fig.update_layout(
        title=dict(text=heads[active], font=dict(size=14)),
        height=int(COLUMN_PX * height / width) + SLIDER_PX + (40 if any(heads) else 0),
        margin=dict(l=0, r=0, t=40 if any(heads) else 0, b=0),
        xaxis=dict(visible=False, range=[-0.5, width - 0.5]),
        yaxis=dict(visible=False, scaleanchor="x", range=[height - 0.5, -0.5]),
        sliders=[_slider(labels, prefix, active)],
        dragmode=False,
    )
    return fig


def trace_slider(
    frames: Sequence[tuple[str, Sequence[Any], dict[str, Any]]],
    base: go.Figure,
    *,
    prefix: str,
    active: int = 0,
    traces: Sequence[int] | None = None,
) -> go.Figure:
    """``base`` (axes, subplots, titles) with a slider over ``frames``: (label, traces, layout changes) each.

    Each frame replaces the traces of ``base`` at indices ``traces`` (default: all of them, in order); the others stay
    as they are. Its layout changes (e.g. axis ranges, the title) apply when the slider reaches it.
    """
    if len(frames) < 2:
        raise ValueError(f"a slider needs at least 2 frames, got {len(frames)}")
    indices = list(range(len(base.data))) if traces is None else list(traces)
    counts = {len(frame_traces) for _, frame_traces, _ in frames}
    if counts != {len(indices)}:
        raise ValueError(
            f"every frame needs {len(indices)} traces (one per index {indices}), got {sorted(counts)}"
        )
    import plotly.graph_objects as go

    labels = [label for label, _, _ in frames]
    base.frames = [
        go.Frame(name=label, data=list(frame_traces), traces=indices, layout=layout)
        for label, frame_traces, layout in frames
    ]
    _, first, layout = frames[active]
    for k, trace in zip(indices, first, strict=True):
        base.data[k].update(trace)
    base.update_layout(layout)
    base.update_layout(sliders=[_slider(labels, prefix, active)], width=None, autosize=True)
    return base


def matplotlib_slider(
    draw: Callable[[Any], matplotlib.figure.Figure],
    values: Sequence[Any],
    *,
    prefix: str,
    label: Callable[[Any], str] = str,
    active: int = 0,
    dpi: int = 90,
) -> go.Figure:
    """An :func:`image_slider` over ``values``: ``draw(value)`` makes the matplotlib figure of each position."""
    frames = []
    for value in values:
        fig = draw(value)
        frames.append((label(value), figure_pixels(fig, dpi)))
    return image_slider(frames, prefix=prefix, active=active)


def png_image(fig: matplotlib.figure.Figure, dpi: int = 100) -> Any:
    """A matplotlib figure as an IPython PNG image: it shows whether or not pyplot's inline backend is active yet."""
    from IPython.display import Image as IPythonImage

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return IPythonImage(data=buffer.getvalue(), format="png")
