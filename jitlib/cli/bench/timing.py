"""Benchmark plumbing: device names and peak FLOP/s, timers that survive a shared machine, peak memory, syncs."""

from __future__ import annotations

import contextlib
import gc
import platform
import re
import time
import warnings
from collections.abc import Callable, Iterator

import torch

from jitlib.training.budget import DEVICES

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
