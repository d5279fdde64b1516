"""The stages of scripts/gpu_check.sh, one sub-command each, so that a stage that overruns or crashes loses only itself.

    python scripts/gpu_check.py train OUT --model JiT-B/16 --res 256 --batch 32 --steps 200 [--resume]
    python scripts/gpu_check.py sample RUN --num 32 --out DIR          # guided 50-step Heun from a smoke run
    python scripts/gpu_check.py fid RUN --num 256 --out DIR            # the FID pipeline (jitlib.evaluation.fid)
    python scripts/gpu_check.py row BENCH.json TABLE.md               # append one benchmark row to a table

Training data is synthetic (smooth random colour fields whose mean colour depends on the class, seeded), so the
check needs no data set; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from jitlib.training.config import from_dict
from jitlib.training.data import TensorImages
from jitlib.training.trainer import Trainer

CLASSES = 10


def synthetic_images(num: int, size: int, seed: int = 0) -> TensorImages:
    """``num`` uint8 images (3, size, size): a bicubic-upsampled 4×4 random field plus a class colour, labels i mod 10."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(num) % CLASSES
    colours = torch.rand(CLASSES, 3, 1, 1, generator=gen) * 2 - 1
    coarse = torch.rand(num, 3, 4, 4, generator=gen) * 2 - 1
    images = (
        0.5 * F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
        + 0.5 * colours[labels]
    )
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return TensorImages(pixels, labels, tuple(str(i) for i in range(CLASSES)))


def trainer(args: argparse.Namespace, resume: bool) -> Trainer:
    config = from_dict(
        {
            "model": {"name": args.model, "num_classes": CLASSES},
            "data": {"image_size": args.res, "num_workers": 0, "pin_memory": False},
            "optim": {"lr": 1e-4, "warmup_epochs": 0},
            "train": {
                "batch_size": args.batch,
                "steps": args.steps,
                "precision": args.precision,
                "compile": {"on": True, "off": False, "auto": "auto"}[args.compile],
                "ckpt_every": args.ckpt_every,
                "log_every": 1,
                "output_dir": str(args.out),
                "progress": False,
                "ema_decays": [0.999],
            },
        }
    )
    dataset = synthetic_images(max(4 * args.batch, 64), args.res)
    return Trainer(config, resume=args.out if resume else None, dataset=dataset)


def cmd_train(args: argparse.Namespace) -> None:
    run = trainer(args, args.resume)
    start, first = time.perf_counter(), run.step
    result = run.fit(callback=(lambda info: time.sleep(args.step_sleep)) if args.step_sleep else None)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "from_step": first,
                "to_step": result.step,
                "seconds": round(seconds, 1),
                "first_loss": result.losses[0] if result.losses else None,
                "last_loss": result.losses[-1] if result.losses else None,
                "compiled": run.compiled,
                "precision": run.precision.name,
                "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30
                if torch.cuda.is_available()
                else None,
            }
        )
    )


def pipeline(args: argparse.Namespace, **options):
    """The smoke run's raw weights as a sampling pipeline (compiled where :mod:`jitlib.training.compiling` says)."""
    saved = json.loads((args.run / "check.json").read_text())
    ns = argparse.Namespace(**{**saved, "out": args.run, "steps": saved["steps"]})
    run = trainer(ns, resume=True)
    return dataclasses.replace(run.generator("model"), **options), run


def cmd_sample(args: argparse.Namespace) -> None:
    """Guided sampling three ways, one JSON row each as soon as it is measured: the default (compiled on CUDA),
    eager, and compiled with CUDA graphs; each row has images/s and its largest difference from the default's images.
    The last line sums them up (the default's row plus every variant's speed)."""
    from jitlib.evaluation.generate import class_labels, generate, save_grid

    labels = class_labels(CLASSES, args.num)
    variants = {
        "default": {},
        "eager": {"compile": False},
        "cuda_graphs": {"compile": "auto", "cuda_graphs": True},
    }
    rows: dict[str, dict] = {}
    reference = None
    base, _ = pipeline(args, compile="auto")
    for name, options in variants.items():
        pipe = dataclasses.replace(base, **options)  # a fresh compile cache each
        settings = {"cfg_scale": 3.0, "steps": args.sample_steps, "batch_size": args.batch}
        generate(pipe, labels[: args.batch], **settings)  # compile, capture, warm
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        images = generate(pipe, labels, **settings)
        seconds = time.perf_counter() - start
        reference = images if reference is None else reference
        row = {"variant": name, "compiled": pipe.compiled, "cuda_graphs": pipe.cuda_graphs and pipe.compiled}
        row |= {
            "images": len(images),
            "steps": args.sample_steps,
            "cfg_scale": 3.0,
            "seconds": round(seconds, 2),
        }
        row["images_per_s"] = round(len(images) / seconds, 2)
        row["finite"] = bool(torch.isfinite(images).all())
        row["max_abs_diff_vs_default"] = float((images - reference).abs().max())
        rows[name] = row
        print(json.dumps(row), flush=True)
        if name == "default":
            args.out.mkdir(parents=True, exist_ok=True)
            save_grid(images, args.out / "samples.png")
    summary = dict(rows["default"])
    summary["images_per_s_by_variant"] = {k: r["images_per_s"] for k, r in rows.items()}
    summary["max_abs_diff_by_variant"] = {k: r["max_abs_diff_vs_default"] for k, r in rows.items()}
    print(json.dumps(summary))


