"""Small pretrained checkpoints shipped inside jitlib, verified by SHA-256 before loading, retrained on demand.

``load_or_train("digits-small")`` returns a tiny class-conditional JiT trained on the digits (x-prediction, v-loss,
32 px) so that the sampling and measuring chapters start instantly. Every file is checked against the folder's
``SHA256SUMS`` first: a corrupt or edited file is refused with a one-line error naming it, never loaded.
``train=True`` — or a missing file — retrains with :func:`train_checkpoint`, the very function
``scripts/train_small_checkpoint.py`` ran to make the shipped files, into ``$JITLIB_CACHE/pretrained/<name>``.

A shipped folder holds one ``ema-<decay>.safetensors`` per EMA decay and ``model.safetensors`` (the raw weights),
stored as float16 to keep the package small (loaded back as float32), ``config.json`` (the network's JiTConfig,
the training recipe, what the run measured) and ``SHA256SUMS`` (the format of ``sha256sum -c``).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from jitlib.diffusion.denoiser import Denoiser
from jitlib.evaluation.generate import Pipeline
from jitlib.evaluation.metrics import cache_dir
from jitlib.integrity import SUMS_FILE, is_complete, sha256, verify, write_sums
from jitlib.nn.model import JiT, JiTConfig
from jitlib.nn.registry import get_config
from jitlib.nn.weights import check_state_dict
from jitlib.training.checkpoint import load_checkpoint, save_checkpoint
from jitlib.training.config import Config, apply_overrides, from_dict
from jitlib.training.ema import decay_key

ASSET_DIR = Path(__file__).parent / "assets"
CONFIG_FILE = "config.json"
RAW = "model"  # the variant name of the raw (non-averaged) weights, as in `jitlib sample --ema model`
STORAGE_DTYPE = torch.float16


@dataclass(frozen=True)
class Recipe:
    """How a shipped checkpoint is made: a complete training config (no preset, so later preset edits cannot change
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
            "sample": {"method": "heun", "steps": 50, "cfg": 2.0, "cfg_interval": [0.1, 1.0]},
        },
        keep=(RAW, "0.995", "0.998"),
    ),
}


def _recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown pretrained checkpoint {name!r}; valid: {', '.join(RECIPES)}")
    return RECIPES[name]


