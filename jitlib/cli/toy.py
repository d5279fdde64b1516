"""``jitlib toy``: the paper's spiral-in-D toy (:mod:`jitlib.book.toy`) for chosen dimensions and targets."""

from __future__ import annotations

import argparse
from pathlib import Path

from jitlib.book.toy import PAPER_DIMS, ToyConfig, run_grid, save_grid
from jitlib.cli.options import Command, add_device, add_threads, apply_threads, from_args, positive_int
from jitlib.diffusion.interpolation import TIME_DISTRIBUTIONS
from jitlib.diffusion.targets import TARGETS

HELP = (
    "Train a 5-layer ReLU MLP on a 2-D spiral embedded in R^D for each (D, target) and report the in-plane sliced "
    "W1 distance and the off-manifold error of its samples. The defaults are the recipe of the stored grid "
    "(chapter 4); one cell, e.g. `jitlib toy --dims 512 --targets eps --threads 1`, takes about two CPU-minutes."
)


def run(args: argparse.Namespace) -> int:
    """Run :func:`~jitlib.book.toy.run_grid` from parsed ``jitlib toy`` arguments."""
    apply_threads(args)
    config = from_args(ToyConfig, args, n_keep=min(ToyConfig.n_keep, args.n_samples))
    grid = run_grid(args.dims, args.targets, config, device=args.device)
    print(
        f"reference SW1 (fresh data in place of samples, {config.n_samples} points): "
        f"{grid['reference_sw1']:.4g} ± {grid['reference_sw1_std']:.2g}"
    )
    if args.out is not None:
        save_grid(grid, args.out)
        print(f"wrote {args.out}")
    return 0


def add_options(p: argparse.ArgumentParser) -> None:
    """The options of ``jitlib toy``: the :class:`~jitlib.book.toy.ToyConfig` fields, dimensions and targets."""
    defaults = ToyConfig()
    p.add_argument(
        "--dims", type=positive_int, nargs="+", default=list(PAPER_DIMS), help="ambient dimensions D"
    )
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS, help="prediction targets")
    p.add_argument("--steps", type=positive_int, default=defaults.steps, help="Adam steps per cell")
    p.add_argument(
        "--batch-size", type=positive_int, default=defaults.batch_size, help="spiral points per step"
    )
    p.add_argument("--lr", type=float, default=defaults.lr, help="Adam learning rate, decayed by a cosine")
    p.add_argument(
        "--loss-target", default=defaults.loss_target, choices=TARGETS, help="loss space (paper: v)"
    )
    p.add_argument("--t-dist", default=defaults.t_dist, choices=TIME_DISTRIBUTIONS, help="training t")
    p.add_argument(
        "--samples",
        dest="n_samples",
        metavar="N",
        type=positive_int,
        default=defaults.n_samples,
        help="samples per cell for the measures",
    )
    p.add_argument(
        "--sample-sets",
        dest="n_sample_sets",
        metavar="N",
        type=positive_int,
        default=defaults.n_sample_sets,
        help="noise draws averaged",
    )
    p.add_argument(
        "--sample-steps", type=positive_int, default=defaults.sample_steps, help="Heun steps when sampling"
    )
    p.add_argument(
        "--seed", type=int, default=defaults.seed, help="seeds P, the data, the weights and the noise"
    )
    add_threads(p)
    add_device(p, default="cpu")
    p.add_argument("--out", type=Path, default=None, help="write the grid as JSON here")


COMMAND = Command(
    "toy",
    "the paper's toy: a 2-D spiral in D dimensions, x/eps/v-prediction (prints both measures per cell)",
    HELP,
    add_options,
    run,
    argparse.ArgumentDefaultsHelpFormatter,
)
