"""Regenerate a checkpoint shipped in jitlib/assets (default: digits-small) with jitlib.shipped.train_checkpoint (an artifact folder).

    python scripts/train_small_checkpoint.py                      # minutes on 1 CPU thread; rewrites the assets
    python scripts/train_small_checkpoint.py --out /tmp/ds --override train.steps=20   # a quick dry run elsewhere

The same function trains the checkpoint when ``jitlib.shipped.load_or_train(name, train=True)`` is called or the
shipped files are missing. One thread is the default: on a shared 2-core machine a second thread made each step
several times slower (threads spinning against other processes), and fp32 CPU results do not depend on it.
The card records the git commit of the jitlib tree it trained from and whether jitlib/ (assets aside) had
uncommitted changes (``provenance.code``): retrain shipped files from a clean, committed tree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from jitlib.artifact import ASSET_DIR, load
from jitlib.integrity import SUMS_FILE, verify
from jitlib.shipped import RECIPES, train_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--name", default="digits-small", choices=sorted(RECIPES), help="which checkpoint")
    parser.add_argument(
        "--out", type=Path, help="output folder (default: jitlib/assets/NAME, the shipped files)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change the recipe (not for shipping)",
    )
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads={args.threads} must be >= 1")
    torch.set_num_threads(args.threads)
    out = train_checkpoint(args.name, args.out or ASSET_DIR / args.name, overrides=args.override)
    verify(out)
    print((out / SUMS_FILE).read_text(), end="")
    print(f"wrote {out} ({load(out).card.provenance.code_summary})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
