"""Mixed precision for training: which autocast dtype, and whether the loss needs a gradient scaler.

bf16 keeps fp32's exponent range, so it needs no loss scaling; fp16 does (``GradScaler``) because small gradients
underflow. Parameters and optimizer state stay fp32 either way (the official code: bf16 autocast, fp32 weights).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from jitlib.device import autocast_dtype, bf16_is_native

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """The autocast dtype (None = plain fp32) on a device type, and whether gradients go through a GradScaler."""

    dtype: torch.dtype | None
    device_type: str

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16

    def autocast(self) -> AbstractContextManager:
        """``torch.autocast`` for this dtype, or a no-op context for fp32."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """A GradScaler that is active only for fp16 (a disabled scaler passes losses and steps through unchanged)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.needs_scaler)


def resolve_precision(setting: str, device: torch.device) -> Precision:
    """``"auto"`` → bf16 where the GPU has it natively, fp16 on older GPUs, fp32 on CPU; else the named dtype."""
    if setting == "auto":
        return Precision(autocast_dtype(device), device.type)
    if setting not in DTYPES:
        raise ValueError(f"train.precision={setting!r} is not a precision; valid: auto, {', '.join(DTYPES)}")
    if setting == "bf16" and device.type == "cuda" and not bf16_is_native(device):
        raise ValueError(
            "train.precision=bf16 but this GPU has no native bf16; use train.precision=fp16 or auto"
        )
    return Precision(DTYPES[setting], device.type)
