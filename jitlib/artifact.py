"""One model artifact and one loader: everything needed to reproduce a model's samples, in one folder.

``load(source)`` reads any of the five places a model can be — an artifact folder (below), a training run folder, a
training checkpoint file, the name of a shipped asset (``"digits-small"``) or an official JiT ``.pth`` — into an
:class:`Artifact`; ``artifact.pipeline(ema, device)`` is the network ready to sample with the noise scale, target,
``t_eps`` and sampler defaults stored with it; ``artifact.save_pretrained(folder)`` writes the folder format::

    config.json    the :class:`ModelCard`: format_version, architecture (JiTConfig, patch size an integer field),
                   diffusion recipe (target, loss space, time distribution, t_eps, noise scale), sampler defaults
                   (method, steps, CFG scale and interval), the weight variants and the default one, class names,
                   provenance (data set, steps, command, the training config, what the run measured)
    model.safetensors, ema-<decay>.safetensors     one file per weight variant ("model" = raw weights)
    SHA256SUMS     every file's SHA-256 (``sha256sum -c``); verified before anything is read

The EMA rule lives here once (:func:`choose_variant`): an explicit choice must exist; no choice takes the card's
``default_ema``, which a training run sets to its ``sample.ema`` or else its slowest decay (the official choice).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.interpolation import default_noise_scale
from jitlib.evaluation.generate import Pipeline
from jitlib.integrity import SUMS_FILE, sha256, verify, write_sums
from jitlib.nn.model import JiT, JiTConfig
from jitlib.nn.registry import get_config
from jitlib.nn.weights import check_state_dict, read_official_checkpoint
from jitlib.training.checkpoint import FORMAT, LAST, load_checkpoint, save_checkpoint
from jitlib.training.config import (
    Config,
    DiffusionConfig,
    SampleConfig,
    build_section,
    default_ema,
    from_dict,
    validate,
)
from jitlib.training.ema import decay_key

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
RAW = "model"  # the variant name of the raw (non-averaged) weights, as in `jitlib sample --ema model`
ASSET_DIR = Path(__file__).parent / "assets"
STORAGE_DTYPE = torch.float16  # the shipped assets' dtype (loaded back as float32)
OFFICIAL_VARIANTS = {"ema1": "model_ema1", "ema2": "model_ema2", RAW: "model"}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def variant_file(variant: str) -> str:
    """File name of a weight variant: ``model.safetensors`` (raw) or ``ema-<decay>.safetensors``."""
    return f"{RAW}.safetensors" if variant == RAW else f"ema-{decay_key(float(variant))}.safetensors"


def choose_variant(variants: list[str], ema: str | float | None, default: str, source: str = "model") -> str:
    """The weight variant to use: ``ema`` (a decay, "model", or an official "ema1"/"ema2") or, when None, ``default``."""
    if ema is None:
        return default
    key = str(ema)
    if key not in variants:
        try:
            key = decay_key(float(key))
        except ValueError:
            pass
    if key not in variants:
        raise ValueError(f"--ema {str(ema)!r}: {source} keeps {', '.join(variants)}")
    return key


# ---------------------------------------------------------------------------------------------------------------
# The card: config.json
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provenance:
    """Where the weights come from: data set, training steps, the command, the training config, measurements and
    the code version (:func:`jitlib.shipped.code_version`; ``{}`` on cards written before it was recorded)."""

    dataset: str = ""
    steps: int = 0
    command: str = ""
    training_config: dict[str, Any] = field(
        default_factory=dict
    )  # Config.to_dict() of the run; {} if unknown
    measured: dict[str, Any] = field(default_factory=dict)  # e.g. seconds, final_loss, torch version
    code: dict[str, Any] = field(default_factory=dict)  # commit, dirty, changed; or commit None and a reason

    @property
    def code_summary(self) -> str:
        """The code version in one phrase: the commit (and whether jitlib/ had uncommitted changes), or why not."""
        if not self.code:
            return "code version not recorded"
        if not self.code.get("commit"):
            return f"code version unknown ({self.code.get('reason') or 'no reason recorded'})"
        dirty = " with uncommitted changes to jitlib/" if self.code.get("dirty") else ""
        return f"commit {str(self.code['commit'])[:12]}{dirty}"


@dataclass(frozen=True)
class ModelCard:
    """Everything that decides a model's samples besides its weights: the schema of ``config.json``."""

    model_name: str
    architecture: JiTConfig
    diffusion: DiffusionConfig
    sampler: SampleConfig
    variants: tuple[str, ...]
    default_ema: str
    class_names: tuple[str, ...]
    provenance: Provenance = field(default_factory=Provenance)
    dtype: str = "float32"  # how the weight files store the tensors (loaded back as float32)
    format_version: int = FORMAT_VERSION

    @property
    def image_size(self) -> int:
        return self.architecture.input_size

    @property
    def channels(self) -> int:
        return self.architecture.in_channels

    def to_json(self) -> str:
        """The card as the text of ``config.json`` (format_version first)."""
        record = asdict(self)
        record = {"format_version": record.pop("format_version"), **record}
        return json.dumps(record, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = CONFIG_FILE) -> ModelCard:
        """Parse ``config.json``; an unknown ``format_version``, key or value is a one-line ValueError naming it."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{source} is not valid JSON ({err})") from None
        if not isinstance(raw, dict) or "format_version" not in raw:
            raise ValueError(
                f"{source} has no format_version: not a jitlib model artifact (write one with `jitlib export`)"
            )
        if raw["format_version"] != FORMAT_VERSION:
            raise ValueError(
                f"{source} has format_version {raw['format_version']!r}; this jitlib reads format_version "
                f"{FORMAT_VERSION} (upgrade jitlib, or re-export the model with this version)"
            )
        card = build_section(cls, raw, "", source)
        if card.default_ema not in card.variants:
            raise ValueError(
                f"{source}: default_ema {card.default_ema!r} is not one of {list(card.variants)}"
            )
        if card.diffusion.noise_scale is None:
            raise ValueError(
                f"{source}: diffusion.noise_scale is null; an artifact stores the scale it samples with"
            )
        if card.dtype not in DTYPES:
            raise ValueError(f"{source}: dtype {card.dtype!r} is not valid; valid: {', '.join(DTYPES)}")
        try:  # the ranges of recipe and sampler values are checked where every config is checked
            validate(Config(diffusion=card.diffusion, sample=replace(card.sampler, ema=None)))
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None
        return card


# ---------------------------------------------------------------------------------------------------------------
# The artifact in memory
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Artifact:
    """A model ready to sample: its card and a reader of each weight variant (float32 state dicts)."""

    card: ModelCard
    read_weights: Callable[[str], dict[str, Tensor]]
    source: str  # where it was read from, as shown in messages
    name: str  # a short name: the shipped model's, the folder's or the file's
    folder: Path | None = None  # the artifact folder it was read from, if any

    @property
    def variants(self) -> list[str]:
        return list(self.card.variants)

    @property
    def training_config(self) -> Config:
        """The config of the run that trained the weights (its data set, optimizer, …); ValueError if unknown."""
        if not self.card.provenance.training_config:
            raise ValueError(f"{self.source} does not record the jitlib training config that made it")
        return from_dict(self.card.provenance.training_config)

    def variant(self, ema: str | float | None = None) -> str:
        """The variant ``ema`` names (a decay, "model"), or the card's default when None (:func:`choose_variant`)."""
        return choose_variant(self.variants, ema, self.card.default_ema, self.source)

    def state_dict(self, ema: str | float | None = None) -> dict[str, Tensor]:
        """The float32 state dict of one variant."""
        return {key: value.float() for key, value in self.read_weights(self.variant(ema)).items()}

    def net(self, ema: str | float | None = None, device: torch.device | str = "cpu") -> JiT:
        """The network with the weights of ``ema``, in eval mode on ``device``; mismatched weights: one line."""
        variant = self.variant(ema)
        with torch.device("meta"):
            net = JiT(self.card.architecture)
        state = self.state_dict(variant)
        check_state_dict(net, state, f"{self.source} [{variant}]")
        net.to_empty(device=device)  # the RoPE tables are recomputed on materialisation
        net.load_state_dict(state)
        return net.eval()

    def denoiser(self, ema: str | float | None = None, device: torch.device | str = "cpu") -> Denoiser:
        """The denoiser of the card's recipe (target, t_eps, pre-conditioner): the callable (z, t, y) → x̂, ε̂, v̂."""
        return self.pipeline(ema, device).denoiser()

    def pipeline(self, ema: str | float | None = None, device: torch.device | str = "cpu") -> Pipeline:
        """The network of ``ema`` with the card's diffusion recipe (noise scale, target, t_eps, pre-conditioner),
        sampler defaults and class names."""
        variant = self.variant(ema)
        chosen = "raw weights" if variant == RAW else f"EMA {variant}"
        return Pipeline(
            self.net(variant, device),
            self.card.diffusion,
            defaults=self.card.sampler,
            description=f"{self.source} [{chosen}]",
            class_names=self.card.class_names,
        )

    def save_pretrained(
        self,
        folder: str | Path,
        *,
        variants: list[str] | tuple[str, ...] | None = None,
        dtype: str | None = None,
    ) -> Path:
        """Write the artifact folder (config.json, one safetensors file per variant, SHA256SUMS) to a new ``folder``.

        ``variants`` (default: all) must include the default one unless it is the only change; ``dtype`` (default:
        the card's) is how tensors are stored. An existing non-empty folder is refused, never overwritten.
        """
        folder = Path(folder)
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise ValueError(f"{str(folder)!r} already exists and is not an empty folder; choose a new one")
        keep = [self.variant(v) for v in variants] if variants else self.variants
        dtype = dtype or self.card.dtype
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} is not valid; valid: {', '.join(DTYPES)}")
        default = self.card.default_ema if self.card.default_ema in keep else keep[-1]
        card = replace(self.card, variants=tuple(keep), default_ema=default, dtype=dtype)
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for variant in keep:
            tensors = {k: v.to(DTYPES[dtype]).contiguous() for k, v in self.state_dict(variant).items()}
            # one metadata entry: safetensors writes a map's entries in a random order, and the same weights
            # must give the same bytes (SHA256SUMS, retraining checks)
            save_file(tensors, folder / variant_file(variant), metadata={"jitlib_variant": variant})
            names.append(variant_file(variant))
        (folder / CONFIG_FILE).write_text(card.to_json())
        write_sums(folder, [*names, CONFIG_FILE])
        return folder

    def to_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write the variants as a jitlib training checkpoint (no optimizer state), e.g. a run folder's
        ``checkpoint-last.pt``; default path ``$JITLIB_CACHE/pretrained/<name>-<sha>.pt`` (kept once written)."""
        from jitlib.evaluation.metrics import cache_dir

        if RAW not in self.variants or not self.card.provenance.training_config:
            raise ValueError(
                f"{self.source} has no raw weights or training config; a training checkpoint needs both"
            )
        if path is None:
            tag = sha256(self.folder / SUMS_FILE)[:12] if self.folder else "unsaved"
            path = cache_dir() / "pretrained" / f"{self.name}-{tag}.pt"
            if path.is_file():
                return path
        raw = self.state_dict(RAW)
        with torch.device("meta"):  # only the names of the trainable parameters (what an EMA averages)
            names = [n for n, p in JiT(self.card.architecture).named_parameters() if p.requires_grad]
        emas = {v: {n: self.state_dict(v)[n] for n in names} for v in self.variants if v != RAW}
        arch = asdict(self.card.architecture)
        base = asdict(get_config(self.card.model_name))
        state = {
            "config": self.card.provenance.training_config,
            "model_name": self.card.model_name,
            "model_kwargs": {k: v for k, v in arch.items() if v != base[k]},
            "model": raw,
            "ema": emas,
            "step": self.card.provenance.steps,
            "class_names": list(self.card.class_names),
        }
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return save_checkpoint(state, path)


# ---------------------------------------------------------------------------------------------------------------
# The one loader
# ---------------------------------------------------------------------------------------------------------------


def load(source: str | Path) -> Artifact:
    """The model at ``source``: an artifact folder, a run folder, a checkpoint file, a shipped model's name
    (:mod:`jitlib.shipped`) or an official .pth."""
    path = Path(source)
    if not path.exists():
        from jitlib import shipped

        if str(source) in shipped.RECIPES:
            return shipped.load_or_train(str(source), progress=False)
        if str(source) in shipped.EXPORTED:
            return shipped.load_exported(str(source))
        raise FileNotFoundError(
            f"{str(source)!r} does not exist; give a run folder, a checkpoint file, an artifact folder, "
            f"an official .pth, or a shipped model ({', '.join(shipped.SHIPPED)})"
        )
    if path.is_dir() and (path / CONFIG_FILE).is_file() and not (path / LAST).exists():
        return _from_folder(path)
    if path.is_dir() or _is_jitlib_checkpoint(path):
        return _from_checkpoint(path)
    return _from_official(path)


def _from_folder(folder: Path) -> Artifact:
    card = ModelCard.from_json((folder / CONFIG_FILE).read_text(), str(folder / CONFIG_FILE))
    verify(folder)

    def read(variant: str) -> dict[str, Tensor]:
        return load_file(folder / variant_file(variant))

    return Artifact(card, read, str(folder), folder.name, folder)


def _from_checkpoint(path: Path) -> Artifact:
    state = load_checkpoint(path)
    config = from_dict(state["config"])
    arch = get_config(state["model_name"], **state["model_kwargs"])
    variants = [RAW, *sorted(state["ema"], key=float)]
    card = ModelCard(
        model_name=state["model_name"],
        architecture=arch,
        diffusion=config.diffusion,
        sampler=config.sample,
        variants=tuple(variants),
        default_ema=decay_key(default_ema(config)),
        class_names=tuple(state.get("class_names") or _class_names(config.data.name, arch.num_classes)),
        provenance=Provenance(
            dataset=config.data.name,
            steps=int(state["step"]),
            command=" ".join(["jitlib", "train", *state.get("argv", [])]) if state.get("argv") else "",
            training_config=state["config"],
            code=state.get("code") or {},
        ),
    )

    def read(variant: str) -> dict[str, Tensor]:
        return state["model"] if variant == RAW else {**state["model"], **state["ema"][variant]}

    name = path.name if path.is_dir() else path.stem
    return Artifact(card, read, f"{path} (step {state['step']})", name)


def _from_official(path: Path) -> Artifact:
    try:
        checkpoint = read_official_checkpoint(path)
    except (ValueError, FileNotFoundError):
        raise
    except Exception as err:  # torch reports unreadable files with assorted exception types
        reason = str(err).splitlines()[0]
        raise ValueError(
            f"cannot read {str(path)!r}: not a jitlib or an official JiT checkpoint ({reason})"
        ) from None
    entries = {k: v for k, v in OFFICIAL_VARIANTS.items() if isinstance(checkpoint, dict) and v in checkpoint}
    args = checkpoint.get("args") if isinstance(checkpoint, dict) else None
    if not entries or args is None or not hasattr(args, "model"):
        raise ValueError(
            f"{str(path)!r} is neither a jitlib checkpoint nor an official JiT checkpoint (args, model_ema1)"
        )
    run = vars(args)
    from_run = {"input_size": run.get("img_size"), "num_classes": run.get("class_num")}
    from_run |= {"attn_drop": run.get("attn_dropout"), "proj_drop": run.get("proj_dropout")}
    arch = get_config(run["model"], **{k: v for k, v in from_run.items() if v is not None})
    defaults = DiffusionConfig()
    diffusion = DiffusionConfig(
        t_mu=run.get("P_mean", defaults.t_mu),
        t_sigma=run.get("P_std", defaults.t_sigma),
        noise_scale=run.get("noise_scale", default_noise_scale(arch.input_size)),
        t_eps=run.get("t_eps", defaults.t_eps),
        label_drop=run.get("label_drop_prob", defaults.label_drop),
    )
    sampler = SampleConfig(
        method=run.get("sampling_method", "heun"),
        steps=run.get("num_sampling_steps", 50),
        cfg_scale=float(run.get("cfg_scale", 1.0)),
        cfg_interval=(float(run.get("interval_min", 0.0)), float(run.get("interval_max", 1.0))),
    )
    card = ModelCard(
        model_name=run["model"],
        architecture=arch,
        diffusion=diffusion,
        sampler=sampler,
        variants=tuple(entries),
        default_ema="ema1" if "ema1" in entries else next(iter(entries)),
        class_names=_class_names("imagenet", arch.num_classes),
        provenance=Provenance(
            dataset="imagenet", steps=int(checkpoint.get("epoch", 0)), command=f"official {path}"
        ),
    )

    def read(variant: str) -> dict[str, Tensor]:
        prefix = "net."
        return {k[len(prefix) :]: v for k, v in checkpoint[entries[variant]].items() if k.startswith(prefix)}

    return Artifact(card, read, str(path), path.stem)


def _is_jitlib_checkpoint(path: Path) -> bool:
    try:
        return torch.load(path, map_location="meta", weights_only=True, mmap=True).get("format") == FORMAT
    except Exception:  # not a jitlib file: the official reader reports what it is
        return False


def _class_names(dataset: str, num_classes: int) -> list[str]:
    """Class names a data set implies (digits, shapes, CIFAR-10), else the class ids as strings."""
    from jitlib.training.data import CIFAR10_CLASSES, SHAPE_CLASSES

    known = {"shapes": SHAPE_CLASSES, "cifar10": CIFAR10_CLASSES}.get(dataset)
    return list(known) if known and len(known) == num_classes else [str(i) for i in range(num_classes)]


# ---------------------------------------------------------------------------------------------------------------
# The shipped models live in jitlib.shipped, which imports this module; their names stay importable from here
# ---------------------------------------------------------------------------------------------------------------


def __getattr__(name: str) -> Any:
    """``from jitlib.artifact import load_or_train`` (and the other names of :mod:`jitlib.shipped`) still works."""
    if not name.startswith("__"):  # the names are jitlib.shipped.__all__: listed once, there
        from jitlib import shipped

        if name in shipped.__all__:
            return getattr(shipped, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "RAW",
    "Artifact",
    "ModelCard",
    "Provenance",
    "choose_variant",
    "load",
]
