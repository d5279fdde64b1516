"""The model artifact: every field of config.json round-trips, one loader reads every source, same images from all."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from jitlib.artifact import FORMAT_VERSION, Artifact, ModelCard, Provenance, load
from jitlib.integrity import SUMS_FILE
from jitlib.nn.registry import create_model, get_config
from jitlib.training.checkpoint import LAST, load_checkpoint, save_checkpoint
from jitlib.training.config import DiffusionConfig, SampleConfig


def leaves(value: object, prefix: str = "") -> dict[str, object]:
    """Every leaf field of a (nested) dataclass as {dotted name: value}."""
    if dataclasses.is_dataclass(value):
        out: dict[str, object] = {}
        for f in dataclasses.fields(value):
            out |= leaves(getattr(value, f.name), f"{prefix}{f.name}.")
        return out
    return {prefix.rstrip("."): value}


def unusual_card() -> ModelCard:
    """A card in which every leaf differs from its default, so a field dropped on the way shows up."""
    arch = get_config(
        "JiT-tiny/4",
        input_size=16,
        in_channels=1,
        hidden_size=32,
        depth=2,
        num_heads=2,
        mlp_ratio=3.0,
        bottleneck_dim=8,
        num_classes=3,
        in_context_len=2,
        in_context_start=1,
        aux_cls_block=1,
        attn_drop=0.1,
        proj_drop=0.2,
        attn_fp32_logits=True,
        rope=False,
        qk_norm=False,
        mlp="gelu",
        norm="layer",
    )
    return ModelCard(
        model_name="JiT-tiny/4",
        architecture=arch,
        diffusion=DiffusionConfig(
            pred="v",
            loss="x",
            t_dist="uniform",
            t_mu=0.3,
            t_sigma=1.7,
            noise_scale=0.5,
            t_eps=0.1,
            label_drop=0.2,
        ),
        sampler=SampleConfig("euler", 7, 2.5, (0.2, 0.9), "x", 0.9),
        variants=("model", "0.9"),
        default_ema="model",
        class_names=("cat", "dog", "eel"),
        provenance=Provenance(
            "shapes",
            123,
            "jitlib train x",
            {"train": {"seed": 3}},
            {"seconds": 1.5},
            {"commit": "ab12", "dirty": True},
        ),
        dtype="bfloat16",
        format_version=FORMAT_VERSION,
    )


def x_card() -> ModelCard:
    """The fields that need x-prediction (a pre-conditioner, the classification loss) set, on top of unusual_card."""
    card = unusual_card()
    diffusion = dataclasses.replace(card.diffusion, pred="x", precond="edm", aux_cls_weight=0.3)
    return dataclasses.replace(card, diffusion=diffusion)


def random_artifact(card: ModelCard) -> Artifact:
    net = create_model(
        card.model_name, generator=torch.Generator().manual_seed(0), **dataclasses.asdict(card.architecture)
    )
    weights = {"model": net.state_dict(), "0.9": {k: v + 0.01 for k, v in net.state_dict().items()}}
    weights = {k: {n: t.to(torch.bfloat16).float() for n, t in w.items()} for k, w in weights.items()}
    return Artifact(card, weights.__getitem__, "random", "random")


def test_save_pretrained_round_trips_every_field(tmp_path: Path) -> None:
    cards = [unusual_card(), x_card()]
    defaults = {
        **leaves(get_config("JiT-B/16"), "architecture."),
        **leaves(DiffusionConfig(), "diffusion."),
        **leaves(SampleConfig(), "sampler."),
        **leaves(Provenance(), "provenance."),
    }
    unusual = {k for card in cards for k, v in leaves(card).items() if k not in defaults or defaults[k] != v}
    same = sorted(set(defaults) - unusual - {"architecture.patch_size"})
    assert not same, f"fields left at their default in every card cannot show a drop: {same}"
    for i, card in enumerate(cards):
        artifact = random_artifact(card)
        folder = artifact.save_pretrained(tmp_path / str(i))
        again = load(folder)
        assert again.card == card and leaves(again.card) == leaves(card)
        stored = json.loads((folder / "config.json").read_text())
        assert set(stored) == {f.name for f in dataclasses.fields(ModelCard)}
        for variant in card.variants:
            expected = artifact.state_dict(variant)
            assert all(torch.equal(again.state_dict(variant)[k], v) for k, v in expected.items())
        assert again.pipeline().diffusion == card.diffusion and again.pipeline().defaults == card.sampler
    with pytest.raises(ValueError, match="already exists"):
        artifact.save_pretrained(folder)


def test_unknown_version_and_bad_cards_are_one_line(tmp_path: Path) -> None:
    folder = random_artifact(unusual_card()).save_pretrained(tmp_path / "a")
    text = (folder / "config.json").read_text()
    cases = [
        (text.replace(f'"format_version": {FORMAT_VERSION}', '"format_version": 99'), "format_version 99"),
        (json.dumps({"model": {}}), "no format_version"),
        (text.replace('"dtype"', '"dtpye"'), "unknown config key 'dtpye'"),
        (text.replace('"default_ema": "model"', '"default_ema": "0.5"'), "default_ema '0.5'"),
        (text.replace('"steps": 7', '"steps": "many"'), "sampler.steps: expected an integer"),
        (text.replace('"t_eps": 0.1', '"t_eps": 0.7'), "diffusion.t_eps=0.7 must lie in [0, 0.5)"),
        (text.replace('"dtype": "bfloat16"', '"dtype": "int8"'), "dtype 'int8' is not valid"),
    ]
    for bad, phrase in cases:
        (folder / "config.json").write_text(bad)
        with pytest.raises(ValueError) as err:
            load(folder)
        assert phrase in str(err.value) and "\n" not in str(err.value), (phrase, err.value)


def test_official_checkpoint_carries_its_recipe(tmp_path: Path) -> None:
    net = create_model("JiT-tiny/8", generator=torch.Generator().manual_seed(0))
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    args = argparse.Namespace(
        model="JiT-tiny/8",
        img_size=32,
        class_num=10,
        noise_scale=2.0,
        t_eps=0.1,
        P_mean=-0.4,
        P_std=1.0,
        sampling_method="euler",
        num_sampling_steps=20,
        cfg_scale=2.9,
        interval_min=0.1,
        interval_max=1.0,
    )
    torch.save(
        {"args": args, "model": state, "model_ema1": state, "model_ema2": state, "epoch": 7},
        tmp_path / "o.pth",
    )
    artifact = load(tmp_path / "o.pth")
    card = artifact.card
    assert (card.diffusion.noise_scale, card.diffusion.t_eps, card.diffusion.t_mu) == (2.0, 0.1, -0.4)
    assert (card.sampler.method, card.sampler.steps, card.sampler.cfg_scale, card.sampler.cfg_interval) == (
        "euler",
        20,
        2.9,
        (0.1, 1.0),
    )
    pipe = artifact.pipeline()  # ema1, as the official evaluation
    assert (pipe.noise_scale, pipe.t_eps) == (2.0, 0.1) and "ema1" in pipe.description
    assert torch.equal(
        pipe.net.state_dict()["final_layer.linear.weight"], net.state_dict()["final_layer.linear.weight"]
    )


def test_checkpoint_whose_arguments_do_not_match_its_weights_is_one_line(smoke_run, tmp_path: Path) -> None:
    state = load_checkpoint(smoke_run("train.steps=1"))
    state["model_kwargs"]["hidden_size"] = 64
    save_checkpoint(state, tmp_path / LAST)
    with pytest.raises(ValueError, match="model arguments do not match its weights") as err:
        load(tmp_path)
    assert "\n" not in str(err.value)


def cli(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "jitlib", *argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return done


def test_shipped_run_and_exported_give_bit_identical_images(tmp_path: Path) -> None:
    """jitlib sample digits-small == jitlib sample <run folder> == jitlib sample <exported folder>, through the CLI."""
    run = tmp_path / "run"
    load("digits-small").to_checkpoint(run / LAST)  # the shipped weights as a training run folder
    cli("export", str(run), str(tmp_path / "exported"))
    settings = ["--num", "6", "--steps", "3", "--seed", "11", "--device", "cpu"]
    outputs = {}
    for name, source in (
        ("shipped", "digits-small"),
        ("run", str(run)),
        ("exported", str(tmp_path / "exported")),
    ):
        cli("sample", source, *settings, "--npz", str(tmp_path / f"{name}.npz"))
        with np.load(tmp_path / f"{name}.npz") as z:
            outputs[name] = z["arr_0"]
    assert outputs["shipped"].shape == (6, 32, 32, 1) and outputs["shipped"].std() > 0
    assert np.array_equal(outputs["shipped"], outputs["run"]) and np.array_equal(
        outputs["run"], outputs["exported"]
    )


def test_the_same_weights_are_written_as_the_same_bytes(tmp_path: Path) -> None:
    """SHA256SUMS of two saves agree: a retraining that reproduces the weights reproduces the files."""
    artifact = random_artifact(x_card())
    sums = {(artifact.save_pretrained(tmp_path / str(i)) / SUMS_FILE).read_text() for i in range(8)}
    assert len(sums) == 1
