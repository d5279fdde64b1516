"""``jitlib sample``: images from any model :func:`jitlib.artifact.load` reads, to a grid, an .npz, PNGs or shards."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from jitlib.artifact import load
from jitlib.cli.options import (
    Command,
    add_sampler_options,
    add_source,
    pipeline_options,
    positive_int,
    sampler_kwargs,
)
from jitlib.evaluation.generate import class_labels, generate, generate_shards, save_grid, save_npz, save_pngs
from jitlib.shipped import SHIPPED
from jitlib.training.checkpoint import check_writable

HELP = f"""\
Generate images from a trained model and write a PNG grid, an .npz, one PNG per image and/or resumable .npz shards.

SOURCE is a run folder or checkpoint file, an artifact folder (jitlib export), a shipped model ({", ".join(SHIPPED)}) or an
official JiT .pth. The noise scale, target, t_eps and sampler defaults stored with the model are used.

examples:
  jitlib sample digits-small --num 20 --grid digits.png      # a shipped model (32-px digits)
  jitlib sample photos-small --num 16 --grid photos.png      # a shipped model (64-px photographs)
  jitlib sample runs/tiny-digits --labels 3 3 3 7 7 7 --cfg-scale 3 --grid threes.png
  jitlib sample runs/jit-b16 --num 50000 --shards samples/ --ema 0.9996 --cfg-scale 2.9   # rerun to resume
  jitlib sample exported/jit-b16/ --labels 207 360 387 --steps 50
"""


def run(args: argparse.Namespace) -> int:
    """Check every output first (the options were checked while parsing), then load, generate and write."""
    if args.interval and not 0 <= args.interval[0] <= args.interval[1] <= 1:
        raise ValueError(
            f"--interval {args.interval[0]} {args.interval[1]} must satisfy 0 <= LOW <= HIGH <= 1"
        )
    if not any((args.grid, args.npz, args.png_dir, args.shards)):
        raise ValueError(
            "give at least one output: --grid FILE.png, --npz FILE.npz, --png-dir DIR or --shards DIR"
        )
    for out, suffix in ((args.grid, ".png"), (args.npz, ".npz")):
        if out and Path(out).suffix.lower() != suffix:
            raise ValueError(f"{out!r} must end in {suffix}")
        if out and Path(out).exists():
            raise ValueError(f"{out!r} exists; choose a new file name (jitlib never overwrites outputs)")
        if out:
            check_writable(Path(out).parent)
    if args.png_dir and Path(args.png_dir).exists() and any(Path(args.png_dir).iterdir()):
        raise ValueError(f"--png-dir {args.png_dir!r} is not empty; choose a new folder")
    for folder in (args.png_dir, args.shards):
        if folder:
            check_writable(folder)
    pipe = dataclasses.replace(load(args.source).pipeline(args.ema, args.device), **pipeline_options(args))
    labels = class_labels(pipe.num_classes, args.num, args.labels)
    sampler = sampler_kwargs(args) | dict(
        method=args.method,
        cfg_scale=args.cfg_scale,
        cfg_interval=tuple(args.interval) if args.interval else None,
        last_step=args.last_step,
        progress=True,
    )
    written = []
    if args.shards:
        generate_shards(pipe, labels, args.shards, shard_size=args.shard_size, **sampler)
        written.append(args.shards)
    if args.grid or args.npz or args.png_dir:
        images = generate(pipe, labels, **sampler)
        if args.grid:
            nrow = args.nrow or (pipe.num_classes if 0 < pipe.num_classes <= 20 else None)
            written.append(save_grid(images, args.grid, nrow=nrow, scale=max(1, 128 // pipe.image_shape[-1])))
        if args.npz:
            written.append(save_npz(images, labels, args.npz))
        if args.png_dir:
            written.append(save_pngs(images, args.png_dir))
    print(f"{len(labels)} images from {pipe.description} → {', '.join(map(str, written))}", file=sys.stderr)
    return 0


def add_options(p: argparse.ArgumentParser) -> None:
    """The options of ``jitlib sample``."""
    add_source(p)
    add_sampler_options(p, batch_size=64)
    p.add_argument("--labels", type=int, nargs="+", metavar="ID", help="class ids, one image each")
    p.add_argument(
        "--num",
        type=positive_int,
        default=100,
        help="number of images when --labels is not given, classes cycling (default 100)",
    )
    p.add_argument("--method", choices=("heun", "euler"), help="ODE solver (default: the model's)")
    p.add_argument(
        "--interval", type=float, nargs=2, metavar=("LOW", "HIGH"), help="guide only for LOW < t < HIGH"
    )
    p.add_argument("--last-step", choices=("euler", "x"), help="final step: euler (official) or x (return x̂)")
    p.add_argument("--grid", help="PNG grid to write")
    p.add_argument("--nrow", type=positive_int, help="images per grid row")
    p.add_argument("--npz", help=".npz to write (arr_0 uint8 NHWC images, arr_1 labels)")
    p.add_argument("--png-dir", help="new folder to write one PNG per image")
    p.add_argument("--shards", help="folder of resumable .npz shards (rerun the same command to resume)")
    p.add_argument("--shard-size", type=positive_int, default=1024, help="images per shard (default 1024)")


COMMAND = Command(
    "sample",
    "generate images from any model: run, checkpoint, artifact folder, shipped model, official .pth",
    HELP,
    add_options,
    run,
)
