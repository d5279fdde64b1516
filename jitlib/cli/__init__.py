"""The ``jitlib`` command: one entry point, one module per sub-command (``jitlib --help`` lists them).

Each module of :mod:`jitlib.cli` registers its sub-command, with the options several commands share spelt once in
:mod:`jitlib.cli.options`; user errors end with one line on stderr naming the bad value and what is valid, and exit
status 2 — no traceback, and no file the command did not create is touched.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Sequence

from jitlib import __version__
from jitlib.cli import bench, doctor, export, models, sample, toy, train
from jitlib.cli import eval as evaluate

COMMANDS = (doctor, models, train, sample, export, evaluate, toy, bench)  # each declares its COMMAND

USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (argparse prints the usage first, which is not an error line)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser: each sub-command as the module that implements it declares it (its ``COMMAND``)."""
    parser = _Parser(
        prog="jitlib",
        description="JiT — pixel-space diffusion with x-prediction: models, toy experiments, training, sampling, evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"jitlib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMANDS:
        module.COMMAND.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status; errors in user input end with one line on stderr and 2.

    An option is checked while the command line is parsed (:mod:`jitlib.cli.options`): a bad one returns 2 here too,
    as ``--help`` and ``--version`` return 0, instead of leaving through ``SystemExit``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as err:
        message = " ".join(str(err).split("\n"))
        print(f"jitlib {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
