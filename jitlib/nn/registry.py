"""Model presets: the paper's JiT-B/L/H/G at every patch size, and tiny CPU models, as plain data.

"JiT-B/16" is the paper's JiT-B with 16×16 patches at its native resolution: 16 tokens per side, so
/4 @ 64 px, /8 @ 128, /16 @ 256, /32 @ 512, /64 @ 1024 (paper Tab. 9 and App. A). The official repository
registers only B/L/H × {16, 32}; the other entries follow Tab. 9 (G) and the paper's B/64 run. Tiny
presets ("JiT-tiny/4", ...) are for 32-px images on a CPU.
"""

from __future__ import annotations

import argparse
from dataclasses import fields, replace

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


def run_models(args: argparse.Namespace) -> int:
    """`jitlib models`: print the preset table."""
    print(models_table(args.filter))
    return 0


def add_models_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `jitlib models [--filter TEXT]` on an argparse sub-parsers object."""
    parser = subparsers.add_parser(
        "models", help="list the model presets with parameters and GFLOPs", description=models_table.__doc__
    )
    parser.add_argument(
        "--filter", default="", metavar="TEXT", help="only names containing TEXT, e.g. 'B/' or 'tiny'"
    )
    parser.set_defaults(func=run_models)
    return parser
