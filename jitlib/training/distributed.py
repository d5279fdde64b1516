"""Multi-process training with torch.distributed: set-up from torchrun's environment, DDP or FSDP2 wrapping, and
the full (unsharded) state dicts that checkpoints store.

``torchrun --nproc_per_node N -m jitlib train …`` sets RANK / WORLD_SIZE / LOCAL_RANK; without them everything
runs in one process. Backend: NCCL on GPUs, gloo on CPU (which is how the tests check that two processes equal
one). FSDP2 (``fully_shard``) shards parameters, gradients and optimizer state for JiT-H and JiT-G; it is meant for
GPUs, and runs on CPU processes too (gloo) so that the test-suite checks FSDP2 ≡ DDP ≡ one process.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from jitlib.device import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: its rank among world_size processes, its local GPU index, its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, writes checkpoints and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes (one process if it describes none) and pick this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    chosen = resolve_device(device, "train.device")  # one line for a device this machine does not have
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=chosen)


def shutdown() -> None:
    """Leave the process group (no-op when running as one process)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(value: Tensor) -> Tensor:
    """The average of ``value`` over all processes (itself in one process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value


def all_gather(obj: Any) -> list[Any]:
    """[obj of rank 0, obj of rank 1, …] on every rank (a one-element list in one process)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(net: nn.Module, strategy: str, info: DistInfo) -> nn.Module:
    """The module to train: ``net`` itself in one process, DDP-wrapped, or FSDP2-sharded in place (blocks, then root).

    Gradients are averaged over ranks, so with equal local batches a step equals one process on the global batch.
    """
    if not info.distributed:
        return net
    if strategy == "ddp":
        device_ids = [info.device.index] if info.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(net, device_ids=device_ids)
    if strategy == "fsdp":
        if info.device.type != "cuda" and info.is_main:
            print(
                "warning: train.strategy=fsdp on CPU (gloo) is correct but slow: meant for tests",
                file=sys.stderr,
            )
        try:
            from torch.distributed.fsdp import fully_shard
        except ImportError:  # FSDP2's public API arrived in torch 2.6
            raise RuntimeError(
                f"train.strategy=fsdp needs torch >= 2.6 (FSDP2's fully_shard), this is torch {torch.__version__}: "
                "upgrade torch or use train.strategy=ddp"
            ) from None

        for block in getattr(net, "blocks", []):
            fully_shard(block)
        fully_shard(net)
        return net
    raise ValueError(f"train.strategy={strategy!r} is not a strategy; valid: ddp, fsdp")


def model_state(net: nn.Module) -> dict[str, Tensor]:
    """The full state dict of ``net`` on the CPU, gathered from shards when it is FSDP2-sharded (collective)."""
    if _is_sharded(net):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(net, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


@torch.no_grad()
def copy_full_weights(source: nn.Module, target: nn.Module) -> None:
    """Copy every parameter and buffer of ``source`` into the plain (unsharded) ``target`` of the same architecture.

    ``source`` may be FSDP2-sharded: each DTensor is then all-gathered into a full tensor one at a time (collective:
    every rank must call this, and every rank gets the full weights), so the memory used is ``target`` plus one
    tensor. A plain ``source`` (one process, DDP) is copied exactly as it is; the names must match exactly.
    """
    sources = dict(source.named_parameters()) | dict(source.named_buffers())
    targets = dict(target.named_parameters()) | dict(target.named_buffers())
    if sources.keys() != targets.keys():
        raise ValueError(
            f"the networks differ: only in the source {sorted(sources.keys() - targets.keys())}, "
            f"only in the target {sorted(targets.keys() - sources.keys())}"
        )
    for name, tensor in sources.items():
        full = tensor.full_tensor() if hasattr(tensor, "device_mesh") else tensor
        targets[name].copy_(full.detach())


def load_model_state(net: nn.Module, state: dict[str, Tensor]) -> None:
    """Load a full state dict into ``net`` (each rank keeps its own shard under FSDP2); keys must match exactly."""
    if _is_sharded(net):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(net, state, options=StateDictOptions(full_state_dict=True))
    else:
        net.load_state_dict(state, strict=True)


def optimizer_state(net: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's full state dict (gathered from shards under FSDP2; collective)."""
    if _is_sharded(net):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(
            net, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
    return optimizer.state_dict()


def load_optimizer_state(net: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load an optimizer state saved by :func:`optimizer_state`."""
    if _is_sharded(net):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(net, optimizer, state, options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(state)


def _is_sharded(net: nn.Module) -> bool:
    return any(hasattr(p, "device_mesh") for p in net.parameters())
