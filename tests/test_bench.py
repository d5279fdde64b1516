"""``jitlib bench``: peaks and MFU, timing helpers, the trainer's own step measured, JSON + Markdown, the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from jitlib.cli import bench
from jitlib.cli.bench import (
    BenchOptions,
    bench_config,
    bench_sampling,
    bench_training,
    build_trainer,
    guided_evaluations,
    largest_batch,
    mfu,
    peak_flops,
    run_bench,
    time_best,
    time_calls,
    to_markdown,
    write_results,
)
from jitlib.training.precision import Precision

# A 1-block, 32-wide JiT on 16×16 images (4 tokens of 8×8 + 2 class tokens): every measurement takes milliseconds.
TINY_ARCH = dict(depth=1, hidden_size=32, num_heads=2, bottleneck_dim=8, in_context_len=2, in_context_start=0)
CPU = torch.device("cpu")


@pytest.mark.parametrize(
    "name, tflops",
    [
        ("NVIDIA H100 80GB HBM3", 989),
        ("NVIDIA H200", 989),
        ("NVIDIA A100-SXM4-80GB", 312),
        ("NVIDIA A100 80GB PCIe", 312),
        ("NVIDIA L4", 121),
        ("Tesla T4", 65),
    ],
)
def test_peaks_come_from_the_budget_table(name: str, tflops: float) -> None:
    peak, source = peak_flops(name)
    assert peak == tflops * 1e12 and "jitlib.training.budget.DEVICES" in source


@pytest.mark.parametrize("name", ["NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA A10G", "Some Future GPU"])
def test_other_gpus_need_a_given_peak(name: str) -> None:
    peak, source = peak_flops(name)
    assert peak is None and "--peak-tflops" in source


def test_cpus_have_no_peak_so_no_mfu() -> None:
    assert peak_flops("x86_64", "cpu")[0] is None
    assert mfu(1e12, None) is None
    assert mfu(494.5e12, 989e12) == pytest.approx(0.5)


def test_timing_alternates_the_functions_and_best_is_the_minimum() -> None:
    calls: list[str] = []
    times = time_calls({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, CPU, 3, 1)
    assert calls == ["a", "b"] * 4  # one warm-up round, then three timed rounds, always a before b
    assert [len(v) for v in times.values()] == [3, 3] and all(t >= 0 for v in times.values() for t in v)
    a = torch.randn(128, 128)
    work = {"short": lambda: a @ a, "long": lambda: [a @ a for _ in range(30)]}
    best = time_best(work, CPU, 3, 0)  # CPU time with one thread: sleeping would not count
    assert 0 < best["short"] < best["long"]
    with pytest.raises(ValueError, match="repeats=0"):
        time_calls({"a": lambda: None}, CPU, 0)


def test_heun_with_cfg_interval_counts() -> None:
    """The paper's sampler: 50 + 49 evaluations, 44 + 44 of them at t > 0.1 (the official code runs 2 × 99 = 198)."""
    assert guided_evaluations(50, (0.1, 1.0)) == (99, 88)
    assert guided_evaluations(50, (0.0, 1.0)) == (99, 99)  # t_lo = 0 guides t = 0 too (the official rule)
    assert guided_evaluations(50, (0.0, 0.5)) == (99, 49)  # open at t_hi: t = 0.5 is not guided
    assert guided_evaluations(1, (0.1, 1.0)) == (1, 0)


def tiny_trainer(tmp_path: Path, batch: int = 4, compile: bool = False):
    config = bench_config("JiT-tiny/8", 16, batch, "auto", compile, "cpu", tmp_path / "run", TINY_ARCH)
    return build_trainer(config, batch)


def test_bench_training_times_the_trainers_own_step(tmp_path: Path) -> None:
    trainer = tiny_trainer(tmp_path)
    before = [p.detach().clone() for p in trainer.net.parameters()]
    row = bench_training(trainer, batch=4, steps=3, warmup=2, peak=None)
    assert trainer.step == 5  # every warm-up and timed call was a real optimizer step of the Trainer
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.net.parameters(), strict=True))
    assert row["images_per_s"] == pytest.approx(4 / (row["step_ms"] / 1e3))
    assert row["mfu"] is None and row["peak_memory_gib"] is None and row["syncs_per_step"] is None
    assert row["tflops_per_s"] > 0 and row["optimizer"] == "fused"  # the trainer's AdamW is the fused one