def recipe_config(name: str, output_dir: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> Config:
    """The training config of checkpoint ``name`` with ``overrides`` (``section.key=value``), writing to ``output_dir``."""
    values = apply_overrides(_recipe(name).config, [*overrides, f"train.output_dir={output_dir}"])
    return from_dict(values)


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------


def variant_file(variant: str) -> str:
    """File name of a weight variant: ``model.safetensors`` (raw) or ``ema-<decay>.safetensors``."""
    return f"{RAW}.safetensors" if variant == RAW else f"ema-{decay_key(float(variant))}.safetensors"


@dataclass
class Pretrained:
    """A verified checkpoint folder: its network config, training recipe and weight variants (raw, EMAs)."""

    name: str
    folder: Path
    model_config: JiTConfig
    config: Config  # the training recipe (train.output_dir is not meaningful here)
    variants: list[str]  # "model" and EMA decay keys, e.g. ["model", "0.995", "0.998"]
    model_name: str = ""  # registry name and create_model arguments: how jitlib's tools rebuild the network
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # what the run measured: steps, seconds, final loss

    @property
    def default_variant(self) -> str:
        """The recipe's ``sample.ema`` if it was shipped, else the slowest EMA shipped, else the raw weights."""
        wanted = self.config.sample.ema
        if wanted is not None and decay_key(wanted) in self.variants:
            return decay_key(wanted)
        emas = [v for v in self.variants if v != RAW]
        return max(emas, key=float) if emas else RAW

    def _variant(self, ema: str | float | None) -> str:
        if ema is None:
            return self.default_variant
        key = RAW if ema == RAW else decay_key(float(ema))
        if key not in self.variants:
            raise ValueError(f"ema={ema!r}: {self.name} ships {', '.join(self.variants)}")
        return key

    def state_dict(self, ema: str | float | None = None) -> dict[str, Tensor]:
        """The float32 state dict of one variant: ``ema`` a decay, "model" (raw), or None (the default)."""
        path = self.folder / variant_file(self._variant(ema))
        return {key: value.float() for key, value in load_file(path).items()}

    def net(self, ema: str | float | None = None, device: torch.device | str = "cpu") -> JiT:
        """The network with the weights of ``ema`` (see :meth:`state_dict`), in eval mode on ``device``."""
        with torch.device("meta"):
            net = JiT(self.model_config)
        state = self.state_dict(ema)
        check_state_dict(net, state, str(self.folder / variant_file(self._variant(ema))))
        net.to_empty(device=device)  # the RoPE tables are recomputed on materialisation
        net.load_state_dict(state)
        return net.eval()

    def denoiser(self, ema: str | float | None = None, device: torch.device | str = "cpu") -> Denoiser:
        """``Denoiser(net, target, t_eps)`` of the recipe: the callable (z, t, y) → x̂, ε̂, v̂ that samplers use."""
        d = self.config.diffusion
        return Denoiser(self.net(ema, device), target=d.pred, t_eps=d.t_eps)

    def generator(self, ema: str | float | None = None, device: torch.device | str = "cpu") -> Pipeline:
        """A :class:`jitlib.evaluation.generate.Generator` (network, noise scale, target, the recipe's sampler defaults)."""
        d, variant = self.config.diffusion, self._variant(ema)
        return Pipeline(
            self.net(ema, device),
            noise_scale=d.noise_scale,
            pred=d.pred,
            t_eps=d.t_eps,
            defaults=self.config.sample,
            description=f"{self.name} [{'raw weights' if variant == RAW else 'EMA ' + variant}]",
        )

    def to_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write the variants as a jitlib training checkpoint (no optimizer state), for ``jitlib.evaluation.metrics.sweep``,
        ``jitlib sample`` and ``jitlib eval``; default path ``$JITLIB_CACHE/pretrained/<name>-<sha>.pt``."""
        if RAW not in self.variants:
            raise ValueError(f"{self.name} ships no raw weights; a training checkpoint needs them")
        tag = sha256(self.folder / SUMS_FILE)[:12]
        path = Path(path) if path is not None else cache_dir() / "pretrained" / f"{self.name}-{tag}.pt"
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = self.state_dict(RAW)
        with torch.device("meta"):  # only the names of the trainable parameters (what an EMA averages)
            names = [n for n, p in JiT(self.model_config).named_parameters() if p.requires_grad]
        emas = {v: {n: self.state_dict(v)[n] for n in names} for v in self.variants if v != RAW}
        state = {
            "config": self.config.to_dict(),
            "model_name": self.model_name,
            "model_kwargs": self.model_kwargs,
            "model": raw,
            "ema": emas,
            "step": int(self.info.get("steps", 0)),
        }
        return save_checkpoint(state, path)


def load(folder: str | Path, name: str | None = None) -> Pretrained:
    """Verify ``folder`` against its SHA256SUMS, then read its config (weights are read when a network is built)."""
    folder = Path(folder)
    verify(folder)
    raw = json.loads((folder / CONFIG_FILE).read_text())
    variants = list(raw["variants"])
    for variant in variants:
        if not (folder / variant_file(variant)).is_file():
            raise FileNotFoundError(
                f"{folder / variant_file(variant)} not found: the checkpoint folder is incomplete"
            )
    return Pretrained(
        name=name or folder.name,
        folder=folder,
        model_config=JiTConfig(**raw["model"]),
        config=from_dict(raw["recipe"]),
        variants=variants,
        model_name=raw["model_name"],
        model_kwargs=raw["model_kwargs"],
        info=raw.get("info", {}),
    )


# ---------------------------------------------------------------------------------------------------------------
# Training (what scripts/train_small_checkpoint.py runs) and the load-or-train switch
# ---------------------------------------------------------------------------------------------------------------


def export(checkpoint: str | Path, out_dir: str | Path, keep: tuple[str, ...], info: dict[str, Any]) -> Path:
    """Write a training checkpoint's weight variants ``keep`` (float16), config.json and SHA256SUMS to ``out_dir``."""
    state = load_checkpoint(checkpoint)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for variant in keep:
        if variant != RAW and variant not in state["ema"]:
            raise ValueError(
                f"{checkpoint} keeps EMA decays {', '.join(state['ema'])}; cannot ship {variant!r}"
            )
        weights = state["model"] if variant == RAW else {**state["model"], **state["ema"][variant]}
        tensors = {k: v.to(STORAGE_DTYPE).contiguous() for k, v in weights.items()}
        save_file(
            tensors, out_dir / variant_file(variant), metadata={"library": "jitlib", "variant": variant}
        )
        files.append(variant_file(variant))
    recipe = state["config"]
    recipe["train"]["output_dir"] = (
        "runs/" + out_dir.name
    )  # where it was trained does not describe the weights
    record = {
        "model": asdict(get_config(state["model_name"], **state["model_kwargs"])),
        "model_name": state["model_name"],
        "model_kwargs": state["model_kwargs"],
        "recipe": recipe,
        "variants": list(keep),
        "storage_dtype": str(STORAGE_DTYPE).removeprefix("torch."),
        "info": info,
    }
    (out_dir / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")
    write_sums(out_dir, [*files, CONFIG_FILE])
    return out_dir


def train_checkpoint(
    name: str, out_dir: str | Path, *, overrides: tuple[str, ...] | list[str] = (), progress: bool = True
) -> Path:
    """Train checkpoint ``name`` from its recipe with the jitlib Trainer and export it to ``out_dir``.

    The run's own files (training checkpoint, logs) go to a temporary folder; ``overrides`` (e.g.
    ``["train.steps=2"]`` in tests) change the recipe.
    """
    from jitlib.training.trainer import Trainer

    recipe = _recipe(name)
    with tempfile.TemporaryDirectory(prefix=f"jitlib-{name}-") as run_dir:
        config = recipe_config(name, run_dir, overrides)
        trainer = Trainer(config)

        def report(info: Any) -> None:
            if progress and (info.step % 100 == 0 or info.step == info.total_steps):
                print(f"{name}: step {info.step}/{info.total_steps}, loss {info.loss:.4f}", file=sys.stderr)

        result = trainer.fit(callback=report)
        tail = result.losses[-min(50, len(result.losses)) :]
        info = {
            "steps": result.step,
            "seconds": round(result.elapsed, 1),
            "final_loss": sum(tail) / len(tail),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }
        return export(result.checkpoint, out_dir, recipe.keep, info)


def load_or_train(
    name: str = "digits-small",
    train: bool = False,
    *,
    cache: str | Path | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    progress: bool = True,
) -> Pretrained:
    """The checkpoint ``name``: the shipped files (SHA-256 verified), or — when ``train`` or when they are missing —
    freshly trained with :func:`train_checkpoint` into ``cache/<name>`` (default ``$JITLIB_CACHE/pretrained``).

    A corrupt shipped file is an error (ValueError naming it), not a reason to retrain silently.
    """
    _recipe(name)
    trained = Path(cache) if cache is not None else cache_dir() / "pretrained"
    trained = trained / name
    if not train:
        for folder in (ASSET_DIR / name, trained):
            if is_complete(folder):
                return load(folder, name)
        if progress:
            print(
                f"{name}: no shipped or cached checkpoint found; training it (minutes on a CPU)",
                file=sys.stderr,
            )
    train_checkpoint(name, trained, overrides=overrides, progress=progress)
    return load(trained, name)
