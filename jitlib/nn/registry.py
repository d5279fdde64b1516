"""Model presets: the paper's JiT-B/L/H/G at every patch size, tiny CPU models, and the paper's ablation rows.

"JiT-B/16" is the paper's JiT-B with 16×16 patches at its native resolution: 16 tokens per side, so
/4 @ 64 px, /8 @ 128, /16 @ 256, /32 @ 512, /64 @ 1024. The official repository registers only B/L/H × {16, 32};
G follows Tab. 9 and B/64 the paper's 1024-px run (Tab. 5). The paper publishes no settings of its own for /4 or
/8 (JiT#40): it trains B/4 at 64 px only as the *baseline* network of Tab. 2(b) (see ``PAPER_ROWS``), and every
other /4 and all /8 entries here are jitlib's extrapolation of Tab. 9 (same depth, width, bottleneck, in-context
start). Tiny presets ("JiT-tiny/4", ...) are for 32-px images on a CPU.

``PAPER_ROWS`` maps each network of the paper's architecture ablations (Tab. 2, Fig. 4, Tab. 4, footnote 5,
Tabs. 10–11) to a preset plus ``JiTConfig`` overrides — the same overrides a run config takes as ``model.arch``.

Attention numerics: by default the attention logits are computed by SDPA in the input dtype, which under bf16
autocast is bf16; ``attn_fp32_logits=True`` computes them in float32 like the official code. In float32 (no
autocast) both agree with a transcription of the official forward to ~5e-7 on outputs of order 1
(tests/test_weights.py); under bf16 autocast they differ — measured by ``scripts/attention_numerics.py``
(figures in data/results/attention_numerics.json).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from jitlib.nn.flops import count_params, forward_flops
from jitlib.nn.model import JiT, JiTConfig

# Paper Tab. 9; H and G use dropout 0.2 (on the attention projection and MLP hidden, middle half of blocks).
PAPER_SIZES: dict[str, dict] = {
    "B": dict(depth=12, hidden_size=768, num_heads=12, bottleneck_dim=128, in_context_start=4),
    "L": dict(depth=24, hidden_size=1024, num_heads=16, bottleneck_dim=128, in_context_start=8),
    "H": dict(
        depth=32, hidden_size=1280, num_heads=16, bottleneck_dim=256, in_context_start=10, proj_drop=0.2
    ),
    "G": dict(
        depth=40, hidden_size=1664, num_heads=16, bottleneck_dim=256, in_context_start=10, proj_drop=0.2
    ),
}
PAPER_PATCHES = (4, 8, 16, 32, 64)
TOKENS_PER_SIDE = 16

TINY_SIZE = dict(
    input_size=32,
    depth=4,
    hidden_size=128,
    num_heads=4,
    bottleneck_dim=32,
    num_classes=10,
    in_context_len=4,
    in_context_start=1,
)
TINY_PATCHES = (2, 4, 8, 16, 32)

MODEL_REGISTRY: dict[str, JiTConfig] = {
    **{
        f"JiT-{size}/{p}": JiTConfig(patch_size=p, input_size=TOKENS_PER_SIDE * p, **spec)
        for size, spec in PAPER_SIZES.items()
        for p in PAPER_PATCHES
    },
    **{f"JiT-tiny/{p}": JiTConfig(patch_size=p, **TINY_SIZE) for p in TINY_PATCHES},
}

# (parameters, "Gflops") as printed in the paper, Tabs. 5, 7, 8 — for comparison only.
PAPER_COSTS: dict[str, tuple[str, float]] = {
    "JiT-B/16": ("131M", 25),
    "JiT-L/16": ("459M", 88),
    "JiT-H/16": ("953M", 182),
    "JiT-G/16": ("2B", 383),
    "JiT-B/32": ("133M", 26),
    "JiT-L/32": ("462M", 89),
    "JiT-H/32": ("956M", 183),
    "JiT-G/32": ("2B", 384),
    "JiT-B/64": ("141M", 30),
}


# Switches of the paper's "baseline" network (Tab. 2, footnote 5): SwiGLU + RMSNorm, nothing else.
NO_EXTRAS = dict(rope=False, qk_norm=False, in_context_len=0)


@dataclass(frozen=True)
class PaperRow:
    """One network of the paper's ablations: preset ``model`` with ``overrides``, the paper's table row and FID."""

    label: str
    model: str
    overrides: dict[str, Any]
    source: str
    fid: str
    diffusion: str = ""  # the training or sampling options the row also needs (run config keys)

    def config(self) -> JiTConfig:
        """The row's network configuration."""
        return get_config(self.model, **self.overrides)

    def override_text(self) -> str:
        """The row as run-config overrides, e.g. ``model.name=JiT-B/16 model.arch.rope=false``."""
        items = [f"model.name={self.model}"] + [
            f"model.arch.{k}={'null' if v is None else str(v).lower() if isinstance(v, bool) else v}"
            for k, v in self.overrides.items()
        ]
        return " ".join(items + ([self.diffusion] if self.diffusion else []))