def cmd_fid(args: argparse.Namespace) -> None:
    try:
        from jitlib.evaluation import fid
    except ImportError as err:
        print(f"skipped: the FID pipeline is not available ({err})")
        return
    from jitlib.evaluation.generate import class_labels, generate

    pipe, run = pipeline(args)
    device = str(run.device)
    start = time.perf_counter()
    fake = generate(
        pipe, class_labels(CLASSES, args.num), cfg_scale=3.0, steps=args.sample_steps, batch_size=args.batch
    )
    real = synthetic_images(args.num, run.config.data.image_size, seed=1).images
    scores = fid.score_features(
        fid.inception_features(real, device=device),
        fid.inception_features(fake, device=device),
        kid_subsets=10,
    )
    scores["seconds"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fid.json").write_text(json.dumps(scores, indent=1, default=float) + "\n")
    print(json.dumps(scores, default=float))


def cmd_row(args: argparse.Namespace) -> None:
    """Append the rows of one ``jitlib bench`` JSON (train img/s, MFU, peak memory, sample img/s, and the first
    training step, compiling included) to a Markdown table."""
    results = json.loads(args.bench.read_text())
    if not args.table.exists():
        args.table.write_text(
            "| model | res | precision | compile | batch | train img/s | train MFU | peak mem GiB | sample img/s "
            "| first step s |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n"
        )

    def fmt(value, digits=1, scale=1.0):
        return "n/a" if value is None else f"{value * scale:.{digits}f}"

    with args.table.open("a") as table:
        for r in results["models"]:
            samples = {s["compile"]: s for s in r.get("sample", [])}
            for row in r.get("train", []) or [{"compile": c} for c in samples]:
                s = samples.get(row["compile"], {})
                table.write(
                    f"| {r['model']} | {r['resolution']} | {r['precision']} | {'on' if row['compile'] else 'off'} "
                    f"| {row.get('batch', s.get('batch', 'n/a'))} | {fmt(row.get('images_per_s'))} "
                    f"| {fmt(row.get('mfu'), 1, 100)} | {fmt(row.get('peak_memory_gib'), 2)} "
                    f"| {fmt(s.get('images_per_s'), 2)} | {fmt(row.get('first_step_s'), 2)} |\n"
                )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train")
    train.add_argument("out", type=Path)
    train.add_argument("--model", default="JiT-B/16")
    train.add_argument("--res", type=int, default=256)
    train.add_argument("--batch", type=int, default=32)
    train.add_argument("--steps", type=int, default=200)
    train.add_argument("--ckpt-every", type=int, default=25)
    train.add_argument("--precision", default="auto")
    train.add_argument("--compile", default="auto", choices=["auto", "on", "off"])
    train.add_argument("--resume", action="store_true")
    train.add_argument(
        "--step-sleep", type=float, default=0.0, help="pause after each step (dry run: time to kill)"
    )
    for name in ("sample", "fid"):
        p = sub.add_parser(name)
        p.add_argument("run", type=Path)
        p.add_argument("--num", type=int, default=32 if name == "sample" else 256)
        p.add_argument("--batch", type=int, default=32)
        p.add_argument("--sample-steps", type=int, default=50)
        p.add_argument("--out", type=Path, required=True)
    row = sub.add_parser("row")
    row.add_argument("bench", type=Path)
    row.add_argument("table", type=Path)
    args = parser.parse_args(argv)
    if args.command == "train":
        args.out.mkdir(parents=True, exist_ok=True)
        keys = ("model", "res", "batch", "steps", "ckpt_every", "precision", "compile")
        (args.out / "check.json").write_text(json.dumps({k: getattr(args, k) for k in keys}))
        cmd_train(args)
    else:
        {"sample": cmd_sample, "fid": cmd_fid, "row": cmd_row}[args.command](args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
