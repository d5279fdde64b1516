"""Architecture switches of the paper's ablations: each changes the network as stated, counts are exact, rows listed.

Parameter counts are checked against an analytic count written here from the layer shapes (independent of
``count_params``); a checkpoint of one variant refuses, in one line, to load into another.
"""

import argparse

import pytest
import torch
from einops import rearrange

from jitlib.nn.flops import count_params
from jitlib.nn.model import JiT, JiTConfig
from jitlib.nn.registry import PAPER_ROWS, create_model, get_config
from jitlib.nn.weights import check_state_dict
from jitlib.training.config import load_config
from jitlib.training.trainer import model_kwargs

torch.set_num_threads(1)

BASELINE = dict(bottleneck_dim=None, rope=False, qk_norm=False, in_context_len=0)


def analytic_params(cfg: JiTConfig) -> int:
    """Trainable parameters from the layer shapes (pos_embed is frozen and not counted)."""
    d, p, c, head = cfg.hidden_size, cfg.patch_size, cfg.in_channels, cfg.hidden_size // cfg.num_heads
    patch = p * p * c
    embed = (
        patch * d + d
        if cfg.bottleneck_dim is None
        else patch * cfg.bottleneck_dim + cfg.bottleneck_dim * d + d
    )
    cond = (256 * d + d) + (d * d + d) + (cfg.num_classes + 1) * d + cfg.in_context_len * d
    norm = d if cfg.norm == "rms" else 2 * d
    qk = 0 if not cfg.qk_norm else 2 * (head if cfg.norm == "rms" else 2 * head)
    if cfg.mlp == "swiglu":
        h = int(int(d * cfg.mlp_ratio) * 2 / 3)
        mlp = d * 2 * h + 2 * h + h * d + d
    else:
        h = int(d * cfg.mlp_ratio)
        mlp = d * h + h + h * d + d
    block = 2 * norm + qk + (3 * d * d + 3 * d) + (d * d + d) + mlp + (6 * d * d + 6 * d)
    final = norm + (2 * d * d + 2 * d) + (d * patch + patch)
    aux = (d * cfg.num_classes + cfg.num_classes) if cfg.aux_cls_block else 0
    return embed + cond + cfg.depth * block + final + aux


def test_defaults_are_the_paper_final_model():
    cfg = JiTConfig()
    assert (cfg.rope, cfg.qk_norm, cfg.mlp, cfg.norm) == (True, True, "swiglu", "rms")
    assert (cfg.bottleneck_dim, cfg.in_context_len, cfg.in_context_start) == (128, 32, 4)


@pytest.mark.parametrize("row", PAPER_ROWS, ids=lambda r: f"{r.model}:{r.label}")
def test_paper_rows_have_the_analytic_parameter_count(row):
    cfg = row.config()
    with torch.device("meta"):
        net = JiT(cfg)
    assert count_params(net) == analytic_params(cfg)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        BASELINE,
        dict(mlp="gelu", norm="layer"),
        dict(rope=False),
        dict(qk_norm=False, norm="layer"),
        dict(in_context_len=2, in_context_start=0),
    ],
)
def test_every_switch_combination_builds_and_runs(overrides):
    cfg = get_config("JiT-tiny/8", **overrides)
    net = JiT(cfg, generator=torch.Generator().manual_seed(0))
    assert count_params(net) == analytic_params(cfg)
    x, t, y = torch.randn(2, 3, 32, 32), torch.rand(2), torch.tensor([1, 10])
    assert net(x, t, y).shape == x.shape
    keys = net.state_dict().keys()
    assert ("blocks.0.attn.q_norm.weight" in keys) == cfg.qk_norm
    assert ("blocks.0.mlp.fc1.weight" in keys) == (cfg.mlp == "gelu")
    assert ("blocks.0.norm1.bias" in keys) == (cfg.norm == "layer")
    assert ("in_context_posemb" in keys) == (cfg.in_context_len > 0)
    assert ("x_embedder.proj.weight" in keys) == (cfg.bottleneck_dim is None)
    assert (net.rope is not None) == cfg.rope


