"""Chapter 8's sampler explorer: steps, CFG scale and CFG interval for one image per class, and its static twin.

:class:`SamplingExplorer` owns its controls and re-samples the same noise with :func:`jitlib.diffusion.sampling.sample` when a
control changes; ``.view()`` returns the images and the numbers shown (network evaluations per image, classifier
accuracy) so a test can drive the controls. :func:`sampling_grid_figure` draws the same view for a list of settings
— the small multiples the rendered book shows, since it has no kernel to run the callbacks.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from torch import Tensor

from jitlib.diffusion.sampling import sample
from jitlib.diffusion.targets import Prediction
from jitlib.training.data import unit_to_uint8

if TYPE_CHECKING:
    import matplotlib.figure
    import plotly.graph_objects as go


class CountingDenoiser:
    """Wraps a denoiser and counts the images it evaluates (a CFG pass of 2B rows counts 2 per image)."""

    def __init__(self, denoiser: Callable[..., Prediction]) -> None:
        self.denoiser = denoiser
        self.rows = 0

    @property
    def null_label(self) -> int | None:
        return getattr(self.denoiser, "null_label", None)

    def __call__(self, z: Tensor, t: Tensor, y: Tensor | None = None, **kwargs: Any) -> Prediction:
        self.rows += z.shape[0]
        return self.denoiser(z, t, y, **kwargs)


@dataclass(frozen=True)
class SamplerSettings:
    """One sampler configuration: Heun/Euler with ``steps`` steps, guidance ``cfg_scale`` on (t_lo, t_hi]."""

    steps: int = 50
    method: str = "heun"
    cfg_scale: float = 1.0
    cfg_interval: tuple[float, float] = (0.1, 1.0)

    def label(self) -> str:
        lo, hi = self.cfg_interval
        guide = "no CFG" if self.cfg_scale == 1 else f"CFG {self.cfg_scale:g} on ({lo:g}, {hi:g}]"
        return f"{self.method.capitalize()} {self.steps} steps, {guide}"


@dataclass
class SamplingView:
    """The samples of one setting and what they cost and score: network evaluations per image, class accuracy."""

    settings: SamplerSettings
    images: Tensor  # (B, C, H, W) in [−1, 1]
    evaluations: float  # network evaluations per image (each CFG pass counts)
    accuracy: float | None  # fraction the classifier assigns to the requested class (None without one)


def sampling_view(
    denoiser: Callable[..., Prediction],
    noise: Tensor,
    labels: Tensor,
    settings: SamplerSettings,
    classifier: Any = None,
    null_label: int | None = None,
) -> SamplingView:
    """Sample ``noise`` (B, C, H, W) for class ids ``labels`` (B,) with ``settings``; count evaluations; classify.

    ``null_label`` is the unconditional class id CFG needs (default: the denoiser's ``null_label``).
    """
    counter = CountingDenoiser(denoiser)
    images = sample(
        counter,
        noise,
        steps=settings.steps,
        method=settings.method,
        labels=labels,
        null_label=null_label,
        cfg_scale=settings.cfg_scale,
        cfg_interval=settings.cfg_interval,
    ).clamp(-1, 1)
    accuracy = None if classifier is None else float((classifier.predict(images) == labels).float().mean())
    return SamplingView(settings, images, counter.rows / noise.shape[0], accuracy)


def _strip(images: Tensor) -> np.ndarray:
    """Images (B, C, H, W) in [−1, 1] side by side with 2-px white gaps: one (H, B·(W + 2) − 2, 3) uint8 array."""
    pixels = unit_to_uint8(images).permute(0, 2, 3, 1).numpy()
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    gap = np.full((pixels.shape[1], 2, 3), 255, dtype=np.uint8)
    return np.concatenate([part for tile in pixels for part in (tile, gap)][:-1], axis=1)


def _png(pixels: np.ndarray, zoom: int) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 array enlarged ``zoom`` times with nearest-neighbour pixels."""
    picture = Image.fromarray(pixels)
    picture = picture.resize((picture.width * zoom, picture.height * zoom), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="png")
    return buffer.getvalue()


class SamplingExplorer:
    """Chapter 8's widget: sliders for the number of steps, the CFG scale and the CFG interval, and a solver toggle.

    Shows one sample per label from fixed noise, how many network evaluations each image cost, and (with a
    ``classifier`` such as jitlib.evaluation.metrics' proxy classifier) how many samples are recognised as their class.
    """

    def __init__(
        self,
        denoiser: Callable[..., Prediction],
        noise: Tensor,
        labels: Tensor,
        *,
        classifier: Any = None,
        null_label: int | None = None,
        settings: SamplerSettings = SamplerSettings(),
        max_steps: int = 50,
        zoom: int = 2,
    ) -> None:
        import ipywidgets as widgets

        if noise.dim() != 4 or labels.shape != (noise.shape[0],):
            raise ValueError(
                f"noise must be (B, C, H, W) and labels (B,); got {tuple(noise.shape)} and {tuple(labels.shape)}"
            )
        self.denoiser, self.noise, self.labels = denoiser, noise, labels
        self.classifier, self.null_label, self.zoom = classifier, null_label, zoom
        # Every slider redraws only when released (a sample takes a moment) and shares one label width and length.
        common = dict(
            continuous_update=False,
            style={"description_width": "110px"},
            layout=widgets.Layout(width="420px"),
        )
        self.steps_slider = widgets.IntSlider(
            value=settings.steps, min=1, max=max_steps, description="steps", **common
        )
        self.cfg_slider = widgets.FloatSlider(
            value=settings.cfg_scale, min=1.0, max=6.0, step=0.25, description="CFG scale ω", **common
        )
        self.interval_slider = widgets.FloatRangeSlider(
            value=settings.cfg_interval, min=0.0, max=1.0, step=0.05, description="CFG interval", **common
        )
        self.method_buttons = widgets.ToggleButtons(options=["heun", "euler"], value=settings.method)
        self.image = widgets.Image(format="png")
        self.readout = widgets.HTML()
        self.widget = widgets.VBox(
            [
                widgets.HBox(
                    [
                        widgets.VBox([self.steps_slider, self.cfg_slider, self.interval_slider]),
                        self.method_buttons,
                    ]
                ),
                self.image,
                self.readout,
            ]
        )
        for control in (self.steps_slider, self.cfg_slider, self.interval_slider, self.method_buttons):
            control.observe(self._update, names="value")
        self._update()

    def settings(self) -> SamplerSettings:
        """The settings the controls show now."""
        lo, hi = self.interval_slider.value
        return SamplerSettings(
            int(self.steps_slider.value), self.method_buttons.value, float(self.cfg_slider.value), (lo, hi)
        )

    def view(self) -> SamplingView:
        """The samples and numbers behind the current picture."""
        return sampling_view(
            self.denoiser, self.noise, self.labels, self.settings(), self.classifier, self.null_label
        )

    def _update(self, change: Any = None) -> None:
        view = self.view()
        self.image.value = _png(_strip(view.images), self.zoom)
        score = "" if view.accuracy is None else f"; recognised as their class: <b>{view.accuracy:.0%}</b>"
        self.readout.value = (
            f"{view.settings.label()}: <b>{view.evaluations:g}</b> network evaluations per image{score}."
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def sampling_grid_figure(
    denoiser: Callable[..., Prediction],
    noise: Tensor,
    labels: Tensor,
    settings: Sequence[SamplerSettings],
    classifier: Any = None,
    null_label: int | None = None,
    views: Sequence[SamplingView] | None = None,
) -> matplotlib.figure.Figure:
    """The explorer's static twin: one row of samples (same noise) per setting, titled with its cost and accuracy.

    ``views`` (one per setting, e.g. shared with :func:`sampling_slider`) are used instead of sampling again.
    """
    from matplotlib.figure import Figure

    width = 0.62 * noise.shape[0] + 0.4
    fig = Figure(figsize=(width, 0.95 * len(settings) + 0.3))
    axes = fig.subplots(len(settings), 1, squeeze=False)[:, 0]
    if views is None:
        views = [
            sampling_view(denoiser, noise, labels, setting, classifier, null_label) for setting in settings
        ]
    for ax, setting, view in zip(axes, settings, views, strict=True):
        ax.imshow(_strip(view.images), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        score = "" if view.accuracy is None else f", {view.accuracy:.0%} recognised"
        ax.set_title(
            f"{setting.label()} — {view.evaluations:g} evaluations/image{score}", fontsize=9, loc="left"
        )
    fig.tight_layout()
    return fig


def sampling_slider(views: Sequence[SamplingView], zoom: int = 3) -> go.Figure:
    """The explorer's static twin that moves: a slider over the views' settings, each showing its samples."""
    from jitlib.book.viz.static import image_slider

    frames, titles = [], []
    for view in views:
        setting = view.settings
        pixels = np.repeat(np.repeat(_strip(view.images), zoom, axis=0), zoom, axis=1)
        frames.append((setting.label(), pixels))
        score = "" if view.accuracy is None else f", {view.accuracy:.0%} recognised"
        titles.append(f"{view.evaluations:g} network evaluations per image{score}")
    return image_slider(frames, prefix="", titles=titles)
