"""Before/after pairs: each speed path of jitlib against the plain path it replaces, timed in alternation (A B A B …)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from jitlib.cli.bench.measure import attention_backend, evaluation_mode
from jitlib.cli.bench.timing import free_memory, time_best
from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.sampling import sample
from jitlib.training.trainer import Trainer

# ---------------------------------------------------------------------------------------------------------------
# Before/after pairs: the plain path each speed path replaces
# ---------------------------------------------------------------------------------------------------------------


def explicit_fp32_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q·kᵀ/√d)·v with the N×N logits materialised in float32 — the official code's attention function."""
    with torch.autocast(q.device.type, enabled=False):
        logits = q.float() @ k.float().transpose(-2, -1) / math.sqrt(q.shape[-1])
        return (logits.softmax(dim=-1) @ v.float()).to(v.dtype)


def sdpa_fp32(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """SDPA on float32 copies of q, k, v: what jitlib runs with ``attn_fp32_logits=True``."""
    with torch.autocast(q.device.type, enabled=False):
        return F.scaled_dot_product_attention(q.float(), k.float(), v.float()).to(v.dtype)


def conv_patch_embed(embed: nn.Module, x: Tensor) -> Tensor:
    """The patch embedding computed with its convolutions (the official code's path), as tokens (B, n², D)."""
    if hasattr(embed, "proj1"):
        tokens = F.conv2d(
            F.conv2d(x, embed.proj1.weight, stride=embed.proj1.stride), embed.proj2.weight, embed.proj2.bias
        )
    else:
        tokens = F.conv2d(x, embed.proj.weight, embed.proj.bias, stride=embed.proj.stride)
    return rearrange(tokens, "b d h w -> b (h w) d")


def per_tensor_ema(shadows: dict[str, list[Tensor]], params: list[Tensor]) -> None:
    """θ_ema ← θ_ema + (1 − d)(θ − θ_ema), one ``lerp_`` per tensor per decay (the loop the for-each update replaces)."""
    for key, shadow in shadows.items():
        for s, p in zip(shadow, params, strict=True):
            s.lerp_(p, 1.0 - float(key))


def two_pass_cfg(
    denoiser: Denoiser, z: Tensor, t: Tensor, y: Tensor, null: Tensor, cfg_scale: float
) -> Tensor:
    """Guided velocity v_u + ω(v_c − v_u) from two separate forwards (the official sampler's structure)."""
    cond, uncond = denoiser(z, t, y), denoiser(z, t, null)
    return uncond.v + cfg_scale * (cond.v - uncond.v)


def one_guided_step(denoiser: Denoiser, z: Tensor, y: Tensor, null_label: int, cfg_scale: float) -> Tensor:
    """:func:`jitlib.diffusion.sampling.sample` on the grid [0.5, 1]: one guided evaluation, conditional ⊕ unconditional in one
    forward of 2B, then an Euler step z + ½·v — the library's own CFG path."""
    return sample(denoiser, z, time_grid=[0.5, 1.0], labels=y, null_label=null_label, cfg_scale=cfg_scale)


def _pair(name: str, before: str, after: str, seconds: dict[str, float]) -> dict[str, Any]:
    """One before/after row from median seconds {"before": …, "after": …}."""
    return {
        "path": name,
        "before": before,
        "after": after,
        "before_ms": 1e3 * seconds["before"],
        "after_ms": 1e3 * seconds["after"],
        "speedup": seconds["before"] / seconds["after"],
    }


def compare_adamw(trainer: Trainer, repeats: int) -> dict[str, Any]:
    """One AdamW step over the trainer's parameter groups: for-each vs fused implementation (same random grads)."""
    gen = torch.Generator(device=trainer.device).manual_seed(0)
    groups = [
        {k: v for k, v in g.items() if k not in ("fused", "foreach")} for g in trainer.optimizer.param_groups
    ]
    params = [p for g in groups for p in g["params"]]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, device=p.device)
    steps = {
        "before": torch.optim.AdamW(groups, foreach=True).step,
        "after": torch.optim.AdamW(groups, fused=True).step,
    }
    seconds = time_best(steps, trainer.device, repeats)
    for p in params:
        p.grad = None
    return _pair("AdamW step", "for-each", "fused", seconds)


def compare_ema(trainer: Trainer, repeats: int) -> dict[str, Any]:
    """The trainer's EMA update (all decays): one ``lerp_`` per tensor vs for-each ``lerp_`` (:class:`jitlib.training.ema.EMA`)."""
    ema, net = trainer.ema, trainer.net
    params = [p.detach() for p in net.parameters() if p.requires_grad]
    seconds = time_best(
        {"before": lambda: per_tensor_ema(ema.shadows, params), "after": lambda: ema.update(net)},
        trainer.device,
        repeats,
    )
    return _pair(f"EMA update ({len(ema.shadows)} decays)", "per-tensor lerp_", "for-each lerp_", seconds)


