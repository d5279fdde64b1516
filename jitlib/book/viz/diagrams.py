"""Two diagrams drawn by code: the JiT architecture (chapter 6) and the manifold picture (chapter 3).

The architecture diagram reads its numbers (width, depth, patch, bottleneck, where the class tokens join) from a
:class:`jitlib.nn.model.JiTConfig`, so it cannot disagree with the model it describes. The manifold picture draws
clean data on a curve (a 1-D manifold in the plane), a noise sample, the noisy input z_t on the straight path
between them, and the three targets x, ε and v = x − ε seen from z_t.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from jitlib.diffusion.interpolation import interpolate

if TYPE_CHECKING:
    import matplotlib.figure

    from jitlib.nn.model import JiTConfig

COLORS = {
    "x": "#1f77b4",
    "eps": "#d62728",
    "v": "#2ca02c",
    "box": "#f2f2f2",
    "cond": "#fff2cc",
    "tok": "#dae8fc",
}


def _box(
    ax, x: float, y: float, w: float, h: float, text: str, color: str = COLORS["box"], size: float = 9.5
) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(
        FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.01,rounding_size=0.08", fc=color, ec="0.35", lw=1)
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], color: str = "0.25") -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", color=color, lw=1.2))


def architecture_figure(config: JiTConfig) -> matplotlib.figure.Figure:
    """JiT as boxes: patchify → bottleneck embed → blocks (adaLN-Zero, RoPE, qk-norm; class tokens) → unpatchify."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    p, d, hidden = config.patch_size, config.bottleneck_dim, config.hidden_size
    tokens = config.grid_size**2
    patch_dim = p * p * config.in_channels
    fig = Figure(figsize=(7.4, 7.6))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10.6)
    ax.axis("off")
    # The main path, top to bottom.
    left, width = 0.2, 5.0
    rows = [
        (
            9.6,
            f"noisy image $z_t$: {config.in_channels}×{config.input_size}×{config.input_size}",
            COLORS["box"],
        ),
        (
            8.6,
            f"patchify: {tokens} patches of {p}×{p}×{config.in_channels} = {patch_dim} numbers",
            COLORS["tok"],
        ),
        (
            7.6,
            f"bottleneck embed: {patch_dim} → $d'$ = {d} → {hidden}\n+ 2-D sin-cos position"
            if d
            else f"linear embed: {patch_dim} → {hidden}\n+ 2-D sin-cos position",
            COLORS["tok"],
        ),
        (6.5, f"blocks 1–{config.in_context_start}: {tokens} tokens", COLORS["box"]),
        (
            4.9,
            f"blocks {config.in_context_start + 1}–{config.depth}: "
            f"{config.in_context_len} class tokens + {tokens} image tokens",
            COLORS["box"],
        ),
        (3.8, f"drop the {config.in_context_len} class tokens", COLORS["box"]),
        (2.8, f"final layer: RMSNorm, adaLN, linear {hidden} → {patch_dim}", COLORS["box"]),
        (1.8, "unpatchify", COLORS["tok"]),
        (0.8, r"prediction $\hat x$: the clean image", COLORS["box"]),
    ]
    height = 0.7
    for y, text, color in rows:
        _box(ax, left, y, width, height, text, color)
    for (y0, _, _), (y1, _, _) in zip(rows, rows[1:], strict=False):
        _arrow(ax, (left + width / 2, y0), (left + width / 2, y1 + height))
    # The class tokens join at block in_context_start.
    _box(
        ax,
        0.3,
        5.75,
        2.3,
        0.55,
        f"{config.in_context_len} × (class embedding\n+ own position)",
        COLORS["cond"],
        8.5,
    )
    _arrow(ax, (1.45, 5.75), (1.45, 4.9 + height))
    # One block, expanded on the right.
    bx, bw = 5.75, 4.05
    ax.add_patch(Rectangle((bx - 0.15, 3.7), bw + 0.3, 5.35, fill=False, ls="--", ec="0.5"))
    ax.text(bx + bw / 2, 8.85, f"one block (× {config.depth})", ha="center", fontsize=10, weight="bold")
    block = [
        (8.05, "RMSNorm → modulate (shift, scale)"),
        (7.3, "attention: qk-norm on q, k\n2-D RoPE on q, k"),
        (6.5, "× gate, + residual"),
        (5.75, "RMSNorm → modulate (shift, scale)"),
        (5.0, "SwiGLU MLP"),
        (4.25, "× gate, + residual"),
    ]
    for y, text in block:
        _box(ax, bx, y, bw, 0.55, text, size=8.5)
    for (y0, _), (y1, _) in zip(block, block[1:], strict=False):
        _arrow(ax, (bx + bw / 2, y0), (bx + bw / 2, y1 + 0.55))
    ax.plot([left + width, bx - 0.15], [6.5 + height / 2, 6.4], color="0.6", lw=1, ls=":")
    ax.plot([left + width, bx - 0.15], [4.9 + height / 2, 4.0], color="0.6", lw=1, ls=":")
    # Conditioning.
    _box(
        ax,
        bx,
        2.4,
        bw,
        0.95,
        "c = embed(t) + embed(class y)\n→ SiLU → linear: 6 numbers per channel\n"
        "(zero-initialised: adaLN-Zero)",
        COLORS["cond"],
        8.5,
    )
    _arrow(ax, (bx + bw / 2, 2.4 + 0.95), (bx + bw / 2, 3.7))
    ax.text(
        bx + bw / 2,
        1.9,
        "shift, scale and gate of every block\nand of the final layer",
        ha="center",
        va="top",
        fontsize=8.5,
        color="0.3",
    )
    return fig


