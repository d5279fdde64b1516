"""Where code runs: the tier switch (tiny on a CPU, full on a GPU) and the device doctor.

Every notebook and every command asks this module, and only this module, which tier it is in and which precision to
use — so a laptop, CI and a Colab GPU all run the *same* code path with different sizes.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from typing import Literal

import torch

Tier = Literal["tiny", "full"]
TIERS: tuple[str, ...] = ("tiny", "full")
TIER_ENV = "JITLIB_TIER"


def default_device() -> torch.device:
    """The device jitlib uses when none is given: the first CUDA GPU if there is one, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
VALID_DEVICES = "auto, cpu, cuda, cuda:N, mps"


def _named(name: object, key: str | None) -> str:
    return f"{key}={name!r}" if key else repr(name)


def check_device_name(name: str, key: str | None = "--device") -> str:
    """``name`` if it spells a device (auto, cpu, cuda, cuda:N, mps); a one-line ValueError naming it otherwise.

    ``key`` is the setting the message names (``--device``, ``train.device``); None names the value alone.
    """
    if not isinstance(name, str) or not DEVICE_PATTERN.fullmatch(name):
        raise ValueError(f"{_named(name, key)} is not a device; valid: {VALID_DEVICES}")
    return name


def resolve_device(name: str | torch.device = "auto", key: str | None = "--device") -> torch.device:
    """The one device resolver of every command: "auto" → :func:`default_device`; else the named device, checked to exist.

    An unknown name or a device this machine lacks is a one-line ValueError listing what is valid here. The command
    line resolves ``--device`` while it parses (:func:`jitlib.cli.options.add_device`).
    """
    name = str(name)
    check_device_name(name, key)
    if name == "auto":
        return default_device()
    device = torch.device(name)
    here = ["auto", "cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        here.append("mps")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"{_named(name, key)}: this machine has no such CUDA device; valid here: {', '.join(here)}"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{_named(name, key)}: MPS is not available here; valid here: {', '.join(here)}")
    return device


def tier() -> Tier:
    """The size tier: ``$JITLIB_TIER`` when set, else ``"full"`` with CUDA and ``"tiny"`` without.

    The tiny tier keeps every notebook well under 90 s on 2 CPU cores; the full tier reproduces the results at the
    sizes the book reports.
    """
    value = os.environ.get(TIER_ENV, "").strip().lower()
    if value:
        if value not in TIERS:
            raise ValueError(f"{TIER_ENV}={value!r} is not a tier; valid: {', '.join(TIERS)}")
        return value  # type: ignore[return-value]
    return "full" if torch.cuda.is_available() else "tiny"


def bf16_is_native(device: torch.device) -> bool:
    """True when the device computes bfloat16 in hardware (CUDA compute capability ≥ 8.0, e.g. A100/H100)."""
    if device.type != "cuda":
        return False
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    """The mixed-precision dtype for ``device``: bf16 where it is native, fp16 on older GPUs (T4), None (fp32) on CPU.

    fp16 needs a gradient scaler when training; bf16 does not. On the CPU autocast would only slow things down.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.bfloat16 if bf16_is_native(device) else torch.float16


@dataclass(frozen=True)
class DoctorReport:
    """What :func:`doctor` found: enough to know what a run will do on this machine."""

    tier: Tier
    device: str
    device_name: str
    compute_capability: str | None
    precision: str
    torch_version: str
    threads: int

    def __str__(self) -> str:
        cc = f", compute capability {self.compute_capability}" if self.compute_capability else ""
        return (
            f"jitlib doctor: tier={self.tier} | device={self.device} ({self.device_name}{cc}) | "
            f"precision={self.precision} | torch {self.torch_version}, {self.threads} CPU threads"
        )


def doctor(print_report: bool = True) -> DoctorReport:
    """Report device, compute capability, precision and tier; installs and changes nothing."""
    device = default_device()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        major, minor = torch.cuda.get_device_capability(device)
        cc: str | None = f"{major}.{minor}"
    else:
        name = platform.processor() or platform.machine()
        cc = None
    dtype = autocast_dtype(device)
    precision = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast + grad scaler"}[
        dtype
    ]
    report = DoctorReport(
        tier=tier(),
        device=str(device),
        device_name=name,
        compute_capability=cc,
        precision=precision,
        torch_version=torch.__version__,
        threads=torch.get_num_threads(),
    )
    if print_report:
        print(report)
    return report
