"""Part I widgets driven through their controls: each slider/selector change must redraw the right picture and numbers."""

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from jitlib.book.manifold import cumulative_variance, effective_dimension, retained_variance
from jitlib.book.viz.part1 import (
    SpectrumExplorer,
    TargetExplorer,
    spectrum_figure,
    target_grid_figure,
    target_view,
)
from jitlib.diffusion.interpolation import interpolate, logit_normal_pdf, sample_t
from jitlib.diffusion.losses import implied_weight

pytest.importorskip("ipywidgets")


def _image(size: int = 16) -> torch.Tensor:
    """A smooth RGB test image in [−1, 1]: a colour gradient."""
    ramp = torch.linspace(-1, 1, size)
    return torch.stack(
        [
            ramp[None, :].expand(size, size),
            ramp[:, None].expand(size, size),
            -ramp[None, :].expand(size, size),
        ]
    )


def _pixels(widget) -> np.ndarray:
    """The (H, W, 3) uint8 pixels of an ipywidgets.Image holding a PNG."""
    return np.asarray(Image.open(io.BytesIO(bytes(widget.value))).convert("RGB"))


def _expected_pixels(image: torch.Tensor, zoom: int) -> np.ndarray:
    """What the explorer should draw for a (C, H, W) image: values clipped to [−1, 1], mapped to 0..255, zoomed."""
    rgb = ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return rgb.repeat(zoom, axis=0).repeat(zoom, axis=1)


def test_target_explorer_redraws_input_and_numbers_when_t_moves() -> None:
    explorer = TargetExplorer(_image(), t=0.3, target="x", zoom=2, seed=1)
    t = torch.tensor([0.3])
    z = interpolate(explorer.x[None], explorer.eps[None], t)[0]
    np.testing.assert_array_equal(_pixels(explorer.images[0]), _expected_pixels(z, 2))
    before = [bytes(w.value) for w in (*explorer.images, explorer.weights_plot)]

    explorer.t_slider.value = 0.9
    after = [bytes(w.value) for w in (*explorer.images, explorer.weights_plot)]
    z = interpolate(explorer.x[None], explorer.eps[None], torch.tensor([0.9]))[0]
    np.testing.assert_array_equal(_pixels(explorer.images[0]), _expected_pixels(z, 2))
    assert after[0] != before[0] and after[3] != before[3]  # the input and the weight plot moved with t
    assert (
        after[1] == before[1] and after[2] == before[2]
    )  # x-prediction: target and decoded x̂ = x + δ do not
    view = explorer.view()
    assert view.weights["v"] == pytest.approx(1 / 0.1**2, rel=1e-5)  # v-loss weight 1/(1 − t)² at t = 0.9
    assert f"{view.weights['v']:.3g}" in explorer.readout.value and "t = 0.90" in explorer.captions[0].value


def test_target_explorer_switches_target_and_shows_error_amplification() -> None:
    explorer = TargetExplorer(_image(), t=0.2, target="x", error_std=0.1, seed=2)
    delta_rms = explorer.error.pow(2).mean().sqrt().item()
    assert explorer.view().x_error_rms == pytest.approx(delta_rms, rel=1e-5)

    explorer.target_buttons.value = "eps"
    view = explorer.view()
    np.testing.assert_array_equal(_pixels(explorer.images[1]), _expected_pixels(explorer.eps, explorer.zoom))
    assert "ε" in explorer.captions[1].value
    # ε-prediction: x̂ = (z − (1 − t)(ε + δ))/t, so the error is δ scaled by (1 − t)/t = 4 at t = 0.2.
    assert view.x_error_rms == pytest.approx(4 * delta_rms, rel=1e-4)
    for loss in ("x", "eps", "v"):
        want = implied_weight("eps", loss, torch.tensor([0.2], dtype=torch.float64)).item()
        assert view.weights[loss] == pytest.approx(want, rel=1e-6)

    explorer.target_buttons.value = "v"
    assert explorer.view().x_error_rms == pytest.approx(0.8 * delta_rms, rel=1e-4)  # v-prediction: (1 − t)·δ
    torch.testing.assert_close(explorer.view().output, explorer.x - explorer.eps)


