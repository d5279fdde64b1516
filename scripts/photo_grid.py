"""Regenerate data/results/photo_grid.json: the paper's Tab. 2 row in miniature on photographs, scored with a real FID.

x-, ε- and v-prediction, all with the v-loss, the same network (a plain JiT: depth 4, width 128, 4 heads, linear
patch embedding, unconditional) and the same compute, on 64×64 crops of the packaged photos with patch 16: each
token holds 16·16·3 = 768 numbers — the token size of ImageNet-256 at /16 in the paper, and 6× the network width.
Three seeds per target. The *control* trains the same network at 32×32 with patch 4 (48 numbers per token, narrower
than the width), two seeds per target, for 900 steps.

Why the control is that long: a first control of 300 steps failed for every target, ε worst. The EMA (decay 0.995)
starts from the initial weights, which still carry 0.995^300 ≈ 22 % of it after 300 steps; ε-prediction must output
ε̂ ≈ z near t = 0, where sampling starts and x̂ = (z − (1 − t)·ε̂)/max(t, t_eps) divides its error by t (at most
1/t_eps = 20×): it is the target an average still tied to the zero-output initial network hurts most. After 900 steps
the initial weights weigh 0.995^900 ≈ 1 %. Every control run therefore also stores the held-out loss of its raw
weights (``heldout_vloss_raw``) beside the EMA's.

Per run the file keeps: the loss curve, the held-out v-loss at fixed t on crops of the *reference* photos (the
mechanism), FID / KID (± std over subsets) / precision / recall of ``num_fid`` samples against ``num_ref`` reference
crops, and timings. Beside them, at the same n: the floor (fresh crops of the reference photos, and crops of the
training photos) and the ceiling (Gaussian noise images). 8 samples per run go to data/results/photo_grid.png.

Budget: sized for ONE thread of the shared 2-core machine (``--threads 1``); it prints and stores the measured times
(``wall_seconds`` in total, ``setting_seconds`` per setting). The stored main setting was run in one call together
with the first control (2,757 s, 46 min, of wall time on one thread while four other engineers shared the machine's
two cores); its ``setting_seconds`` is the sum of its measured parts (baselines, training, sampling, scoring). The
control is run on its own, about 10 minutes per run, with ``--settings control --resume``. Usage:

    python scripts/photo_grid.py [--out data/results/photo_grid.json] [--settings main control] [--resume] [--keep DIR]

``--resume`` keeps the runs already in the file whose setting has the same recipe (shared fields and that setting's
own) and runs only the missing ones; a setting whose recipe changed is run again from scratch. The picture keeps the
rows of the settings not run in this call. ``--keep DIR`` keeps every run's checkpoint (the photos-small artifact is
exported from the best x-prediction run's).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from jitlib import artifact
from jitlib.evaluation.fid import cached_features, inception_features, score_features
from jitlib.evaluation.generate import class_labels, generate
from jitlib.evaluation.metrics import denoising_loss_by_t
from jitlib.training.config import Config, load_config
from jitlib.training.data import unit_to_uint8
from jitlib.training.photos import PhotoCrops
from jitlib.training.trainer import Trainer

FORMAT = "jitlib-photo-grid/1"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "data" / "results" / "photo_grid.json"
PRESET = "tiny-shapes"  # only its optimiser and sampler; every data and model field is overridden below
RECIPE: dict[str, Any] = {
    "width": 128,
    "depth": 4,
    "heads": 4,
    "batch_size": 64,
    "lr": 1.0e-3,  # cosine to 1e-4 (the preset's), warmup 0.5 epoch of 10,000 crops
    "noise_scale": 1.0,
    "ema": "0.995",
    "main": {"image_size": 64, "patch_size": 16, "steps": 400, "seeds": [0, 1, 2]},
    "control": {"image_size": 32, "patch_size": 4, "steps": 900, "seeds": [0, 1]},
    "sample_steps": 25,  # Heun: 49 network evaluations
    "num_fid": 64,  # generated images per run, and real / noise images for the floor and ceiling
    "num_ref": 200,  # reference-photo crops the scores compare against
    "num_loss": 64,  # reference crops for the held-out loss
    "loss_ts": [0.05, 0.15, 0.3, 0.5, 0.7, 0.85, 0.95],
    "num_stored": 8,
}
TARGETS = ("x", "eps", "v")
SETTINGS = ("main", "control")
TIMES = ("train_seconds", "sample_seconds", "score_seconds")


def overrides(pred: str, image_size: int, patch_size: int, steps: int, seed: int) -> list[str]:
    """The ``section.key=value`` overrides of the preset that define one run."""
    r = RECIPE
    arch = f"{{hidden_size: {r['width']}, depth: {r['depth']}, num_heads: {r['heads']}, bottleneck_dim: null, in_context_len: 0}}"
    return [
        f"model.name=JiT-tiny/{patch_size}",
        f"model.arch={arch}",
        "model.num_classes=0",
        "data.name=photos",
        f"data.image_size={image_size}",
        f"diffusion.pred={pred}",
        "diffusion.loss=v",
        f"diffusion.noise_scale={r['noise_scale']}",
        f"optim.lr={r['lr']}",
        f"train.steps={steps}",
        f"train.seed={seed}",
        f"train.batch_size={r['batch_size']}",
        f"train.ema_decays=[{r['ema']}]",
    ]


def quiet_config(items: list[str], output_dir: str | Path) -> Config:
    """The preset with ``items``, writing into ``output_dir``, without progress bar or intermediate checkpoints."""
    extra = ["train.progress=false", "train.ckpt_every=1000000", "train.log_every=1000000"]
    return load_config(PRESET, [*items, f"train.output_dir={output_dir}", *extra])


def real_sets(image_size: int) -> dict[str, Tensor]:
    """uint8 image sets at ``image_size``: the reference crops, fresh reference crops, training-photo crops, noise."""
    n, n_ref = RECIPE["num_fid"], RECIPE["num_ref"]
    noise = torch.randn((n, 3, image_size, image_size), generator=torch.Generator().manual_seed(7))
    return {
        "reference": PhotoCrops("reference", image_size, n_ref, seed=0, flip=True).uint8(),
        "held-out real": PhotoCrops("reference", image_size, n, seed=1, flip=True).uint8(),
        "training photos": PhotoCrops("train", image_size, n, seed=1, flip=True).uint8(),
        "noise": unit_to_uint8(noise * RECIPE["noise_scale"]),
    }


def rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {k: (round(float(v), 6) if isinstance(v, float) else v) for k, v in metrics.items()}


def run(
    pred: str, setting: str, seed: int, ref_features: np.ndarray, loss_images: Tensor, keep: Path | None
) -> tuple[dict[str, Any], Tensor]:
    """Train one run, score ``num_fid`` samples against the reference features; returns the record and the samples."""
    spec = RECIPE[setting]
    items = overrides(pred, spec["image_size"], spec["patch_size"], spec["steps"], seed)
    with tempfile.TemporaryDirectory(prefix="photo-grid-") as out:
        start = time.perf_counter()
        result = Trainer(quiet_config(items, out)).fit()
        train_s = time.perf_counter() - start
        model = artifact.load(result.checkpoint)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            model.to_checkpoint(keep / f"{setting}-{pred}-seed{seed}.pt")
    pipe = model.pipeline(RECIPE["ema"])
    start = time.perf_counter()
    labels = class_labels(0, RECIPE["num_fid"])
    images = generate(pipe, labels, seed=1000 + seed, steps=RECIPE["sample_steps"], batch_size=50)
    sample_s = time.perf_counter() - start
    start = time.perf_counter()
    features = inception_features(unit_to_uint8(images))
    scores = score_features(ref_features, features)
    score_s = time.perf_counter() - start
    held_out, held_out_raw = (
        denoising_loss_by_t(
            model.denoiser(variant),
            loss_images,
            RECIPE["loss_ts"],
            seed=seed,
            noise_scale=RECIPE["noise_scale"],
        )
        for variant in (RECIPE["ema"], artifact.RAW)
    )
    losses = result.losses
    window = max(1, len(losses) // 20)
    record = {
        "setting": setting,
        "pred": pred,
        "seed": seed,
        "overrides": items,
        **rounded(scores),
        "heldout_vloss": [round(v, 6) for v in held_out],
        "heldout_vloss_raw": [round(v, 6) for v in held_out_raw],
        "final_train_loss": round(float(np.mean(losses[-window:])), 6),
        "loss_curve": [
            round(float(np.mean(losses[i : i + window])), 6) for i in range(0, len(losses), window)
        ],
        "train_seconds": round(train_s, 1),
        "sample_seconds": round(sample_s, 1),
        "score_seconds": round(score_s, 1),
    }
    return record, images[: RECIPE["num_stored"]]


def save_strip(rows: list[tuple[str, Tensor]], path: Path, size: int = 64) -> None:
    """One PNG: a row of ``num_stored`` images (resized to ``size`` px, nearest) per entry, in order."""
    n = RECIPE["num_stored"]
    canvas = np.full((len(rows) * size, n * size, 3), 255, dtype=np.uint8)
    for r, (_, images) in enumerate(rows):
        pixels = images if images.dtype == torch.uint8 else unit_to_uint8(images)
        for c, image in enumerate(pixels[:n]):
            tile = Image.fromarray(image.permute(1, 2, 0).numpy()).resize((size, size), Image.NEAREST)
            canvas[r * size : (r + 1) * size, c * size : (c + 1) * size] = np.asarray(tile)
    Image.fromarray(canvas).save(path, optimize=True)


def stored_rows(path: Path, names: list[str] | None, size: int = 64) -> list[tuple[str, Tensor]]:
    """The rows of a picture written by :func:`save_strip` (``names`` in order), as uint8 images; [] if none."""
    if not names or not path.is_file():
        return []
    canvas = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy())
    if canvas.shape[0] != len(names) * size:
        return []
    n = canvas.shape[1] // size
    rows = []
    for r, name in enumerate(names):
        band = canvas[r * size : (r + 1) * size].permute(2, 0, 1)
        rows.append((name, torch.stack([band[:, :, c * size : (c + 1) * size] for c in range(n)])))
    return rows


def same_recipe(old: dict[str, Any], setting: str) -> bool:
    """Whether a stored file's runs of ``setting`` were made with today's recipe (shared fields and the setting's).

    The seeds only say which runs there are: a run of seed s is the same run whatever other seeds the file listed.
    """
    if old.get("format") != FORMAT:
        return False
    mine = {k: v for k, v in RECIPE.items() if k not in SETTINGS}
    theirs = {k: v for k, v in old.get("recipe", {}).items() if k not in SETTINGS}

    def spec(recipe: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in (recipe.get(setting) or {}).items() if k != "seeds"}

    return mine == theirs and spec(old["recipe"]) == spec(RECIPE)


def row_order(name: str) -> tuple[int, int, int, int]:
    """Picture rows by setting, then its real and noise rows, then seed and target ("control x seed 1")."""
    words = name.split()
    if words[-2] != "seed":
        return SETTINGS.index(words[0]), 0, 0, 0
    return SETTINGS.index(words[0]), 1, int(words[-1]), TARGETS.index(words[1])


def write_picture(grid: dict[str, Any], rows: dict[str, Tensor], path: Path) -> None:
    """The picture of every run in ``grid`` that has a row (and the real and noise rows of its settings), in order."""
    runs = {f"{r['setting']} {r['pred']} seed {r['seed']}" for r in grid["runs"]}
    names = sorted(
        (n for n in rows if n in runs or (n.split()[0] in grid["baselines"] and "seed" not in n)),
        key=row_order,
    )
    grid["strip_rows"] = names
    save_strip([(name, rows[name]) for name in names], path)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--resume", action="store_true", help="keep runs already in --out and run the rest")
    parser.add_argument("--keep", type=Path, help="folder to keep every run's checkpoint in")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the budget is for 1)")
    parser.add_argument(
        "--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS), help="parts to run"
    )
    parser.add_argument(
        "--merge", type=Path, nargs="*", default=[], help="add the runs of files of the same recipe"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a seconds-long run of the whole pipeline (tests)"
    )
    args = parser.parse_args()
    if args.smoke:
        RECIPE.update(num_fid=6, num_ref=8, num_loss=4, sample_steps=2, num_stored=2, loss_ts=[0.5])
        for setting in ("main", "control"):
            RECIPE[setting].update(steps=2, seeds=[0])
    torch.set_num_threads(args.threads)
    grid: dict[str, Any] = {"format": FORMAT, "recipe": RECIPE, "runs": [], "baselines": {}}
    old_rows: dict[str, Tensor] = {}
    if args.resume and args.out.is_file():
        old = json.loads(args.out.read_text())
        kept = [s for s in SETTINGS if same_recipe(old, s)]
        if kept:  # runs, baselines, times and picture rows of the settings whose recipe is unchanged
            grid = {**old, "recipe": RECIPE}
            grid["runs"] = [
                r for r in old["runs"] if r["setting"] in kept and r["seed"] in RECIPE[r["setting"]]["seeds"]
            ]
            grid["baselines"] = {s: b for s, b in old.get("baselines", {}).items() if s in kept}
            grid["setting_seconds"] = {s: t for s, t in old.get("setting_seconds", {}).items() if s in kept}
            for (
                setting
            ) in kept:  # files from before per-setting times: the sum of the setting's measured parts
                if setting not in grid["setting_seconds"]:
                    parts = [r[k] for r in grid["runs"] if r["setting"] == setting for k in TIMES]
                    seconds = grid["baselines"].get(setting, {}).get("seconds", 0.0)
                    grid["setting_seconds"][setting] = round(sum(parts) + seconds, 1)
            rows = stored_rows(args.out.with_suffix(".png"), old.get("strip_rows"))
            old_rows = dict(rows)
    for path in (
        args.merge
    ):  # e.g. the control run in another process: its runs, baselines and seconds join this file
        other = json.loads(path.read_text())
        if other.get("format") != FORMAT or other.get("recipe") != RECIPE:
            raise SystemExit(f"{path} was made with another recipe; it cannot be merged")
        known = {(r["setting"], r["pred"], r["seed"]) for r in grid["runs"]}
        grid["runs"] += [r for r in other["runs"] if (r["setting"], r["pred"], r["seed"]) not in known]
        grid["baselines"] = {**other["baselines"], **grid["baselines"]}
        part = {
            "file": path.name,
            "picture": path.with_suffix(".png").name,
            "strip_rows": other.get("strip_rows"),
        }
        grid.setdefault("parts", []).append({**part, "wall_seconds": other.get("wall_seconds")})
    grid.update(
        commit=git_commit(), machine=platform.machine(), torch=torch.__version__, threads=args.threads
    )
    strips: list[tuple[str, Tensor]] = []
    for setting in args.settings:
        spec = RECIPE[setting]
        size = spec["image_size"]
        start = time.perf_counter()
        sets = real_sets(size)
        feats = {name: cached_features(images) for name, images in sets.items()}
        baseline = {
            name: rounded(score_features(feats["reference"], f))
            for name, f in feats.items()
            if name != "reference"
        }
        grid["baselines"][setting] = {**baseline, "seconds": round(time.perf_counter() - start, 1)}
        setting_start, setting_before = start, grid.setdefault("setting_seconds", {}).get(setting) or 0.0
        print(f"[{setting}] baselines {json.dumps(grid['baselines'][setting])}", flush=True)
        strips += [(f"{setting} {name}", sets[name]) for name in ("held-out real", "noise")]
        loss_images = PhotoCrops("reference", size, RECIPE["num_loss"], seed=2).uint8().float() / 127.5 - 1
        for seed in spec["seeds"]:
            for pred in TARGETS:
                done = [
                    r for r in grid["runs"] if (r["setting"], r["pred"], r["seed"]) == (setting, pred, seed)
                ]
                if done:
                    continue
                record, samples = run(pred, setting, seed, feats["reference"], loss_images, args.keep)
                grid["runs"].append(record)
                strips.append((f"{setting} {pred} seed {seed}", samples))
                grid["setting_seconds"][setting] = round(
                    time.perf_counter() - setting_start + setting_before, 1
                )
                grid["wall_seconds"] = round(sum(grid["setting_seconds"].values()), 1)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                write_picture(grid, {**old_rows, **dict(strips)}, args.out.with_suffix(".png"))
                args.out.write_text(json.dumps(grid, indent=1) + "\n")  # after the picture: a kill keeps both
                keys = ("fid", "kid", "kid_std", "precision", "recall", "train_seconds")
                print(
                    f"[{setting}] {pred} seed {seed}: " + ", ".join(f"{k} {record[k]}" for k in keys),
                    flush=True,
                )
    grid.pop("wall_before", None)
    grid["wall_seconds"] = round(sum(t or 0.0 for t in grid["setting_seconds"].values()), 1)
    ran = len(strips) > 2 * len(
        args.settings
    )  # beyond the real and noise rows: runs were trained in this call
    if (
        ran or old_rows
    ):  # a call that only merges keeps the picture the runs made; a resume drops rows of dropped runs
        write_picture(grid, {**old_rows, **dict(strips)}, args.out.with_suffix(".png"))
    args.out.write_text(json.dumps(grid, indent=1) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} in {grid['wall_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
