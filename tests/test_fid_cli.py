"""``jitlib eval fid`` and ``jitlib eval ref-stats`` (a cheap stand-in replaces the Inception network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jitlib.cli import main
from jitlib.evaluation import fid


@pytest.fixture
def cheap_features(monkeypatch: pytest.MonkeyPatch) -> None:
    """Features = 2048 fixed random projections of an 8×8 thumbnail: deterministic, image-dependent, instant."""
    projection = torch.randn(192, fid.FEATURE_DIM, generator=torch.Generator().manual_seed(0))

    def features(images, batch_size: int = 50, device: str = "cpu") -> np.ndarray:
        batches = images.split(batch_size) if isinstance(images, torch.Tensor) else images
        out = []
        for b in batches:
            x = (b if b.dtype == torch.uint8 else fid.unit_to_uint8(b)).float() / 255
            out.append(torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1) @ projection)
        return torch.cat(out).numpy()

    monkeypatch.setattr(fid, "inception_features", features)


def write_pngs(folder: Path, n: int, seed: int, noise: bool = False) -> Path:
    from jitlib.training.photos import PhotoCrops

    folder.mkdir(parents=True)
    if noise:
        pixels = torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed))
    else:
        pixels = PhotoCrops("reference", 32, n, seed=seed).uint8()
    for i, image in enumerate(pixels.to(torch.uint8)):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")
    return folder


def scores(capsys: pytest.CaptureFixture, *argv: str) -> dict[str, float]:
    assert main(["eval", "fid", *argv]) == 0
    captured = capsys.readouterr()
    assert "Inception Score: not available" in captured.err
    words = captured.out.split()
    return {k: float(v) for k, v in zip(words[::2], words[1::2], strict=True)}


def test_eval_fid_of_folders_against_photos_and_npz(cheap_features, tmp_path: Path, capsys) -> None:
    real = write_pngs(tmp_path / "real", 20, seed=1)
    noise = write_pngs(tmp_path / "noise", 20, seed=1, noise=True)
    common = ["--ref", "photos", "--image-size", "32", "--ref-num", "30", "--cache", str(tmp_path / "cache")]
    good, bad = scores(capsys, str(real), *common), scores(capsys, str(noise), *common)
    assert good["fid"] < bad["fid"] and good["kid"] < bad["kid"]
    assert good["num_fake"] == 20 and good["num_real"] == 30
    assert len(list((tmp_path / "cache" / "fid").glob("*.npy"))) == 1  # one reference set, cached once
    out = tmp_path / "ref.npz"
    assert main(["eval", "ref-stats", str(real), "--out", str(out)]) == 0
    with np.load(out) as stats:
        assert stats["features"].shape == (20, fid.FEATURE_DIM) and int(stats["num_images"]) == 20
    same = scores(capsys, str(real), "--ref", str(out))
    assert same["fid"] == pytest.approx(0, abs=1e-6) and same["kid"] < good["kid"]


def test_eval_fid_bad_inputs_are_one_line(cheap_features, tmp_path: Path, capsys) -> None:
    real = write_pngs(tmp_path / "real", 4, seed=1)
    for argv, message in (
        ([str(real), "--ref", str(tmp_path / "none")], "neither 'photos'"),
        ([str(real), "--ref", "photos", "--num", "0"], "argument --num: expected a positive integer, got 0"),
        ([str(real), "--ref", "photos"], "--image-size is needed"),
    ):
        assert main(["eval", "fid", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert main(["eval", "ref-stats", str(real), "--out", str(tmp_path / "x.txt")]) == 2
    assert "must end in .npz" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real"]  # nothing written on bad input
