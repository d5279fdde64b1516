"""Budget estimates: the activation formula equals what autograd really saves (CPU), and the memory, FLOP and time
formulas are consistent with each other, with jitlib.nn.flops and with the sampler they describe."""

import math

import pytest
import torch

from jitlib.nn.flops import count_params, forward_flops
from jitlib.nn.registry import create_model, get_config
from jitlib.training import budget

# Small networks that exercise every term of the formula: bottleneck or plain patch embedding, with and without
# in-context tokens, dropout in the middle blocks, fp32 attention logits, one channel, no classes, odd widths.
TINY = [
    ("JiT-tiny/4", {}),
    ("JiT-tiny/8", {"bottleneck_dim": None}),
    ("JiT-tiny/4", {"in_context_len": 0}),
    ("JiT-tiny/4", {"proj_drop": 0.2}),
    ("JiT-tiny/4", {"attn_fp32_logits": True}),
    (
        "JiT-tiny/2",
        dict(num_classes=0, in_channels=1, depth=3, hidden_size=64, num_heads=2, mlp_ratio=3.0),
    ),
]


@pytest.mark.parametrize("name, overrides", TINY, ids=lambda v: str(v))
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_activation_formula_equals_the_bytes_autograd_saves_on_cpu(name, overrides, precision):
    net = create_model(name, generator=torch.Generator().manual_seed(0), **overrides).train()
    measured = budget.measured_activation_bytes_per_image(net, precision)
    assert measured > 0
    assert budget.activation_bytes_per_image(net.config, precision, device_type="cpu") == measured


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_what_does_not_grow_with_the_batch_is_the_autocast_weight_copies(precision):
    net = create_model("JiT-tiny/4", generator=torch.Generator().manual_seed(0)).train()
    constant = budget.saved_tensor_bytes(net, 1, precision) - budget.measured_activation_bytes_per_image(
        net, precision
    )
    expected = 0 if precision == "fp32" else 2 * budget.parameter_counts(net.config)[2]
    assert constant == expected
    estimate = budget.training_memory(net.config, 1, precision=precision, device_type="cpu")
    assert estimate.autocast_copies == expected


def test_dropout_masks_are_one_byte_on_cuda_and_activation_sized_on_cpu():
    cfg = get_config("JiT-H/16")
    blocks_with_dropout = sum(cfg.has_dropout(i) for i in range(cfg.depth))
    assert blocks_with_dropout == cfg.depth // 2
    # Blocks 8-23 have dropout; class tokens join at block 10, so blocks 8 and 9 see the image tokens only.
    tokens = [
        cfg.grid_size**2 + (cfg.in_context_len if i >= cfg.in_context_start else 0) for i in range(cfg.depth)
    ]
    masked_tokens = sum(n for i, n in enumerate(tokens) if cfg.has_dropout(i))
    per_mask_byte = masked_tokens * (cfg.hidden_size + cfg.mlp_hidden)
    no_dropout = get_config("JiT-H/16", proj_drop=0.0)
    base = budget.activation_bytes_per_image(no_dropout)
    assert budget.activation_bytes_per_image(cfg) - base == per_mask_byte
    assert (
        budget.activation_bytes_per_image(cfg, device_type="cpu")
        - budget.activation_bytes_per_image(no_dropout, device_type="cpu")
        == 2 * per_mask_byte
    )


def test_activations_grow_linearly_in_depth_and_fp32_costs_more_than_bf16():
    b16 = get_config("JiT-B/16")
    deeper = get_config("JiT-B/16", depth=13)
    extra = budget.activation_bytes_per_image(deeper) - budget.activation_bytes_per_image(b16)
    tokens = b16.grid_size**2 + b16.in_context_len
    assert extra == budget.block_activation_bytes(b16, tokens)
    fp32, bf16 = (budget.activation_bytes_per_image(b16, p) for p in ("fp32", "bf16"))
    assert 1.2 < fp32 / bf16 < 2.0  # the fp32 residual stream and norms do not shrink under autocast


def test_training_state_is_the_sum_of_its_parts_per_parameter():
    cfg = get_config("JiT-B/16")
    model = create_model("JiT-B/16", device="meta")
    total, trainable = count_params(model, trainable_only=False), count_params(model)
    assert total - trainable == cfg.grid_size**2 * cfg.hidden_size  # the frozen sin-cos pos_embed
    one = budget.training_memory(cfg, 0, num_ema=3)
    assert (one.weights, one.grads, one.adam, one.ema) == (
        4 * total,
        4 * trainable,
        8 * trainable,
        12 * trainable,
    )
    assert one.ddp_buckets == 0 and one.activations == 0
    assert one.autocast_copies == 2 * budget.parameter_counts(cfg)[2]
    assert (
        0.99 * trainable < budget.parameter_counts(cfg)[2] < trainable
    )  # weights are nearly all the parameters
    assert one.state == one.total

    ddp = budget.training_memory(cfg, 64, world_size=8)
    assert ddp.ddp_buckets == 4 * trainable
    assert ddp.activations == 64 * budget.activation_bytes_per_image(cfg)
    assert ddp.total == ddp.state + ddp.activations

    fsdp = budget.training_memory(cfg, 64, strategy="fsdp", world_size=8)
    assert (
        fsdp.weights == 4 * total // 8 and fsdp.adam == 8 * trainable // 8 and fsdp.ema == 12 * trainable // 8
    )
    assert fsdp.ddp_buckets == 0 and fsdp.autocast_copies == one.autocast_copies

    fp32 = budget.training_memory(cfg, 1, precision="fp32")
    assert fp32.autocast_copies == 0
    assert "estimate" in ddp.describe() and f"{ddp.total / 1e9:.1f} GB" in ddp.describe()


