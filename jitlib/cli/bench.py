"""How fast jitlib trains and samples a JiT on this machine, and where the speed comes from.

``jitlib bench`` measures, for a model / resolution / batch / precision:

- the trainer's own training step (``Trainer.train_step`` of :mod:`jitlib.training.trainer`: noise draws, forward, backward,
  AdamW, EMA) in images/s with its peak memory, eager and with ``torch.compile``;
- which scaled-dot-product-attention kernel the network runs on;
- sampling images/s for 50-step Heun with CFG through :func:`jitlib.diffusion.sampling.sample`;
- model FLOPs utilisation MFU = achieved model FLOP/s ÷ the GPU's peak dense bf16 FLOP/s (from
  :data:`jitlib.training.budget.DEVICES`; n/a on a CPU). Model FLOPs are 2 × the multiply-accumulates of
  :func:`jitlib.nn.flops.forward_flops`: three forwards' worth per trained image (the backward pass costs about two
  forwards) and one per image per network evaluation when sampling;
- before/after pairs for each speed path — fused vs for-each AdamW, for-each vs per-tensor EMA, SDPA vs the official
  explicit fp32-logit attention, patch embedding as matmuls vs convolutions, one batched CFG call vs two — each pair
  timed in alternation (A B A B …) in one process, so that load from other programs hits both sides alike;
- how fast the trainer's data loader decodes JPEGs, i.e. how many loader workers keep the training step fed.

Results are written as JSON and as a Markdown table (:func:`write_results`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image
from torch import Tensor, nn

from jitlib.device import default_device, tier
from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.sampling import sample
from jitlib.nn.flops import count_params, forward_flops
from jitlib.nn.model import JiT
from jitlib.nn.registry import MODEL_REGISTRY, get_config
from jitlib.training.budget import DEVICES
from jitlib.training.config import Config, from_dict
from jitlib.training.data import ImageFolder, ResumableSampler, TensorImages, make_loader
from jitlib.training.precision import Precision
from jitlib.training.trainer import Trainer

# torch.cuda.get_device_name patterns → the peak table of jitlib.training.budget (dense bf16, fp16 where bf16 is missing),
# tried in order. Variants whose peak differs from the SXM part's are listed with None: they need --peak-tflops.
DEVICE_PATTERNS: tuple[tuple[str, str | None], ...] = (
    (r"H1[02]0 (PCIe|NVL)", None),
    (r"H200", "H200"),
    (r"H100", "H100"),
    (r"A100", "A100"),
    (r"\bL4\b", "L4"),
    (r"\bT4\b", "T4"),
)
PARTS = ("train", "sample", "compare", "loader")
MAX_BATCH_LIMIT = 4096


# ---------------------------------------------------------------------------------------------------------------
# Device facts and timing
# ---------------------------------------------------------------------------------------------------------------


def device_name(device: torch.device) -> str:
    """The GPU's marketing name, or the CPU's architecture string."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def peak_flops(name: str, device_type: str = "cuda") -> tuple[float | None, str]:
    """(peak dense FLOP/s, where it comes from) for a GPU name, from :data:`jitlib.training.budget.DEVICES`; (None, why) otherwise."""
    if device_type != "cuda":
        return None, "no tensor-core peak for a CPU: MFU n/a"
    for pattern, key in DEVICE_PATTERNS:
        if re.search(pattern, name):
            if key is None:
                break
            device = DEVICES[key]
            return (
                device.peak_flops,
                f"{device.name}, dense {device.precision} (jitlib.training.budget.DEVICES)",
            )
    return None, f"{name!r} is not in jitlib.training.budget.DEVICES: pass --peak-tflops for an MFU"


