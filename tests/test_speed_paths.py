"""Every speed path equals the plain eager path it replaces, within a stated tolerance (CPU, tiny models).

Tolerance: float32 paths that only reorder sums agree to a relative error ‖fast − plain‖ / ‖plain‖ ≤ 1e-5 (F32_RTOL);
optimizer and EMA states elementwise to 1e-6. A bf16 result is compared with float32 at a few bf16 ulps (2⁻⁷ ≈ 8e-3).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import jitlib.nn.layers
from jitlib.cli.bench import (
    conv_patch_embed,
    explicit_fp32_attention,
    one_guided_step,
    per_tensor_ema,
    sdpa_fp32,
    two_pass_cfg,
)
from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.sampling import sample
from jitlib.nn.model import JiT
from jitlib.nn.registry import create_model
from jitlib.training.ema import EMA

F32_RTOL = 1e-5
BF16_RTOL = 2.0**-7


def assert_close_rel(fast: Tensor, plain: Tensor, tol: float = F32_RTOL) -> None:
    """‖fast − plain‖ / ‖plain‖ ≤ tol (a norm-wise relative error: robust where single elements are near zero)."""
    assert fast.shape == plain.shape, (fast.shape, plain.shape)
    error = ((fast.double() - plain.double()).norm() / plain.double().norm()).item()
    assert error <= tol, f"relative error {error:.3g} > {tol:g}"


def random_net(seed: int = 0, **overrides) -> JiT:
    """A 2-block, 32-wide JiT at 16 px (16 tokens + 4 class tokens) whose weights are all random.

    The official initialisation zeroes adaLN and the head, so an untrained net outputs x̂ = 0 whatever the
    attention or patch embedding computes: random weights make every path show in the output.
    """
    arch = dict(depth=2, hidden_size=32, num_heads=2, bottleneck_dim=8, in_context_len=4, in_context_start=1)
    gen = torch.Generator().manual_seed(seed)
    net = create_model("JiT-tiny/4", input_size=16, generator=gen, **{**arch, **overrides})
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return net


def inputs(batch: int = 3, seed: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, 3, 16, 16, generator=gen),
        torch.rand(batch, generator=gen),
        torch.arange(batch) % 10,
    )


def test_the_network_output_depends_on_what_the_paths_compute() -> None:
    net, (x, t, y) = random_net(), inputs()
    assert net(x, t, y).abs().mean() > 0.1  # not the zero-init x̂ = 0


# --- attention: SDPA vs the official explicit fp32-logit attention ---------------------------------------------


def test_sdpa_equals_explicit_fp32_attention() -> None:
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 20, 8, generator=gen) for _ in range(3))
    reference = explicit_fp32_attention(q.double(), k.double(), v.double()).float()
    for fn in (F.scaled_dot_product_attention, sdpa_fp32, explicit_fp32_attention):
        assert_close_rel(fn(q, k, v), reference)


def test_fp32_logit_sdpa_equals_explicit_attention_on_bf16_inputs() -> None:
    """attn_fp32_logits=True computes what the official fp32 kernel computes; only the bf16 output cast differs."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 20, 8, generator=gen).bfloat16() for _ in range(3))
    assert_close_rel(sdpa_fp32(q, k, v).float(), explicit_fp32_attention(q, k, v).float(), BF16_RTOL)


def test_network_with_sdpa_equals_network_with_explicit_attention(monkeypatch: pytest.MonkeyPatch) -> None:
    net, (x, t, y) = random_net(), inputs()
    fast = net(x, t, y)
    monkeypatch.setattr(
        jitlib.nn.layers.F,
        "scaled_dot_product_attention",
        lambda q, k, v, dropout_p=0.0: explicit_fp32_attention(q, k, v),
    )
    assert_close_rel(fast, net(x, t, y))