def test_max_images_per_gpu_is_the_largest_batch_that_fits():
    cfg = get_config("JiT-L/16")
    n = budget.max_images_per_gpu(cfg, "H100", world_size=8)
    usable = budget.USABLE_FRACTION * budget.DEVICES["H100"].memory_gb * 1e9
    assert n > 0
    assert budget.training_memory(cfg, n, world_size=8).total <= usable
    assert budget.training_memory(cfg, n + 1, world_size=8).total > usable
    assert budget.max_images_per_gpu(cfg, "H200", world_size=8) > n  # more memory, more images
    assert budget.max_images_per_gpu(cfg, "H100", strategy="fsdp", world_size=8) > n  # sharded state
    assert budget.max_images_per_gpu(get_config("JiT-G/16"), "T4") == 0  # the state alone does not fit


def test_training_flops_are_three_forward_passes():
    for name in ("JiT-B/16", "JiT-H/32", "JiT-tiny/4"):
        cfg = get_config(name)
        assert budget.train_flops_per_image(cfg) == 6 * forward_flops(cfg).macs
    assert budget.train_flops_per_image(get_config("JiT-B/16")) / 1e9 == pytest.approx(6 * 25, rel=0.02)


def test_throughput_and_implied_mfu_invert_each_other():
    cfg = get_config("JiT-L/16")
    one = budget.throughput(cfg, "H100", mfu=0.4)
    eight = budget.throughput(cfg, "H100", num_gpus=8, mfu=0.4)
    assert eight.images_per_sec == pytest.approx(8 * one.images_per_sec)
    assert eight.gpu_hours_per_epoch == pytest.approx(one.gpu_hours_per_epoch)
    assert eight.hours_per_epoch == pytest.approx(one.gpu_hours_per_epoch / 8)
    assert one.gpu_hours_per_epoch * 3600 * one.images_per_sec == pytest.approx(budget.IMAGENET_TRAIN_IMAGES)
    expected_rate = 0.4 * 989e12 / (6 * forward_flops(cfg).macs)
    assert one.images_per_sec == pytest.approx(expected_rate)
    assert budget.throughput(cfg, "H100", mfu=0.2).images_per_sec == pytest.approx(one.images_per_sec / 2)
    assert budget.throughput(cfg, "A100").images_per_sec == pytest.approx(one.images_per_sec * 312 / 989)
    days = eight.hours_per_epoch * 600 / 24
    assert budget.implied_mfu(cfg, "H100", num_gpus=8, epochs=600, days=days) == pytest.approx(0.4)
    assert "estimate" in eight.describe() and "MFU 40%" in eight.describe()


def _guided_evaluations(steps, lo, hi, method):
    """Times at which a sampler on the linear grid evaluates the network: every t_i but the last, and for Heun the
    corrector's t_{i+1} except in the final (Euler) step."""
    times = [i / steps for i in range(steps)]
    if method == "heun":
        times += [(i + 1) / steps for i in range(steps - 1)]
    return len(times), sum(t < hi and (t > lo or lo == 0) for t in times)  # the official guidance rule


@pytest.mark.parametrize("steps, method", [(50, "heun"), (50, "euler"), (10, "heun")])
@pytest.mark.parametrize("interval", [(0.1, 1.0), (0.0, 1.0), (0.3, 0.6)])
def test_network_passes_follow_the_sampler(steps, method, interval):
    evaluations, guided = _guided_evaluations(steps, *interval, method)
    assert budget.network_passes_per_image(steps, method) == evaluations
    assert (
        budget.network_passes_per_image(steps, method, cfg_scale=2.0, cfg_interval=interval)
        == evaluations + guided
    )
    cfg = get_config("JiT-B/16")
    assert (
        budget.sampling_flops_per_image(cfg, steps=steps, method=method)
        == evaluations * 2 * forward_flops(cfg).macs
    )


def test_the_paper_sampler_costs_99_evaluations_and_the_official_198_passes_bound_it():
    assert budget.network_passes_per_image() == 99  # 49 Heun steps × 2 + a final Euler step
    guided = budget.network_passes_per_image(cfg_scale=2.9)
    assert (
        99 < guided < 2 * 99
    )  # jitlib skips the unconditional pass outside the interval; the official code does not


def test_device_table():
    peaks = {name: d.peak_tflops for name, d in budget.DEVICES.items()}
    assert peaks == {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "T4": 65.0}
    assert budget.DEVICES["T4"].precision == "fp16" and budget.DEVICES["H200"].memory_gb == 141.0
    assert math.isclose(budget.get_device("H100").peak_flops, 989e12)


def test_bad_inputs_raise_one_line_errors():
    cfg = get_config("JiT-B/16")
    cases = [
        (lambda: budget.get_device("V100"), "unknown device 'V100'; valid: H100"),
        (lambda: budget.activation_bytes_per_image(cfg, "int8"), "precision='int8' is not one of fp32"),
        (lambda: budget.activation_bytes_per_image(cfg, device_type="tpu"), "device_type='tpu'"),
        (
            lambda: budget.training_memory(cfg, 8, strategy="zero3"),
            "strategy='zero3' is not one of ddp, fsdp",
        ),
        (lambda: budget.training_memory(cfg, -1), "images_per_gpu=-1"),
        (lambda: budget.throughput(cfg, "H100", mfu=1.5), "mfu=1.5 must lie in"),
        (lambda: budget.max_images_per_gpu(cfg, "H100", usable_fraction=0), "usable_fraction=0"),
        (lambda: budget.implied_mfu(cfg, "H100", num_gpus=8, epochs=600, days=0), "days=0"),
        (
            lambda: budget.activation_bytes_per_image(get_config("JiT-H/16", attn_drop=0.1)),
            "attention dropout",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            call()
        assert "\n" not in str(err.value)