def mfu(flops_per_second: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation = achieved model FLOP/s ÷ peak FLOP/s (None when the peak is unknown)."""
    return None if peak is None else flops_per_second / peak


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a wall-clock time covers it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device) -> tuple[Callable[[], float], str]:
    """The timer for ``device``: wall time on a GPU (after a synchronize), this process's CPU time on a CPU running
    one torch thread — what the same work takes on an idle core, whatever else shares the machine."""
    if device.type == "cpu" and torch.get_num_threads() == 1:
        return time.process_time, "process CPU time (1 thread)"
    return time.perf_counter, "wall time"


def time_calls(
    fns: dict[str, Callable[[], object]], device: torch.device, repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds (by :func:`clock`) of each call of each function, called A, B, A, B, … after ``warmup`` untimed rounds."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats={repeats} must be >= 1 and warmup={warmup} >= 0")
    now, _ = clock(device)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = now()
            fn()
            synchronize(device)
            times[name].append(now() - start)
    return times


def time_best(
    fns: dict[str, Callable[[], object]], device: torch.device, repeats: int, warmup: int = 1
) -> dict[str, float]:
    """The fastest call of each function, timed in alternation: other programs on a shared machine only ever add
    time, so the minimum is the best estimate of a function's own cost (and A, B, A, B spreads any drift evenly)."""
    return {name: min(values) for name, values in time_calls(fns, device, repeats, warmup).items()}


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float | None]]:
    """Yields a dict whose "gib" is, on exit, the peak GPU memory allocated inside the block (None on a CPU)."""
    result: dict[str, float | None] = {"gib": None}
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    yield result
    if device.type == "cuda":
        synchronize(device)
        result["gib"] = torch.cuda.max_memory_allocated(device) / 2**30


def count_syncs(fn: Callable[[], object], device: torch.device) -> int | None:
    """How many times ``fn`` makes the host wait for the GPU (torch's sync debug mode); None on a CPU."""
    if device.type != "cuda":
        return None
    synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def free_memory() -> None:
    """Return freed tensors to the system between measurements (GPU caching allocator included)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------------------------
# What is measured: the trainer's step, sampling, the attention kernel
# ---------------------------------------------------------------------------------------------------------------

SDPA_KERNELS = {
    "_scaled_dot_product_flash_attention_for_cpu": "flash (CPU)",
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_efficient_attention": "memory-efficient",
    "_scaled_dot_product_cudnn_attention": "cuDNN",
    "_scaled_dot_product_fused_attention_overrideable": "fused (device-specific)",
    "_scaled_dot_product_attention_math": "math",
}


def attention_backend(fn: Callable[[], object]) -> str:
    """Which SDPA kernel(s) ``fn`` runs, read from the profiler's operator names (e.g. "flash", "memory-efficient")."""
    from torch.profiler import profile

    with profile() as prof:
        fn()
    names = {event.key.removeprefix("aten::") for event in prof.key_averages()}
    found = [label for op, label in SDPA_KERNELS.items() if op in names]
    return ", ".join(found) if found else "no SDPA kernel (explicit matmul-softmax)"


def synthetic_dataset(num_images: int, channels: int, size: int, num_classes: int) -> TensorImages:
    """A data set of ``num_images`` mid-grey images (one uint8 image expanded: no memory per image) and labels 0."""
    images = torch.full((1, channels, size, size), 128, dtype=torch.uint8).expand(num_images, -1, -1, -1)
    classes = tuple(str(i) for i in range(max(num_classes, 1)))
    return TensorImages(images, torch.zeros(num_images, dtype=torch.long), classes)


def bench_config(
    model: str,
    resolution: int,
    batch: int,
    precision: str,
    compile: bool,
    device: str,
    output_dir: str | Path,
    arch: dict[str, Any] | None = None,
    num_classes: int | None = None,
) -> Config:
    """The paper's recipe (config defaults) for ``model`` at ``resolution`` and global ``batch``, in one process.

    ``num_classes=None`` takes the registry's (1000 for the paper's models, 10 for the tiny ones; 0 = unconditional).
    """
    if num_classes is None:
        num_classes = get_config(model).num_classes
    return from_dict(
        {
            "model": {"name": model, "arch": dict(arch or {}), "num_classes": num_classes},
            "data": {"image_size": resolution, "num_workers": 0, "pin_memory": False},
            "train": {
                "batch_size": batch,
                "precision": precision,
                "compile": compile,
                "device": device,
                "output_dir": str(output_dir),
                "progress": False,
            },
        }
    )


def build_trainer(config: Config, batch: int) -> Trainer:
    """A :class:`~jitlib.training.trainer.Trainer` for ``config`` on a synthetic data set of one batch (nothing is read from disk)."""
    dataset = synthetic_dataset(batch, 3, config.data.image_size, config.model.num_classes or 1)
    return Trainer(config, dataset=dataset)


