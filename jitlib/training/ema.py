"""Exponential moving averages of the weights, several decays at once (the paper keeps 0.9996, 0.9998, 0.9999).

θ_ema ← d·θ_ema + (1 − d)·θ after every optimizer step. Which decay samples best depends on the training length
and CFG scale (App. A; JiT issues #42, #56), so all are kept and chosen at evaluation time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn


def decay_key(decay: float) -> str:
    """The name a decay is stored and selected under, e.g. 0.9999 → "0.9999"."""
    return repr(float(decay))


class EMA:
    """Shadow copies of a model's trainable parameters, one per decay, updated with ``torch._foreach_lerp_``."""

    def __init__(self, model: nn.Module, decays: Sequence[float]) -> None:
        if not decays or not all(0 < d < 1 for d in decays):
            raise ValueError(f"decays={list(decays)} must be a non-empty list of numbers in (0, 1)")
        self.names = [name for name, p in model.named_parameters() if p.requires_grad]
        params = dict(model.named_parameters())
        self.shadows: dict[str, list[Tensor]] = {
            decay_key(d): [params[n].detach().clone() for n in self.names] for d in decays
        }

    @property
    def decays(self) -> list[float]:
        return [float(k) for k in self.shadows]

    def _params(self, model: nn.Module) -> list[Tensor]:
        params = dict(model.named_parameters())
        return [params[n].detach() for n in self.names]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """θ_ema ← θ_ema + (1 − d)(θ − θ_ema) for every decay d (a lerp towards the current weights)."""
        current = self._params(model)
        for key, shadow in self.shadows.items():
            torch._foreach_lerp_(shadow, current, 1.0 - float(key))

    def key(self, decay: float | str) -> str:
        """The stored key of ``decay``, or a ValueError listing the decays kept."""
        key = decay_key(float(decay))
        if key not in self.shadows:
            raise ValueError(f"no EMA with decay {decay}; this run keeps {', '.join(self.shadows)}")
        return key

    @torch.no_grad()
    def copy_to(self, model: nn.Module, decay: float | str) -> None:
        """Overwrite the model's trainable parameters with the EMA of the given decay."""
        torch._foreach_copy_(self._params(model), self.shadows[self.key(decay)])

    @torch.no_grad()
    def copy_full_to(self, model: nn.Module, decay: float | str) -> None:
        """Overwrite a plain (unsharded) model's trainable parameters with the full EMA tensors of ``decay``.

        Under FSDP2 the shadows are sharded: each is all-gathered in turn (collective: every rank calls this, and
        every rank gets the full EMA), so only one full tensor is held beyond ``model``. Otherwise it is
        :meth:`copy_to`.
        """
        shadow = self.shadows[self.key(decay)]
        for target, tensor in zip(self._params(model), shadow, strict=True):
            target.copy_(tensor.full_tensor() if hasattr(tensor, "device_mesh") else tensor)

    @contextmanager
    def applied(self, model: nn.Module, decay: float | str) -> Iterator[nn.Module]:
        """Temporarily swap the EMA weights into ``model`` (e.g. to sample mid-training); restores them on exit."""
        backup = [p.clone() for p in self._params(model)]
        self.copy_to(model, decay)
        try:
            yield model
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self._params(model), backup)

    def state_dict(self) -> dict[str, dict[str, Tensor]]:
        """{decay key: {parameter name: tensor}} — full tensors, whatever sharding the model uses."""
        return {
            key: {n: _full(t) for n, t in zip(self.names, shadow, strict=True)}
            for key, shadow in self.shadows.items()
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, dict[str, Tensor]]) -> None:
        """Restore shadows saved by :meth:`state_dict`; the decays and parameter names must match exactly."""
        if set(state) != set(self.shadows):
            raise ValueError(
                f"EMA decays differ: saved {sorted(state)}, this run keeps {sorted(self.shadows)}"
            )
        for key, shadow in self.shadows.items():
            saved = state[key]
            if list(saved) != self.names:
                raise ValueError(f"EMA {key} was saved for different parameters than this model has")
            for tensor, name in zip(shadow, self.names, strict=True):
                _load_into(tensor, saved[name])


def _full(tensor: Tensor) -> Tensor:
    """A plain (unsharded) copy of a tensor or FSDP2 DTensor, detached on its device."""
    full_tensor = getattr(tensor, "full_tensor", None)
    return (full_tensor() if full_tensor else tensor).detach().clone()


def _load_into(target: Tensor, full: Tensor) -> None:
    """Copy a full tensor into ``target``, taking this rank's shard when ``target`` is an FSDP2 DTensor."""
    if hasattr(target, "device_mesh"):
        from torch.distributed.tensor import distribute_tensor

        full = distribute_tensor(full.to(target.device), target.device_mesh, target.placements)
    target.copy_(full)
