"""Widgets and figures of Part I: the target explorer (chapter 2) and the patch-spectrum explorer (chapter 3).

Each widget is a small class that owns its controls and recomputes its view from jitlib's own functions when a control
changes; ``.widget`` is the ipywidgets box to display (the object displays itself as the last expression of a cell), and
``.view()`` / ``.summary()`` return the numbers behind the picture so a test can drive the controls and check them.
The static twins (:func:`target_grid_figure`, :func:`spectrum_figure`) show the same views for a grid of settings
in the rendered book, which has no kernel to run the callbacks.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from jitlib.book.manifold import cumulative_variance, effective_dimension, retained_variance
from jitlib.diffusion.interpolation import T_EPS, interpolate, logit_normal_pdf, velocity
from jitlib.diffusion.losses import implied_weight
from jitlib.diffusion.targets import TARGETS, Target, check_target, convert

if TYPE_CHECKING:
    import matplotlib.figure
    import plotly.graph_objects as go

SYMBOL = {"x": "x", "eps": "ε", "v": "v"}
COLOR = {"x": "#1f77b4", "eps": "#d62728", "v": "#2ca02c"}
DISPLAY_LIMIT = 1.0  # images are shown with values clipped to [−1, 1], the data range


def _to_rgb(image: Tensor) -> np.ndarray:
    """(C, H, W) values in [−1, 1] (clipped) → (H, W, 3) uint8; one channel is repeated as grey."""
    pixels = (image.detach().float().clamp(-DISPLAY_LIMIT, DISPLAY_LIMIT) + DISPLAY_LIMIT) * (
        127.5 / DISPLAY_LIMIT
    )
    rgb = pixels.round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb


def _png(image: Tensor, zoom: int = 1) -> bytes:
    """PNG bytes of a (C, H, W) image in [−1, 1], enlarged ``zoom`` times with nearest-neighbour pixels."""
    picture = Image.fromarray(_to_rgb(image))
    if zoom > 1:
        picture = picture.resize((picture.width * zoom, picture.height * zoom), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="png")
    return buffer.getvalue()


def _figure_png(fig: matplotlib.figure.Figure) -> bytes:
    """PNG bytes of a matplotlib figure, drawn without pyplot (no global figure state)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


@dataclass
class TargetView:
    """One state of the target explorer, for an image x and noise ε at time t, when the network predicts ``target``.

    z: the network input z_t; output: what the network must output (x, ε or v = x − ε);
    decoded: x̂ converted from ``output + error`` (a small fixed error δ) — how an error in the output space shows in x;
    x_error_rms: RMS of decoded − x; weights: the implied weight on ‖x̂ − x‖² of each loss space (jitlib.diffusion.losses);
    density: the logit-normal training density of t.
    """

    t: float
    target: str
    z: Tensor
    output: Tensor
    decoded: Tensor
    x_error_rms: float
    weights: dict[str, float]
    density: float


def target_view(
    x: Tensor,
    eps: Tensor,
    error: Tensor,
    t: float,
    target: Target,
    *,
    t_eps: float = T_EPS,
    mu: float = -0.8,
    sigma: float = 0.8,
) -> TargetView:
    """z_t = t·x + (1 − t)·ε, the target in space ``target``, and x̂ = convert(target + δ, target → x) for one image (C, H, W)."""
    check_target(target)
    if not 0 <= t <= 1:
        raise ValueError(f"t={t} must lie in [0, 1] (0 = noise, 1 = data)")
    tb = torch.tensor([t], dtype=x.dtype)
    x1, eps1 = x[None], eps[None]
    z = interpolate(x1, eps1, tb)
    output = {"x": x1, "eps": eps1, "v": velocity(x1, eps1)}[target]
    decoded = convert(output + error[None], target, "x", z, tb, t_eps)
    return TargetView(
        t=t,
        target=target,
        z=z[0],
        output=output[0],
        decoded=decoded[0],
        x_error_rms=float((decoded - x1).pow(2).mean().sqrt()),
        weights={loss: float(implied_weight(target, loss, tb.double(), t_eps)) for loss in TARGETS},
        density=float(logit_normal_pdf(tb, mu, sigma)),
    )


