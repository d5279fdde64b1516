"""The photo data set: deterministic crops of packaged photos, split by whole photos, the usual data-set interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from jitlib.training import photos
from jitlib.training.config import DataConfig
from jitlib.training.data import ResumableSampler, build_dataset
from jitlib.training.photos import PHOTOS, PhotoCrops, photo_list

README = Path(__file__).resolve().parents[1] / "data" / "README.md"


def test_splits_are_disjoint_whole_photos_and_every_photo_loads() -> None:
    train, reference = photo_list("train"), photo_list("reference")
    assert len(train) + len(reference) == len(PHOTOS) and len(reference) >= 10
    assert not {p.name for p in train} & {p.name for p in reference}
    assert not {p.locator for p in train} & {p.locator for p in reference}
    # the reference shows kinds of scene the training photos show too
    assert {p.category for p in reference} <= {p.category for p in train}
    for photo in PHOTOS:
        image = photos.load_photo(photo.name)
        assert image.mode == "RGB" and 200 <= min(image.size) <= photos.MAX_SHORT_SIDE, photo.name


def test_crops_are_deterministic_in_range_and_labelled() -> None:
    data = PhotoCrops("train", 32, num_images=20, seed=3)
    x, y = data[7]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and -1 <= x.min() and x.max() <= 1
    assert torch.equal(x, PhotoCrops("train", 32, num_images=20, seed=3)[7][0])
    assert not torch.equal(x, PhotoCrops("train", 32, num_images=20, seed=4)[7][0])
    assert 0 <= y < data.num_classes == len(photo_list("train"))
    assert data.classes[y] == photo_list("train")[y].name
    by_category = PhotoCrops("train", 32, num_images=20, seed=3, labels="category")
    assert by_category.classes[by_category[7][1]] == photo_list("train")[y].category
    pixels = data.uint8(4, start=5)
    assert pixels.dtype == torch.uint8 and torch.equal(pixels[2].float() / 127.5 - 1, x)


def test_crops_vary_and_come_at_every_size() -> None:
    for size in (32, 64, 128):
        images = PhotoCrops("reference", size, num_images=6, seed=0).uint8()
        assert images.shape == (6, 3, size, size)
        assert len({bytes(image.numpy()) for image in images}) == 6
        assert images.float().std() > 20  # not blank


def test_flip_mirrors_some_items() -> None:
    plain = PhotoCrops("train", 32, num_images=16, seed=1).uint8()
    flipped = PhotoCrops("train", 32, num_images=16, seed=1, flip=True).uint8()
    mirrored = [
        torch.equal(f, p.flip(-1)) and not torch.equal(f, p) for f, p in zip(flipped, plain, strict=True)
    ]
    same = [torch.equal(f, p) for f, p in zip(flipped, plain, strict=True)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True)) and any(mirrored) and any(same)


def test_registered_under_its_cli_name_with_a_distributed_sampler() -> None:
    data = build_dataset(DataConfig(name="photos", image_size=32, num_images=64), seed=0)
    assert isinstance(data, PhotoCrops) and data.channels == 3 and len(data) == 64
    ranks = [list(ResumableSampler(data, num_replicas=2, rank=r, seed=0)) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == list(range(64))


def test_bad_arguments_are_one_line_errors() -> None:
    for kwargs, match in (
        ({"split": "test"}, "valid: train, reference"),
        ({"image_size": 4}, "8..256"),
        ({"num_images": 0}, "must be > 0"),
        ({"labels": "scene"}, "valid: photo, category"),
    ):
        with pytest.raises(ValueError, match=match) as err:
            PhotoCrops(**kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="no packaged photo"):
        photos.load_photo("lena")


def test_readme_lists_every_photo_with_package_size_and_licence() -> None:
    text = README.read_text()
    for photo in PHOTOS:
        row = next((line for line in text.splitlines() if line.startswith(f"| {photo.name} |")), None)
        assert row is not None, f"data/README.md has no row for {photo.name}"
        assert photo.package in row and photo.split in row and photo.licence in row
        width, height = photos._read(photo).size
        assert f"{width}×{height}" in row
    assert np.all([p.split in ("train", "reference") for p in PHOTOS])
