"""What a JiT network costs: trainable parameters and multiply-accumulates (MACs) of one forward pass.

Convention: like DiT's and fvcore's "FLOPs", which the paper's "Gflops" column follows, we count the
multiply-accumulates of the matrix products only — every Linear and patch-embedding conv, and the two
attention products q·kᵀ and softmax·v — and ignore element-wise work (norms, softmax, SiLU, RoPE,
modulation, residual adds). FLOPs = 2 · MACs. For JiT-B/16 at 256×256 this gives ≈ 25.1 G MACs per image,
the paper's "25 Gflops".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from jitlib.model import JiT, JiTConfig

CONVENTION = "MACs of matrix products (linear, conv, attention) per image; FLOPs = 2·MACs; paper 'Gflops' = G MACs"


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
    """MACs of x̂ = JiT(x, t, y) for one image at the configured resolution, counted on the meta device.

    The count runs a meta-device twin, so it costs no memory or compute and works for any size; torch's
    FlopCounterMode supplies the per-operator formulas (it reports FLOPs = 2·MACs).
    """
    config = model.config if isinstance(model, JiT) else model
    if not isinstance(config, JiTConfig):
        raise TypeError(f"forward_flops expects a JiT or a JiTConfig, got {type(model).__name__}")
    with torch.device("meta"):
        twin = JiT(config).eval()
        x = torch.empty(1, config.in_channels, config.input_size, config.input_size)
        t = torch.empty(1)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        twin(x, t)
    return ForwardCost(macs=counter.get_total_flops() // 2)