def manifold_figure(seed: int = 0, t: float = 0.45) -> matplotlib.figure.Figure:
    """Clean data near a curve (a 1-D manifold in 2-D); of the three targets only x lies on it, ε and v = x − ε do not."""
    from matplotlib.figure import Figure

    g = torch.Generator().manual_seed(seed)
    angle = torch.linspace(0.4, 2.6, 400)
    curve = torch.stack([angle.cos() * 1.6, angle.sin() * 1.6 - 0.9], dim=1)  # an arc: the "manifold"
    data = curve[torch.randint(0, 400, (120,), generator=g)] + 0.02 * torch.randn(120, 2, generator=g)
    x = curve[130]
    eps = torch.tensor([1.25, -1.25])
    z = interpolate(x[None], eps[None], torch.tensor([t]))[0]
    v = x - eps
    fig = Figure(figsize=(7.2, 5.0))
    ax = fig.add_subplot()
    ax.plot(*curve.T, color="0.8", lw=7, solid_capstyle="round", zorder=0, label="the data manifold")
    ax.scatter(*data.T, s=8, color="0.35", zorder=1, label="clean images")
    ax.plot(*torch.stack([eps, x]).T, color="0.45", ls=":", lw=1.3, zorder=1, label="the path from ε to x")
    ax.scatter(*z, s=55, color="black", zorder=3)
    ax.annotate(
        rf"the input $z_t$ (t = {t:g})",
        xy=tuple(z.tolist()),
        xytext=(10, -4),
        textcoords="offset points",
        fontsize=10,
    )
    # The three targets, each as the point the network must output.
    ax.scatter(*x, s=90, color=COLORS["x"], zorder=4)
    ax.annotate(
        r"target $x$: on the manifold",
        xy=tuple(x.tolist()),
        xytext=(12, 6),
        textcoords="offset points",
        color=COLORS["x"],
        fontsize=11,
    )
    ax.scatter(*eps, s=90, marker="X", color=COLORS["eps"], zorder=4)
    ax.annotate(
        r"target $\varepsilon$: anywhere in the space",
        xy=tuple(eps.tolist()),
        xytext=(-60, -20),
        textcoords="offset points",
        color=COLORS["eps"],
        fontsize=11,
    )
    ax.annotate(
        "", xy=tuple(v.tolist()), xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color=COLORS["v"], lw=2)
    )
    ax.scatter(*v, s=90, marker="s", color=COLORS["v"], zorder=4)
    ax.annotate(
        r"target $v = x - \varepsilon$: off it too",
        xy=tuple(v.tolist()),
        xytext=(-40, 10),
        textcoords="offset points",
        color=COLORS["v"],
        fontsize=11,
    )
    ax.scatter([0], [0], s=20, color="0.3", zorder=3)
    ax.annotate("0", xy=(0, 0), xytext=(-12, -4), textcoords="offset points", fontsize=10, color="0.3")
    ax.set_aspect("equal")
    ax.set_xlim(-2.3, 2.3)
    ax.set_ylim(-1.8, 2.4)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="lower left", fontsize=9, frameon=False)
    ax.set_title("What each target asks the network to output, for one noisy input", fontsize=11)
    fig.tight_layout()
    return fig
