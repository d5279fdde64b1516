"""Fréchet distance, the offline proxy metric, CFG × EMA sweeps, and the torch-fidelity wrapper (with a stand-in)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from jitlib.artifact import load
from jitlib.evaluation import metrics
from jitlib.training.config import DataConfig, load_config
from jitlib.training.data import digits, stack_dataset
from jitlib.training.trainer import Trainer


def random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_frechet_distance_closed_forms() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    a, b = rng.uniform(0.1, 2, 5), rng.uniform(0.1, 2, 5)
    # Diagonal covariances: FD = ‖μ₁ − μ₂‖² + Σ (√aᵢ − √bᵢ)².
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    s1, s2 = random_spd(rng, 6), random_spd(rng, 6)
    reference = np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert metrics.frechet_distance(np.zeros(6), s1, np.zeros(6), s2) == pytest.approx(reference, rel=1e-8)
    assert metrics.frechet_distance(mu1, s1[:5, :5], mu1, s1[:5, :5]) == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError, match="statistics do not match"):
        metrics.frechet_distance(mu1, np.diag(a), mu2[:4], np.diag(b[:4]))
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.gaussian_stats(np.zeros((1, 3)))


@pytest.fixture(scope="module")
def digits16(tmp_path_factory: pytest.TempPathFactory) -> tuple[DataConfig, Path]:
    """A proxy classifier of 16-px digits, trained briefly into a private cache."""
    cache = tmp_path_factory.mktemp("cache")
    data = DataConfig(name="digits", image_size=16)
    metrics.proxy_classifier(data, cache=cache, steps=150)
    return data, cache


def test_proxy_metric_separates_real_digits_from_noise(digits16) -> None:
    data, cache = digits16
    classifier = metrics.proxy_classifier(data, cache=cache)  # loaded from the cache, not retrained
    assert (cache / metrics.proxy_key(data)).is_file()
    assert classifier.real_accuracy > 0.8
    real = digits(16)
    good = classifier.score(real.images[:400], real.labels[:400])
    noise = classifier.score(torch.rand(400, 1, 16, 16) * 2 - 1, real.labels[:400])
    assert good.accuracy > 0.8 and noise.accuracy < 0.35
    assert 0 < good.real_fd == classifier.real_fd(400) and classifier.real_fd(len(real)) == pytest.approx(
        0, abs=1e-6
    )
    assert good.fd < 2 * good.real_fd + 0.1 and noise.fd > 20 * good.real_fd
    assert "proxy FD" in str(good) and "class accuracy" in str(good)


def test_proxy_classifier_is_deterministic() -> None:
    real = digits(16)
    a = metrics.train_proxy(real.images[:200], real.labels[:200], 10, seed=3, steps=10)
    b = metrics.train_proxy(real.images[:200], real.labels[:200], 10, seed=3, steps=10)
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.net.state_dict().values(), b.net.state_dict().values(), strict=True)
    )
    assert np.array_equal(a.real_features, b.real_features) and a.real_accuracy == b.real_accuracy


def test_shipped_proxy_is_verified_and_loaded_without_training(monkeypatch) -> None:
    def no_training(*args, **kwargs):
        raise AssertionError("the shipped classifier should have been used")

    monkeypatch.setattr(metrics, "train_proxy", no_training)
    data = DataConfig(name="digits", image_size=32)
    assert metrics.shipped_proxy_path(data) is not None
    classifier = metrics.proxy_classifier(data)
    assert 0.95 < classifier.real_accuracy <= 1
    assert (
        metrics.shipped_proxy_path(DataConfig(name="digits", image_size=16)) is None
    )  # only 32 px is shipped


def test_corrupt_shipped_proxy_is_refused_with_one_line(tmp_path: Path, monkeypatch) -> None:
    for source in metrics.PROXY_ASSET_DIR.iterdir():
        (tmp_path / source.name).write_bytes(source.read_bytes())
    name = metrics.proxy_key(DataConfig(name="digits", image_size=32))
    blob = bytearray((tmp_path / name).read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (tmp_path / name).write_bytes(bytes(blob))
    monkeypatch.setattr(metrics, "PROXY_ASSET_DIR", tmp_path)
    with pytest.raises(ValueError, match=f"{name} is corrupt: SHA-256") as info:
        metrics.proxy_classifier(DataConfig(name="digits", image_size=32))
    assert "\n" not in str(info.value)


def test_shipped_proxy_is_what_the_code_trains(tmp_path: Path) -> None:
    """Retraining with the default recipe reproduces the shipped classifier (bit for bit on the machine that made
    it; other CPUs may differ in the last bits, so the check is on what the metric uses: its predictions)."""
    data = DataConfig(name="digits", image_size=32)
    shipped = metrics.proxy_classifier(data)
    retrained = metrics.proxy_classifier(data, cache=tmp_path, shipped=False)
    assert (tmp_path / metrics.proxy_key(data)).is_file()
    assert retrained.real_accuracy == pytest.approx(shipped.real_accuracy, abs=0.01)
    images, _ = stack_dataset(digits(32))
    agree = (shipped.predict(images) == retrained.predict(images)).float().mean().item()
    assert agree > 0.98, agree


def test_proxy_refuses_image_folders() -> None:
    with pytest.raises(ValueError, match="proxy metric covers digits, shapes, cifar10"):
        metrics.proxy_classifier(DataConfig(name="folder"))


def test_sweep_scores_every_ema_and_cfg_pair(digits16, tmp_path: Path) -> None:
    _, cache = digits16
    config = load_config(
        "tiny-digits",
        [
            "model.name=JiT-tiny/8",
            "data.image_size=16",
            "model.arch.depth=1",
            "model.arch.hidden_size=32",
            "model.arch.num_heads=2",
            "model.arch.in_context_start=0",
            "train.batch_size=16",
            "train.steps=3",
            "train.ema_decays=[0.9,0.99]",
            "train.progress=false",
            f"train.output_dir={tmp_path}",
        ],
    )
    Trainer(config).fit()
    rows = metrics.sweep(tmp_path, [1.0, 2.0], ["all", "model"], num_images=20, steps=2, cache=cache)
    assert [(r["ema"], r["cfg_scale"]) for r in rows] == [
        (e, c) for e in ("0.9", "0.99", "model") for c in (1.0, 2.0)
    ]
    assert all(r["fd"] > 0 and 0 <= r["accuracy"] <= 1 for r in rows)
    table = metrics.format_table(rows).splitlines()
    assert len(table) == 7 and table[0].split() == ["ema", "cfg_scale", "fd", "accuracy", "real_fd"]
    assert sum(line.endswith("*") for line in table) == 1
    with pytest.raises(ValueError, match="needs reference statistics"):
        metrics.sweep(tmp_path, [1.0], ["all"], metric="fid")
    # One loader: the run's export (float32) scores exactly as the run folder does; an EMA it lacks is one line.
    exported = load(tmp_path).save_pretrained(tmp_path.parent / f"{tmp_path.name}-exported")
    again = metrics.sweep(exported, [2.0], ["0.99"], num_images=20, steps=2, cache=cache)
    assert again == [r for r in rows if (r["ema"], r["cfg_scale"]) == ("0.99", 2.0)]
    with pytest.raises(ValueError, match="--ema '0.5': "):
        metrics.sweep(exported, [1.0], ["0.5"], num_images=20, steps=2, cache=cache)


@pytest.fixture
def fake_fidelity(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for torch-fidelity's Inception: features are per-channel means and a 2×2 thumbnail of the image."""

    class FakeInception(torch.nn.Module):
        def __init__(self, name: str, features_list: list[str]) -> None:
            super().__init__()
            assert name == "inception-v3-compat" and features_list == ["2048", "logits_unbiased"]

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            assert x.dtype == torch.uint8 and x.shape[1] == 3  # torch-fidelity's input contract
            x = x.float()
            pool = torch.cat([x.mean((2, 3)), torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)], 1)
            return pool, pool[:, :4]

    fidelity = types.ModuleType("torch_fidelity")
    fidelity.FeatureExtractorInceptionV3 = FakeInception
    monkeypatch.setitem(sys.modules, "torch_fidelity", fidelity)


