"""``jitlib models``: the model presets, and the networks of the paper's ablation tables, with their cost."""

from __future__ import annotations

import argparse

from jitlib.cli.options import Command
from jitlib.nn.registry import models_table, paper_rows_table


def run_models(args: argparse.Namespace) -> int:
    """Print the preset table (filtered) and, unless ``--presets-only``, the paper's ablation rows."""
    print(models_table(args.filter))
    if not args.presets_only:
        print()
        print(paper_rows_table())
    return 0


def add_options(parser: argparse.ArgumentParser) -> None:
    """``jitlib models [--filter TEXT] [--presets-only]``."""
    parser.add_argument(
        "--filter", default="", metavar="TEXT", help="only names containing TEXT, e.g. 'B/' or 'tiny'"
    )
    parser.add_argument(
        "--presets-only", action="store_true", help="omit the table of the paper's ablation networks"
    )


COMMAND = Command(
    "models",
    "list the model presets and the paper's ablation networks with parameters and GFLOPs",
    f"{models_table.__doc__} Then: {paper_rows_table.__doc__}",
    add_options,
    run_models,
    argparse.HelpFormatter,
)
# Registers ``jitlib models`` on an argparse sub-parsers object.
add_models_parser = COMMAND.register
