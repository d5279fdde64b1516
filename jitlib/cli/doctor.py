"""``jitlib doctor``: which device, precision and tier a run would use here; changes nothing."""

from __future__ import annotations

import argparse

from jitlib.device import doctor


def run(args: argparse.Namespace) -> int:
    """Print the report."""
    doctor(print_report=True)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``jitlib doctor`` (``func`` runs it)."""
    parser = subparsers.add_parser("doctor", help="report device, precision and tier; changes nothing")
    parser.set_defaults(func=run)
    return parser