def test_largest_batch_needs_a_gpu(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--batch max"):
        largest_batch(tiny_trainer(tmp_path))


def test_sampling_counts_the_forwards_it_runs(tmp_path: Path) -> None:
    net = tiny_trainer(tmp_path).net
    modes: list[bool] = []
    net.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    row = bench_sampling(net, 2, Precision(None, "cpu"), None, steps=10, cfg_scale=3.0)
    assert modes and not any(modes) and net.training  # sampled in eval mode (no dropout), then restored
    evaluations, guided = guided_evaluations(10, (0.1, 1.0))
    assert row["forwards_per_image"] == evaluations + guided  # one pass outside the interval, two inside
    assert row["official_forwards_per_image"] == 2 * evaluations
    assert row["images_per_s"] > 0 and row["mfu"] is None


def test_an_unconditional_model_samples_without_guidance(tmp_path: Path) -> None:
    config = bench_config(
        "JiT-tiny/8", 16, 4, "auto", False, "cpu", tmp_path / "run", TINY_ARCH, num_classes=0
    )
    net = build_trainer(config, 4).net
    assert net.config.num_classes == 0
    row = bench_sampling(net, 2, Precision(None, "cpu"), None, steps=10, cfg_scale=3.0)
    assert row["cfg_scale"] == 1.0 and row["forwards_per_image"] == row["official_forwards_per_image"] == 19


def test_bench_options_are_checked() -> None:
    with pytest.raises(ValueError, match="JiT-Z/16"):
        BenchOptions(models=["JiT-Z/16"])
    with pytest.raises(ValueError, match="speed"):
        BenchOptions(models=["JiT-tiny/8"], parts=("speed",))
    with pytest.raises(ValueError, match="batch=0"):
        BenchOptions(models=["JiT-tiny/8"], batch=0)


def small_options(**overrides) -> BenchOptions:
    values = dict(
        models=["JiT-tiny/8"],
        arch=TINY_ARCH,
        resolution=16,
        batch=4,
        compile=(False,),
        steps=2,
        warmup=1,
        sample_steps=3,
        compare_repeats=2,
        loader_images=8,
        device="cpu",
    )
    return BenchOptions(**{**values, **overrides})


def test_run_bench_resolves_its_device_with_the_one_resolver() -> None:
    for bad, message in (
        ("tpu", "device='tpu' is not a device; valid: auto"),
        ("cuda:9", "device='cuda:9': this"),
    ):
        with pytest.raises(ValueError, match=message):
            run_bench(small_options(device=bad))


def test_run_bench_writes_json_and_markdown(tmp_path: Path) -> None:
    results = run_bench(small_options())
    model = results["models"][0]
    assert model["attention_backend"] == "flash (CPU)"
    assert model["train"][0]["images_per_s"] > 0 and model["sample"][0]["images_per_s"] > 0
    paths = {row["path"].split(" (")[0]: row for row in model["compare"]}
    assert set(paths) == {
        "AdamW step",
        "EMA update",
        "attention fwd+bwd",
        "patch embedding fwd+bwd",
        "CFG evaluation",
    }
    assert all(row["before_ms"] > 0 and row["after_ms"] > 0 for row in model["compare"])
    assert results["loader"]["images_per_s"] > 0
    json_path, md_path = write_results(results, tmp_path, "cpu")
    assert json.loads(json_path.read_text())["models"][0]["model"] == "JiT-tiny/8"
    text = md_path.read_text()
    assert "| JiT-tiny/8 | 16 | fp32 | flash (CPU) | off | 4 |" in text
    assert "MFU n/a" in text and "fused" in text


def test_markdown_shows_mfu_as_a_percentage() -> None:
    results = {
        "machine": {
            "device": "cuda:0",
            "device_name": "NVIDIA H100 80GB HBM3",
            "torch": "2",
            "torch_threads": 1,
            "cpu_count": 16,
        },
        "peak_flops": 989e12,
        "peak_source": "H100 SXM, bf16 dense",
        "models": [
            {
                "model": "JiT-B/16",
                "resolution": 256,
                "precision": "bf16",
                "attention_backend": "flash",
                "train": [
                    {
                        "compile": True,
                        "batch": 256,
                        "images_per_s": 1000.0,
                        "step_ms": 256.0,
                        "tflops_per_s": 494.5,
                        "mfu": 0.5,
                        "peak_memory_gib": 40.0,
                        "syncs_per_step": 1,
                    }
                ],
            }
        ],
    }
    row = [line for line in to_markdown(results).splitlines() if line.startswith("| JiT-B/16")][0]
    assert "| 50.0% |" in row and "| 40.00 |" in row and "| 989 TFLOP/s" not in row


def test_command_line_runs_and_refuses_bad_batches(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    bench.COMMAND.register(parser.add_subparsers())
    common = ["bench", "--model", "JiT-tiny/8", "--resolution", "16", "--device", "cpu", "--compile", "off"]
    common += [f"--arch={k}={v}" for k, v in TINY_ARCH.items()]
    args = parser.parse_args(
        [
            *common,
            "--batch",
            "4",
            "--steps",
            "1",
            "--warmup",
            "1",
            "--parts",
            "train",
            "--out",
            str(tmp_path),
            "--name",
            "t",
        ]
    )
    assert args.func(args) == 0
    assert (tmp_path / "t.json").exists() and (tmp_path / "t.md").exists()
    args = parser.parse_args([*common, "--batch", "max", "--parts", "train", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="--batch max"):
        args.func(args)
    args = parser.parse_args([*common, "--batch", "lots"])
    with pytest.raises(ValueError, match="lots"):
        args.func(args)
