"""The models shipped with ``jitlib`` (``jitlib.load("digits-small")``, ``"photos-small"``): how each is made and
the switch that loads a shipped model or trains it when its files are missing.

A model trained here (:data:`RECIPES`, a complete training config) is trained by :func:`train_checkpoint`, which
records in the card's provenance the command, the config, what the run measured (seconds, final loss, torch
version and threads) and the code it ran (:func:`code_version`: the git commit of the jitlib source tree and
whether jitlib/ had uncommitted changes). A model exported from an experiment's run (:data:`EXPORTED`) names the
command that exports it. The shipped files live in ``jitlib/assets/<name>``
(``jitlib.artifact.ASSET_DIR``).
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

import jitlib.artifact as _artifact  # ASSET_DIR is read at call time: tests point it at another folder
from jitlib.artifact import RAW, Artifact, _from_folder, load
from jitlib.integrity import is_complete
from jitlib.training.checkpoint import code_version
from jitlib.training.config import Config, apply_overrides, from_dict


@dataclass(frozen=True)
class Recipe:
    """How a shipped model is made: a complete training config (no preset, so later preset edits cannot change
    it) and ``keep``, the weight variants shipped."""

    config: dict[str, Any]
    keep: tuple[str, ...]  # "model" and/or EMA decay keys, e.g. ("model", "0.995", "0.998")


RECIPES: dict[str, Recipe] = {
    "digits-small": Recipe(
        config={
            # 0.74M parameters (hidden 96): three float16 copies of the weights stay under 5 MB.
            "model": {"name": "JiT-tiny/8", "arch": {"hidden_size": 96}},
            "data": {
                "name": "digits",
                "image_size": 32,
                "flip": False,
                "num_workers": 0,
                "pin_memory": False,
            },
            "diffusion": {
                "pred": "x",
                "loss": "v",
                "t_dist": "logit_normal",
                "t_mu": -0.8,
                "t_sigma": 0.8,
                "noise_scale": 1.0,
                "t_eps": 0.05,
                "label_drop": 0.1,
            },
            "optim": {
                "lr": 1.0e-3,
                "betas": [0.9, 0.95],
                "weight_decay": 0.0,
                "warmup_epochs": 2,
                "schedule": "cosine",
                "min_lr": 1.0e-4,
            },
            "train": {
                "batch_size": 64,
                "epochs": 30,
                "steps": 1400,  # 50 epochs of the 1,797 digits
                "ema_decays": [0.99, 0.995, 0.998],
                "precision": "auto",  # fp32 on a CPU, where the shipped weights were trained
                "seed": 0,
                "ckpt_every": 200,
                "log_every": 10,
                "progress": False,
            },
            "sample": {"method": "heun", "steps": 50, "cfg_scale": 2.0, "cfg_interval": [0.1, 1.0]},
        },
        keep=(RAW, "0.995", "0.998"),
    ),
}


# Shipped models that are not trained by a recipe here but exported from an experiment's run, with the commands that
# make them (they need the experiment's kept checkpoints, so a missing folder is an error, not a reason to train).
EXPORTED: dict[str, str] = {
    "photos-small": (
        "python scripts/photo_grid.py --keep runs/photo-grid && "
        "python scripts/photo_artifact.py --keep runs/photo-grid"
    ),
}
SHIPPED: tuple[str, ...] = (*RECIPES, *EXPORTED)  # every name load() accepts


def load_exported(name: str) -> Artifact:
    """Shipped model ``name`` of :data:`EXPORTED` from its folder (SHA-256 verified); a one-line error naming the
    command that makes it when the folder is missing."""
    if name not in EXPORTED:
        raise ValueError(f"unknown exported model {name!r}; valid: {', '.join(EXPORTED)}")
    folder = _artifact.ASSET_DIR / name
    if not is_complete(folder):
        raise FileNotFoundError(
            f"shipped model {name!r} is missing from {folder}; make it with: {EXPORTED[name]}"
        )
    return _from_folder(folder)


def _recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown shipped model {name!r}; valid: {', '.join(RECIPES)}")
    return RECIPES[name]


def recipe_config(name: str, output_dir: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> Config:
    """The training config of shipped model ``name`` with ``overrides`` (``section.key=value``), writing to ``output_dir``."""
    values = apply_overrides(_recipe(name).config, [*overrides, f"train.output_dir={output_dir}"])
    return from_dict(values)


def train_checkpoint(
    name: str, out_dir: str | Path, *, overrides: tuple[str, ...] | list[str] = (), progress: bool = True
) -> Path:
    """Train shipped model ``name`` from its recipe with the jitlib Trainer and save it as a float16 artifact.

    The run's own files (training checkpoint, logs) go to a temporary folder; ``overrides`` (e.g.
    ``["train.steps=2"]`` in tests) change the recipe. The card's provenance records the command, the config, what
    the run measured (seconds, final loss, torch version and threads) and :func:`code_version` as training began.
    """
    from jitlib.training.trainer import Trainer

    recipe = _recipe(name)
    code = code_version()  # before training: the code the run starts from
    with tempfile.TemporaryDirectory(prefix=f"jitlib-{name}-") as run_dir:
        trainer = Trainer(recipe_config(name, run_dir, overrides))

        def report(info: Any) -> None:
            if progress and (info.step % 100 == 0 or info.step == info.total_steps):
                print(f"{name}: step {info.step}/{info.total_steps}, loss {info.loss:.4f}", file=sys.stderr)

        result = trainer.fit(callback=report)
        tail = result.losses[-min(50, len(result.losses)) :]
        artifact = load(result.checkpoint)
        measured = {
            "seconds": round(result.elapsed, 1),
            "final_loss": sum(tail) / len(tail),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }
        command = f"python scripts/train_small_checkpoint.py --name {name}" + "".join(
            f" --override {item}" for item in overrides
        )
        provenance = replace(artifact.card.provenance, command=command, measured=measured, code=code)
        provenance.training_config["train"]["output_dir"] = f"runs/{name}"  # the temporary folder is gone
        artifact.card = replace(artifact.card, provenance=provenance)
        return artifact.save_pretrained(out_dir, variants=recipe.keep, dtype="float16")


def load_or_train(
    name: str = "digits-small",
    train: bool = False,
    *,
    cache: str | Path | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    progress: bool = True,
) -> Artifact:
    """Shipped model ``name``: its files (SHA-256 verified), or — when ``train`` or when they are missing — freshly
    trained with :func:`train_checkpoint` into ``cache/<name>`` (default ``$JITLIB_CACHE/pretrained``).

    A corrupt shipped file is an error (ValueError naming it), not a reason to retrain silently.
    """
    from jitlib.evaluation.metrics import cache_dir

    _recipe(name)
    trained = (Path(cache) if cache is not None else cache_dir() / "pretrained") / name
    if not train:
        for folder in (_artifact.ASSET_DIR / name, trained):
            if is_complete(folder):
                return _from_folder(folder)
        if progress:
            print(
                f"{name}: no shipped or cached model found; training it (minutes on a CPU)", file=sys.stderr
            )
    if trained.exists():
        import shutil

        shutil.rmtree(trained)  # an incomplete cache folder of jitlib's own making
    train_checkpoint(name, trained, overrides=overrides, progress=progress)
    return _from_folder(trained)


__all__ = [
    "EXPORTED",
    "RECIPES",
    "SHIPPED",
    "Recipe",
    "load_exported",
    "load_or_train",
    "recipe_config",
    "train_checkpoint",
]
