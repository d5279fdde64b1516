"""Chapter 5's grid (scripts/patch_grid.py → jitlib/assets/patch_grid.json): the stored file has the script's current
format and supports the chapter's claims; the script's cell function runs, deterministically; the exercise checks."""

from __future__ import annotations

import copy
import importlib.util
import json
from importlib import resources
from pathlib import Path

import pytest
import torch

from jitlib.book.exercises import ch05
from jitlib.evaluation.metrics import train_proxy
from jitlib.nn.model import unpatchify
from jitlib.training.data import digits

ROOT = Path(__file__).resolve().parents[1]
GRID_FILE = resources.files("jitlib") / "assets" / "patch_grid.json"


def _load_script():
    spec = importlib.util.spec_from_file_location("patch_grid", ROOT / "scripts" / "patch_grid.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return _load_script()


@pytest.fixture(scope="module")
def grid() -> dict:
    return json.loads(GRID_FILE.read_text())


def _cells(grid: dict, row: str) -> dict[str, dict]:
    return {c["pred"]: c for c in grid["cells"] if c["row"] == row}


def _extra(script, grid: dict, row: str, pred: str, steps: int, seed: int = 0) -> dict:
    return next(c for c in grid["extra"] if script.run_key(c) == (row, pred, steps, seed))


def test_stored_grid_is_package_data_in_the_scripts_current_format(script, grid) -> None:
    assert GRID_FILE.is_file()  # under jitlib/, so a pip install (Colab) ships it
    script.validate_grid(grid)
    broken = copy.deepcopy(grid)
    broken["recipe"]["train_steps"] += 1
    with pytest.raises(ValueError, match="recipe"):
        script.validate_grid(broken)
    broken = copy.deepcopy(grid)
    broken["cells"].pop()
    with pytest.raises(ValueError, match="cells"):
        script.validate_grid(broken)
    broken = copy.deepcopy(grid)
    broken["preset_config"]["sample"]["cfg_scale"] += 1
    with pytest.raises(ValueError, match="preset"):
        script.validate_grid(broken)
    broken = copy.deepcopy(grid)
    broken["proxy"]["version"] -= 1
    with pytest.raises(ValueError, match="proxy classifier"):
        script.validate_grid(broken)


def test_large_patch_only_x_prediction_works(script, grid) -> None:
    """Claim fixed before the run: at one 1,024-number token (width 128), x beats ε and v on FD and on accuracy."""
    large = _cells(grid, script.CLAIMS["large_row"])
    assert {c["patch_size"] for c in large.values()} == {32}
    for other in ("eps", "v"):
        assert large["x"]["fd"] < large[other]["fd"], (other, large["x"]["fd"], large[other]["fd"])
        assert large["x"]["accuracy"] > large[other]["accuracy"], other
    assert large["eps"]["accuracy"] < 0.2  # ε collapses to about chance (10 classes)


def test_small_patch_claim_fixed_before_the_run_did_not_hold(script, grid) -> None:
    """The chapter reports that, after 400 steps at patch 8, ε and v are NOT within the stated factors of x."""
    claims = script.CLAIMS
    small = _cells(grid, claims["small_row"])
    assert {c["patch_size"] for c in small.values()} == {8}
    best_fd = min(c["fd"] for c in small.values())
    best_acc = max(c["accuracy"] for c in small.values())
    assert best_fd == small["x"]["fd"] and best_acc == small["x"]["accuracy"]
    held = all(
        c["fd"] <= claims["small_fd_factor"] * best_fd
        and c["accuracy"] >= best_acc - claims["small_accuracy_points"]
        for c in small.values()
    )
    assert not held  # if a rerun makes it hold, the chapter's account must change


def test_eps_and_v_degrade_with_the_patch_size_and_x_does_not(script, grid) -> None:
    """At patch 8, ε and v beat their own patch-16 and patch-32 cells on both numbers; x's FD barely moves."""
    rows = [r["name"] for r in grid["rows"] if r["bottleneck_dim"] is None]
    small = _cells(grid, script.CLAIMS["small_row"])
    for row in rows[1:]:
        for pred in ("eps", "v"):
            big = _cells(grid, row)[pred]
            assert small[pred]["fd"] < big["fd"] and small[pred]["accuracy"] > big["accuracy"], (row, pred)
    x_fds = [_cells(grid, row)["x"]["fd"] for row in rows]
    assert max(x_fds) <= 1.5 * min(x_fds), x_fds


def test_longer_training_helps_at_the_small_patch_only(script, grid) -> None:
    """3× the steps: ε and v at patch 8 improve a lot; at patch 32 ε stays at chance and v stays behind x."""
    claims = script.CLAIMS
    for pred in ("eps", "v"):
        short = _cells(grid, claims["small_row"])[pred]
        long = _extra(script, grid, claims["small_row"], pred, 1200)
        assert long["fd"] * claims["longer_fd_drop"] <= short["fd"], (pred, short["fd"], long["fd"])
        assert long["accuracy"] > short["accuracy"], pred
    large_x = _cells(grid, claims["large_row"])["x"]
    assert _extra(script, grid, claims["large_row"], "eps", 1200)["accuracy"] < 0.2
    long_v = _extra(script, grid, claims["large_row"], "v", 1200)
    assert long_v["fd"] > large_x["fd"] and long_v["accuracy"] < large_x["accuracy"]


def test_grid_rows_describe_their_tokens(grid) -> None:
    for row in grid["rows"]:
        assert (row["tokens"], row["patch_dim"]) == ch05.token_shape(32, 1, row["patch_size"])


def test_run_cell_is_deterministic_and_writes_a_valid_cell(script) -> None:
    """A 4-step cell twice: identical metrics and samples, and exactly the keys validate_grid expects (< 20 s)."""
    torch.set_num_threads(1)
    data = digits(32)
    classifier = train_proxy(data.images[:300], data.labels[:300], 10, steps=5)
    kwargs = dict(classifier=classifier, steps=4, num_images=20, num_stored=10, sample_steps=2, loss_window=2)
    a = script.run_cell(32, "x", None, **kwargs)
    b = script.run_cell(32, "x", None, **kwargs)
    assert set(a) == script.CELL_KEYS
    a.pop("train_seconds"), b.pop("train_seconds")
    assert a == b
    assert len(a["loss_curve"]) == 2 and a["final_loss"] == a["loss_curve"][-1]
    assert torch.tensor(a["samples"]).shape == (10, 32, 32)
    assert a["sample_labels"] == list(range(10))
    assert a["overrides"] == script.cell_overrides(32, "x", None, 4)
    assert script.run_key(a) == ("", "x", 4, 0)


def test_cell_overrides_reject_bad_values(script) -> None:
    with pytest.raises(ValueError, match="pred='z'"):
        script.cell_overrides(8, "z", None, 10)
    with pytest.raises(ValueError, match="patch_size=6"):
        script.cell_overrides(6, "x", None, 10)


def test_exercise_checks_accept_solutions_and_reject_mistakes() -> None:
    ch05.check_token_shape(ch05.token_shape)
    with pytest.raises(AssertionError, match="swapped"):
        ch05.check_token_shape(lambda h, c, p: ch05.token_shape(h, c, p)[::-1])
    with pytest.raises(AssertionError, match="multiply p² by C"):
        ch05.check_token_shape(lambda h, c, p: ((h // p) ** 2, p * p))

    def patchify(x, p):
        b, c, h, w = x.shape
        return x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, -1, p * p * c)

    ch05.check_patchify(patchify)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(unpatchify(patchify(x, 4), 4, 3), x)

    def channels_first(x, p):
        b, c, h, w = x.shape
        return x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, p * p * c)

    with pytest.raises(AssertionError, match="channels come first"):
        ch05.check_patchify(channels_first)
    with pytest.raises(AssertionError, match="expected shape"):
        ch05.check_patchify(lambda x, p: x.flatten(1))
