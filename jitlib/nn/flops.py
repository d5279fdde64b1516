"""What a JiT network costs: trainable parameters and multiply-accumulates (MACs) of one forward pass.

Convention: like DiT's and fvcore's "FLOPs", which the paper's "Gflops" column follows, we count the
multiply-accumulates of the matrix products only — every Linear and patch-embedding conv, and the two
attention products q·kᵀ and softmax·v — and ignore element-wise work (norms, softmax, SiLU, RoPE,
modulation, residual adds). FLOPs = 2 · MACs. JiT-B/16 at 256×256 costs ≈ 25.2 G MACs per image, the
paper's "25 Gflops"; every /16 and /32 model is within 1 % of the paper's numbers. JiT-B/64 gives 27.9
against the paper's 30: the paper's cost grows about twice as fast with the patch size as the MACs of the
pixel-facing layers do, so its count of those layers must differ (the paper does not say how).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from jitlib.nn.model import JiT, JiTConfig

CONVENTION = (
    "MACs of matrix products (linear, conv, attention) per image; FLOPs = 2·MACs; paper 'Gflops' = G MACs"
)


@dataclass(frozen=True)
class ForwardCost:
    """Cost of one forward pass for a single image: `macs` multiply-accumulates, `flops` = 2·macs."""

    macs: int

    @property
    def flops(self) -> int:
        """Floating-point operations, 2 · MACs (one multiply and one add each)."""
        return 2 * self.macs

    @property
    def gmacs(self) -> float:
        """MACs in units of 10⁹ — the number the paper reports as "Gflops"."""
        return self.macs / 1e9


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Σ numel(p) over the parameters (only those with requires_grad by default, i.e. without the frozen pos_embed)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def forward_flops(model: JiT | JiTConfig) -> ForwardCost:
    """MACs of x̂ = JiT(x, t, y) for one image at the configured resolution, counted layer by layer.

    Tokens: n² image tokens, plus L class tokens from block `in_context_start` on. Per block with N tokens:
    qkv + proj 4·N·D², attention 2·N²·D, SwiGLU 3·N·D·h (GELU 2·N·D·h), adaLN 6·D² (once per image, not per token).
    """
    cfg = model.config if isinstance(model, JiT) else model
    if not isinstance(cfg, JiTConfig):
        raise TypeError(f"forward_flops expects a JiT or a JiTConfig, got {type(model).__name__}")
    d, tokens = cfg.hidden_size, cfg.grid_size**2
    patch_dim = cfg.patch_size**2 * cfg.in_channels
    if cfg.bottleneck_dim is None:
        embed = tokens * patch_dim * d
    else:
        embed = tokens * (patch_dim * cfg.bottleneck_dim + cfg.bottleneck_dim * d)
    condition = 256 * d + d * d  # timestep MLP; the label embedding is a lookup
    blocks = 0
    for i in range(cfg.depth):
        n = tokens + (cfg.in_context_len if cfg.in_context_len > 0 and i >= cfg.in_context_start else 0)
        mlp = (3 if cfg.mlp == "swiglu" else 2) * n * d * cfg.mlp_hidden
        blocks += 4 * n * d * d + 2 * n * n * d + mlp + 6 * d * d
    final = 2 * d * d + tokens * d * patch_dim
    return ForwardCost(macs=embed + condition + blocks + final)
