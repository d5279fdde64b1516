"""The stored photo experiment (data/results/photo_grid.json) and the shipped photos-small model made from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jitlib.artifact import load
from jitlib.integrity import verify

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "data" / "results"
GRID = json.loads((RESULTS / "photo_grid.json").read_text())
ASSET = ROOT / "jitlib" / "assets" / "photos-small"


def test_every_target_and_seed_is_scored_at_the_same_n_with_floor_and_ceiling() -> None:
    recipe = GRID["recipe"]
    for setting in ("main", "control"):
        keys = {(r["pred"], r["seed"]) for r in GRID["runs"] if r["setting"] == setting}
        assert keys == {(p, s) for p in ("x", "eps", "v") for s in recipe[setting]["seeds"]}
        base = GRID["baselines"][setting]
        assert base["held-out real"]["fid"] < base["training photos"]["fid"] < base["noise"]["fid"]
        assert (
            abs(base["held-out real"]["kid"]) < 3 * base["held-out real"]["kid_std"] + 1e-3
        )  # unbiased near 0
    assert len(recipe["main"]["seeds"]) >= 3
    for record in [
        *GRID["runs"],
        *(b for s in GRID["baselines"].values() for k, b in s.items() if k != "seconds"),
    ]:
        assert record["num_fake"] == recipe["num_fid"] and record["num_real"] == recipe["num_ref"]
    for run in GRID["runs"]:
        assert len(run["heldout_vloss"]) == len(recipe["loss_ts"])
        if run["setting"] == "control":  # the raw weights beside the EMA (the first control's EMA failed it)
            assert len(run["heldout_vloss_raw"]) == len(recipe["loss_ts"])
    assert (RESULTS / "photo_grid.png").is_file()


def test_the_picture_has_a_row_for_every_run_and_the_real_and_noise_rows_of_each_setting() -> None:
    from PIL import Image

    names = GRID["strip_rows"]
    expected = {f"{r['setting']} {r['pred']} seed {r['seed']}" for r in GRID["runs"]}
    expected |= {f"{s} {k}" for s in ("main", "control") for k in ("held-out real", "noise")}
    assert set(names) == expected and len(names) == len(expected)
    width, height = Image.open(RESULTS / "photo_grid.png").size
    assert (width, height) == (64 * GRID["recipe"]["num_stored"], 64 * len(names))


def test_photos_small_is_the_best_x_run_with_its_measured_scores() -> None:
    verify(ASSET)
    card = load(ASSET).card
    best = min(
        (r for r in GRID["runs"] if (r["setting"], r["pred"]) == ("main", "x")), key=lambda r: r["fid"]
    )
    measured = card.provenance.measured
    assert measured["fid"] == best["fid"] and measured["kid"] == best["kid"]
    assert card.diffusion.pred == "x" and card.image_size == GRID["recipe"]["main"]["image_size"]
    assert card.sampler.steps == GRID["recipe"]["sample_steps"]
    assert sum(p.stat().st_size for p in ASSET.iterdir()) < 8e6


@pytest.mark.slow
def test_photos_small_samples_photo_sized_images() -> None:
    from jitlib.evaluation.generate import class_labels, generate

    pipe = load(ASSET).pipeline()
    images = generate(pipe, class_labels(0, 2), seed=0, steps=2)
    assert images.shape == (2, 3, 64, 64) and images.abs().max() <= 1
