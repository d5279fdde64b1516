"""What ``jitlib bench`` measures: the trainer's own training step, the largest batch that fits, guided sampling, the
attention kernel, and whether the data loader keeps up."""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from jitlib.cli.bench.timing import (
    count_syncs,
    device_name,
    free_memory,
    mfu,
    peak_memory,
    synchronize,
    time_calls,
)
from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.sampling import guidance_active, sample
from jitlib.nn.flops import forward_flops
from jitlib.nn.registry import get_config
from jitlib.training.budget import train_flops_per_image
from jitlib.training.config import Config, from_dict
from jitlib.training.data import ImageFolder, ResumableSampler, TensorImages, make_loader
from jitlib.training.precision import Precision
from jitlib.training.trainer import Trainer

PARTS = ("train", "sample", "compare", "loader")
MAX_BATCH_LIMIT = 4096


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


def bench_training(
    trainer: Trainer, batch: int, steps: int, warmup: int, peak: float | None, profile: bool = False
) -> dict[str, Any]:
    """Images/s, step time, peak memory, MFU and host-device syncs of ``trainer.train_step`` on a fixed batch.

    Images/s, step time and MFU are from the median step; ``images_per_s_best`` from the fastest. ``profile`` adds the step's most expensive operators (one extra profiled step).
    ``first_step_s``: wall time of the first warm-up step, which includes torch.compile's compilation when it is on.
    """
    x, y = training_batch(trainer, batch)
    first_step = None
    for i in range(warmup):
        start = time.perf_counter()
        trainer.train_step(x, y)
        synchronize(trainer.device)
        if i == 0:
            first_step = time.perf_counter() - start
    with peak_memory(trainer.device) as memory:
        times = time_calls({"step": lambda: trainer.train_step(x, y)}, trainer.device, steps, 0)["step"]
    syncs = count_syncs(lambda: trainer.train_step(x, y), trainer.device)
    seconds = statistics.median(times)
    images_per_second = batch / seconds
    achieved = images_per_second * train_flops_per_image(trainer.net.config)
    hot = top_ops(lambda: trainer.train_step(x, y), trainer.device) if profile else None
    return {
        "compile": trainer.config.train.compile,
        "batch": batch,
        "first_step_s": first_step,
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
    """(network evaluations, those where guidance acts) of the paper's Heun sampler on the linear grid.

    Every step evaluates at t_i, all but the last (Euler) step also at t_{i+1}; guidance acts where
    :func:`~jitlib.diffusion.sampling.guidance_active` says (the official rule).
    """
    grid = [i / steps for i in range(steps + 1)]
    times = grid[:-1] + grid[1:-1]
    return len(times), sum(guidance_active(t, cfg_interval) for t in times)


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
    cfg_scale: float = 3.0,
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
                cfg_scale=cfg_scale if conditional else 1.0,
                cfg_interval=cfg_interval,
            )

    with evaluation_mode(net):
        run()  # warm-up (and compilation)
        images_through_net[0] = 0
        seconds = statistics.median(time_calls({"sample": run}, device, repeats, 0)["sample"])
    forwards_per_image = images_through_net[0] / (repeats * batch)
    evaluations, _ = guided_evaluations(steps, cfg_interval)
    guided = conditional and cfg_scale != 1.0
    images_per_second = batch / seconds
    achieved = images_per_second * forwards_per_image * forward_flops(config).flops
    return {
        "batch": batch,
        "steps": steps,
        "cfg_scale": cfg_scale if conditional else 1.0,
        "forwards_per_image": forwards_per_image,
        "official_forwards_per_image": 2 * evaluations if guided else evaluations,
        "seconds": seconds,
        "images_per_s": images_per_second,
        "tflops_per_s": achieved / 1e12,
        "mfu": mfu(achieved, peak),
    }


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
