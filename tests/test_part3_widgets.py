"""Chapter 8's sampler explorer driven through its controls: each change must re-sample and recount correctly."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from jitlib.book.viz.sampling import (
    CountingDenoiser,
    SamplerSettings,
    SamplingExplorer,
    sampling_grid_figure,
    sampling_view,
)
from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.sampling import guidance_active, linear_grid, sample
from jitlib.nn.registry import create_model

pytest.importorskip("ipywidgets")


def _denoiser() -> Denoiser:
    """A small random class-conditional JiT on 16×16 grey images (weights perturbed so outputs depend on y)."""
    net = create_model(
        "JiT-tiny/8",
        input_size=16,
        in_channels=1,
        hidden_size=32,
        depth=2,
        num_heads=2,
        generator=torch.Generator().manual_seed(0),
    )
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return Denoiser(net.eval())


NULL = 10  # the tiny JiT's null label id (num_classes)


class LabelClassifier:
    """A stand-in for the proxy classifier: it 'recognises' images whose mean brightness is above the median."""

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        mean = images.flatten(1).mean(1)
        return (mean > mean.median()).long()


def expected_evaluations(settings: SamplerSettings) -> int:
    """Evaluations per image: Heun evaluates at t_i (i < N) and, as corrector, at t_{i+1} (i < N − 1); CFG doubles."""
    grid = linear_grid(settings.steps)
    times = grid[:-1] + (grid[1:-1] if settings.method == "heun" else [])
    guided = settings.cfg_scale != 1
    return sum(2 if guided and guidance_active(t, settings.cfg_interval) else 1 for t in times)


def _pixels(widget) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(bytes(widget.value))).convert("RGB"))


@pytest.fixture(scope="module")
def setup():
    noise = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 1, 2, 3])
    return _denoiser(), noise, labels


def test_counting_denoiser_counts_cfg_passes_twice(setup) -> None:
    denoiser, noise, labels = setup
    for settings in (
        SamplerSettings(steps=5),
        SamplerSettings(steps=5, cfg_scale=3.0, cfg_interval=(0.0, 1.0)),
        SamplerSettings(steps=6, method="euler", cfg_scale=2.0, cfg_interval=(0.5, 1.0)),
    ):
        counter = CountingDenoiser(denoiser)
        sample(
            counter,
            noise,
            steps=settings.steps,
            method=settings.method,
            labels=labels,
            null_label=NULL,
            cfg_scale=settings.cfg_scale,
            cfg_interval=settings.cfg_interval,
        )
        assert counter.rows == expected_evaluations(settings) * len(noise)


def test_explorer_resamples_when_each_control_moves(setup) -> None:
    denoiser, noise, labels = setup
    explorer = SamplingExplorer(
        denoiser,
        noise,
        labels,
        classifier=LabelClassifier(),
        null_label=NULL,
        settings=SamplerSettings(steps=4),
        zoom=1,
    )
    view = explorer.view()
    want = sample(denoiser, noise, steps=4, labels=labels).clamp(-1, 1)
    torch.testing.assert_close(view.images, want)
    pixels = _pixels(explorer.image)
    assert pixels.shape == (16, 4 * 18 - 2, 3)
    first = ((want[0, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    np.testing.assert_array_equal(pixels[:, :16, 0], first)
    assert (
        f"{expected_evaluations(SamplerSettings(steps=4)):g}</b> network evaluations"
        in explorer.readout.value
    )
    assert view.accuracy == pytest.approx(float((LabelClassifier().predict(want) == labels).float().mean()))

    before = bytes(explorer.image.value)
    explorer.steps_slider.value = 8
    assert bytes(explorer.image.value) != before
    assert "Heun 8 steps, no CFG: <b>15</b>" in explorer.readout.value

    explorer.cfg_slider.value = 3.0
    explorer.interval_slider.value = (0.5, 1.0)
    settings = explorer.settings()
    assert settings == SamplerSettings(8, "heun", 3.0, (0.5, 1.0))
    want = sample(
        denoiser, noise, steps=8, labels=labels, cfg_scale=3.0, cfg_interval=(0.5, 1.0), null_label=NULL
    ).clamp(-1, 1)
    torch.testing.assert_close(explorer.view().images, want)
    assert f"<b>{expected_evaluations(settings)}</b>" in explorer.readout.value

    explorer.method_buttons.value = "euler"
    assert explorer.view().evaluations == expected_evaluations(SamplerSettings(8, "euler", 3.0, (0.5, 1.0)))
    assert "Euler 8 steps" in explorer.readout.value


def test_cfg_outside_interval_equals_no_guidance(setup) -> None:
    denoiser, noise, labels = setup
    plain = sampling_view(denoiser, noise, labels, SamplerSettings(steps=5))
    never = sampling_view(
        denoiser,
        noise,
        labels,
        SamplerSettings(steps=5, cfg_scale=4.0, cfg_interval=(1.0, 1.0)),
        null_label=NULL,
    )
    torch.testing.assert_close(never.images, plain.images)
    assert never.evaluations == plain.evaluations == 9


def test_static_twin_has_one_row_per_setting(setup) -> None:
    denoiser, noise, labels = setup
    settings = [SamplerSettings(steps=2), SamplerSettings(steps=3, cfg_scale=2.0)]
    fig = sampling_grid_figure(
        denoiser, noise, labels, settings, classifier=LabelClassifier(), null_label=NULL
    )
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert len(titles) == 2
    assert titles[0].startswith("Heun 2 steps, no CFG — 3 evaluations/image")
    assert f"{expected_evaluations(settings[1])} evaluations/image" in titles[1] and "recognised" in titles[1]


def test_bad_shapes_are_refused(setup) -> None:
    denoiser, noise, labels = setup
    with pytest.raises(ValueError, match="labels"):
        SamplingExplorer(denoiser, noise, labels[:2])
