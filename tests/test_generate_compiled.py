"""Compiled sampling (the default on CUDA): one graph for every batch, the same images as eager."""

from __future__ import annotations

import dataclasses

import torch
from torch._dynamo.backends.debugging import aot_eager

from jitlib.evaluation.generate import Pipeline, class_labels, generate
from jitlib.nn.registry import create_model
from jitlib.training.config import DiffusionConfig, SampleConfig


def _pipe(**options) -> Pipeline:
    net = create_model(
        "JiT-tiny/8", input_size=16, in_channels=1, num_classes=3, generator=torch.Generator().manual_seed(0)
    )
    net.eval()
    return Pipeline(net, DiffusionConfig(noise_scale=1.0), SampleConfig(steps=3, cfg_scale=2.0), **options)


def test_auto_is_eager_on_the_cpu_and_needs_no_padding() -> None:
    pipe = _pipe()
    assert pipe.compile == "auto" and not pipe.compiled and pipe.network() is pipe.net
    assert not _pipe(compile=False).compiled and _pipe(compile=True).compiled


def test_compiled_sampling_pads_the_last_batch_and_equals_eager(monkeypatch) -> None:
    """5 images in batches of 2: the compiled pipeline pads the last batch to 2 (one static shape) and drops the extra
    image; every image equals eager's to float32 rounding (a wrong pad or noise index would differ by O(1)).

    Dynamo traces the network for real; the graph runs through ``aot_eager`` instead of Inductor's C++ code
    generation (a minute on this CPU; Inductor on the network is checked in test_speed_paths / test_model).
    """
    traced: list[tuple[int, ...]] = []

    def backend(gm, inputs):
        traced.append(tuple(inputs[0].shape) if inputs else ())
        return aot_eager(gm, inputs)

    real_compile = torch.compile
    monkeypatch.setattr(
        torch, "compile", lambda m, **kw: real_compile(m, **(kw | {"backend": backend, "mode": None}))
    )
    labels = class_labels(3, 5)
    eager = generate(_pipe(compile=False), labels, seed=3, batch_size=2)
    pipe = _pipe(compile=True)
    compiled = generate(pipe, labels, seed=3, batch_size=2)
    assert compiled.shape == eager.shape == (5, 1, 16, 16)
    assert torch.allclose(compiled, eager, atol=1e-4), (compiled - eager).abs().max()
    assert pipe.network() is pipe.network() and pipe.network() is not pipe.net  # compiled once, then reused
    assert dataclasses.replace(pipe)._compiled is None  # a copy compiles its own
    # one graph per shape: the batch, and twice the batch where CFG stacks the unconditional half; the last batch of
    # one image was padded, so no (1, …) or (2, …)-from-guidance-of-one graph was traced again
    assert sorted(traced) == [(2, 1, 16, 16), (4, 1, 16, 16)], traced


def test_sample_and_eval_fid_take_compile_and_cuda_graphs_options(capsys) -> None:
    import pytest

    from jitlib.cli import build_parser
    from jitlib.cli.options import pipeline_options

    parser = build_parser()
    for argv in (
        ["sample", "digits-small", "--compile", "off"],
        ["eval", "fid", "digits-small", "--ref", "photos", "--compile", "off"],
    ):
        assert pipeline_options(parser.parse_args(argv)) == {"compile": False, "cuda_graphs": False}
    args = parser.parse_args(["sample", "digits-small", "--compile", "on", "--cuda-graphs"])
    assert pipeline_options(args) == {"compile": True, "cuda_graphs": True}
    assert pipeline_options(parser.parse_args(["sample", "digits-small"]))["compile"] == "auto"
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["sample", "digits-small", "--compile", "maybe"])
    assert stop.value.code == 2 and "argument --compile: invalid choice: 'maybe'" in capsys.readouterr().err