class TargetExplorer:
    """Chapter 2's widget: a noise-level slider t and a target selector (x / ε / v) for one real image.

    Shows z_t (the input), the target the network must output, and x̂ decoded from that target plus a small fixed
    error; below, the implied weight w(t) of each loss on the x-error for the chosen target, over the logit-normal
    density of t, with the current t marked.
    """

    def __init__(
        self,
        image: Tensor,
        *,
        noise_scale: float = 1.0,
        error_std: float = 0.1,
        t: float = 0.5,
        target: Target = "x",
        t_eps: float = T_EPS,
        mu: float = -0.8,
        sigma: float = 0.8,
        seed: int = 0,
        zoom: int = 2,
    ) -> None:
        import ipywidgets as widgets

        if image.dim() != 3:
            raise ValueError(f"image has shape {tuple(image.shape)}; expected (C, H, W) in [−1, 1]")
        check_target(target)
        g = torch.Generator().manual_seed(seed)
        self.x = image.float()
        self.eps = noise_scale * torch.randn(self.x.shape, generator=g)
        self.error = error_std * torch.randn(self.x.shape, generator=g)
        self.error_std, self.t_eps, self.mu, self.sigma, self.zoom = error_std, t_eps, mu, sigma, zoom
        self.t_slider = widgets.FloatSlider(
            value=t,
            min=0.0,
            max=1.0,
            step=0.01,
            description="t",
            continuous_update=False,
            readout_format=".2f",
        )
        self.target_buttons = widgets.ToggleButtons(
            options=[(f"predict {SYMBOL[name]}", name) for name in TARGETS], value=target, description=""
        )
        height, width = (f"{n * zoom}px" for n in image.shape[-2:])
        # A fixed box that keeps the aspect ratio when a narrow page shrinks it.
        self.images = [
            widgets.Image(
                format="png", layout=widgets.Layout(width=width, height=height, object_fit="contain")
            )
            for _ in range(3)
        ]
        self.captions = [widgets.HTML(layout=widgets.Layout(width=width)) for _ in range(3)]
        self.weights_plot = widgets.Image(format="png")
        self.readout = widgets.HTML()
        panels = widgets.HBox([widgets.VBox([c, i]) for c, i in zip(self.captions, self.images, strict=True)])
        self.widget = widgets.VBox(
            [widgets.HBox([self.t_slider, self.target_buttons]), panels, self.readout, self.weights_plot]
        )
        self.t_slider.observe(self._update, names="value")
        self.target_buttons.observe(self._update, names="value")
        self._update()

    def view(self) -> TargetView:
        """The numbers and images behind the current picture."""
        return target_view(
            self.x,
            self.eps,
            self.error,
            float(self.t_slider.value),
            self.target_buttons.value,
            t_eps=self.t_eps,
            mu=self.mu,
            sigma=self.sigma,
        )

    def _update(self, change: Any = None) -> None:
        view = self.view()
        sym = SYMBOL[view.target]
        for widget, picture in zip(self.images, (view.z, view.output, view.decoded), strict=True):
            widget.value = _png(picture, self.zoom)
        self.captions[0].value = f"<b>input z<sub>t</sub></b>, t = {view.t:.2f}"
        self.captions[1].value = f"<b>target {sym}</b>: the network's output"
        self.captions[2].value = f"<b>x̂ from {sym} + δ</b> (δ: RMS {self.error_std:g} error)"
        weights = ", ".join(f"{SYMBOL[k]}-loss <b>{w:.3g}</b>" for k, w in view.weights.items())
        self.readout.value = (
            f"Predicting {sym} at t = {view.t:.2f}: an output error of RMS {self.error_std:g} becomes an x̂ error of RMS "
            f"<b>{view.x_error_rms:.3g}</b>. Weight on ‖x̂ − x‖²: {weights}. "
            f"Training density of t: p(t) = <b>{view.density:.3g}</b>."
        )
        self.weights_plot.value = _figure_png(self._weights_figure(view))

    def _weights_figure(self, view: TargetView) -> matplotlib.figure.Figure:
        from matplotlib.figure import Figure

        ts = torch.linspace(0.0, 0.995, 400, dtype=torch.float64)
        fig = Figure(figsize=(7.0, 2.6))
        ax = fig.add_subplot()
        for loss in TARGETS:
            w = implied_weight(view.target, loss, ts, self.t_eps)
            ax.plot(ts, w, color=COLOR[loss], label=f"{SYMBOL[loss]}-loss")
        ax.axvline(view.t, color="black", lw=1, ls="--")
        ax.set(yscale="log", ylim=(1e-3, 1e3), xlim=(0, 1), xlabel="t (0 = noise, 1 = data)")
        ax.set_ylabel("weight on ‖x̂ − x‖²")
        ax.set_title(f"Implied loss weights when the network predicts {SYMBOL[view.target]}", fontsize=10)
        ax.legend(loc="upper left", fontsize=8)
        density_ax = ax.twinx()
        density_ax.fill_between(ts, logit_normal_pdf(ts, self.mu, self.sigma), color="0.6", alpha=0.3, lw=0)
        density_ax.set_ylim(bottom=0)
        density_ax.set_ylabel("density of t", color="0.4")
        fig.tight_layout()
        return fig

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def target_grid_figure(
    image: Tensor,
    ts: Sequence[float],
    *,
    noise_scale: float = 1.0,
    error_std: float = 0.1,
    t_eps: float = T_EPS,
    seed: int = 0,
) -> matplotlib.figure.Figure:
    """The explorer's static twin: z_t and x̂ decoded from (x, ε, v) + δ, one column per t (same noise and δ as the widget)."""
    from matplotlib.figure import Figure

    g = torch.Generator().manual_seed(seed)
    x = image.float()
    eps = noise_scale * torch.randn(x.shape, generator=g)
    error = error_std * torch.randn(x.shape, generator=g)
    rows = ["z"] + list(TARGETS)
    fig = Figure(
        figsize=(1.2 * len(ts) + 1.2, 1.2 * len(rows) + 1.0)
    )  # drawn at the column's width: fonts stay legible
    axes = fig.subplots(len(rows), len(ts), squeeze=False)
    for j, t in enumerate(ts):
        for i, row in enumerate(rows):
            view = target_view(x, eps, error, float(t), "x" if row == "z" else row, t_eps=t_eps)
            picture = view.z if row == "z" else view.decoded
            ax = axes[i, j]
            ax.imshow(_to_rgb(picture), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"t = {t:g}", fontsize=11)
            if j == 0:
                ax.set_ylabel("input $z_t$" if row == "z" else f"x̂ from {SYMBOL[row]} + δ", fontsize=11)
            if row != "z":
                ax.text(
                    0.03,
                    0.04,
                    f"{view.x_error_rms:.2g}",
                    transform=ax.transAxes,
                    fontsize=9,
                    color="white",
                    bbox={"facecolor": "black", "alpha": 0.6, "pad": 1, "lw": 0},
                )
    fig.suptitle(
        f"Input and decoded x̂ when the output is off by δ (RMS {error_std:g})\ncorner: RMS error of x̂",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def _spectrum_summary(
    spectra: Mapping[str, Tensor], widths: Mapping[str, int]
) -> dict[str, dict[str, float]]:
    """Per target: D, components for 90 % and 99 % of the variance, and the share a width-k layer can carry."""
    return {
        name: {
            "dim": spectrum.numel(),
            "k90": effective_dimension(spectrum, 0.9),
            "k99": effective_dimension(spectrum, 0.99),
            **{label: retained_variance(spectrum, k) for label, k in widths.items()},
        }
        for name, spectrum in spectra.items()
    }


def _check_spectra(spectra: Mapping[int, Mapping[str, Tensor]]) -> list[int]:
    """Patch sizes in increasing order, after checking every entry holds 1-D spectra."""
    if not spectra:
        raise ValueError("spectra is empty; expected {patch_size: {name: spectrum}}")
    for size, entry in spectra.items():
        if not entry or any(s.dim() != 1 for s in entry.values()):
            raise ValueError(f"spectra[{size}] must map names (x, eps, v) to 1-D spectra")
    return sorted(spectra)


class SpectrumExplorer:
    """Chapter 3's widget: a patch-size slider over precomputed PCA spectra of x, ε and v patches.

    ``spectra[p][name]`` is the spectrum (jitlib.book.manifold.pca_spectrum) of p×p patches of target ``name``; ``widths``
    maps a label to a layer width k whose rank-k limit is drawn and reported (e.g. a bottleneck and a hidden width).
    """

    def __init__(
        self,
        spectra: Mapping[int, Mapping[str, Tensor]],
        widths: Mapping[str, int],
        *,
        patch_size: int | None = None,
    ) -> None:
        import ipywidgets as widgets

        sizes = _check_spectra(spectra)
        self.spectra, self.widths = spectra, dict(widths)
        self.slider = widgets.SelectionSlider(
            options=sizes,
            value=sizes[len(sizes) // 2] if patch_size is None else patch_size,
            description="patch p",
        )
        self.plot = widgets.Image(format="png")
        self.readout = widgets.HTML()
        self.widget = widgets.VBox([self.slider, self.plot, self.readout])
        self.slider.observe(self._update, names="value")
        self._update()

    def summary(self) -> dict[str, dict[str, float]]:
        """For the current patch size, per target: dim, k90, k99 and the variance share each width can carry."""
        return _spectrum_summary(self.spectra[self.slider.value], self.widths)

    def _update(self, change: Any = None) -> None:
        from matplotlib.figure import Figure

        size = self.slider.value
        summary = self.summary()
        fig = Figure(figsize=(7.0, 3.4))
        ax = fig.add_subplot()
        for name, spectrum in self.spectra[size].items():
            k = np.arange(1, spectrum.numel() + 1)
            ax.plot(
                k,
                cumulative_variance(spectrum),
                color=COLOR.get(name),
                label=f"{SYMBOL.get(name, name)} patches",
            )
        for label, width in self.widths.items():
            ax.axvline(width, color="0.4", ls=":", lw=1)
            ax.text(width, 0.02, f" {label}", rotation=90, fontsize=7, color="0.3", va="bottom")
        for level in (0.9, 0.99):
            ax.axhline(level, color="0.75", lw=0.8)
        dim = next(iter(summary.values()))["dim"]
        ax.set(xscale="log", xlim=(1, max(dim, *self.widths.values()) * 1.05), ylim=(0, 1.01))
        ax.set(xlabel="number of principal components k", ylabel="share of variance in top k")
        ax.set_title(f"{size}×{size} patches (dimension D = {dim})", fontsize=10)
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        self.plot.value = _figure_png(fig)
        header = "".join(f"<th>carried by {label}</th>" for label in self.widths)
        rows = "".join(
            f"<tr><td>{SYMBOL.get(name, name)}</td><td>{s['k90']}</td><td>{s['k99']}</td>"
            + "".join(f"<td>{s[label]:.1%}</td>" for label in self.widths)
            + "</tr>"
            for name, s in summary.items()
        )
        self.readout.value = (
            f"<table><tr><th>patches</th><th>k for 90 %</th><th>k for 99 %</th>{header}</tr>{rows}</table>"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def spectrum_figure(
    spectra: Mapping[int, Mapping[str, Tensor]], widths: Mapping[str, int], *, patch_size: int | None = None
) -> go.Figure:
    """The spectrum explorer's static twin: a plotly figure with one frame (and slider step) per patch size.

    It opens at ``patch_size`` (default: the middle size), like the widget.
    """
    import plotly.graph_objects as go

    sizes = _check_spectra(spectra)
    names = list(spectra[sizes[0]])
    largest = max(max(s.numel() for s in spectra[p].values()) for p in sizes)

    def traces(size: int) -> list[go.Scatter]:
        summary = _spectrum_summary(spectra[size], widths)
        return [
            go.Scatter(
                x=np.arange(1, spectra[size][name].numel() + 1),
                y=cumulative_variance(spectra[size][name]).numpy(),
                mode="lines",
                line={"color": COLOR.get(name)},
                name=f"{SYMBOL.get(name, name)}: k90 = {summary[name]['k90']}, k99 = {summary[name]['k99']}",
            )
            for name in names
        ]

    def title(size: int) -> str:
        return f"{size}×{size} patches, dimension D = {spectra[size][names[0]].numel()}"

    start = sizes[len(sizes) // 2] if patch_size is None else patch_size
    if start not in sizes:
        raise ValueError(f"patch_size={patch_size} has no spectra; valid: {', '.join(map(str, sizes))}")
    fig = go.Figure(
        data=traces(start),
        frames=[go.Frame(data=traces(p), name=str(p), layout={"title.text": title(p)}) for p in sizes],
    )
    for label, width in widths.items():
        fig.add_vline(x=width, line={"dash": "dot", "color": "gray", "width": 1})
        # Annotations on a log axis take log10 coordinates (add_vline's own annotation would not).
        fig.add_annotation(
            x=math.log10(width),
            y=0.02,
            text=label,
            textangle=-90,
            showarrow=False,
            xanchor="left",
            yanchor="bottom",
            font={"size": 10, "color": "gray"},
        )
    for level in (0.9, 0.99):
        fig.add_hline(y=level, line={"color": "lightgray", "width": 1})
    steps = [
        {
            "method": "animate",
            "label": str(p),
            "args": [
                [str(p)],
                {
                    "mode": "immediate",
                    "frame": {"duration": 0, "redraw": True},
                    "transition": {"duration": 0},
                },
            ],
        }
        for p in sizes
    ]
    fig.update_layout(
        height=520,
        title=title(start),
        xaxis={
            "type": "log",
            "range": [0, math.log10(largest * 1.05)],
            "title": "number of principal components k",
        },
        yaxis={"range": [0, 1.02], "title": "share of variance in top k"},
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},  # above the plot, off the curves
        sliders=[
            {
                "active": sizes.index(start),
                "steps": steps,
                "currentvalue": {"prefix": "patch size p = "},
                "pad": {"t": 45},
            }
        ],
        margin={"l": 60, "r": 20, "t": 110, "b": 40},
    )
    return fig


def marginal_slider(
    x: Tensor, eps: Tensor, ts: Sequence[float], *, bins: int = 120, span: float = 4.0
) -> go.Figure:
    """The preface slider's static twin: the histogram of z_t = t·x + (1 − t)·ε over many pairs, one frame per t."""
    import plotly.graph_objects as go

    from jitlib.book.viz.static import trace_slider

    edges = np.linspace(-span, span, bins + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    frames = []
    for t in ts:
        z = interpolate(x, eps, torch.full_like(x, float(t))).numpy()
        density, _ = np.histogram(z, edges, density=True)
        bar = go.Bar(
            x=centers, y=density.astype(np.float32), marker_color=COLOR["x"], width=edges[1] - edges[0]
        )
        layout = dict(
            yaxis=dict(range=[0, 1.1 * float(density.max())]),
            title=dict(text=f"distribution of z_t at t = {t:.2f}"),
        )
        frames.append((f"{t:.2f}", [bar], layout))
    base = go.Figure(go.Bar(x=centers, y=np.zeros(bins, dtype=np.float32)))
    base.update_layout(
        height=420, bargap=0, xaxis_title="z_t", yaxis_title="density", margin=dict(l=60, r=20, t=50, b=20)
    )
    return trace_slider(frames, base, prefix="t = ", active=len(ts) // 2)


def target_slider(explorer: TargetExplorer, ts: Sequence[float], panel: int = 96) -> go.Figure:
    """The target explorer's static twin: for each t (slider), z_t, the target and x̂ from target + δ, for all targets.

    Uses the explorer's own image, noise and error, through :func:`target_view` (the function behind the widget);
    each picture is resized to ``panel`` pixels and the frames are stored as JPEG (noise does not compress as PNG).
    """
    from jitlib.book.viz.static import image_slider

    gap = 4
    frames, titles = [], []
    for t in ts:
        rows, errors = [], []
        for name in TARGETS:
            view = target_view(explorer.x, explorer.eps, explorer.error, t, name, t_eps=explorer.t_eps)
            tiles = []
            for picture in (view.z, view.output, view.decoded):
                tile = Image.fromarray(_to_rgb(picture)).resize((panel, panel), Image.BILINEAR)
                tiles += [np.asarray(tile), np.full((panel, gap, 3), 255, np.uint8)]
            rows += [
                np.concatenate(tiles[:-1], axis=1),
                np.full((gap, 3 * panel + 2 * gap, 3), 255, np.uint8),
            ]
            errors.append(f"{SYMBOL[name]} {view.x_error_rms:.3g}")
        frames.append((f"{t:.2f}", np.concatenate(rows[:-1], axis=0)))
        titles.append(f"t = {t:.2f}: RMS error of x̂ when the output is off by δ: {', '.join(errors)}")
    fig = image_slider(frames, prefix="t = ", titles=titles, active=len(ts) // 2, photo=True)
    step = panel + gap
    for col, head in enumerate(("input z_t", "the target (network output)", "x̂ from target + δ")):
        fig.add_annotation(
            x=col * step + panel / 2, y=0, yshift=4, text=head, showarrow=False, yanchor="bottom"
        )
    for row, name in enumerate(TARGETS):
        fig.add_annotation(
            x=0,
            xshift=-4,
            y=row * step + panel / 2,
            text=f"predict {SYMBOL[name]}",
            textangle=-90,
            showarrow=False,
            xanchor="right",
        )
    fig.update_layout(margin=dict(l=30, r=0, t=80, b=0))
    return fig