def _perturbed(cfg: JiTConfig) -> JiT:
    """A network whose zero-initialised layers are perturbed, so that every component affects the output."""
    net = JiT(cfg, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return net.eval()


@pytest.mark.parametrize("switch", ["rope", "qk_norm"])
def test_switching_a_component_off_changes_the_function(switch):
    """Same weights, component off: the output changes (RoPE has no weights; qk-norm gains are dropped)."""
    on = _perturbed(get_config("JiT-tiny/8"))
    off = JiT(get_config("JiT-tiny/8", **{switch: False}))
    off.load_state_dict({k: v for k, v in on.state_dict().items() if k in off.state_dict()})
    x, t, y = torch.randn(2, 3, 32, 32), torch.rand(2), torch.tensor([1, 10])
    assert (on(x, t, y) - off.eval()(x, t, y)).abs().max() > 1e-3


def _flip_blocks(img: torch.Tensor, p: int) -> torch.Tensor:
    """Reverse the order of the p×p blocks of an image (both axes), leaving each block as it is."""
    blocks = rearrange(img, "b c (h p) (w q) -> b c h w p q", p=p, q=p).flip(2, 3)
    return rearrange(blocks, "b c h w p q -> b c (h p) (w q)")


@pytest.mark.parametrize("rope", [False, True])
def test_rope_is_the_only_relative_position_signal(rope):
    """pos_embed zeroed, no class tokens: without RoPE the network is equivariant to moving whole patches."""
    net = _perturbed(get_config("JiT-tiny/8", rope=rope, in_context_len=0))
    with torch.no_grad():
        net.pos_embed.zero_()
    x, t, y = torch.randn(1, 3, 32, 32), torch.rand(1), torch.tensor([3])
    gap = (net(_flip_blocks(x, 8), t, y) - _flip_blocks(net(x, t, y), 8)).abs().max().item()
    assert gap < 1e-5 if not rope else gap > 1e-3


def test_checkpoint_of_a_switched_off_variant_refuses_a_mismatched_model():
    baseline = create_model("JiT-tiny/8", **BASELINE)
    for name, value in [("qk_norm", False), ("in_context_len", 0), ("bottleneck_dim", None)]:
        final = create_model("JiT-tiny/8", **{**BASELINE, name: getattr(get_config("JiT-tiny/8"), name)})
        with pytest.raises(
            ValueError, match=f"holds a network with {name}={value!r} but the model has"
        ) as err:
            check_state_dict(final, baseline.state_dict(), "ckpt")
        assert "\n" not in str(err.value)
    for name, value in [("mlp", "gelu"), ("norm", "layer")]:
        other = create_model("JiT-tiny/8", **{name: value})
        with pytest.raises(ValueError, match=f"holds a network with {name}='{value}' but the model has"):
            check_state_dict(create_model("JiT-tiny/8"), other.state_dict(), "ckpt")
    # The same refusal for a model artifact whose card and weights disagree, and RoPE (no weights) carried by the
    # card: tests/test_weights.py::test_artifact_carries_every_switch_and_refuses_a_mismatched_one.


def test_run_config_builds_the_switched_model():
    """model.arch carries every switch to the trainer's create_model (the baseline of Tab. 2 / Tab. 4)."""
    config = load_config(
        "tiny-digits",
        [
            "model.arch.rope=false",
            "model.arch.qk_norm=false",
            "model.arch.in_context_len=0",
            "model.arch.bottleneck_dim=null",
            "model.arch.mlp=gelu",
            "model.arch.norm=layer",
        ],
    )
    kwargs = model_kwargs(config, channels=1, num_classes=10)
    net = create_model(config.model.name, device="meta", **kwargs)
    assert (net.config.rope, net.config.qk_norm, net.config.in_context_len) == (False, False, 0)
    assert (net.config.bottleneck_dim, net.config.mlp, net.config.norm) == (None, "gelu", "layer")
    bad = load_config("tiny-digits", ["model.arch.mlp=relu"])
    with pytest.raises(ValueError, match="model.arch.mlp: expected one of 'swiglu', 'gelu', got 'relu'"):
        model_kwargs(bad, channels=1, num_classes=10)


def test_models_command_lists_the_baseline_rows(capsys):
    from jitlib.cli.models import add_models_parser  # the sub-command module (imports the whole CLI)

    parser = argparse.ArgumentParser(prog="jitlib")
    add_models_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["models", "--filter", "B/16"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    for row in PAPER_ROWS:
        with torch.device("meta"):
            params = count_params(JiT(row.config()))
        line = next(line for line in out.splitlines() if line.startswith(row.label) and row.source in line)
        assert f"{params:,}" in line and row.override_text() in line
    assert "131,490,816" in out  # the no-bottleneck baseline of Tab. 2(a)


def test_baseline_preset_builds_the_table_2_network():
    config = load_config("jit-b16-256-baseline")
    kwargs = model_kwargs(config, channels=3, num_classes=1000)
    assert get_config(config.model.name, **kwargs) == PAPER_ROWS[0].config()
    assert tuple(config.sample.cfg_interval) == (0.0, 1.0) and config.train.epochs == 200


def test_stored_table4_chain_is_consistent():
    """data/results/table4_chain.json: ≥ 3 seeds per network, one thread, within budget, summary = its runs."""
    import json
    import statistics
    from pathlib import Path

    chain = json.loads((Path(__file__).parents[1] / "data" / "results" / "table4_chain.json").read_text())
    assert chain["seeds"] >= 3 and chain["threads"] == 1 and chain["wall_s"] <= 1800
    assert list(chain["summary"]) == ["baseline", "+ bottleneck", "+ RoPE, qk-norm", "+ in-context tokens"]
    for name, entry in chain["summary"].items():
        runs = [r for r in chain["runs"] if r["variant"] == name]
        assert sorted(r["seed"] for r in runs) == list(range(chain["seeds"]))
        for key in ("held_out_loss", "proxy_fd", "class_accuracy"):
            values = [r[key] for r in runs]
            assert entry[key]["values"] == values
            assert entry[key]["mean"] == pytest.approx(statistics.fmean(values))
            assert entry[key]["std"] == pytest.approx(statistics.stdev(values))
        config = get_config(chain["model"], in_channels=1, **chain["width"], **runs[0]["arch"])
        with torch.device("meta"):
            assert count_params(JiT(config)) == entry["params"]


def test_stored_attention_numerics_states_its_setting():
    """data/results/attention_numerics.json: JiT-B/16 under bf16 autocast; the two attentions differ, boundedly."""
    import json
    from pathlib import Path

    record = json.loads(
        (Path(__file__).parents[1] / "data" / "results" / "attention_numerics.json").read_text()
    )
    assert record["model"] == "JiT-B/16" and record["sample_steps"] >= 1 and record["images"] >= 1
    for entry in record["forward"].values():
        gap = entry["bf16_sdpa_vs_fp32_logits"]
        assert 0 < gap["mean"] <= gap["max"] < 0.05  # bf16 rounding scale, not a broken network
    assert 0 < record["sample"]["mean"] <= record["sample"]["max"]
