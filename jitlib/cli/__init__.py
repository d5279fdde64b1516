"""The ``jitlib`` command: one entry point, one sub-command per job (``jitlib --help`` lists them)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jitlib import __version__
from jitlib.book.toy import add_toy_parser
from jitlib.cli.bench import add_bench_parser
from jitlib.device import doctor
from jitlib.evaluation.generate import add_sample_parser
from jitlib.evaluation.metrics import add_eval_parser
from jitlib.nn.registry import add_models_parser
from jitlib.training.trainer import add_train_parser


def _add_doctor_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="report device, precision and tier; changes nothing")
    p.set_defaults(func=_run_doctor)


def _run_doctor(args: argparse.Namespace) -> int:
    doctor(print_report=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; each sub-command is registered by the module that implements it."""
    parser = argparse.ArgumentParser(
        prog="jitlib",
        description="JiT — pixel-space diffusion with x-prediction: models, toy experiments, training, sampling, evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"jitlib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_doctor_parser(sub)
    add_models_parser(sub)
    add_train_parser(sub)
    add_sample_parser(sub)
    add_eval_parser(sub)
    add_toy_parser(sub)
    add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; errors in user input end with one line on stderr and exit status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as err:
        print(f"jitlib {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
