"""Auto-checks for chapter 6 (Just image Transformers): RMSNorm, and the parameter count of one JiT block.

Each check calls the reader's function on fixed inputs, compares it with jitlib's own module (``model.RMSNorm``,
``model.JiTBlock`` counted with ``flops.count_params``), prints one line when it agrees and raises an AssertionError
naming the likely mistake when it does not.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from jitlib.nn.flops import count_params
from jitlib.nn.model import JiTBlock, JiTConfig, RMSNorm

# (hidden size D, heads, MLP ratio): JiT-B, -L, -H, -G, the tiny CPU preset, and one with a fractional ratio.
BLOCK_SHAPES = (
    (768, 12, 4.0),
    (1024, 16, 4.0),
    (1280, 16, 4.0),
    (1664, 16, 4.0),
    (128, 4, 4.0),
    (96, 4, 2.5),
)


def _rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """jitlib's RMSNorm with gain `weight` applied to x."""
    norm = RMSNorm(x.shape[-1], eps)
    with torch.no_grad():
        norm.weight.copy_(weight)
        return norm(x)


def check_rms_norm(fn: Callable[[Tensor, Tensor, float], Tensor]) -> None:
    """Check fn(x, w, eps) = w ⊙ x / sqrt(mean(x²) + eps) over the last dim, in float32, against ``model.RMSNorm``."""
    g = torch.Generator().manual_seed(0)
    eps = 1e-6
    cases = [  # the tokens have an offset, so that LayerNorm would give something else
        ("tokens (B, N, D)", 2.0 + 3.0 * torch.randn(2, 5, 16, generator=g)),
        ("heads (B, H, N, d)", torch.randn(3, 2, 7, 8, generator=g)),
        ("tiny values (where eps matters)", 1e-3 * torch.randn(2, 4, 16, generator=g)),
    ]
    for what, x in cases:
        weight = 1.0 + 0.5 * torch.randn(x.shape[-1], generator=g)
        want = _rms_norm(x, weight, eps)
        got = fn(x.clone(), weight.clone(), eps)
        if not isinstance(got, Tensor) or got.shape != want.shape:
            shape = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
            raise AssertionError(
                f"for {what} your function returned {shape}; expected shape {tuple(want.shape)}"
            )
        got = got.float()
        if torch.allclose(got, want, rtol=1e-4, atol=1e-5):
            continue
        rms = x.pow(2).mean(-1, keepdim=True).sqrt()
        if torch.allclose(got, _rms_norm(x - x.mean(-1, keepdim=True), weight, eps), rtol=1e-3, atol=1e-4):
            raise AssertionError(
                "you subtracted the mean (that is LayerNorm); RMSNorm only divides by the RMS"
            )
        if torch.allclose(got * weight, want, rtol=1e-3, atol=1e-4):
            raise AssertionError("you left out the learnable gain w; multiply the normalised x by it")
        if torch.allclose(got * weight**2, want, rtol=1e-3, atol=1e-4):
            raise AssertionError("you divided by the gain; multiply the normalised x by the learnable gain w")
        if torch.allclose(got * x.shape[-1] ** 0.5, want, rtol=1e-3, atol=1e-4):
            raise AssertionError("you divided by the norm ‖x‖; divide by the root *mean* square ‖x‖/√D")
        if torch.allclose(got, weight * x / rms, rtol=1e-3, atol=1e-4):
            raise AssertionError("without eps the result blows up for tiny x; use 1/sqrt(mean(x²) + eps)")
        if torch.allclose(got, weight * x / (rms + eps), rtol=1e-3, atol=1e-4):
            raise AssertionError(
                "eps belongs inside the square root: 1/sqrt(mean(x²) + eps), not 1/(rms + eps)"
            )
        err = (got - want).abs().max().item()
        raise AssertionError(f"for {what} your output differs from jitlib's RMSNorm by up to {err:.3g}")
    x = torch.randn(2, 3, 16, generator=g).bfloat16()
    got = fn(x, torch.ones(16), eps)
    if not isinstance(got, Tensor) or got.dtype != torch.bfloat16:
        raise AssertionError(
            "for a bfloat16 input return bfloat16: compute in float32, then cast back (.to(x.dtype))"
        )
    print("✓ check_rms_norm: your RMSNorm equals jitlib.nn.model.RMSNorm")


def _block(hidden_size: int, num_heads: int, mlp_hidden: int) -> JiTBlock:
    """A JiTBlock built on the meta device: shapes only, no memory, no initialisation."""
    with torch.device("meta"):
        return JiTBlock(hidden_size, num_heads, mlp_hidden)


def _diagnose(block: JiTBlock, missing: int) -> str | None:
    """Name the part of `block` whose parameters number exactly `missing`, if there is one."""
    biases = sum(m.bias.numel() for m in block.modules() if isinstance(m, nn.Linear))
    parts = {
        "the per-head RMSNorm gains of qk-norm (q_norm, k_norm)": block.attn.q_norm.weight.numel() * 2,
        "the gains of the two pre-norm RMSNorms (norm1, norm2)": block.norm1.weight.numel() * 2,
        "the adaLN-Zero linear SiLU(c) → (shift, scale, gate) × 2, which is D·6D + 6D": count_params(
            block.adaLN_modulation
        ),
        "the biases of the Linear layers (every Linear in a JiT block has one)": biases,
        "the attention output projection": count_params(block.attn.proj),
        "the SwiGLU output layer w3": count_params(block.mlp.w3),
    }
    for part, count in parts.items():
        if missing == count:
            return f"you left out {part}"
        if missing == -count:
            return f"you counted {part} twice"
    return None


def check_block_params(fn: Callable[[int, int, float], int]) -> None:
    """Check fn(D, heads, mlp_ratio) = trainable parameters of one JiTBlock (with its SwiGLU width rule) for six shapes."""
    for hidden_size, num_heads, mlp_ratio in BLOCK_SHAPES:
        config = JiTConfig(hidden_size=hidden_size, num_heads=num_heads, mlp_ratio=mlp_ratio)
        block = _block(hidden_size, num_heads, config.mlp_hidden)
        want = count_params(block)
        got = fn(hidden_size, num_heads, mlp_ratio)
        if not isinstance(got, int):
            raise AssertionError(f"your function returned {type(got).__name__}; expected an int")
        if got == want:
            continue
        shape = f"D = {hidden_size}, {num_heads} heads, MLP ratio {mlp_ratio}"
        hint = _diagnose(block, want - got)
        for wrong_hidden, mistake in (
            (round(hidden_size * mlp_ratio * 2 / 3), "you rounded the SwiGLU width; the rule truncates"),
            (
                int(hidden_size * mlp_ratio),
                "a SwiGLU MLP is narrower than a GELU MLP: hidden = int(int(D·ratio)·2/3)",
            ),
        ):
            if wrong_hidden != config.mlp_hidden and got == count_params(
                _block(hidden_size, num_heads, wrong_hidden)
            ):
                hint = mistake
        raise AssertionError(
            f"for {shape} you counted {got:,} parameters, jitlib's JiTBlock has {want:,}"
            + (f": {hint}" if hint else "")
        )
    print("✓ check_block_params: your count matches jitlib's JiTBlock for all six shapes")
