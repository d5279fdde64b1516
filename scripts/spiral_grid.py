"""Regenerate data/results/spiral_grid.json: the paper's toy (§3.3, Fig. 2) for D ∈ {2, 8, 16, 512} × {x, ε, v}.

Every cell trains jitlib.book.toy.ToyMLP with the default ToyConfig (8,000 Adam steps, batch 256, v-loss, uniform t) and
measures its samples (chapter 4 loads the file). About 1–3 CPU-minutes per cell on one thread; the whole grid about
half an hour on a quiet 2-core machine. Usage:

    python scripts/spiral_grid.py [--threads 1] [--out data/results/spiral_grid.json]
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import torch

from jitlib.book.toy import PAPER_DIMS, ToyConfig, claim_ratios, run_grid, save_grid
from jitlib.diffusion.targets import TARGETS

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "data" / "results" / "spiral_grid.json"


def main() -> None:
    """Run the full grid with the default recipe and write it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy machine)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    grid = run_grid(PAPER_DIMS, TARGETS, ToyConfig(), log=functools.partial(print, flush=True))
    grid["wall_seconds"] = round(time.perf_counter() - start)
    save_grid(grid, args.out)
    print(
        f"reference SW1 {grid['reference_sw1']:.4g} ± {grid['reference_sw1_std']:.2g}; ratios {claim_ratios(grid)}"
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB) in {grid['wall_seconds']} s")


if __name__ == "__main__":
    main()