def training_batch(trainer: Trainer, batch: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A batch of ``batch`` random images in [−1, 1] and class ids, already on the trainer's device."""
    cfg = trainer.net.config
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, cfg.in_channels, cfg.input_size, cfg.input_size, generator=gen) * 2 - 1
    y = torch.randint(0, max(cfg.num_classes, 1), (batch,), generator=gen)
    return x.to(trainer.device), y.to(trainer.device)


def train_flops_per_image(net: JiT) -> int:
    """Model FLOPs of one trained image: 3 × 2 × forward MACs (forward + a backward of about two forwards)."""
    return 3 * forward_flops(net).flops


def bench_training(
    trainer: Trainer, batch: int, steps: int, warmup: int, peak: float | None, profile: bool = False
) -> dict[str, Any]:
    """Images/s, step time, peak memory, MFU and host-device syncs of ``trainer.train_step`` on a fixed batch.

    Images/s, step time and MFU are from the median step; ``images_per_s_best`` from the fastest. ``profile`` adds the step's most expensive operators (one extra profiled step).
    """
    x, y = training_batch(trainer, batch)
    for _ in range(warmup):  # includes torch.compile's compilation when it is on
        trainer.train_step(x, y)
    synchronize(trainer.device)
    with peak_memory(trainer.device) as memory:
        times = time_calls({"step": lambda: trainer.train_step(x, y)}, trainer.device, steps, 0)["step"]
    syncs = count_syncs(lambda: trainer.train_step(x, y), trainer.device)
    seconds = statistics.median(times)
    images_per_second = batch / seconds
    achieved = images_per_second * train_flops_per_image(trainer.net)
    hot = top_ops(lambda: trainer.train_step(x, y), trainer.device) if profile else None
    return {
        "compile": trainer.config.train.compile,
        "batch": batch,
        "step_ms": 1e3 * seconds,
        "images_per_s": images_per_second,
        "images_per_s_best": batch / min(times),
        "tflops_per_s": achieved / 1e12,
        "mfu": mfu(achieved, peak),
        "peak_memory_gib": memory["gib"],
        "syncs_per_step": syncs,
        "optimizer": "fused" if trainer.optimizer.defaults.get("fused") else "for-each",
        "top_ops": hot,
    }


def top_ops(fn: Callable[[], object], device: torch.device, rows: int = 12) -> list[dict[str, Any]]:
    """The operators ``fn`` spends most time in (self time on the GPU, or on the CPU without one), as share of total."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        synchronize(device)
    attribute = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, attribute) > 0]
    total = sum(getattr(e, attribute) for e in events)
    events.sort(key=lambda e: getattr(e, attribute), reverse=True)
    return [
        {
            "op": e.key,
            "ms": getattr(e, attribute) / 1e3,
            "share": getattr(e, attribute) / total,
            "calls": e.count,
        }
        for e in events[:rows]
    ]


def fits(trainer: Trainer, batch: int) -> bool:
    """Whether two training steps at ``batch`` run without a CUDA out-of-memory error (the second has Adam state)."""
    x, y = training_batch(trainer, batch)
    try:
        for _ in range(2):
            trainer.train_step(x, y)
        synchronize(trainer.device)
        ok = True
    except torch.OutOfMemoryError:
        ok = False  # the exception (and the activations its traceback holds) is released on leaving this clause
    del x, y
    trainer.optimizer.zero_grad(set_to_none=True)
    free_memory()
    return ok


def largest_batch(trainer: Trainer, start: int = 16, multiple: int = 8, limit: int = MAX_BATCH_LIMIT) -> int:
    """The largest batch (a multiple of ``multiple``, ≤ ``limit``) whose step fits: doubling, then bisection."""
    if trainer.device.type != "cuda":
        raise ValueError(f"--batch max searches GPU memory; the device is {trainer.device}: give --batch N")
    if not fits(trainer, start):
        raise ValueError(f"even batch {start} does not fit on {device_name(trainer.device)}")
    good, bad = start, None
    while bad is None and good < limit:
        trial = min(2 * good, limit)
        if fits(trainer, trial):
            good = trial
        else:
            bad = trial
    while bad is not None and bad - good > multiple:
        middle = (good + bad) // 2 // multiple * multiple
        if fits(trainer, middle):
            good = middle
        else:
            bad = middle
    return good


def guided_evaluations(steps: int, cfg_interval: tuple[float, float]) -> tuple[int, int]:
    """(network evaluations, those inside the CFG interval) of the paper's Heun sampler on the linear grid."""
    grid = [i / steps for i in range(steps + 1)]
    times = (
        grid[:-1] + grid[1:-1]
    )  # every step evaluates at t_i; all but the last (Euler) step also at t_{i+1}
    lo, hi = cfg_interval
    return len(times), sum(lo < t <= hi for t in times)


