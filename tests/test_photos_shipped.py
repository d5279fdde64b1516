"""The shipped photo model by name: ``jitlib.load("photos-small")`` and ``jitlib sample photos-small``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jitlib
from jitlib import artifact, shipped
from jitlib.cli import main

ASSET = Path(artifact.ASSET_DIR) / "photos-small"
README_GRID = Path(__file__).resolve().parents[1] / "data" / "results" / "photos_small_samples.png"
README_COMMAND = (
    "jitlib sample photos-small --num 16 --nrow 8 --seed 0 --grid data/results/photos_small_samples.png"
)


def test_photos_small_loads_by_name_as_the_shipped_folder() -> None:
    by_name, by_path = jitlib.load("photos-small"), jitlib.load(ASSET)
    assert by_name.folder == ASSET and by_name.card == by_path.card
    assert by_name.card.provenance.dataset == "photos" and by_name.card.diffusion.pred == "x"
    assert "photos-small" in shipped.SHIPPED and "digits-small" in shipped.SHIPPED


def test_an_unknown_name_lists_every_shipped_model() -> None:
    with pytest.raises(FileNotFoundError) as info:
        jitlib.load("photos-large")
    message = str(info.value)
    assert "\n" not in message and "'photos-large'" in message
    assert all(name in message for name in ("digits-small", "photos-small"))


def test_a_missing_exported_folder_names_the_command_that_makes_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(artifact, "ASSET_DIR", tmp_path)  # an install without the folder
    with pytest.raises(FileNotFoundError, match=re.escape(shipped.EXPORTED["photos-small"])):
        jitlib.load("photos-small")


def test_cli_samples_photos_small_by_name(tmp_path, capsys) -> None:
    grid = tmp_path / "photos.png"
    argv = ["sample", "photos-small", "--num", "4", "--steps", "2", "--nrow", "4", "--grid", str(grid)]
    assert main(argv) == 0
    image = np.asarray(Image.open(grid))
    assert image.shape[0] >= 64 and image.shape[1] >= 4 * 64 and image.shape[2] == 3
    assert image.std() > 0  # not a blank canvas


def test_readme_grid_is_what_its_command_writes(tmp_path) -> None:
    readme = (README_GRID.parents[2] / "README.md").read_text()
    assert README_COMMAND in readme and f"]({README_GRID.relative_to(README_GRID.parents[2])})" in readme
    out = tmp_path / "grid.png"
    argv = README_COMMAND.split()[1:]
    assert main([*argv[:-1], str(out)]) == 0
    fresh, stored = (np.asarray(Image.open(p).convert("RGB"), dtype=np.int16) for p in (out, README_GRID))
    assert fresh.shape == stored.shape
    assert np.abs(fresh - stored).max() <= 2  # the same images, up to float rounding on another CPU
