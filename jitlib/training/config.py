"""Typed run configurations: YAML presets plus dotted ``key=value`` overrides, validated once at the edge.

A run is described by one :class:`Config` made of six small sections (model, data, diffusion, optim, train, sample).
Presets in ``jitlib/presets/*.yaml`` are plain data — the paper's recipes (Tab. 9) and tiny CPU recipes — and every key
can be overridden on the command line, e.g. ``train.batch_size=256`` or ``optim.betas=[0.9,0.99]``. Anything that
does not fit the schema (an unknown key, a wrong type, an impossible value) raises a one-line ``ValueError`` naming
the key and what would be valid.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from jitlib.device import check_device_name
from jitlib.diffusion.interpolation import default_noise_scale

PRESET_DIR = Path(__file__).parents[1] / "presets"
PredTarget = Literal["x", "eps", "v"]


@dataclass
class ModelConfig:
    """Which network: a registry name (``create_model``) plus architecture overrides, e.g. ``{depth: 4}``."""

    name: str = "JiT-B/16"
    arch: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None  # None: as many as the data set has; 0: unconditional


@dataclass
class DataConfig:
    """Which images: ``digits`` / ``shapes`` (offline, tiny), ``photos`` (crops of packaged photos), ``cifar10`` (downloaded once) or any ImageNet-style ``folder``."""

    name: Literal["digits", "shapes", "cifar10", "photos", "folder"] = "folder"
    root: str = "data"  # folder: the ImageNet-style tree; cifar10: where the archive is kept
    image_size: int = 256
    flip: bool = True  # random horizontal flip (the paper's only augmentation)
    num_images: int = 10000  # size of the procedural ``shapes`` set
    download: bool = False  # ``cifar10``: fetch the archive when it is missing
    num_workers: int = 4
    pin_memory: bool = True


@dataclass
class DiffusionConfig:
    """What is learnt (Tab. 1 cell: prediction × loss space) and how t and ε are drawn (App. A)."""

    pred: PredTarget = "x"
    loss: PredTarget = "v"
    t_dist: Literal["logit_normal", "uniform"] = "logit_normal"
    t_mu: float = -0.8
    t_sigma: float = 0.8
    noise_scale: float | None = None  # s; None: image_size / 256 (App. A), filled in when the Config is built
    t_eps: float = 0.05
    label_drop: float = 0.1  # probability of replacing y by the null id (CFG)
    precond: Literal["none", "linear", "edm"] = "none"  # Tab. 10 pre-conditioners of x-prediction (off)
    aux_cls_weight: float = 0.0  # Tab. 11 λ of the classification loss (needs model.arch.aux_cls_block > 0)


@dataclass
class OptimConfig:
    """AdamW and its learning-rate schedule: lr = blr × global batch / 256, linear warmup, then constant or cosine."""

    blr: float = 5e-5
    lr: float | None = None  # absolute learning rate; overrides blr when set
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    warmup_epochs: float = 5.0
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr: float = 0.0
    grad_clip: float | None = None  # max global gradient norm; None = no clipping (paper)


@dataclass
class TrainConfig:
    """Length, batch, EMA, precision, checkpointing and logging of one run."""

    batch_size: int = 1024  # global batch over all processes
    epochs: float = 600.0
    steps: int | None = None  # overrides epochs when set
    ema_decays: list[float] = field(default_factory=lambda: [0.9999, 0.9998, 0.9996])
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: bool | Literal["auto"] = "auto"  # auto: torch.compile on CUDA, eager on CPU
    strategy: Literal["ddp", "fsdp"] = "ddp"
    device: str = "auto"
    seed: int = 0
    output_dir: str = "runs/jit"
    ckpt_every: int = 1000  # steps between checkpoints (one is always written at the end)
    keep_every: int = 0  # also keep checkpoint-<step>.pt every this many steps; 0 = only the latest
    log_every: int = 50
    progress: bool = True


@dataclass
class SampleConfig:
    """Default sampler for this recipe (Tab. 9: 50-step Heun, CFG interval [0.1, 1])."""

    method: Literal["heun", "euler"] = "heun"
    steps: int = 50
    cfg_scale: float = 1.0
    cfg_interval: tuple[float, float] = (0.1, 1.0)
    last_step: Literal["euler", "x"] = "euler"
    ema: float | None = None  # EMA decay to sample with; None = the slowest one kept (the official choice)


@dataclass
class Config:
    """A complete run: everything ``jitlib train`` needs, and what a checkpoint records about how it was made."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def __post_init__(self) -> None:
        if self.diffusion.noise_scale is None:  # App. A: s = image_size / 256 unless set
            self.diffusion.noise_scale = default_noise_scale(self.data.image_size)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists for tuples) — what YAML files and checkpoints store."""
        return _plain(dataclasses.asdict(self))

    def patch_size(self) -> int | None:
        """The patch size p from ``model.arch.patch_size`` or the ``/p`` suffix of the model name (None if neither)."""
        if "patch_size" in self.model.arch:
            return int(self.model.arch["patch_size"])
        tail = self.model.name.rsplit("/", 1)
        return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


# Keys that may differ between a checkpoint and the run resuming it: they do not change the trajectory of the weights.
RESUMABLE_KEYS = frozenset(
    {
        "data.root",
        "data.num_workers",
        "data.pin_memory",
        "data.download",
        "train.epochs",
        "train.steps",
        "train.output_dir",
        "train.ckpt_every",
        "train.keep_every",
        "train.log_every",
        "train.progress",
        "train.device",
        "train.compile",
        "train.strategy",  # DDP and FSDP compute the same steps
    }
    | {f"sample.{f.name}" for f in dataclasses.fields(SampleConfig)}
)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin in (list, tuple):
        args = typing.get_args(hint)
        fixed = origin is tuple and args[-1] is not Ellipsis
        return f"a list of {_type_name(args[0])}" + (f" (length {len(args)})" if fixed else "")
    if origin is dict:
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


def coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` converted to the annotated type ``hint`` (int, float, bool, str, Literal, Optional, list, tuple, dict).

    Numbers written as strings (YAML reads ``1e-4`` as a string) become floats; anything else that does not fit
    raises a one-line ValueError naming ``key``, the expected type and the value given.
    """
    origin = typing.get_origin(hint)
    fail = ValueError(f"{key}: expected {_type_name(hint)}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in (o for o in options if o is not type(None)):
            try:
                return coerce(value, option, key)
            except ValueError:
                continue
        raise fail
    if origin is Literal:
        if value in typing.get_args(hint):
            return value
        raise fail
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise fail
        args = typing.get_args(hint)
        if origin is tuple and args[-1] is Ellipsis:
            return tuple(coerce(v, args[0], key) for v in value)
        if origin is tuple:
            if len(value) != len(args):
                raise fail
            return tuple(coerce(v, a, key) for v, a in zip(value, args, strict=True))
        return [coerce(v, args[0], key) for v in value]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise fail
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise fail
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise fail
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise fail from None
        raise fail
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise fail
    raise TypeError(f"{key}: unsupported annotation {hint!r}")


def _unknown_key(key: str, valid: list[str]) -> ValueError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], [v.rsplit(".", 1)[-1] for v in valid], n=1)
    hint = f" (did you mean {key.rsplit('.', 1)[0] + '.' if '.' in key else ''}{close[0]}?)" if close else ""
    return ValueError(f"unknown config key {key!r}{hint}; valid keys here: {', '.join(valid)}")


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [f"{prefix}{n}" for n in required if n not in values]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in names:
            raise _unknown_key(full, [f"{prefix}{n}" for n in names])
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ValueError(f"{full}: expected a section (mapping), got {value!r}")
            kwargs[key] = _build(hint, value, f"{full}.")
        else:
            kwargs[key] = coerce(value, hint, full)
    return cls(**kwargs)