def compare_attention(trainer: Trainer, batch: int, repeats: int) -> dict[str, Any]:
    """Attention core forward + backward at the in-context blocks' shape: official fp32 logits vs SDPA (both modes)."""
    cfg, device, precision = trainer.net.config, trainer.device, trainer.precision
    gen = torch.Generator(device=device).manual_seed(0)
    shape = (batch, cfg.num_heads, cfg.grid_size**2 + cfg.in_context_len, cfg.head_dim)
    dtype = precision.dtype or torch.float32
    q, k, v, grad = (torch.randn(shape, generator=gen, device=device, dtype=dtype) for _ in range(4))
    q, k, v = q.requires_grad_(), k.requires_grad_(), v.requires_grad_()

    def fwd_bwd(fn: Callable[[Tensor, Tensor, Tensor], Tensor]) -> Callable[[], None]:
        return lambda: fn(q, k, v).backward(grad)

    variants = {
        "before": fwd_bwd(explicit_fp32_attention),
        "after": fwd_bwd(F.scaled_dot_product_attention),
        "fp32_sdpa": fwd_bwd(sdpa_fp32),
    }
    seconds = time_best(variants, device, repeats)
    row = _pair(
        "attention fwd+bwd",
        "explicit fp32 logits (official)",
        f"SDPA in {precision.name}: {attention_backend(variants['after'])} (jitlib default)",
        seconds,
    )
    row["fp32_sdpa_ms"] = 1e3 * seconds["fp32_sdpa"]
    row["fp32_sdpa_backend"] = attention_backend(variants["fp32_sdpa"])
    return row


def compare_patch_embed(trainer: Trainer, batch: int, repeats: int) -> dict[str, Any]:
    """Patch embedding forward + backward: the official convolutions vs the model's own (matmul) path."""
    net, device, precision = trainer.net, trainer.device, trainer.precision
    cfg = net.config
    gen = torch.Generator(device=device).manual_seed(0)
    images = torch.randn(batch, cfg.in_channels, cfg.input_size, cfg.input_size, generator=gen, device=device)
    grad = torch.randn(batch, cfg.grid_size**2, cfg.hidden_size, generator=gen, device=device)

    def fwd_bwd(fn: Callable[[Tensor], Tensor]) -> Callable[[], None]:
        def run() -> None:
            with precision.autocast():
                out = fn(images)
            out.backward(grad.to(out.dtype))

        return run

    embed = net.x_embedder
    seconds = time_best(
        {"before": fwd_bwd(lambda x: conv_patch_embed(embed, x)), "after": fwd_bwd(embed)}, device, repeats
    )
    net.zero_grad(set_to_none=True)
    return _pair("patch embedding fwd+bwd", "convolutions (official)", "matmuls (jitlib)", seconds)


def compare_cfg(trainer: Trainer, batch: int, repeats: int, cfg_scale: float) -> dict[str, Any]:
    """One guided evaluation of ``batch`` images: two forwards of B vs the sampler's one forward of 2B."""
    net, device, precision = trainer.net, trainer.device, trainer.precision
    cfg = net.config
    gen = torch.Generator(device=device).manual_seed(0)
    denoiser = Denoiser(net)
    z = torch.randn(batch, cfg.in_channels, cfg.input_size, cfg.input_size, generator=gen, device=device)
    t = torch.full((batch,), 0.5, device=device)
    y = torch.randint(0, cfg.num_classes, (batch,), generator=gen, device=device)
    null = torch.full_like(y, cfg.num_classes)

    def guided(fn: Callable[[], Tensor]) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad(), precision.autocast():
                fn()

        return run

    variants = {
        "before": guided(lambda: z + 0.5 * two_pass_cfg(denoiser, z, t, y, null, cfg_scale)),
        "after": guided(lambda: one_guided_step(denoiser, z, y, cfg.num_classes, cfg_scale)),
    }
    with evaluation_mode(net):
        seconds = time_best(variants, device, repeats)
    return _pair(
        f"CFG evaluation (batch {batch})", "two forwards of B", "one forward of 2B (sampler)", seconds
    )


def compare_paths(
    trainer: Trainer, batch: int, sample_batch: int, repeats: int, cfg_scale: float = 3.0
) -> list[dict[str, Any]]:
    """Before/after rows of every speed path at this model's shapes (CFG only for a class-conditional model)."""
    rows = [
        compare_adamw(trainer, repeats),
        compare_ema(trainer, repeats),
        compare_attention(trainer, batch, repeats),
        compare_patch_embed(trainer, batch, repeats),
    ]
    if trainer.net.config.num_classes > 0:
        rows.append(compare_cfg(trainer, sample_batch, repeats, cfg_scale))
    free_memory()
    return rows
