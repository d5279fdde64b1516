"""Model presets: paper parameter counts and GFLOPs, native resolutions, the `jitlib models` table, errors."""

import argparse

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from jitlib.cli.models import add_models_parser
from jitlib.nn.flops import count_params, forward_flops
from jitlib.nn.model import JiT
from jitlib.nn.registry import MODEL_REGISTRY, create_model, get_config, models_table

torch.set_num_threads(1)

# Trainable parameters (the frozen sin-cos pos_embed excluded), as the paper counts them (spec §3.7).
PAPER_PARAMS = {
    "JiT-B/16": 131.1e6,
    "JiT-L/16": 458.9e6,
    "JiT-H/16": 952.5e6,
    "JiT-G/16": 2007e6,
    "JiT-B/32": 133.2e6,
    "JiT-L/32": 461.5e6,
    "JiT-H/32": 956.1e6,
    "JiT-G/32": 2012e6,
    "JiT-B/64": 141.5e6,
}
# The paper's "Gflops" of one forward pass (Tabs. 5, 7, 8), which are multiply-accumulates.
PAPER_GFLOPS = {
    "JiT-B/16": 25,
    "JiT-L/16": 88,
    "JiT-H/16": 182,
    "JiT-G/16": 383,
    "JiT-B/32": 26,
    "JiT-L/32": 89,
    "JiT-H/32": 183,
    "JiT-G/32": 384,
}


@pytest.mark.parametrize("name", list(PAPER_PARAMS))
def test_parameter_counts_on_meta_match_the_paper(name):
    model = create_model(name, device="meta")
    assert model.pos_embed.is_meta
    assert count_params(model) == pytest.approx(PAPER_PARAMS[name], rel=2e-3)


def test_b16_parameter_count_is_exact():
    model = create_model("JiT-B/16", device="meta")
    assert count_params(model) == 131_123_712
    assert count_params(model, trainable_only=False) == 131_320_320  # + pos_embed (1, 256, 768)


@pytest.mark.parametrize("name", list(PAPER_GFLOPS))
def test_gflops_match_the_paper_as_multiply_accumulates(name):
    # The paper prints integers, so ±0.5 of rounding plus the count's own convention: 2 % tolerance.
    assert forward_flops(MODEL_REGISTRY[name]).gmacs == pytest.approx(PAPER_GFLOPS[name], rel=2e-2)


def test_b16_is_about_25_gmacs_and_flops_are_twice_macs():
    cost = forward_flops(create_model("JiT-B/16", device="meta"))
    assert cost.gmacs == pytest.approx(25.0, rel=1.5e-2)
    assert cost.flops == 2 * cost.macs


def measured_macs(config) -> int:
    """MACs counted by torch's FlopCounterMode on a meta-device forward pass (it reports 2·MACs)."""
    with torch.device("meta"):
        model = JiT(config).eval()
        x = torch.empty(1, config.in_channels, config.input_size, config.input_size)
        t = torch.empty(1)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, t)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("JiT-tiny/4", {}),
        ("JiT-tiny/8", {"bottleneck_dim": None, "in_channels": 1}),
        ("JiT-tiny/4", {"in_context_len": 0}),
        ("JiT-B/16", {}),
    ],
)
def test_analytic_macs_equal_the_traced_count(name, overrides):
    config = get_config(name, **overrides)
    assert forward_flops(config).macs == measured_macs(config)


@pytest.mark.parametrize("name", [n for n in MODEL_REGISTRY if "tiny" not in n])
def test_paper_presets_use_16_tokens_per_side(name):
    config = MODEL_REGISTRY[name]
    assert config.grid_size == 16 and config.input_size == 16 * config.patch_size
    assert config.in_context_len == 32


def test_paper_sizes_follow_table_9():
    rows = {
        "B": (12, 768, 12, 128, 4, 0.0),
        "L": (24, 1024, 16, 128, 8, 0.0),
        "H": (32, 1280, 16, 256, 10, 0.2),
        "G": (40, 1664, 16, 256, 10, 0.2),
    }
    for size, row in rows.items():
        for patch in (4, 8, 16, 32, 64):
            c = MODEL_REGISTRY[f"JiT-{size}/{patch}"]
            assert (
                c.depth,
                c.hidden_size,
                c.num_heads,
                c.bottleneck_dim,
                c.in_context_start,
                c.proj_drop,
            ) == row


def test_tiny_presets_run_on_cpu_at_32_px():
    for name in ("JiT-tiny/4", "JiT-tiny/8"):
        model = create_model(name, generator=torch.Generator().manual_seed(0))
        assert model.config.input_size == 32 and model.config.depth <= 4 and count_params(model) < 3e6
        x = torch.randn(2, 3, 32, 32)
        assert model(x, torch.rand(2), torch.tensor([0, 10])).shape == x.shape


def test_overrides_replace_fields_and_generator_makes_it_reproducible():
    a = create_model("JiT-tiny/4", num_classes=3, in_channels=1, generator=torch.Generator().manual_seed(1))
    b = create_model("JiT-tiny/4", num_classes=3, in_channels=1, generator=torch.Generator().manual_seed(1))
    assert a.config.num_classes == 3 and a.config.in_channels == 1
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(
        ValueError, match=r"unknown model 'JiT-X/16'; valid names: JiT-B/4, .*JiT-tiny/4"
    ) as err:
        create_model("JiT-X/16")
    assert "\n" not in str(err.value)


def test_unknown_override_lists_the_valid_fields():
    with pytest.raises(ValueError, match=r"unknown JiTConfig field\(s\) \['img_size'\].*input_size"):
        create_model("JiT-tiny/4", img_size=64)


def test_bad_override_value_is_one_line():
    with pytest.raises(ValueError, match="image size 30 is not divisible by patch size 4") as err:
        create_model("JiT-tiny/4", input_size=30)
    assert "\n" not in str(err.value)


def test_models_subcommand_prints_the_table(capsys):
    parser = argparse.ArgumentParser(prog="jitlib")
    add_models_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["models", "--filter", "B/16", "--presets-only"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:7] == ["name", "res", "depth", "width", "heads", "bottleneck", "params"]
    row = next(line for line in lines if line.startswith("JiT-B/16")).split()
    assert row[:6] == ["JiT-B/16", "256", "12", "768", "12", "128"]
    assert row[6] == "131.1M" and float(row[7]) == pytest.approx(25.22, abs=0.01)
    assert not any(line.startswith("JiT-L") for line in lines)


def test_models_table_with_no_match_is_an_error():
    with pytest.raises(ValueError, match="no model name contains 'Q/'"):
        models_table("Q/")
