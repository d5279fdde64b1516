"""The two diagrams drawn by code (jitlib.book.viz.diagrams) say what the model and the argument say."""

from __future__ import annotations

import numpy as np

from jitlib.book.viz.diagrams import architecture_figure, manifold_figure
from jitlib.nn.registry import get_config


def _texts(fig) -> str:
    return "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_architecture_diagram_reads_its_numbers_from_the_config() -> None:
    for name in ("JiT-B/16", "JiT-H/32"):
        cfg = get_config(name)
        text = _texts(architecture_figure(cfg))
        patch_dim = cfg.patch_size**2 * cfg.in_channels
        assert f"{patch_dim} → $d'$ = {cfg.bottleneck_dim} → {cfg.hidden_size}" in text
        assert f"one block (× {cfg.depth})" in text
        assert f"blocks {cfg.in_context_start + 1}–{cfg.depth}: {cfg.in_context_len} class tokens" in text
        for part in ("patchify", "qk-norm", "RoPE", "adaLN-Zero", "unpatchify"):
            assert part in text, part


def test_manifold_picture_puts_only_x_on_the_manifold() -> None:
    fig = manifold_figure()
    ax = fig.axes[0]
    arc = np.asarray(ax.lines[0].get_xydata())  # the manifold, drawn first
    points = {c.get_label(): c.get_offsets() for c in ax.collections}
    targets = [np.asarray(c.get_offsets())[0] for c in ax.collections[-4:-1]]  # x, ε, v in drawing order
    distance = [np.min(np.linalg.norm(arc - p, axis=1)) for p in targets]
    assert distance[0] < 1e-6 and min(distance[1:]) > 0.5, distance
    assert "clean images" in points
