"""Whether and how to ``torch.compile``: on by default on CUDA (training and fixed-shape sampling), eager on the CPU.

On a GPU compiling fuses the many small element-wise kernels of a transformer block (norms, modulation, RoPE, the
MLP's gate) and pays back its tens of seconds within the first hundreds of steps. Training compiles by *region*, as
the official code does (``torch.compile`` on the block and final-layer forwards): every block runs the same code, so
one compiled block serves them all and the compile time stays that of one block at any depth, where a whole-network
graph grows with every block. The price is that the work between regions (patch and class embeddings, the
in-context tokens) stays eager, which on a CPU makes later steps a little slower than one whole graph: both are
measured by ``scripts/compile_time.py`` (``data/bench/compile-regions.md``).

On a CPU a compile costs longer than any tiny-tier run, so the default stays eager there; ``train.compile=true``
forces it anywhere, ``false`` turns it off.
"""

from __future__ import annotations

import torch
from torch import nn

from jitlib.nn.model import FinalLayer, JiTBlock

REGIONS = (JiTBlock, FinalLayer)  # the modules whose forward is compiled (the official code's choice)


def resolve_compile(setting: bool | str, device: torch.device | str) -> bool:
    """``"auto"`` → True on CUDA, False elsewhere; ``True`` / ``False`` as given."""
    if isinstance(setting, bool):
        return setting
    if setting == "auto":
        return torch.device(device).type == "cuda"
    raise ValueError(f"compile={setting!r} is not a compile setting; valid: auto, true, false")


def compile_regions(net: nn.Module) -> nn.Module:
    """``torch.compile(forward, dynamic=False)`` of every block and the final layer of ``net``, in place; returns ``net``.

    Only ``forward`` is replaced: parameters, state-dict names and module hooks (FSDP2's gathers) stay as they are,
    outside the compiled code. ``Trainer`` calls it before :func:`jitlib.training.distributed.wrap` (DDP, FSDP2).
    ``dynamic=False``: each block sees two fixed shapes (before and after the in-context tokens join).
    """
    for module in net.modules():
        if isinstance(module, REGIONS) and not is_compiled(module):
            module.forward = torch.compile(module.forward, dynamic=False)
    return net


def is_compiled(module: nn.Module) -> bool:
    """Whether ``module.forward`` is a ``torch.compile`` wrapper (see :func:`compile_regions`)."""
    return hasattr(module.__dict__.get("forward"), "_torchdynamo_orig_callable")


def maybe_compile(net: nn.Module, setting: bool | str, device: torch.device | str) -> nn.Module:
    """:func:`compile_regions` when :func:`resolve_compile` says so; ``net`` itself either way."""
    return compile_regions(net) if resolve_compile(setting, device) else net