def build_section(cls: type, values: Any, prefix: str = "", source: str = "") -> Any:
    """A dataclass ``cls`` from a nested mapping, each value coerced to its annotation; errors are one line naming
    the key (and ``source``, e.g. the file it came from)."""
    try:
        if not isinstance(values, dict):
            raise ValueError(f"expected a mapping, got {type(values).__name__}")
        return _build(cls, values, prefix)
    except ValueError as err:
        raise ValueError(f"{source}: {err}" if source else str(err)) from None


def default_ema(config: Config) -> float:
    """The EMA decay sampled when none is asked for: ``sample.ema`` if set, else the slowest decay kept (official)."""
    return config.sample.ema if config.sample.ema is not None else max(config.train.ema_decays)


def from_dict(values: dict[str, Any]) -> Config:
    """A validated :class:`Config` from a nested dict (a parsed YAML file or a checkpoint's record)."""
    if not isinstance(values, dict):
        raise ValueError(f"a config must be a mapping of sections, got {type(values).__name__}")
    config = _build(Config, values, "")
    validate(config)
    return config


def runs_the_same(stored: dict[str, Any], current: Config, device: str) -> bool:
    """Whether a config recorded by an older jitlib (``stored``) trains the same as ``current`` on ``device``.

    Fields added since take their defaults, which reproduce the old behaviour (pre-conditioner none, no auxiliary
    loss), and ``train.compile`` is compared as it resolves on ``device`` (``"auto"`` is eager off CUDA).
    """
    from jitlib.training.compiling import resolve_compile

    old, new = from_dict(stored).to_dict(), current.to_dict()
    for config in (old, new):
        config["train"]["compile"] = resolve_compile(config["train"]["compile"], device)
    return old == new