def test_bf16_sdpa_network_stays_within_bf16_error_of_fp32() -> None:
    net, (x, t, y) = random_net(), inputs()
    reference = net(x, t, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = net(x, t, y).float()
    error = (low - reference).norm() / reference.norm()
    assert error < 8 * BF16_RTOL, error  # a few bf16 roundings across two blocks, not a different function


# --- patch embedding: matmuls vs the official convolutions -------------------------------------------------------


@pytest.mark.parametrize("bottleneck", [8, None])
def test_patch_embedding_equals_convolutions(bottleneck: int | None) -> None:
    net = random_net(bottleneck_dim=bottleneck)
    x, _, _ = inputs()
    assert_close_rel(net.x_embedder(x), conv_patch_embed(net.x_embedder, x))


def test_patch_embedding_gradients_equal_convolution_gradients() -> None:
    net = random_net()
    x, _, _ = inputs()
    grad = torch.randn(3, 16, 32, generator=torch.Generator().manual_seed(2))
    embed = net.x_embedder
    grads = []
    for fn in (embed, lambda images: conv_patch_embed(embed, images)):
        embed.zero_grad(set_to_none=True)
        fn(x).backward(grad)
        grads.append([p.grad.clone() for p in embed.parameters()])
    for fast, plain in zip(*grads, strict=True):
        assert_close_rel(fast, plain)


# --- optimizer and EMA ---------------------------------------------------------------------------------------------


def test_fused_adamw_equals_foreach_adamw_over_three_steps() -> None:
    """Same groups as the trainer (weight decay on matrices only), betas (0.9, 0.95); rel. difference < 1e-6."""
    nets = [random_net(), random_net()]
    optimizers = []
    for net, kind in zip(nets, ("fused", "foreach"), strict=True):
        params = list(net.parameters())
        groups = [
            {"params": [p for p in params if p.ndim > 1], "weight_decay": 0.05},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]
        optimizers.append(torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), **{kind: True}))
    x, t, y = inputs()
    for _ in range(3):
        for net, opt in zip(nets, optimizers, strict=True):
            opt.zero_grad()
            net(x, t, y).square().mean().backward()
            opt.step()
    for fused, foreach in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(fused, foreach, rtol=1e-6, atol=1e-6)


def test_foreach_ema_equals_per_tensor_loop() -> None:
    net = random_net()
    ema = EMA(net, [0.9, 0.99, 0.999])
    loop = {key: [s.clone() for s in shadow] for key, shadow in ema.shadows.items()}
    gen = torch.Generator().manual_seed(3)
    params = [p for p in net.parameters() if p.requires_grad]
    for _ in range(3):
        with torch.no_grad():
            for p in params:
                p.add_(torch.randn(p.shape, generator=gen))
        ema.update(net)
        per_tensor_ema(loop, [p.detach() for p in params])
    for key, shadow in ema.shadows.items():
        for fast, plain in zip(shadow, loop[key], strict=True):
            torch.testing.assert_close(fast, plain, rtol=1e-6, atol=0)


# --- torch.compile ---------------------------------------------------------------------------------------------------


def test_network_compiles_as_one_graph_and_equals_eager() -> None:
    """fullgraph=True fails on any graph break; the eager backend keeps tracing fast and the arithmetic identical."""
    net, (x, t, y) = random_net(), inputs()
    compiled = torch.compile(net, backend="eager", fullgraph=True)
    out = compiled(x, t, y)
    assert_close_rel(out, net(x, t, y))
    out.square().mean().backward()  # the backward of the traced graph runs too


# --- classifier-free guidance: one batched call vs two forwards ----------------------------------------------------


def test_one_batched_cfg_evaluation_equals_two_forwards() -> None:
    denoiser, (z, _, y) = Denoiser(random_net()), inputs()
    t = torch.full((3,), 0.5)
    with torch.no_grad():
        plain = z + 0.5 * two_pass_cfg(denoiser, z, t, y, torch.full_like(y, 10), 3.0)
        assert_close_rel(one_guided_step(denoiser, z, y, 10, 3.0), plain)


def reference_heun_two_passes(
    denoiser: Denoiser, z: Tensor, y: Tensor, steps: int, cfg_scale: float
) -> Tensor:
    """The official sampler's structure: Heun on t_i = i/steps, Euler last step, CFG by two forwards on (0.1, 1]."""
    null = torch.full_like(y, 10)

    def velocity(z: Tensor, t: float) -> Tensor:
        tb = torch.full((z.shape[0],), t)
        if 0.1 < t <= 1.0:
            return two_pass_cfg(denoiser, z, tb, y, null, cfg_scale)
        return denoiser(z, tb, y).v

    for i in range(steps):
        t, h = i / steps, 1 / steps
        v = velocity(z, t)
        z = z + h * v if i == steps - 1 else z + 0.5 * h * (v + velocity(z + h * v, (i + 1) / steps))
    return z


def test_sampler_with_batched_cfg_equals_two_forward_heun() -> None:
    denoiser, (z, _, y) = Denoiser(random_net()), inputs()
    with torch.no_grad():
        fast = sample(denoiser, z, steps=8, labels=y, null_label=10, cfg_scale=3.0)
        plain = reference_heun_two_passes(denoiser, z, y, steps=8, cfg_scale=3.0)
    assert_close_rel(fast, plain)
