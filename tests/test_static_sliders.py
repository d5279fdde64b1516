"""The static twins (jitlib.book.viz.static): plotly figures whose slider steps through precomputed frames."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from jitlib.book.viz.part1 import marginal_slider
from jitlib.book.viz.static import figure_pixels, image_slider, png_uri, trace_slider


def _frames(n: int) -> list[tuple[str, np.ndarray]]:
    return [(f"f{k}", np.full((4, 6, 3), 40 * k, dtype=np.uint8)) for k in range(n)]


def test_every_slider_step_shows_its_own_frame() -> None:
    fig = image_slider(_frames(3), prefix="k = ", active=1)
    steps = fig.layout.sliders[0].steps
    assert [s.args[0][0] for s in steps] == [f.name for f in fig.frames] == ["f0", "f1", "f2"]
    assert all(s.method == "animate" for s in steps)
    sources = [f.data[0].source for f in fig.frames]
    assert (
        len(set(sources)) == 3 and fig.data[0].source == sources[1]
    )  # the active frame is the one shown first
    assert fig.layout.width is None  # fills the column


def test_image_slider_refuses_what_it_cannot_show() -> None:
    with pytest.raises(ValueError, match="at least 2 frames"):
        image_slider(_frames(1), prefix="")
    mixed = [_frames(1)[0], ("g", np.zeros((5, 6, 3), dtype=np.uint8))]
    with pytest.raises(ValueError, match="one shape"):
        image_slider(mixed, prefix="")


def test_png_uri_round_trips_the_picture() -> None:
    from base64 import b64decode
    from io import BytesIO

    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    uri = png_uri(pixels)
    back = np.asarray(Image.open(BytesIO(b64decode(uri.split(",", 1)[1]))).convert("RGB"))
    assert uri.startswith("data:image/png;base64,") and np.array_equal(back, pixels)


def test_trace_slider_replaces_only_the_given_traces() -> None:
    base = go.Figure([go.Scatter(x=[0], y=[0], name="fixed"), go.Scatter(x=[], y=[], name="moving")])
    frames = [(str(k), [go.Scatter(x=[k], y=[k])], {"title": {"text": f"k = {k}"}}) for k in range(3)]
    fig = trace_slider(frames, base, prefix="k = ", traces=[1])
    assert [list(f.traces) for f in fig.frames] == [[1], [1], [1]]
    assert fig.data[0].name == "fixed" and list(fig.data[1].x) == [0]
    with pytest.raises(ValueError, match="1 traces"):
        trace_slider([("a", [], {}), ("b", [], {})], go.Figure([go.Scatter()]), prefix="")


def test_marginal_slider_moves_from_one_gaussian_to_two_points() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.where(torch.rand(4000, generator=g) < 0.5, -1.0, 1.0)
    eps = torch.randn(4000, generator=g)
    fig = marginal_slider(x, eps, [0.0, 1.0])
    noise, data = (np.asarray(f.data[0].y) for f in fig.frames)
    centers = np.asarray(fig.frames[0].data[0].x)
    # At t = 0 the mass is spread around 0; at t = 1 it sits in the two bins that hold -1 and +1.
    assert noise[np.abs(centers) < 0.5].sum() > 0.2 * noise.sum()
    assert data[np.abs(np.abs(centers) - 1) < 0.05].sum() > 0.99 * data.sum()


def test_figure_pixels_renders_a_matplotlib_figure() -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [0, 1])
    pixels = figure_pixels(fig, dpi=50)
    assert pixels.shape == (50, 100, 3) and pixels.dtype == np.uint8 and pixels.min() < 255


def test_photo_frames_are_stored_as_jpeg() -> None:
    fig = image_slider(_frames(2), prefix="", photo=True)
    assert all(f.data[0].source.startswith("data:image/jpeg;base64,") for f in fig.frames)


def test_png_image_displays_as_png_without_pyplot() -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from matplotlib.figure import Figure

    from jitlib.book.viz.static import png_image

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    data, _ = InteractiveShell.instance().display_formatter.format(png_image(fig))
    assert data["image/png"].startswith("iVBORw0KGgo")  # base64 of the PNG signature, not "<Figure size ...>"
