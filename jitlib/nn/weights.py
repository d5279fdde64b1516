"""JiT weights: checking a state dict against a network, and reading official ``LTH14/JiT`` checkpoints.

jitlib's own on-disk format is the model artifact of :mod:`jitlib.artifact` (``Artifact.save_pretrained`` and
``jitlib.load``); this module holds what that loader and the training checkpoints share. jitlib's parameter names
are the official `LTH14/JiT` ones, so the only mapping from an official checkpoint is stripping the Denoiser's
`net.` prefix (`official_to_jitlib`, the one place that knows the official layout). Nothing is ever unpickled
beyond tensors and plain data (`torch.load(weights_only=True)`).
"""

from __future__ import annotations

import argparse
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from jitlib.nn.model import JiT, JiTConfig
from jitlib.nn.registry import get_config

OFFICIAL_PREFIX = "net."
OFFICIAL_ENTRIES = {"ema1": "model_ema1", "ema2": "model_ema2", "model": "model"}


SWITCHES = ("bottleneck_dim", "in_context_len", "qk_norm", "mlp", "norm")


def switches_of(state_dict: dict[str, Tensor]) -> dict[str, Any]:
    """The architecture switches a state dict reveals by its keys and shapes (RoPE has no weights: not among them)."""
    found: dict[str, Any] = {}
    if "x_embedder.proj1.weight" in state_dict:
        found["bottleneck_dim"] = state_dict["x_embedder.proj1.weight"].shape[0]
    elif "x_embedder.proj.weight" in state_dict:
        found["bottleneck_dim"] = None
    posemb = state_dict.get("in_context_posemb")
    found["in_context_len"] = 0 if posemb is None else posemb.shape[1]
    if any(key.startswith("blocks.0.") for key in state_dict):
        found["qk_norm"] = "blocks.0.attn.q_norm.weight" in state_dict
        found["mlp"] = "gelu" if "blocks.0.mlp.fc1.weight" in state_dict else "swiglu"
        found["norm"] = "layer" if "blocks.0.norm1.bias" in state_dict else "rms"
    return found


def check_state_dict(model: JiT, state_dict: dict[str, Tensor], source: str) -> None:
    """Raise a one-line ValueError naming the first architecture switch, else key, whose presence or shape differs."""
    for name, value in switches_of(state_dict).items():
        wanted = getattr(model.config, name)
        if value != wanted:
            raise ValueError(
                f"{source} holds a network with {name}={value!r} but the model has {name}={wanted!r}; "
                f"build the model with {name}={value!r} (run config: model.arch.{name})"
            )
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state_dict:
            raise ValueError(f"{source} lacks key {key!r} (shape {tuple(tensor.shape)} in the model)")
        if state_dict[key].shape != tensor.shape:
            raise ValueError(
                f"{source} does not match the model: key {key!r} has shape {tuple(state_dict[key].shape)} "
                f"in the checkpoint but {tuple(tensor.shape)} in the model"
            )
    extra = [key for key in state_dict if key not in expected]
    if extra:
        raise ValueError(f"{source} has key {extra[0]!r} that the model lacks (another architecture?)")


def _materialise(
    config: JiTConfig, state_dict: dict[str, Tensor], source: str, device: torch.device | str | None
) -> JiT:
    """A JiT built from `config` on `device` holding exactly `state_dict` (no wasted random initialisation)."""
    with torch.device("meta"):
        model = JiT(config)
    check_state_dict(model, state_dict, source)
    model.to_empty(device=device if device is not None else torch.get_default_device())
    model.load_state_dict(state_dict)
    return model


def official_to_jitlib(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official Denoiser state dict → jitlib JiT state dict: keep the `net.*` entries and strip the prefix."""
    net = {
        key[len(OFFICIAL_PREFIX) :]: value
        for key, value in state_dict.items()
        if key.startswith(OFFICIAL_PREFIX)
    }
    if not net:
        first = next(iter(state_dict), None)
        raise ValueError(
            f"no key starts with {OFFICIAL_PREFIX!r} (first key: {first!r}); not an official JiT Denoiser"
        )
    return net


def read_official_checkpoint(path: str | Path) -> dict:
    """torch.load(path, weights_only=True), allowing only the argparse.Namespace that holds the run's arguments."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"official checkpoint {path} not found (the official trainer writes checkpoint-last.pth)"
        )
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = found.group(1) if found else "an object that is not plain tensor data"
        raise ValueError(
            f"{path} holds {what}; refusing to unpickle it (torch.load weights_only=True)"
        ) from None


def load_official(
    path: str | Path,
    *,
    ema: str = "ema1",
    name: str | None = None,
    device: torch.device | str | None = None,
    **overrides,
) -> JiT:
    """A jitlib JiT that reproduces the official network in checkpoint `path` (to ~5e-7 in float32; not under bf16 autocast).

    `ema` picks the weights: "ema1" (decay 0.9999, the one the official code evaluates), "ema2" (0.9996)
    or "model" (raw). The architecture is the preset `name` (default: the checkpoint's `args.model`) at the
    checkpoint's image size, class count and dropout, with `overrides` applied last.
    """
    if ema not in OFFICIAL_ENTRIES:
        raise ValueError(f"ema={ema!r} is not one of {', '.join(OFFICIAL_ENTRIES)}")
    checkpoint = read_official_checkpoint(path)
    entry = OFFICIAL_ENTRIES[ema]
    if not isinstance(checkpoint, dict) or entry not in checkpoint:
        found = list(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"{path} has no {entry!r} entry (found {found}); is it an official JiT checkpoint?")
    run = vars(checkpoint["args"]) if isinstance(checkpoint.get("args"), argparse.Namespace) else {}
    name = name or run.get("model")
    if name is None:
        raise ValueError(
            f"{path} does not record its model (no args.model); pass name=, e.g. name='JiT-B/16'"
        )
    from_run = {
        "input_size": run.get("img_size"),
        "num_classes": run.get("class_num"),
        "attn_drop": run.get("attn_dropout"),
        "proj_drop": run.get("proj_dropout"),
    }
    config = get_config(name, **{**{k: v for k, v in from_run.items() if v is not None}, **overrides})
    return _materialise(config, official_to_jitlib(checkpoint[entry]), f"{path} [{entry}]", device)
