"""Regenerate jitlib/assets/patch_grid.json: chapter 5's grid, the paper's Tab. 2 in miniature on 32×32 digits.

A 4-block, 128-wide JiT (``JiT-tiny/p``) is trained on scikit-learn's digits (1 channel, upsampled to 32×32) for every
row × column of the grid, all with the v-loss (the paper's Tab. 2, bottom row):

    rows     patch 8   (16 tokens of 64 numbers: narrower than the width),
             patch 16  (4 tokens of 256), patch 32 (1 token of 1,024) — plain linear patch embedding, as in Tab. 2,
             patch 32 + bottleneck embedding d′ = 32 (1,024 → 32 → 128, the paper's §4.2 at tiny scale)
    columns  x-, ε-, v-prediction

Every cell uses the same recipe (the ``tiny-digits`` preset with the overrides below) and is scored with the offline
proxy metric of :mod:`jitlib.evaluation.metrics`: Fréchet distance in the proxy classifier's features and the classifier's
accuracy on class-conditional samples. ``EXTRA_RUNS`` adds single cells trained 3× longer and other seeds. The file
keeps, per run, the metrics, the loss curve and ten samples as uint8 lists; chapter 5 loads it.

Cost: a 400-step cell is about 35 CPU-seconds of training at patch 16/32 and 110 at patch 8 (plus a few seconds of
sampling). On the shared 2-core machine that wrote the stored file, with 2 workers, the 12 grid cells took 16 minutes
of wall time and the 8 extra runs 24 more. Usage:

    python scripts/patch_grid.py [--workers 2] [--out jitlib/assets/patch_grid.json] [--resume] [--keep DIR]

``--workers N`` trains N cells at once, one torch thread each (on a busy CPU, N one-thread processes are far faster
than one N-thread process). ``--resume`` keeps the runs of an existing file made with the same recipe and proxy
classifier and runs only the missing ones. ``--keep DIR`` also saves every run's samples; after a change of the proxy
metric, ``--rescore --keep DIR`` scores them again without retraining.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jitlib.artifact import load
from jitlib.diffusion.targets import TARGETS
from jitlib.evaluation.generate import class_labels, generate
from jitlib.evaluation.metrics import PROXY_VERSION, ProxyClassifier, proxy_classifier
from jitlib.training.config import Config, DataConfig, load_config, runs_the_same
from jitlib.training.data import digits, unit_to_uint8
from jitlib.training.trainer import Trainer

FORMAT = "jitlib-patch-grid/1"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "jitlib" / "assets" / "patch_grid.json"
PRESET = "tiny-digits"
# Rows of the grid: (name, patch size, bottleneck d′ or None for the plain linear embedding of the paper's Tab. 2).
ROWS: tuple[tuple[str, int, int | None], ...] = (
    ("patch 8", 8, None),
    ("patch 16", 16, None),
    ("patch 32", 32, None),
    ("patch 32, bottleneck 32", 32, 32),
)
# The recipe every cell shares (everything else is the preset's: lr 1e-3 cosine, batch 64, logit-normal t, CFG 2).
RECIPE: dict[str, Any] = {
    "preset": PRESET,
    "train_steps": 400,
    # Sample with the raw weights: the cosine schedule has already brought the learning rate down to 1e-4, while
    # the preset's EMAs (0.99–0.999) would still carry 2–67 % of the random initial weights after 400 steps.
    "ema": "model",
    "sample_steps": 25,  # Heun, 49 network evaluations (with CFG: of a double batch)
    "num_images": 200,  # class-conditional samples scored per cell (classes cycling 0–9)
    "num_stored": 10,  # of which the first ones are stored for the page (one per class)
    "loss_window": 50,  # the stored loss curve averages this many steps per point
    "seed": 0,
}
# The hypotheses chapter 5 tests on the grid (tests/test_patch_grid.py checks the stored file against the chapter's
# verdicts). Fixed before the grid ran: at the large patch x-prediction beats ε and v on both FD and accuracy (held);
# at the small patch every target's FD is within ``small_fd_factor`` of the best and its accuracy within
# ``small_accuracy_points`` of the best (did not hold after 400 steps). Fixed after the 400-step grid, before the
# longer runs finished: with 3× the steps, ε's and v's FD at the small patch fall by at least ``longer_fd_drop``×,
# while at the large patch ε stays at chance and v stays behind the 400-step x-prediction cell.
CLAIMS: dict[str, Any] = {
    "large_row": "patch 32",
    "small_row": "patch 8",
    "small_fd_factor": 2.0,
    "small_accuracy_points": 0.10,
    "longer_fd_drop": 2.0,
}
# Extra runs of single cells (row, target, steps, seed): longer training, to tell "still learning" from "cannot
# learn", and other seeds of the x-prediction cells the bottleneck comparison rests on, to see the run-to-run spread.
EXTRA_RUNS: tuple[tuple[str, str, int, int], ...] = tuple(
    (row, pred, 1200, 0) for row in ("patch 8", "patch 32") for pred in ("eps", "v")
) + tuple((row, "x", 400, seed) for row in ("patch 32", "patch 32, bottleneck 32") for seed in (1, 2))
CELL_KEYS = frozenset(
    {
        "row",
        "patch_size",
        "bottleneck_dim",
        "pred",
        "overrides",
        "fd",
        "accuracy",
        "final_loss",
        "loss_curve",
        "train_seconds",
        "sample_labels",
        "samples",
    }
)
GRID_KEYS = frozenset(
    {
        "format",
        "recipe",
        "preset_config",
        "claims",
        "data",
        "proxy",
        "rows",
        "targets",
        "cells",
        "extra",
        "wall_seconds",
        "machine",
    }
)


def cell_overrides(
    patch_size: int, pred: str, bottleneck_dim: int | None, steps: int, seed: int = 0
) -> list[str]:
    """The ``section.key=value`` overrides of the preset that define one cell (the page rebuilds its config from them)."""
    if pred not in TARGETS:
        raise ValueError(f"pred={pred!r} is not a prediction target; valid: {', '.join(TARGETS)}")
    if patch_size not in (2, 4, 8, 16, 32):
        raise ValueError(f"patch_size={patch_size} has no JiT-tiny preset; valid: 2, 4, 8, 16, 32")
    bottleneck = "null" if bottleneck_dim is None else int(bottleneck_dim)
    return [
        f"model.name=JiT-tiny/{patch_size}",
        f"model.arch={{bottleneck_dim: {bottleneck}}}",
        f"diffusion.pred={pred}",
        "diffusion.loss=v",
        f"train.steps={steps}",
        f"train.seed={seed}",
    ]


def quiet_config(overrides: list[str], output_dir: str | Path) -> Config:
    """The preset with ``overrides``, writing into ``output_dir``, without progress bar or intermediate checkpoints."""
    return load_config(
        PRESET,
        [
            *overrides,
            f"train.output_dir={output_dir}",
            "train.progress=false",
            "train.ckpt_every=1000000",
            "train.log_every=1000000",
        ],
    )


def window_means(values: list[float], window: int) -> list[float]:
    """Means of consecutive windows of ``window`` values (the last one may be shorter), rounded to 5 digits."""
    return [round(float(np.mean(values[i : i + window])), 5) for i in range(0, len(values), window)]


def run_cell(
    patch_size: int,
    pred: str,
    bottleneck_dim: int | None = None,
    *,
    classifier: ProxyClassifier,
    steps: int = RECIPE["train_steps"],
    num_images: int = RECIPE["num_images"],
    num_stored: int = RECIPE["num_stored"],
    sample_steps: int = RECIPE["sample_steps"],
    ema: str = RECIPE["ema"],
    seed: int = RECIPE["seed"],
    loss_window: int = RECIPE["loss_window"],
    row: str = "",
    keep: Path | None = None,
) -> dict[str, Any]:
    """Train one cell (Trainer.fit), sample ``num_images`` class-cycled digits, score them with the proxy metric.

    FD = Fréchet distance of the samples' proxy features to the real digits'; accuracy = share of samples the
    proxy classifier assigns to the class they were generated for. Deterministic for fixed arguments and threads.
    ``keep``: also save all samples and labels there (torch.save), so that ``--rescore`` can score them again.
    """
    overrides = cell_overrides(patch_size, pred, bottleneck_dim, steps, seed)
    with tempfile.TemporaryDirectory(prefix="patch-grid-") as out:
        trainer = Trainer(quiet_config(overrides, out))
        result = trainer.fit()
        generator = load(result.checkpoint).pipeline(ema)
    labels = class_labels(generator.num_classes, num_images)
    images = generate(generator, labels, seed=seed, steps=sample_steps)
    if keep is not None:
        torch.save({"images": images, "labels": labels}, keep)
    score = classifier.score(images, labels)
    stored = unit_to_uint8(images[:num_stored, 0])  # (n, 32, 32): digits have one channel
    return {
        "row": row,
        "patch_size": patch_size,
        "bottleneck_dim": bottleneck_dim,
        "pred": pred,
        "overrides": overrides,
        "fd": round(score.fd, 4),
        "accuracy": round(float(score.accuracy), 4),
        "final_loss": window_means(result.losses[-loss_window:], loss_window)[0],
        "loss_curve": window_means(result.losses, loss_window),
        "train_seconds": round(result.elapsed, 1),
        "sample_labels": labels[:num_stored].tolist(),
        "samples": stored.tolist(),
    }


def digits_classifier() -> ProxyClassifier:
    """The proxy classifier of 32×32 digits (trained once, then loaded from jitlib's cache)."""
    return proxy_classifier(DataConfig(name="digits", image_size=32))


def keep_path(folder: Path, row: str, pred: str, steps: int, seed: int) -> Path:
    """Where ``--keep`` saves a cell's samples: ``folder/patch-32-bottleneck-32_x_400_0.pt``."""
    return folder / f"{row.replace(', ', '-').replace(' ', '-')}_{pred}_{steps}_{seed}.pt"


def _worker(args: tuple[str, int, int | None, str, int, int, Path | None]) -> dict[str, Any]:
    torch.set_num_threads(1)
    row, patch_size, bottleneck_dim, pred, steps, seed, keep = args
    return run_cell(
        patch_size,
        pred,
        bottleneck_dim,
        classifier=digits_classifier(),
        row=row,
        steps=steps,
        seed=seed,
        keep=None if keep is None else keep_path(keep, row, pred, steps, seed),
    )


def _check_cell(cell: dict[str, Any], steps: int, seed: int = RECIPE["seed"]) -> None:
    """Raise ValueError unless ``cell`` is what run_cell writes now for ``steps`` training steps and ``seed``."""
    name = f"cell {cell.get('row')} / {cell.get('pred')}"
    if set(cell) != CELL_KEYS:
        raise ValueError(f"{name}: keys {sorted(cell)} differ from {sorted(CELL_KEYS)}")
    want = cell_overrides(cell["patch_size"], cell["pred"], cell["bottleneck_dim"], steps, seed)
    if cell["overrides"] != want:
        raise ValueError(f"{name}: overrides {cell['overrides']} are not {want}")
    n = RECIPE["num_stored"]
    shape = np.asarray(cell["samples"]).shape
    if shape != (n, 32, 32) or len(cell["sample_labels"]) != n:
        raise ValueError(f"{name}: samples of shape {shape}, expected {(n, 32, 32)}")
    if len(cell["loss_curve"]) != math.ceil(steps / RECIPE["loss_window"]):
        raise ValueError(f"{name}: {len(cell['loss_curve'])} loss points for {steps} steps")
    if not all(math.isfinite(cell[k]) for k in ("fd", "accuracy", "final_loss")):
        raise ValueError(f"{name} has a non-finite metric")


def validate_grid(grid: dict[str, Any]) -> None:
    """Raise ValueError unless ``grid`` has the layout this script writes now: format, recipe, every row × target once."""
    if grid.get("format") != FORMAT:
        raise ValueError(f"grid format {grid.get('format')!r} is not {FORMAT!r}; rerun scripts/patch_grid.py")
    if set(grid) != GRID_KEYS:
        raise ValueError(f"grid keys {sorted(grid)} differ from {sorted(GRID_KEYS)}")
    if grid["recipe"] != RECIPE:
        raise ValueError(f"grid recipe {grid['recipe']} differs from the script's {RECIPE}; rerun it")
    if not runs_the_same(grid["preset_config"], load_config(PRESET), "cpu"):
        raise ValueError(
            f"the preset {PRESET!r} has changed since the grid was made; rerun scripts/patch_grid.py"
        )
    if grid["proxy"]["version"] != PROXY_VERSION:
        raise ValueError(
            f"grid scored with proxy classifier v{grid['proxy']['version']}, jitlib's is v{PROXY_VERSION}; rerun it"
        )
    if grid["claims"] != CLAIMS:
        raise ValueError(f"grid claims {grid['claims']} differ from the script's {CLAIMS}; rerun it")
    if [tuple(r.values())[:3] for r in grid["rows"]] != [tuple(r) for r in ROWS] or grid["targets"] != list(
        TARGETS
    ):
        raise ValueError("grid rows/targets differ from the script's ROWS/TARGETS; rerun it")
    for cell in grid["cells"]:
        _check_cell(cell, RECIPE["train_steps"])
    seen = [(c["row"], c["pred"]) for c in grid["cells"]]
    expected = [(name, pred) for name, _, _ in ROWS for pred in TARGETS]
    if sorted(seen) != sorted(expected):
        raise ValueError(f"grid cells {seen} are not exactly {expected}")
    extra = [run_key(c) for c in grid["extra"]]
    if extra != list(EXTRA_RUNS):
        raise ValueError(f"extra runs {extra} are not the script's EXTRA_RUNS {list(EXTRA_RUNS)}")
    for cell, (_, _, steps, seed) in zip(grid["extra"], EXTRA_RUNS, strict=True):
        _check_cell(cell, steps, seed)


def row_info(name: str, patch_size: int, bottleneck_dim: int | None, image_size: int = 32) -> dict[str, Any]:
    """A row's description: tokens per image and numbers per token (the patch dimension p²·C, C = 1 for digits)."""
    return {
        "name": name,
        "patch_size": patch_size,
        "bottleneck_dim": bottleneck_dim,
        "tokens": (image_size // patch_size) ** 2,
        "patch_dim": patch_size * patch_size,
    }


def save(grid: dict[str, Any], path: Path) -> None:
    """Write the grid as compact JSON (one cell per line, so diffs stay readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head = json.dumps({k: v for k, v in grid.items() if k not in ("cells", "extra")}, indent=1)[:-2]
    for key in ("cells", "extra"):
        body = ",\n".join(json.dumps(cell, separators=(",", ":")) for cell in grid[key])
        head += f',\n "{key}": [\n' + body + "\n ]"
    path.write_text(head + "\n}\n")


def override_value(cell: dict[str, Any], key: str) -> int:
    """The integer a cell's overrides set ``key`` to, e.g. ``train.steps``."""
    return int(next(o for o in cell["overrides"] if o.startswith(f"{key}=")).split("=")[1])


def run_key(cell: dict[str, Any]) -> tuple[str, str, int, int]:
    """(row, target, training steps, seed): what tells one run from another."""
    return cell["row"], cell["pred"], override_value(cell, "train.steps"), override_value(cell, "train.seed")


def rescore(grid: dict[str, Any], keep: Path, classifier: ProxyClassifier) -> None:
    """Score every cell's kept samples again with ``classifier`` (after a change of the proxy metric): no retraining."""
    for cell in grid["cells"] + grid["extra"]:
        kept = torch.load(keep_path(keep, *run_key(cell)), weights_only=True)
        score = classifier.score(kept["images"], kept["labels"])
        cell["fd"], cell["accuracy"] = round(score.fd, 4), round(float(score.accuracy), 4)


def main() -> None:
    """Run every missing cell (in ``--workers`` processes) and rewrite the JSON after each one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="cells trained at once, one torch thread each")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--resume", action="store_true", help="keep finished cells of --out if its recipe matches"
    )
    parser.add_argument("--keep", type=Path, help="folder to save every cell's samples in (for --rescore)")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="only re-score the samples saved in --keep with today's classifier",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    classifier = digits_classifier()  # trains and caches it once, before the workers load it
    proxy = {
        "version": PROXY_VERSION,
        # What real digits score: FD of num_images of them (the floor at this N), accuracy on held-out ones.
        "real_fd": round(classifier.real_fd(RECIPE["num_images"], RECIPE["seed"]), 4),
        "real_accuracy": round(classifier.real_accuracy, 4),
    }
    if args.rescore:
        if args.keep is None:
            raise SystemExit("--rescore needs --keep FOLDER, where a run with --keep saved the samples")
        grid = json.loads(args.out.read_text())
        rescore(grid, args.keep, classifier)
        grid["proxy"] = proxy
        validate_grid(grid)
        save(grid, args.out)
        print(f"re-scored {args.out} with proxy classifier v{PROXY_VERSION}")
        return
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    cells: list[dict[str, Any]] = []
    extra: list[dict[str, Any]] = []
    previous_seconds = 0
    if args.resume and args.out.exists():
        old = json.loads(args.out.read_text())
        same = (old.get("format"), old.get("recipe"), old.get("preset_config"), old.get("proxy"))
        if same == (FORMAT, RECIPE, load_config(PRESET).to_dict(), proxy):
            cells, extra = old["cells"], old["extra"]
            previous_seconds = old["wall_seconds"]
    rows = {name: (p, b) for name, p, b in ROWS}
    main_runs = [
        (name, pred, RECIPE["train_steps"], RECIPE["seed"]) for name, _, _ in ROWS for pred in TARGETS
    ]
    done = {run_key(c) for c in cells + extra}
    todo = [
        (name, *rows[name], pred, steps, seed, args.keep)
        for name, pred, steps, seed in main_runs + list(EXTRA_RUNS)
        if (name, pred, steps, seed) not in done
    ]
    grid = {
        "format": FORMAT,
        "recipe": RECIPE,
        "preset_config": load_config(PRESET).to_dict(),  # what every cell's overrides apply to
        "claims": CLAIMS,
        "data": {"name": "digits", "image_size": 32, "channels": 1, "num_images": len(digits(32))},
        "proxy": proxy,
        "rows": [row_info(*row) for row in ROWS],
        "targets": list(TARGETS),
        "cells": cells,
        "extra": extra,
        "wall_seconds": previous_seconds,
        "machine": f"{platform.machine()}, torch {torch.__version__}, {args.workers} worker(s) × 1 thread",
    }
    order = {key: i for i, key in enumerate(main_runs + list(EXTRA_RUNS))}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(_worker, task) for task in todo]
        for future in as_completed(futures):
            try:
                cell = future.result()
            except Exception as err:  # e.g. a diverged run: keep the others, report it; --resume retries it
                print(f"a cell failed: {type(err).__name__}: {err}", flush=True)
                continue
            key = run_key(cell)
            (cells if key in main_runs else extra).append(cell)
            for group in (cells, extra):
                group.sort(key=lambda c: order[run_key(c)])
            grid["wall_seconds"] = previous_seconds + round(time.perf_counter() - start)
            save(grid, args.out)
            print(
                f"{cell['row']:>24} {cell['pred']:>3} {key[2]:5d} steps, seed {key[3]}: FD {cell['fd']:8.3f}  "
                f"accuracy {cell['accuracy']:6.1%}  loss {cell['final_loss']:.4f}  "
                f"({cell['train_seconds']:.0f} s training; {grid['wall_seconds']} s total)",
                flush=True,
            )
    validate_grid(grid)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB) in {grid['wall_seconds']} s")


if __name__ == "__main__":
    main()
