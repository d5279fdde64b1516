"""``jitlib export``: any model :func:`jitlib.artifact.load` reads, written as one self-contained artifact folder."""

from __future__ import annotations

import argparse
import sys

from jitlib.artifact import DTYPES, load
from jitlib.cli.options import Command, add_emas, add_source

HELP = """\
Write a model as an artifact folder: config.json (architecture, diffusion recipe, sampler defaults, EMA choice,
class names, provenance), one safetensors file per weight variant, SHA256SUMS. `jitlib sample OUT` then gives the
same images as `jitlib sample SOURCE` (bit-identical when the dtype is kept).

examples:
  jitlib export runs/tiny-digits exported/tiny-digits                 # every EMA and the raw weights
  jitlib export runs/jit-b16 exported/jit-b16 --ema 0.9999 --dtype bfloat16
  jitlib export jit-b16-256.pth exported/official-b16                  # an official JiT checkpoint
"""


def run(args: argparse.Namespace) -> int:
    """Load SOURCE, write OUT (a new folder)."""
    artifact = load(args.source)
    out = artifact.save_pretrained(args.out, variants=args.ema, dtype=args.dtype)
    print(
        f"{artifact.source} → {out} ({', '.join(artifact.card.variants if not args.ema else args.ema)})",
        file=sys.stderr,
    )
    return 0


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``jitlib export``."""
    add_source(parser)
    parser.add_argument("out", help="new folder to write")
    add_emas(parser, None, "the ones to keep (default: all)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="storage dtype (default: as loaded)")


COMMAND = Command(
    "export",
    "write any model as a self-contained artifact folder (config.json + safetensors + SHA256SUMS)",
    HELP,
    add_options,
    run,
)