def write_images(
    folder: Path, n: int, seed: int, size: tuple[int, int] = (24, 20), grey: bool = False
) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        shape = (size[1], size[0]) if grey else (size[1], size[0], 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def test_reference_stats_and_fid_through_torch_fidelity(fake_fidelity, tmp_path: Path) -> None:
    real = write_images(tmp_path / "real" / "class_a", 30, seed=0)
    stats = metrics.reference_stats(tmp_path / "real", tmp_path / "ref.npz", image_size=16)
    mu, sigma = metrics.load_stats(stats)
    assert mu.shape == (15,) and sigma.shape == (15, 15)
    same = metrics.fid_is(metrics.folder_batches(real, 16, batch_size=7), stats)
    assert same["fid"] == pytest.approx(0, abs=1e-6) and same["num_images"] == 30
    _, logits = metrics.inception_features(metrics.folder_batches(real, 16), metrics.inception())
    expected_is = metrics.inception_score(torch.from_numpy(logits).softmax(dim=1).numpy())
    assert (same["is"], same["is_std"]) == pytest.approx(expected_is, rel=1e-12)
    grey = write_images(tmp_path / "grey", 30, seed=1, grey=True)  # grey PNGs are converted to RGB
    other = metrics.fid_is(metrics.folder_batches(grey, 16), stats)
    assert other["fid"] > 1


def test_missing_torch_fidelity_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install 'jitlib\[fid\]'"):
        metrics.require_torch_fidelity()


def test_stats_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="jitlib eval ref-stats"):
        metrics.load_stats(tmp_path / "none.npz")
    np.savez(tmp_path / "wrong.npz", m=np.zeros(2))
    with pytest.raises(ValueError, match="no 'mu'/'sigma'"):
        metrics.load_stats(tmp_path / "wrong.npz")