# FID-50K at 200 epochs with CFG (brackets: with CFG interval), as printed in the paper.
PAPER_ROWS: tuple[PaperRow, ...] = (
    PaperRow(
        "baseline (no bottleneck)",
        "JiT-B/16",
        dict(bottleneck_dim=None, **NO_EXTRAS),
        "Tab. 2(a) x-pred/v-loss; Fig. 4 'none'",
        "8.62",
        "diffusion.pred={x,eps,v} diffusion.loss={x,eps,v}",
    ),
    PaperRow(
        "baseline 64 px", "JiT-B/4", dict(bottleneck_dim=None, **NO_EXTRAS), "Tab. 2(b) x-pred/v-loss", "3.55"
    ),
    PaperRow(
        "baseline, GELU + LayerNorm",
        "JiT-B/16",
        dict(NO_EXTRAS, mlp="gelu", norm="layer"),
        "footnote 5",
        "7.89",
    ),
    PaperRow(
        "baseline (bottleneck 128)",
        "JiT-B/16",
        dict(NO_EXTRAS),
        "Tab. 4 row 1; Fig. 4 (d' 16-512: bottleneck_dim)",
        "7.48 (6.32)",
    ),
    PaperRow("+ RoPE, qk-norm", "JiT-B/16", dict(in_context_len=0), "Tab. 4 row 2", "6.69 (5.44)"),
    PaperRow("+ in-context tokens (final)", "JiT-B/16", {}, "Tab. 4 row 3", "5.49 (4.37)"),
    PaperRow("+ in-context tokens (final)", "JiT-L/16", {}, "Tab. 4 row 3, L", "3.39 (2.79)"),
    PaperRow(
        "pre-conditioned baseline",
        "JiT-B/16",
        dict(bottleneck_dim=None, **NO_EXTRAS),
        "Tab. 10",
        "35.49 / 46.25",
        "diffusion.precond={edm,linear}",
    ),
    PaperRow(
        "final + classification loss",
        "JiT-B/16",
        dict(aux_cls_block=4),  # after block 4 of 12 for B (8 of 24 for L): depth / 3
        "Tab. 11",
        "(4.14)",
        "diffusion.aux_cls_weight=100",
    ),
)


def get_config(name: str, **overrides) -> JiTConfig:
    """The preset `name` with fields replaced by `overrides` (e.g. num_classes=10, in_channels=1)."""
    if name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_REGISTRY)}")
    valid = {f.name for f in fields(JiTConfig)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(
            f"unknown JiTConfig field(s) {unknown} for {name}; valid fields: {', '.join(sorted(valid))}"
        )
    return replace(MODEL_REGISTRY[name], **overrides)


def create_model(
    name: str,
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
    **overrides,
) -> JiT:
    """``JiT(get_config(name, **overrides))`` initialised from ``generator``, built on ``device`` ("meta" for any size)."""
    config = get_config(name, **overrides)
    with torch.device(device if device is not None else torch.get_default_device()):
        return JiT(config, generator=generator)


def models_table(pattern: str = "") -> str:
    """A text table of the presets whose name contains `pattern`: architecture, parameters, cost at native size."""
    header = (
        f"{'name':<12} {'res':>5} {'depth':>5} {'width':>5} {'heads':>5} {'bottleneck':>10} "
        f"{'params':>9} {'GFLOPs':>7} {'paper':>6} {'paper GFLOPs':>12}"
    )
    lines = [header, "-" * len(header)]
    for name, cfg in MODEL_REGISTRY.items():
        if pattern not in name:
            continue
        with torch.device("meta"):
            params = count_params(JiT(cfg))
        paper_params, paper_gflops = PAPER_COSTS.get(name, ("", ""))
        lines.append(
            f"{name:<12} {cfg.input_size:>5} {cfg.depth:>5} {cfg.hidden_size:>5} {cfg.num_heads:>5} "
            f"{str(cfg.bottleneck_dim):>10} {params / 1e6:>8.1f}M {forward_flops(cfg).gmacs:>7.2f} "
            f"{paper_params:>6} {paper_gflops:>12}"
        )
    if len(lines) == 2:
        raise ValueError(f"no model name contains {pattern!r}; valid names: {', '.join(MODEL_REGISTRY)}")
    lines.append(
        "params: trainable (frozen sin-cos pos_embed excluded). GFLOPs: G multiply-accumulates of one"
    )
    lines.append(
        "forward pass of one image at the native resolution 'res' (the paper's convention; FLOPs = 2x)."
    )
    return "\n".join(lines)


def paper_rows_table() -> str:
    """A text table of ``PAPER_ROWS``: each ablation network's parameters, cost, paper row, FID and overrides."""
    header = f"{'network':<28} {'params':>12} {'GFLOPs':>7}  {'paper row':<48} {'FID':<14} overrides"
    lines = [header, "-" * 120]
    for row in PAPER_ROWS:
        config = row.config()
        with torch.device("meta"):
            params = count_params(JiT(config))
        lines.append(
            f"{row.label:<28} {params:>12,} {forward_flops(config).gmacs:>7.2f}  {row.source:<48} "
            f"{row.fid:<14} {row.override_text()}"
        )
    lines.append("FID: FID-50K at 200 epochs with CFG, (with CFG interval), as printed in the paper.")
    return "\n".join(lines)