@contextlib.contextmanager
def evaluation_mode(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` in eval mode (no dropout, as when sampling) for the block, then back in the mode it was in."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


def bench_sampling(
    net: nn.Module,
    batch: int,
    precision: Precision,
    peak: float | None,
    steps: int = 50,
    cfg: float = 3.0,
    cfg_interval: tuple[float, float] = (0.1, 1.0),
    repeats: int = 1,
) -> dict[str, Any]:
    """Images/s of :func:`jitlib.diffusion.sampling.sample` (Heun, CFG) on ``batch`` images; forwards counted as they run."""
    config: Any = net.config  # a compiled module forwards attribute access to the JiT it wraps
    device = next(net.parameters()).device
    denoiser = Denoiser(net)
    images_through_net = [0]

    def counting(z: Tensor, t: Tensor, y: Tensor | None) -> Any:
        images_through_net[0] += z.shape[0]
        return denoiser(z, t, y)

    gen = torch.Generator(device=device).manual_seed(0)
    shape = (batch, config.in_channels, config.input_size, config.input_size)
    noise = torch.randn(shape, generator=gen, device=device)
    labels = torch.randint(0, max(config.num_classes, 1), (batch,), generator=gen, device=device)
    conditional = config.num_classes > 0

    def run() -> Tensor:
        with precision.autocast():
            return sample(
                counting,
                noise,
                steps=steps,
                labels=labels if conditional else None,
                null_label=config.num_classes if conditional else None,
                cfg=cfg if conditional else 1.0,
                cfg_interval=cfg_interval,
            )

    with evaluation_mode(net):
        run()  # warm-up (and compilation)
        images_through_net[0] = 0
        seconds = statistics.median(time_calls({"sample": run}, device, repeats, 0)["sample"])
    forwards_per_image = images_through_net[0] / (repeats * batch)
    evaluations, _ = guided_evaluations(steps, cfg_interval)
    guided = conditional and cfg != 1.0
    images_per_second = batch / seconds
    achieved = images_per_second * forwards_per_image * forward_flops(config).flops
    return {
        "batch": batch,
        "steps": steps,
        "cfg": cfg if conditional else 1.0,
        "forwards_per_image": forwards_per_image,
        "official_forwards_per_image": 2 * evaluations if guided else evaluations,
        "seconds": seconds,
        "images_per_s": images_per_second,
        "tflops_per_s": achieved / 1e12,
        "mfu": mfu(achieved, peak),
    }


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


def two_pass_cfg(denoiser: Denoiser, z: Tensor, t: Tensor, y: Tensor, null: Tensor, cfg: float) -> Tensor:
    """Guided velocity v_u + ω(v_c − v_u) from two separate forwards (the official sampler's structure)."""
    cond, uncond = denoiser(z, t, y), denoiser(z, t, null)
    return uncond.v + cfg * (cond.v - uncond.v)


def one_guided_step(denoiser: Denoiser, z: Tensor, y: Tensor, null_label: int, cfg: float) -> Tensor:
    """:func:`jitlib.diffusion.sampling.sample` on the grid [0.5, 1]: one guided evaluation, conditional ⊕ unconditional in one
    forward of 2B, then an Euler step z + ½·v — the library's own CFG path."""
    return sample(denoiser, z, time_grid=[0.5, 1.0], labels=y, null_label=null_label, cfg=cfg)


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


# ---------------------------------------------------------------------------------------------------------------
# Data loading: can the trainer's loader keep up?
# ---------------------------------------------------------------------------------------------------------------


def write_jpeg_folder(
    root: Path, num_images: int, size: tuple[int, int] = (500, 375), classes: int = 4
) -> Path:
    """``num_images`` smooth random JPEGs of ImageNet's typical size in ``root/<class>/``, quality 90."""
    rng = np.random.default_rng(0)
    for i in range(num_images):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, (size[1] // 25, size[0] // 25, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize(size, Image.BICUBIC)
        noisy = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, (size[1], size[0], 3))
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.jpg", quality=90)
    return root


def bench_loader(image_size: int, batch: int, num_workers: int, num_images: int) -> dict[str, Any]:
    """Images/s of the trainer's DataLoader (``make_loader`` over an ImageFolder of JPEGs, ADM crop) after its first batch."""
    if num_images < 2 * batch:
        raise ValueError(f"num_images={num_images} must be at least two batches (2 × {batch})")
    with tempfile.TemporaryDirectory(prefix="jitlib-bench-jpegs-") as tmp:
        dataset = ImageFolder(write_jpeg_folder(Path(tmp), num_images), image_size)
        loader = make_loader(dataset, ResumableSampler(dataset), batch, num_workers, pin_memory=False)
        batches = iter(loader)
        next(batches)  # worker start-up is not throughput
        start = time.perf_counter()
        count = sum(x.shape[0] for x, _ in batches)
        seconds = time.perf_counter() - start
        del batches, loader
    rate = count / seconds
    return {
        "workers": num_workers,
        "image_size": image_size,
        "source_size": "500x375 JPEG q90",
        "images_per_s": rate,
        "images_per_s_per_worker": rate / max(num_workers, 1),
    }


# ---------------------------------------------------------------------------------------------------------------
# The whole benchmark
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class BenchOptions:
    """What ``jitlib bench`` measures; ``batch=None`` searches the largest batch that fits (GPU only)."""

    models: list[str] = field(default_factory=lambda: ["JiT-B/16" if tier() == "full" else "JiT-tiny/4"])
    arch: dict[str, Any] = field(default_factory=dict)
    resolution: int | None = None
    batch: int | None = 32
    precision: str = "auto"
    compile: tuple[bool, ...] = (False, True)
    steps: int = 10
    warmup: int = 3
    sample_batch: int | None = None
    sample_steps: int = 50
    sample_repeats: int = 1
    cfg: float = 3.0
    device: str = "auto"
    parts: tuple[str, ...] = PARTS
    loader_workers: int = 0
    loader_images: int = 256
    peak_tflops: float | None = None
    compare_repeats: int = 10
    profile: bool = False

    def __post_init__(self) -> None:
        for name in self.models:
            if name not in MODEL_REGISTRY:
                raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_REGISTRY)}")
        for name in ("steps", "sample_steps", "sample_repeats", "compare_repeats", "loader_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("batch", "sample_batch", "resolution"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}={value} must be >= 1 (or unset)")
        if self.warmup < 1:
            raise ValueError(f"warmup={self.warmup} must be >= 1 (the first step compiles and allocates)")
        unknown = sorted(set(self.parts) - set(PARTS))
        if unknown:
            raise ValueError(f"unknown bench part(s) {unknown}; valid: {', '.join(PARTS)}")
        if not self.compile:
            raise ValueError("compile must hold at least one of False (eager), True (torch.compile)")


def machine_facts(device: torch.device) -> dict[str, Any]:
    """Device, software and load: what a reader needs to judge the numbers."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "device": str(device),
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "clock": clock(device)[1],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_1_5_15": list(load) if load else None,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def bench_trainer(
    options: BenchOptions, trainer: Trainer, batch: int, peak: float | None, result: dict[str, Any]
) -> None:
    """Add one trainer's rows (compile on or off) to ``result``: training, attention kernel, sampling, pairs."""
    compiled = trainer.config.train.compile
    if "train" in options.parts:
        row = bench_training(trainer, batch, options.steps, options.warmup, peak, options.profile)
        result.setdefault("train", []).append(row)
    if not compiled:
        x, y = training_batch(trainer, min(batch, 8))
        t = torch.rand(x.shape[0], device=x.device)
        with torch.no_grad(), trainer.precision.autocast():
            result["attention_backend"] = attention_backend(lambda: trainer.net(x, t, y))
    sample_batch = options.sample_batch or batch
    if "sample" in options.parts:
        # Static shapes: sampling runs two batch sizes (B unguided, 2B guided), each gets its own specialised graph.
        net = torch.compile(trainer.net, dynamic=False) if compiled else trainer.net
        row = bench_sampling(
            net,
            sample_batch,
            trainer.precision,
            peak,
            options.sample_steps,
            options.cfg,
            repeats=options.sample_repeats,
        )
        result.setdefault("sample", []).append({"compile": compiled, **row})
    if "compare" in options.parts and not compiled:
        result["compare"] = compare_paths(trainer, batch, sample_batch, options.compare_repeats, options.cfg)


def bench_model(
    options: BenchOptions, model: str, device: torch.device, peak: float | None
) -> dict[str, Any]:
    """Every measurement for one model: a fresh trainer per compile mode (eager first), then its rows."""
    native = get_config(model, **options.arch)
    resolution = options.resolution or native.input_size
    result: dict[str, Any] = {"model": model, "arch": dict(options.arch), "resolution": resolution}
    batch = options.batch
    with tempfile.TemporaryDirectory(prefix="jitlib-bench-") as tmp:
        for compiled in sorted(
            options.compile
        ):  # eager first: it searches the batch, compiling would re-trace
            config = bench_config(
                model,
                resolution,
                batch or 16,
                options.precision,
                compiled,
                str(device),
                Path(tmp) / f"compile-{compiled}",
                options.arch,
                native.num_classes,
            )
            trainer = build_trainer(config, batch or 16)
            if batch is None:
                batch = largest_batch(trainer)
                result["batch_search"] = "largest multiple of 8 whose eager training step fits"
            result.update(
                params=count_params(trainer.net),
                gmacs_per_forward=forward_flops(trainer.net).gmacs,
                precision=trainer.precision.name,
            )
            bench_trainer(options, trainer, batch, peak, result)
            del trainer
            free_memory()
    return result


def run_bench(options: BenchOptions) -> dict[str, Any]:
    """Run the benchmark described by ``options``; returns the nested results that :func:`write_results` stores."""
    device = default_device() if options.device == "auto" else torch.device(options.device)
    facts = machine_facts(device)
    peak, source = peak_flops(facts["device_name"], device.type)
    if options.peak_tflops is not None:
        peak, source = options.peak_tflops * 1e12, "given with --peak-tflops"
    results: dict[str, Any] = {
        "machine": facts,
        "peak_flops": peak,
        "peak_source": source,
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()},
        "models": [bench_model(options, model, device, peak) for model in options.models],
    }
    if "loader" in options.parts:
        first = results["models"][0]
        loader = results["loader"] = bench_loader(
            first["resolution"],
            min(options.batch or 64, options.loader_images // 2),
            options.loader_workers,
            options.loader_images,
        )
        fastest = max((row["images_per_s"] for row in first.get("train", [])), default=None)
        loader["workers_needed"] = (
            None if fastest is None else math.ceil(fastest / loader["images_per_s_per_worker"])
        )
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    results["machine"]["load_average_after"] = list(load) if load else None
    return results


# ---------------------------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1, scale: float = 1.0, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value * scale:.{digits}f}{suffix}"


def to_markdown(results: dict[str, Any]) -> str:
    """The results as Markdown: machine line, training / sampling table, before/after table, loader line."""
    m = results["machine"]
    load = m.get("load_average_1_5_15")
    lines = [
        f"**Device**: {m['device_name']} ({m['device']}), torch {m['torch']}, {m['torch_threads']} threads of "
        f"{m['cpu_count']} CPUs; load average {', '.join(f'{v:.1f}' for v in load) if load else 'n/a'} before, "
        f"{', '.join(f'{v:.1f}' for v in m['load_average_after']) if m.get('load_average_after') else 'n/a'} after. "
        f"Peak: {_fmt(results['peak_flops'], 0, 1e-12, ' TFLOP/s')} ({results['peak_source']}). "
        f"Timer: {m.get('clock', 'wall time')}.",
        "",
        "| model | res | precision | attention | compile | batch | train img/s | best img/s | step ms | train TFLOP/s | train MFU "
        "| peak mem GiB | syncs/step | sample img/s | sample MFU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["models"]:
        samples = {row["compile"]: row for row in r.get("sample", [])}
        for row in r.get("train", []) or [{"compile": c} for c in samples]:
            s = samples.get(row["compile"], {})
            lines.append(
                f"| {r['model']} | {r['resolution']} | {r['precision']} | {r.get('attention_backend', 'n/a')} "
                f"| {'on' if row['compile'] else 'off'} | {row.get('batch', s.get('batch', 'n/a'))} "
                f"| {_fmt(row.get('images_per_s'))} | {_fmt(row.get('images_per_s_best'))} | {_fmt(row.get('step_ms'))} | {_fmt(row.get('tflops_per_s'), 3)} "
                f"| {_fmt(row.get('mfu'), 1, 100, '%')} | {_fmt(row.get('peak_memory_gib'), 2)} "
                f"| {row.get('syncs_per_step') if row.get('syncs_per_step') is not None else 'n/a'} "
                f"| {_fmt(s.get('images_per_s'), 2)} | {_fmt(s.get('mfu'), 1, 100, '%')} |"
            )
    sample_rows = [s for r in results["models"] for s in r.get("sample", [])]
    if sample_rows:
        s = sample_rows[0]
        lines += [
            "",
            f"Sampling: {s['steps']}-step Heun, CFG {s['cfg']} on (0.1, 1]: {s['forwards_per_image']:.0f} forward "
            f"passes per image (the official sampler runs {s['official_forwards_per_image']}: both CFG passes at "
            "every evaluation). Training FLOPs = 3 × forward; FLOPs = 2 × multiply-accumulates of matrix products.",
        ]
    for r in results["models"]:
        if r.get("compare"):
            lines += [
                "",
                f"Before/after, {r['model']}: fastest of {results['options']['compare_repeats']} calls each, "
                "the two sides called in alternation in one process:",
                "",
                "| path | before | after | before ms | after ms | speed-up |",
                "|---|---|---|---|---|---|",
            ]
            for c in r["compare"]:
                lines.append(
                    f"| {c['path']} | {c['before']} | {c['after']} | {c['before_ms']:.2f} | {c['after_ms']:.2f} "
                    f"| {c['speedup']:.2f}× |"
                )
                if "fp32_sdpa_ms" in c:
                    lines.append(
                        f"| attention fwd+bwd | explicit fp32 logits (official) | SDPA fp32 "
                        f"(attn_fp32_logits=True: {c['fp32_sdpa_backend']}) | {c['before_ms']:.2f} "
                        f"| {c['fp32_sdpa_ms']:.2f} | {c['before_ms'] / c['fp32_sdpa_ms']:.2f}× |"
                    )
    for r in results["models"]:
        for row in r.get("train", []):
            if row.get("top_ops"):
                lines += [
                    "",
                    f"Most expensive operators of one training step, {r['model']}, compile "
                    f"{'on' if row['compile'] else 'off'} (profiler self time, wall clock):",
                    "",
                    "| operator | ms | share | calls |",
                    "|---|---|---|---|",
                ]
                lines += [
                    f"| `{op['op']}` | {op['ms']:.2f} | {100 * op['share']:.1f}% | {op['calls']} |"
                    for op in row["top_ops"]
                ]
    if "loader" in results:
        ld = results["loader"]
        lines += [
            "",
            f"Data loader (trainer's DataLoader, ImageFolder with ADM crop to {ld['image_size']}, {ld['source_size']}): "
            f"{ld['images_per_s']:.0f} img/s with {ld['workers']} worker(s) "
            f"({ld['images_per_s_per_worker']:.0f} img/s per worker)"
            + (
                f": the fastest training step above needs at least {ld['workers_needed']} worker(s) per process."
                if ld.get("workers_needed")
                else "."
            ),
        ]
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], out_dir: str | Path, stem: str) -> tuple[Path, Path]:
    """Write ``stem.json`` and ``stem.md`` into ``out_dir``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path.write_text(to_markdown(results))
    return json_path, md_path


# ---------------------------------------------------------------------------------------------------------------
# Command line: jitlib bench
# ---------------------------------------------------------------------------------------------------------------

BENCH_HELP = """\
Measure training and sampling speed, memory and MFU of a JiT on this machine; write JSON and Markdown.

examples:
  jitlib bench                                          # tiny preset on a CPU, JiT-B/16 on a GPU
  jitlib bench --model JiT-B/16 --batch max --precision bf16   # largest batch that fits, eager and compiled
  jitlib bench --model JiT-tiny/4 --model JiT-tiny/8 --compile off --parts train,sample
"""


def parse_arch(items: list[str]) -> dict[str, Any]:
    """["depth=2", "hidden_size=64"] → {"depth": 2, "hidden_size": 64} (values read as YAML scalars)."""
    import yaml

    arch: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--arch {item!r} must look like key=value, e.g. depth=2")
        arch[key] = yaml.safe_load(raw)
    return arch


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    """The :class:`BenchOptions` of a parsed ``jitlib bench`` command line."""
    compile_modes = {"off": (False,), "on": (True,), "both": (False, True)}
    batch = None if args.batch == "max" else int(args.batch)
    defaults = BenchOptions.__dataclass_fields__
    return BenchOptions(
        models=args.model or defaults["models"].default_factory(),
        arch=parse_arch(args.arch),
        resolution=args.resolution,
        batch=batch,
        precision=args.precision,
        compile=compile_modes[args.compile],
        steps=args.steps,
        warmup=args.warmup,
        sample_batch=args.sample_batch,
        sample_steps=args.sample_steps,
        cfg=args.cfg,
        device=args.device,
        parts=tuple(p.strip() for p in args.parts.split(",") if p.strip()),
        loader_workers=args.loader_workers,
        loader_images=args.loader_images,
        peak_tflops=args.peak_tflops,
        compare_repeats=args.repeats,
        profile=args.profile,
    )


def run_bench_command(args: argparse.Namespace) -> int:
    """``jitlib bench``: run, print the Markdown table, write JSON + Markdown."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.batch != "max" and not str(args.batch).isdigit():
        raise ValueError(f"--batch {args.batch!r} must be a positive integer or 'max'")
    results = run_bench(options_from_args(args))
    stem = args.name or f"bench-{results['machine']['device'].split(':')[0]}"
    json_path, md_path = write_results(results, args.out, stem)
    print(to_markdown(results), end="")
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


def add_bench_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``jitlib bench`` on a sub-parser set (``func`` runs it)."""
    parser = subparsers.add_parser(
        "bench",
        help="measure training/sampling images/s, memory and MFU; before/after of each speed path",
        description=BENCH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", action="append", metavar="NAME", help="registry name (repeatable)")
    parser.add_argument("--arch", action="append", default=[], metavar="KEY=VALUE", help="JiTConfig override")
    parser.add_argument("--resolution", type=int, help="image size (default: the model's native size)")
    parser.add_argument(
        "--batch", default="32", help="training batch, or 'max' to search GPU memory (default 32)"
    )
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument(
        "--compile", default="both", choices=["off", "on", "both"], help="torch.compile (default both)"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed training steps (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--sample-batch", type=int, help="sampling batch (default: the training batch)")
    parser.add_argument("--sample-steps", type=int, default=50, help="Heun steps (default 50, the paper's)")
    parser.add_argument("--cfg", type=float, default=3.0, help="guidance scale (default 3.0)")
    parser.add_argument("--device", default="auto", help="auto (GPU if any), cpu or cuda")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    parser.add_argument(
        "--repeats", type=int, default=10, help="timed rounds per before/after pair (default 10)"
    )
    parser.add_argument(
        "--loader-workers", type=int, default=0, help="DataLoader workers to measure (default 0)"
    )
    parser.add_argument("--loader-images", type=int, default=256, help="JPEGs to decode (default 256)")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="peak dense bf16 TFLOP/s of a GPU not in jitlib.training.budget.DEVICES",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also list each step's most expensive operators"
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    parser.add_argument(
        "--out", default="data/bench", help="folder for the JSON and Markdown (default data/bench)"
    )
    parser.add_argument("--name", help="file stem (default bench-<device>)")
    parser.set_defaults(func=run_bench_command)
    return parser