def test_target_view_rejects_bad_input() -> None:
    image = _image(4)
    with pytest.raises(ValueError, match="target='z'"):
        target_view(image, image, image, 0.5, "z")
    with pytest.raises(ValueError, match="t=1.5"):
        target_view(image, image, image, 1.5, "x")
    with pytest.raises(ValueError, match="expected \\(C, H, W\\)"):
        TargetExplorer(image[0])


def test_logit_normal_density_matches_jitlib_sampler() -> None:
    grid = torch.linspace(0, 1, 20_001, dtype=torch.float64)
    density = logit_normal_pdf(grid, -0.8, 0.8)
    assert torch.trapezoid(density, grid).item() == pytest.approx(1.0, abs=1e-6)
    assert density[0] == 0 and density[-1] == 0
    draws = sample_t(200_000, "logit_normal", -0.8, 0.8, generator=torch.Generator().manual_seed(0)).double()
    edges = torch.linspace(0, 1, 21, dtype=torch.float64)
    hist = torch.histc(draws, bins=20, min=0, max=1) / draws.numel()
    mass = torch.stack(
        [
            torch.trapezoid(density[(grid >= a) & (grid <= b)], grid[(grid >= a) & (grid <= b)])
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
    )
    np.testing.assert_allclose(hist.numpy(), mass.numpy(), atol=3e-3)
    assert logit_normal_pdf(torch.tensor([1 / (1 + math.exp(0.8))]), -0.8, 0.8).item() > 2  # the mode region


def test_target_grid_figure_has_a_panel_per_row_and_time() -> None:
    fig = target_grid_figure(_image(8), (0.1, 0.5, 0.9))
    assert len(fig.axes) == 4 * 3
    assert [ax.get_title() for ax in fig.axes[:3]] == ["t = 0.1", "t = 0.5", "t = 0.9"]


def _spectra() -> dict[int, dict[str, torch.Tensor]]:
    """Synthetic spectra for two patch sizes: a decaying 'image' spectrum, flat noise and their sum."""
    out = {}
    for p in (2, 4):
        dim = 3 * p * p
        x = torch.logspace(0, -3, dim, dtype=torch.float64)
        out[p] = {"x": x, "eps": torch.ones(dim, dtype=torch.float64), "v": x + 1}
    return out


def test_spectrum_explorer_follows_the_patch_size_slider() -> None:
    spectra = _spectra()
    explorer = SpectrumExplorer(spectra, {"k = 8": 8}, patch_size=2)
    first_plot = bytes(explorer.plot.value)
    assert explorer.summary()["x"]["dim"] == 12

    explorer.slider.value = 4
    summary = explorer.summary()
    assert bytes(explorer.plot.value) != first_plot
    for name, spectrum in spectra[4].items():
        assert summary[name]["dim"] == 48
        assert summary[name]["k90"] == effective_dimension(spectrum, 0.9)
        assert summary[name]["k99"] == effective_dimension(spectrum, 0.99)
        assert summary[name]["k = 8"] == pytest.approx(retained_variance(spectrum, 8))
        assert f"<td>{summary[name]['k90']}</td>" in explorer.readout.value
    assert summary["eps"]["k = 8"] == pytest.approx(8 / 48)


def test_spectrum_figure_has_one_frame_per_patch_size() -> None:
    spectra = _spectra()
    fig = spectrum_figure(spectra, {"k = 8": 8})
    assert [f.name for f in fig.frames] == ["2", "4"]
    assert [s.label for s in fig.layout.sliders[0].steps] == ["2", "4"]
    x_trace = fig.frames[1].data[0]
    np.testing.assert_allclose(np.asarray(x_trace.y), cumulative_variance(spectra[4]["x"]).numpy())
    assert fig.layout.width is None  # responsive: as wide as the text column, never wider
    with pytest.raises(ValueError, match="spectra is empty"):
        spectrum_figure({}, {})
