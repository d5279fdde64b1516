"""The shape of every ``jitlib`` command, and the options several share, spelt once.

Each command module declares itself as one :class:`Command` (name, summary, description, options, run). Every
command that reads a model, picks its weights, runs on a device or samples registers those options with the functions
here, so each option has one spelling, one help text and one check everywhere. Values are checked while the command
line is parsed — before any file is read or written — and a bad one ends in one line that names the option and the
value (``argument --steps: expected a positive integer, got 0``). The device is resolved then too, by
:func:`jitlib.device.resolve_device`: ``args.device`` is a :class:`torch.device` that exists on this machine.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from jitlib.device import VALID_DEVICES, resolve_device

SOURCE_HELP = (
    "run folder, checkpoint file, artifact folder (jitlib export), shipped model name or official JiT .pth"
)
T = TypeVar("T")
EMA_HELP = "an EMA decay the model keeps (e.g. 0.9999) or 'model' (the raw weights)"


@dataclass(frozen=True)
class Command:
    """A sub-command, declared once by the module that implements it: name, one-line ``summary`` (``jitlib
    --help``), ``description`` (``jitlib NAME --help``, examples kept as written), its options and what runs it."""

    name: str
    summary: str
    description: str | None
    add_options: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    formatter: type[argparse.HelpFormatter] = argparse.RawDescriptionHelpFormatter

    def register(self, subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
        """Add the sub-command to ``subparsers`` (``args.func`` runs it); returns its parser."""
        parser = subparsers.add_parser(
            self.name, help=self.summary, description=self.description, formatter_class=self.formatter
        )
        self.add_options(parser)
        parser.set_defaults(func=self.run)
        return parser


# --- value checks (argparse types): the message names the value, argparse prefixes the option ---------------------


def _checked(text: str, convert: Callable[[str], T], ok: Callable[[T], bool], wanted: str) -> T:
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {wanted}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer ≥ 1 (counts: images, steps, batch sizes, threads)."""
    return _checked(text, int, lambda value: value >= 1, "a positive integer")


def guidance_scale(text: str) -> float:
    """A classifier-free guidance scale ω ≥ 0 (1 = no guidance); nan is refused."""
    return _checked(text, float, lambda value: value >= 0, "a number >= 0 (1 = no guidance)")


def device(text: str) -> torch.device:
    """The device ``text`` names, resolved and checked to exist here (:func:`jitlib.device.resolve_device`)."""
    try:
        return resolve_device(text, key=None)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# --- option groups ---------------------------------------------------------------------------------------------


def add_source(parser: argparse.ArgumentParser, also: str = "") -> None:
    """The positional ``source``: any model :func:`jitlib.load` reads (``also``: what else the command takes)."""
    parser.add_argument("source", help=SOURCE_HELP + (f", or {also}" if also else ""))


def add_ema(parser: argparse.ArgumentParser) -> None:
    """``--ema DECAY``: the weights to use; default: the variant the model stores as its default."""
    parser.add_argument("--ema", metavar="DECAY", help=f"{EMA_HELP}; default: the one stored with the model")


def add_emas(parser: argparse.ArgumentParser, default: list[str] | None, all_means: str) -> None:
    """``--ema DECAY [DECAY ...]``: several weight variants; ``all_means`` says what no ``--ema`` (or 'all') takes."""
    help = f"weight variants, each {EMA_HELP}; {all_means}"
    parser.add_argument("--ema", nargs="+", metavar="DECAY", default=default, help=help)


def add_device(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--device``, resolved while parsing (``args.device`` is a :class:`torch.device`)."""
    parser.add_argument(
        "--device",
        type=device,
        default=default,
        help=f"where to run: {VALID_DEVICES}; auto = the first GPU if any, else the CPU (default: %(default)s)",
    )


def add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: torch's intra-op CPU threads (apply with :func:`apply_threads`)."""
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch intra-op CPU threads; unset = torch's choice",
    )


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's thread count when ``--threads`` was given."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)


def add_cfg_scale(
    parser: argparse.ArgumentParser, default: float | list[float] | None = None, several: bool = False
) -> None:
    """``--cfg-scale`` (alias ``--cfg``, as in the official code): one guidance scale, or several to try."""
    values = default if isinstance(default, list) else [default]
    shown = "the model's" if default is None else " ".join(f"{v:g}" for v in values)
    parser.add_argument(
        "--cfg-scale",
        "--cfg",
        type=guidance_scale,
        nargs="+" if several else None,
        default=default,
        metavar="SCALE",
        help=f"classifier-free guidance scale{'s to try' if several else ''}, >= 0; 1 = no guidance "
        f"(default: {shown})",
    )


def add_sampler_options(parser: argparse.ArgumentParser, batch_size: int, *, sweep: bool = False) -> None:
    """The sampling options of ``sample``, ``eval fid`` and ``eval sweep``: weights, steps, guidance, seed, batch
    size and device. ``sweep``: several EMAs (default all) and several guidance scales (default 1)."""
    if sweep:
        add_emas(parser, ["all"], "or 'all': every EMA it keeps (default)")
        add_cfg_scale(parser, [1.0], several=True)
    else:
        add_ema(parser)
        add_cfg_scale(parser)
        add_compile(parser)
    parser.add_argument("--steps", type=positive_int, help="sampler steps (default: the model's)")
    parser.add_argument(
        "--seed", type=int, default=0, help="noise seed: image i draws its noise from (seed, i) (default 0)"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=batch_size,
        help=f"images generated at once (default {batch_size})",
    )
    add_device(parser)


def add_compile(parser: argparse.ArgumentParser) -> None:
    """``--compile auto|on|off`` and ``--cuda-graphs``: how the network runs while sampling (see ``Pipeline``)."""
    parser.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="torch.compile the network at one batch shape: auto = on CUDA only (default auto)",
    )
    parser.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="with compiling on CUDA: capture each network call in a CUDA graph (small batches gain most)",
    )


def pipeline_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``Pipeline`` fields :func:`add_compile` stands for, for ``dataclasses.replace(pipe, **...)``."""
    return {"compile": {"on": True, "off": False}.get(args.compile, "auto"), "cuda_graphs": args.cuda_graphs}


def from_args(cls: type[T], args: argparse.Namespace, **given: Any) -> T:
    """Dataclass ``cls`` with every field that ``args`` has an option of the same name for, plus ``given``."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**(values | given))


def sampler_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments :func:`add_sampler_options` stands for (seed, steps, batch size), for generate()."""
    return {"seed": args.seed, "steps": args.steps, "batch_size": args.batch_size}