def test_precision_recall_counts_points_inside_the_knn_balls() -> None:
    real = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # k = 1: every real ball has radius 1 (the nearest other corner); two fake points inside the square, two far away.
    fake = np.array([[0.5, 0.5], [0.6, 0.5], [10.0, 10.0], [10.5, 10.0]])
    out = metrics.precision_recall(real, fake, k=1)
    assert out["precision"] == pytest.approx(0.5)
    # fake balls have radii 0.1, 0.1, 0.5, 0.5: no real corner (≥ 0.64 from the inner fakes) lies inside one
    assert out["recall"] == 0.0
    same = metrics.precision_recall(real, real, k=2)
    assert same == {"precision": 1.0, "recall": 1.0}
    with pytest.raises(ValueError, match="k=4"):
        metrics.precision_recall(real, real, k=4)


def test_inception_score_bounds() -> None:
    confident = np.eye(10)[np.arange(100) % 10]  # one-hot, classes balanced: IS = number of classes
    assert metrics.inception_score(confident, splits=10)[0] == pytest.approx(10, rel=1e-9)
    uniform = np.full((50, 10), 0.1)  # no information: IS = 1
    assert metrics.inception_score(uniform, splits=5) == pytest.approx((1.0, 0.0), abs=1e-12)
    with pytest.raises(ValueError, match="N >= splits"):
        metrics.inception_score(uniform[:3], splits=5)


def test_denoising_loss_by_t_of_a_perfect_x_predictor_is_zero() -> None:
    from jitlib.diffusion.denoiser import Denoiser

    images = torch.rand(4, 3, 8, 8) * 2 - 1
    perfect = Denoiser(lambda z, t, y: images, target="x")  # knows the clean images
    assert metrics.denoising_loss_by_t(perfect, images, [0.2, 0.5, 0.8]) == pytest.approx(
        [0, 0, 0], abs=1e-10
    )
    zero = Denoiser(lambda z, t, y: torch.zeros_like(z), target="x")
    assert all(v > 0 for v in metrics.denoising_loss_by_t(zero, images, [0.2, 0.8]))
