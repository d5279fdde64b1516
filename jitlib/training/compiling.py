"""Whether to ``torch.compile``: on by default on CUDA (training and fixed-shape sampling), eager on the CPU.

On a GPU compiling fuses the many small element-wise kernels of a transformer block (norms, modulation, RoPE, the
MLP's gate) and pays back its tens of seconds within the first hundreds of steps; the official code compiles every
block. On a CPU a compile costs about a minute on this project's 2-core machine, longer than any tiny-tier run, so
the default stays eager there; ``train.compile=true`` forces it anywhere, ``false`` turns it off.
"""

from __future__ import annotations

import torch
from torch import nn


def resolve_compile(setting: bool | str, device: torch.device | str) -> bool:
    """``"auto"`` → True on CUDA, False elsewhere; ``True`` / ``False`` as given."""
    if isinstance(setting, bool):
        return setting
    if setting == "auto":
        return torch.device(device).type == "cuda"
    raise ValueError(f"compile={setting!r} is not a compile setting; valid: auto, true, false")


def maybe_compile(module: nn.Module, setting: bool | str, device: torch.device | str) -> nn.Module:
    """``torch.compile(module, dynamic=False)`` when :func:`resolve_compile` says so, else ``module`` itself.

    ``dynamic=False``: training batches and sampling batches have fixed shapes, so one static graph serves them.
    """
    return torch.compile(module, dynamic=False) if resolve_compile(setting, device) else module
