"""``jitlib models``: the model presets, and the networks of the paper's ablation tables, with their cost."""

from __future__ import annotations

import argparse

from jitlib.nn.registry import models_table, paper_rows_table


def run_models(args: argparse.Namespace) -> int:
    """Print the preset table (filtered) and, unless ``--presets-only``, the paper's ablation rows."""
    print(models_table(args.filter))
    if not args.presets_only:
        print()
        print(paper_rows_table())
    return 0


def add_models_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``jitlib models [--filter TEXT] [--presets-only]`` on an argparse sub-parsers object."""
    parser = subparsers.add_parser(
        "models",
        help="list the model presets and the paper's ablation networks with parameters and GFLOPs",
        description=f"{models_table.__doc__} Then: {paper_rows_table.__doc__}",
    )
    parser.add_argument(
        "--filter", default="", metavar="TEXT", help="only names containing TEXT, e.g. 'B/' or 'tiny'"
    )
    parser.add_argument(
        "--presets-only", action="store_true", help="omit the table of the paper's ablation networks"
    )
    parser.set_defaults(func=run_models)
    return parser
