"""Sampling from checkpoints and pretrained folders: EMA choice, per-image noise, labels, grids and .npz files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from jitlib.artifact import load
from jitlib.cli import main
from jitlib.evaluation.generate import (
    class_labels,
    generate,
    generate_shards,
    read_shards,
    sample_noise,
    save_grid,
    save_npz,
    save_pngs,
)

TINY = [  # on top of the smoke-digits preset (a 1-block, 32-wide JiT on 16×16 digits)
    "train.steps=4",
    "train.ema_decays=[0.5,0.9]",
    "optim.lr=1e-2",
]


@pytest.fixture(scope="module")
def run(smoke_run) -> Path:
    return smoke_run(*TINY)


def test_ema_choice_loads_different_weights(run: Path) -> None:
    raw, fast, slow = (load(run).pipeline(ema) for ema in ("model", "0.5", "0.9"))
    default = load(
        run
    ).pipeline()  # no sample.ema in the recipe: the slowest decay, as the official code does
    key = "final_layer.linear.weight"
    assert torch.equal(default.net.state_dict()[key], slow.net.state_dict()[key])
    assert not torch.equal(raw.net.state_dict()[key], fast.net.state_dict()[key])
    assert not torch.equal(fast.net.state_dict()[key], slow.net.state_dict()[key])
    assert (
        "(step 4) [EMA 0.9]" in slow.description and raw.num_classes == 10 and raw.image_shape == (1, 16, 16)
    )
    with pytest.raises(ValueError, match="keeps model, 0.5, 0.9"):
        load(run).pipeline("0.99")


def test_images_do_not_depend_on_the_batch_size(run: Path) -> None:
    gen = load(run).pipeline()
    labels = class_labels(gen.num_classes, 7)
    a = generate(gen, labels, seed=1, batch_size=7)
    b = generate(gen, labels, seed=1, batch_size=3)
    assert a.shape == (7, 1, 16, 16) and torch.allclose(a, b, atol=1e-5)
    assert a.min() >= -1 and a.max() <= 1
    assert not torch.allclose(a, generate(gen, labels, seed=2, batch_size=7))
    assert torch.equal(sample_noise(3, (2,), seed=5, start=4)[1], sample_noise(1, (2,), seed=5, start=5)[0])


def test_class_labels() -> None:
    assert class_labels(3, 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert class_labels(10, labels=[9, 0]).tolist() == [9, 0]
    with pytest.raises(ValueError, match="class id 10 out of range for a 10-class model"):
        class_labels(10, labels=[3, 10])
    with pytest.raises(ValueError, match="class id -1"):
        class_labels(10, labels=[-1])


def test_writers(tmp_path: Path) -> None:
    images = torch.linspace(-1, 1, 6 * 3 * 4 * 4).view(6, 3, 4, 4)
    grid = np.asarray(Image.open(save_grid(images, tmp_path / "g.png", nrow=3)))
    assert grid.shape == (2 * 4 + 2, 3 * 4 + 2 * 2, 3)
    with np.load(save_npz(images, torch.arange(6), tmp_path / "s.npz")) as z:
        assert (
            z["arr_0"].shape == (6, 4, 4, 3)
            and z["arr_0"].dtype == np.uint8
            and z["arr_1"].tolist() == list(range(6))
        )
    assert len(list(save_pngs(images, tmp_path / "pngs").glob("*.png"))) == 6


def test_exported_folder_samples_bit_identically_to_the_run(run: Path, tmp_path: Path) -> None:
    exported = load(run).save_pretrained(tmp_path / "weights")
    a, b = load(run).pipeline("0.9"), load(exported).pipeline("0.9")
    assert (a.noise_scale, a.pred, a.t_eps, a.defaults) == (b.noise_scale, b.pred, b.t_eps, b.defaults)
    labels = class_labels(10, 4)
    assert torch.equal(generate(a, labels), generate(b, labels))


def test_shards_resume_to_the_uninterrupted_result(run: Path, tmp_path: Path) -> None:
    pipe = load(run).pipeline()
    labels = class_labels(10, 10)
    seen: list[tuple[Tensor, Tensor]] = []
    whole = generate_shards(
        pipe,
        labels,
        tmp_path / "whole",
        batch_size=3,
        shard_size=4,
        on_batch=lambda x, y: seen.append((x, y)),
    )
    assert [p.name for p in whole] == ["shard-000000.npz", "shard-000001.npz", "shard-000002.npz"]
    images, stored = read_shards(tmp_path / "whole")
    assert images.shape == (10, 16, 16, 1) and images.dtype == np.uint8 and stored.tolist() == labels.tolist()
    fed = torch.cat([x for x, _ in seen])
    assert fed.dtype == torch.uint8 and torch.equal(fed.permute(0, 2, 3, 1), torch.from_numpy(images))
    # An interrupted run leaves complete shards only (each is renamed into place); the same call resumes it.
    generate_shards(pipe, labels, tmp_path / "fresh", batch_size=3, shard_size=4)
    first = (tmp_path / "fresh" / "shard-000001.npz").read_bytes()
    (tmp_path / "fresh" / "shard-000001.npz").unlink()
    (tmp_path / "fresh" / "shard-000002.npz").unlink()
    again: list[Tensor] = []
    generate_shards(
        pipe, labels, tmp_path / "fresh", batch_size=3, shard_size=4, on_batch=lambda x, y: again.append(x)
    )
    assert (tmp_path / "fresh" / "shard-000001.npz").read_bytes() == first
    assert np.array_equal(read_shards(tmp_path / "fresh")[0], images) and torch.equal(torch.cat(again), fed)
    with pytest.raises(ValueError, match="other settings \\(seed differ"):
        generate_shards(pipe, labels, tmp_path / "fresh", seed=1, batch_size=3, shard_size=4)


def test_sample_command_writes_grid_and_npz(run: Path, tmp_path: Path) -> None:
    code = main(
        [
            "sample",
            str(run),
            "--labels",
            "1",
            "2",
            "3",
            "--cfg-scale",
            "2",
            "--grid",
            str(tmp_path / "g.png"),
            "--npz",
            str(tmp_path / "s.npz"),
            "--png-dir",
            str(tmp_path / "pngs"),
        ]
    )
    assert code == 0
    assert Image.open(tmp_path / "g.png").size[0] > 16
    with np.load(tmp_path / "s.npz") as z:
        assert z["arr_1"].tolist() == [1, 2, 3]
    assert len(list((tmp_path / "pngs").glob("*.png"))) == 3


def test_sampling_warns_once_in_one_line_when_the_noise_scale_breaks_the_resolution_rule() -> None:
    """At 256 px the paper's rule is s = 256/256 = 1; a model carrying s = 0.25 warns at sample time, s = 1 does not."""
    from dataclasses import replace

    from jitlib.diffusion.interpolation import NoiseScaleWarning
    from jitlib.evaluation.generate import Pipeline
    from jitlib.nn.model import JiT
    from jitlib.nn.registry import get_config
    from jitlib.training.config import DiffusionConfig

    torch.manual_seed(0)
    net = JiT(replace(get_config("JiT-tiny/32"), input_size=256, num_classes=0)).eval()
    labels = torch.zeros(1, dtype=torch.long)
    with pytest.warns(NoiseScaleWarning) as record:
        generate(Pipeline(net, DiffusionConfig(noise_scale=0.25)), labels, steps=1, method="euler")
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert "noise_scale=0.25" in str(record[0].message) and "256" in str(record[0].message)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", NoiseScaleWarning)
        generate(Pipeline(net, DiffusionConfig(noise_scale=1.0)), labels, steps=1, method="euler")
