"""``jitlib doctor``: which device, precision and tier a run would use here; changes nothing."""

from __future__ import annotations

import argparse

from jitlib.cli.options import Command
from jitlib.device import doctor


def run(args: argparse.Namespace) -> int:
    """Print the report."""
    doctor(print_report=True)
    return 0


def add_options(parser: argparse.ArgumentParser) -> None:
    """``jitlib doctor`` has no options."""


COMMAND = Command("doctor", "report device, precision and tier; changes nothing", None, add_options, run)