def list_presets() -> list[str]:
    """Names of the presets shipped in ``jitlib/presets`` (use them as ``jitlib train NAME``)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def read_yaml(preset: str) -> dict[str, Any]:
    """The raw mapping of a preset name (``tiny-digits``) or of a path to a YAML file."""
    path = Path(preset)
    if not path.suffix:
        path = PRESET_DIR / f"{preset}.yaml"
        if not path.exists():
            raise ValueError(
                f"unknown preset {preset!r}; valid: {', '.join(list_presets())} (or a path to a .yaml file)"
            )
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file; a config is a YAML mapping of sections") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(
            f"{path} holds {type(values).__name__} {str(values)[:40]!r}, not a mapping of sections "
            f"(model:, data:, diffusion:, optim:, train:, sample:)"
        )
    return values


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"train.batch_size=256"`` → (["train", "batch_size"], 256); the value is read as YAML (numbers, lists, null)."""
    key, sep, raw = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ValueError(f"override {item!r} must look like section.key=value, e.g. train.batch_size=256")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of the nested mapping ``values`` with each ``a.b.c=value`` override set (sections created as needed)."""
    out = _plain(values)
    for item in overrides:
        path, value = parse_override(item)
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"override {item!r}: {part!r} is a value, not a section")
            node = child
        node[path[-1]] = value
    return out


def load_config(preset: str | None = None, overrides: list[str] | None = None) -> Config:
    """The validated config of a preset (name or YAML path; None = the class defaults) with dotted overrides applied."""
    values = read_yaml(preset) if preset else {}
    return from_dict(apply_overrides(values, list(overrides or [])))


def validate(config: Config) -> None:
    """Check the values that types alone cannot: ranges, divisibility, consistency between sections."""
    d, t, o, s, m = config.diffusion, config.train, config.optim, config.sample, config.data
    checks: list[tuple[bool, str]] = [
        (m.image_size > 0, f"data.image_size={m.image_size} must be > 0"),
        (m.num_images > 0, f"data.num_images={m.num_images} must be > 0"),
        (m.num_workers >= 0, f"data.num_workers={m.num_workers} must be >= 0"),
        (
            config.model.num_classes is None or config.model.num_classes >= 0,
            f"model.num_classes={config.model.num_classes} must be >= 0 (0: unconditional; null: from the data set)",
        ),
        (0 <= d.label_drop < 1, f"diffusion.label_drop={d.label_drop} must lie in [0, 1)"),
        (d.t_sigma > 0, f"diffusion.t_sigma={d.t_sigma} must be > 0"),
        (d.noise_scale > 0, f"diffusion.noise_scale={d.noise_scale} must be > 0 (paper: image_size / 256)"),
        (0 <= d.t_eps < 0.5, f"diffusion.t_eps={d.t_eps} must lie in [0, 0.5) (paper: 0.05)"),
        (d.aux_cls_weight >= 0, f"diffusion.aux_cls_weight={d.aux_cls_weight} must be >= 0 (0: off)"),
        (
            d.precond == "none" or d.pred == "x",
            f"diffusion.precond={d.precond} pre-conditions x-prediction only; set diffusion.pred=x",
        ),
        (o.blr > 0, f"optim.blr={o.blr} must be > 0"),
        (o.lr is None or o.lr > 0, f"optim.lr={o.lr} must be > 0 (or null: blr × batch / 256)"),
        (all(0 <= b < 1 for b in o.betas), f"optim.betas={list(o.betas)} must lie in [0, 1)"),
        (o.weight_decay >= 0, f"optim.weight_decay={o.weight_decay} must be >= 0"),
        (o.warmup_epochs >= 0, f"optim.warmup_epochs={o.warmup_epochs} must be >= 0"),
        (o.min_lr >= 0, f"optim.min_lr={o.min_lr} must be >= 0"),
        (o.grad_clip is None or o.grad_clip > 0, f"optim.grad_clip={o.grad_clip} must be > 0 (or null: off)"),
        (t.batch_size > 0, f"train.batch_size={t.batch_size} must be > 0"),
        (t.epochs > 0, f"train.epochs={t.epochs} must be > 0"),
        (t.steps is None or t.steps > 0, f"train.steps={t.steps} must be > 0 (or null: use train.epochs)"),
        (
            len(t.ema_decays) > 0 and all(0 < e < 1 for e in t.ema_decays),
            f"train.ema_decays={t.ema_decays} must be a non-empty list of numbers in (0, 1)",
        ),
        (len(set(t.ema_decays)) == len(t.ema_decays), f"train.ema_decays={t.ema_decays} has duplicates"),
        (t.seed >= 0, f"train.seed={t.seed} must be >= 0"),
        (t.ckpt_every > 0, f"train.ckpt_every={t.ckpt_every} must be > 0"),
        (t.keep_every >= 0, f"train.keep_every={t.keep_every} must be >= 0"),
        (t.log_every > 0, f"train.log_every={t.log_every} must be > 0"),
        (s.steps > 0, f"sample.steps={s.steps} must be > 0"),
        (
            s.ema is None or s.ema in t.ema_decays,
            f"sample.ema={s.ema} is not one of train.ema_decays={t.ema_decays}",
        ),
        (s.cfg_scale >= 0, f"sample.cfg_scale={s.cfg_scale} must be >= 0 (1 = no guidance)"),
        (
            0 <= s.cfg_interval[0] <= s.cfg_interval[1] <= 1,
            f"sample.cfg_interval={list(s.cfg_interval)} must be [low, high] with 0 <= low <= high <= 1",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    check_device_name(t.device, "train.device")
    patch = config.patch_size()
    if patch is not None and m.image_size % patch:
        raise ValueError(
            f"data.image_size={m.image_size} is not divisible by the patch size {patch} of {config.model.name}; "
            f"use a multiple of {patch}"
        )


def config_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Every dotted key whose value differs between two nested config mappings, as (key, old, new)."""
    out: list[tuple[str, Any, Any]] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, f"{prefix}{key}.")
        elif _plain(a) != _plain(b):
            out.append((f"{prefix}{key}", a, b))
    return out


def to_yaml(config: Config) -> str:
    """The config as YAML text (what ``--print-config`` shows and what a run folder keeps)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
