"""The shipped checkpoint: SHA-256 verified before loading, refused when corrupt, retrained when missing."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from jitlib import artifact as pretrained
from jitlib import shipped
from jitlib.artifact import ASSET_DIR, CONFIG_FILE, STORAGE_DTYPE, ModelCard, load, variant_file
from jitlib.evaluation.generate import class_labels, generate
from jitlib.integrity import SUMS_FILE, is_complete, verify
from jitlib.shipped import RECIPES, load_or_train, recipe_config
from jitlib.training import checkpoint
from jitlib.training.checkpoint import code_version
from jitlib.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ASSET_DIR / "digits-small"
# A two-step, two-block version of the recipe: the same code path in seconds.
TINY = ["train.steps=2", "model.arch.depth=2", "train.batch_size=16"]


def test_shipped_checkpoint_verifies_and_fits_the_size_budget() -> None:
    recipe = RECIPES["digits-small"]
    paths = verify(SHIPPED)
    assert {p.name for p in paths} == {CONFIG_FILE, *(variant_file(v) for v in recipe.keep)}
    total = sum(p.stat().st_size for p in SHIPPED.iterdir())
    assert total <= 5_000_000, f"the shipped checkpoint is {total} bytes; the package budget is 5 MB"
    model = load(SHIPPED)
    assert model.variants == list(recipe.keep) and model.card.dtype == "float16"
    assert (
        model.card.architecture.num_classes == 10 and model.card.image_size == 32 and model.card.channels == 1
    )
    assert model.card.diffusion.pred == "x" and model.card.diffusion.loss == "v"
    assert model.card.class_names == tuple("0123456789") and model.card.provenance.steps == 1400
    net = model.net()
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_corrupt_file_is_refused_with_one_line_naming_it(tmp_path, monkeypatch) -> None:
    copy = tmp_path / "assets" / "digits-small"
    shutil.copytree(SHIPPED, copy)
    victim = copy / variant_file(RECIPES["digits-small"].keep[-1])
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the tensor data
    victim.write_bytes(bytes(data))
    with pytest.raises(ValueError) as err:
        load(copy)
    message = str(err.value)
    assert "\n" not in message and str(victim) in message and "SHA-256" in message
    # The load-or-train switch must not retrain over a corrupt shipped file: it reports it.
    monkeypatch.setattr(pretrained, "ASSET_DIR", tmp_path / "assets")
    with pytest.raises(ValueError, match="corrupt"):
        load_or_train("digits-small", cache=tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists()


def test_missing_or_malformed_sums_are_reported(tmp_path) -> None:
    copy = tmp_path / "digits-small"
    shutil.copytree(SHIPPED, copy)
    (copy / CONFIG_FILE).unlink()
    assert not is_complete(copy)
    with pytest.raises(FileNotFoundError, match=CONFIG_FILE):
        verify(copy)
    (copy / SUMS_FILE).write_text("not a digest line\n")
    with pytest.raises(ValueError, match="line 1"):
        verify(copy)
    with pytest.raises(ValueError, match="valid: digits-small"):
        load_or_train("digits-large")


def test_load_or_train_round_trip(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(pretrained, "ASSET_DIR", tmp_path / "nothing-shipped")
    cache = tmp_path / "cache"
    expected_code = git_code_version()  # before training, as train_checkpoint reads it
    model = load_or_train("digits-small", cache=cache, overrides=TINY, progress=False)
    assert model.folder == cache / "digits-small" and model.card.provenance.steps == 2
    assert model.card.provenance.code == expected_code  # the commit this test runs from, read by git itself
    assert model.card.provenance.measured["torch"] == torch.__version__
    verify(model.folder)
    stamp = (model.folder / SUMS_FILE).stat().st_mtime_ns
    again = load_or_train("digits-small", cache=cache, overrides=TINY, progress=False)
    assert (again.folder / SUMS_FILE).stat().st_mtime_ns == stamp  # found in the cache: not retrained

    # The same recipe trained independently gives the weights that were exported (rounded to float16).
    trainer = Trainer(recipe_config("digits-small", tmp_path / "run", TINY))
    trainer.fit()
    raw = trainer.net.state_dict()
    for variant in model.variants:
        expected = raw if variant == "model" else {**raw, **trainer.ema.state_dict()[variant]}
        loaded = again.state_dict(variant)
        assert loaded.keys() == expected.keys()
        for key, tensor in expected.items():
            torch.testing.assert_close(loaded[key], tensor.to(STORAGE_DTYPE).float(), rtol=0, atol=0)

    # Loaded networks sample, and the training-checkpoint view gives the same networks to jitlib's tools.
    labels = class_labels(10, 4)
    images = generate(again.pipeline(), labels, steps=2)
    assert images.shape == (4, 1, 32, 32) and torch.isfinite(images).all()
    path = again.to_checkpoint(tmp_path / "as-checkpoint.pt")
    for variant in again.variants:
        from_checkpoint = load(path).pipeline(variant).net.state_dict()
        for key, tensor in again.net(variant).state_dict().items():
            torch.testing.assert_close(from_checkpoint[key], tensor, rtol=0, atol=0)


def git_code_version() -> dict:
    """What ``code_version`` should record for this checkout, asked of git directly (None: not a git checkout)."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return code_version()  # no git here: the reason is checked in test_code_version_outside_a_checkout
    status = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all", "--", "jitlib"],
        capture_output=True,
        text=True,
        check=True,
    )
    changed = sorted(
        line[3:] for line in status.stdout.splitlines() if not line[3:].startswith("jitlib/assets/")
    )
    return {"commit": head.stdout.strip(), "dirty": bool(changed), "changed": changed}


