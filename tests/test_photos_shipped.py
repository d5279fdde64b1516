"""The shipped photo model by name: ``jitlib.load("photos-small")`` and ``jitlib sample photos-small``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jitlib
from jitlib import artifact
from jitlib.cli import main

ASSET = Path(artifact.ASSET_DIR) / "photos-small"


def test_photos_small_loads_by_name_as_the_shipped_folder() -> None:
    by_name, by_path = jitlib.load("photos-small"), jitlib.load(ASSET)
    assert by_name.folder == ASSET and by_name.card == by_path.card
    assert by_name.card.provenance.dataset == "photos" and by_name.card.diffusion.pred == "x"
    assert "photos-small" in artifact.SHIPPED and "digits-small" in artifact.SHIPPED


def test_an_unknown_name_lists_every_shipped_model() -> None:
    with pytest.raises(FileNotFoundError) as info:
        jitlib.load("photos-large")
    message = str(info.value)
    assert "\n" not in message and "'photos-large'" in message
    assert all(name in message for name in ("digits-small", "photos-small"))


def test_a_missing_exported_folder_names_the_command_that_makes_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(artifact, "ASSET_DIR", tmp_path)  # an install without the folder
    with pytest.raises(FileNotFoundError, match=re.escape(artifact.EXPORTED["photos-small"])):
        jitlib.load("photos-small")


def test_cli_samples_photos_small_by_name(tmp_path, capsys) -> None:
    grid = tmp_path / "photos.png"
    argv = ["sample", "photos-small", "--num", "4", "--steps", "2", "--nrow", "4", "--grid", str(grid)]
    assert main(argv) == 0
    image = np.asarray(Image.open(grid))
    assert image.shape[0] >= 64 and image.shape[1] >= 4 * 64 and image.shape[2] == 3
    assert image.std() > 0  # not a blank canvas