def test_code_version_is_the_checkout_commit() -> None:
    recorded = code_version()
    assert recorded == git_code_version()
    if recorded["commit"] is not None:
        assert len(recorded["commit"]) == 40 and all(c in "0123456789abcdef" for c in recorded["commit"])


def test_a_training_run_records_its_code_version_and_exports_carry_it(tmp_path) -> None:
    """Not only the shipped models: every checkpoint of ``jitlib train`` names its code, and an export keeps it."""
    trainer = Trainer(recipe_config("digits-small", tmp_path / "run", ["train.steps=1"]))
    trainer.fit()
    expected = git_code_version()
    assert load(tmp_path / "run").card.provenance.code == expected
    exported = load(tmp_path / "run").save_pretrained(tmp_path / "export")
    assert load(exported).card.provenance.code == expected


def test_code_version_outside_a_checkout(tmp_path, monkeypatch) -> None:
    (tmp_path / "__init__.py").write_text("")  # a package copied out of any repository, as in a wheel
    recorded = code_version(tmp_path)
    assert recorded["commit"] is None and "not tracked by git" in recorded["reason"]

    def no_git(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "git")

    monkeypatch.setattr(checkpoint.subprocess, "run", no_git)
    recorded = code_version()
    assert recorded["commit"] is None and "git could not be run" in recorded["reason"]


def test_cards_without_a_code_version_load_and_say_so(tmp_path) -> None:
    """The card shipped before the code version was recorded (no ``provenance.code``) still loads."""
    record = json.loads((SHIPPED / CONFIG_FILE).read_text())
    record["provenance"].pop("code", None)
    card = ModelCard.from_json(json.dumps(record))
    assert card.provenance.code == {} and card.provenance.code_summary == "code version not recorded"
    clean = pretrained.Provenance(code={"commit": "0123456789abcdef" * 2 + "01234567", "dirty": False})
    assert clean.code_summary == "commit 0123456789ab"
    dirty = pretrained.Provenance(code={"commit": "f" * 40, "dirty": True, "changed": ["jitlib/nn/model.py"]})
    assert dirty.code_summary == "commit ffffffffffff with uncommitted changes to jitlib/"
    unknown = pretrained.Provenance(code={"commit": None, "reason": "an installed copy"})
    assert unknown.code_summary == "code version unknown (an installed copy)"


def test_shipped_names_moved_to_jitlib_shipped_stay_importable_from_artifact() -> None:
    """jitlib.shipped owns them (documented once, there); ``from jitlib.artifact import ...`` still finds them."""
    moved = set(shipped.__all__) - {"code_version"}
    assert not set(shipped.__all__) & set(pretrained.__all__)
    for name in moved:
        assert getattr(pretrained, name) is getattr(shipped, name)
    with pytest.raises(AttributeError, match="no attribute 'code_version'"):
        pretrained.code_version  # noqa: B018 -- only the names that used to live in jitlib.artifact


def test_the_shipped_card_names_the_commit_that_trained_it() -> None:
    """digits-small was retrained from a clean checkout; its commit is in this repository's history."""
    code = load("digits-small").card.provenance.code
    assert code["dirty"] is False and code["changed"] == []
    if git_code_version()["commit"] is None:
        pytest.skip("not a git checkout: the commit cannot be looked up")
    found = subprocess.run(
        ["git", "-C", str(ASSET_DIR), "cat-file", "-e", f"{code['commit']}^{{commit}}"], check=False
    )
    assert found.returncode == 0, f"commit {code['commit']} is not in this repository's history"
