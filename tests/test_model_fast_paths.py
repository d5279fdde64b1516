"""The network's fused eager paths equal the plain forms they replace, and validation runs once, at the edges.

Fast paths (jitlib.nn.model): ``norm_modulate`` (RMSNorm gain folded into adaLN), ``VisionRotaryEmbedding.rotate``
(RoPE as a complex product), its use for q and k in ``Attention``, SwiGLU's zero-padded hidden width, and the
hand-written backward passes of eager training (``NormModulate``, ``QKNormRope``). Each is compared
with the plain form in float32 to a norm-wise relative error of 1e-6 (they only reorder float rounding), gradients
included; the hand-written backward passes also pass ``torch.autograd.gradcheck`` in float64 and leave the forward
bit-identical. Validation: ``expand_t`` (inside every conversion) reads a time tensor's values once, the range
of t is refused at every public entry, and the network checks a labels tensor once however many forwards it serves.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from jitlib.diffusion import interpolation
from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.interpolation import check_t, expand_t, interpolate
from jitlib.diffusion.losses import implied_weight
from jitlib.diffusion.sampling import sample
from jitlib.nn import layers
from jitlib.nn import model as model_module
from jitlib.nn.model import (
    Attention,
    RMSNorm,
    SwiGLUFFN,
    VisionRotaryEmbedding,
    make_norm,
    modulate,
    norm_modulate,
)
from jitlib.nn.registry import create_model

RTOL = 1e-6


def rel_error(fast: Tensor, plain: Tensor) -> float:
    assert fast.shape == plain.shape and fast.dtype == plain.dtype, (fast.shape, plain.shape)
    return ((fast.double() - plain.double()).norm() / plain.double().norm()).item()


def randn(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def random_net(**overrides):
    """JiT-tiny/4 at 16 px with every weight random (the zero-init head would hide every path)."""
    gen = torch.Generator().manual_seed(0)
    net = create_model("JiT-tiny/4", input_size=16, generator=gen, **overrides)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return net


@pytest.mark.parametrize("kind", ["rms", "layer"])
def test_norm_modulate_equals_modulate_of_the_norm(kind):
    norm = make_norm(kind, 16)
    with torch.no_grad():
        norm.weight.copy_(randn(16, seed=1))
    x, shift, scale = randn(3, 5, 16, seed=2), randn(3, 16, seed=3), randn(3, 16, seed=4)
    assert rel_error(norm_modulate(norm, x, shift, scale), modulate(norm(x), shift, scale)) <= RTOL
    # a bf16 stream takes the plain path: identical
    xb = x.bfloat16()
    assert torch.equal(
        norm_modulate(norm.bfloat16(), xb, shift.bfloat16(), scale.bfloat16()),
        modulate(norm(xb), shift.bfloat16(), scale.bfloat16()),
    )


@pytest.mark.parametrize("num_prefix", [0, 3])
def test_rope_rotate_equals_the_reference_forward(num_prefix):
    rope = VisionRotaryEmbedding(8, 3)
    x = randn(2, 4, num_prefix + 9, 8, seed=5)
    assert rel_error(rope.rotate(x, num_prefix), rope(x, num_prefix)) <= RTOL
    assert torch.equal(
        rope.rotate(x, num_prefix)[:, :, :num_prefix], x[:, :, :num_prefix]
    )  # prefix untouched
    strided = randn(2, num_prefix + 9, 3, 4, 8, seed=6).permute(2, 0, 3, 1, 4)[1]  # a view of a qkv output
    assert rel_error(rope.rotate(strided, num_prefix), rope(strided, num_prefix)) <= RTOL
    half = x.bfloat16()  # computed in float32, returned in the input dtype, like forward
    assert rope.rotate(half, num_prefix).dtype == torch.bfloat16
    assert rel_error(rope.rotate(half, num_prefix).float(), rope(half, num_prefix).float()) <= 2.0**-8


def test_rope_table_cache_follows_moves_and_casts():
    rope = VisionRotaryEmbedding(8, 3)
    before = rope.rotations(2)
    rope.double()  # any move/cast recomputes the tables and drops the cached complex ones
    assert rope._rotations == {}
    assert torch.equal(rope.rotations(2), before)


def test_attention_with_the_complex_rope_equals_the_plain_path(monkeypatch):
    attention, rope = Attention(32, 4), VisionRotaryEmbedding(8, 3)
    with torch.no_grad():
        for p in attention.parameters():
            p.copy_(randn(*p.shape, seed=p.numel()))
    x = randn(2, 4 + 9, 32, seed=7)
    fast = attention(x.requires_grad_(), rope, 4)
    fast_grads = torch.autograd.grad(fast.square().sum(), [x, *attention.parameters()])
    monkeypatch.setattr(VisionRotaryEmbedding, "rotate", VisionRotaryEmbedding.forward)
    plain = attention(x, rope, 4)
    plain_grads = torch.autograd.grad(plain.square().sum(), [x, *attention.parameters()])
    assert rel_error(fast, plain) <= RTOL
    for f, p in zip(fast_grads, plain_grads, strict=True):
        assert rel_error(f, p) <= RTOL


@pytest.mark.parametrize("hidden", [21, 24])  # 21: padded to 24 on a CPU; 24: the plain layer
def test_swiglu_fast_paths_equal_the_plain_layer(hidden):
    mlp = SwiGLUFFN(32, hidden)
    assert mlp.pad == -hidden % 8
    with torch.no_grad():
        for p in mlp.parameters():
            p.copy_(randn(*p.shape, seed=p.numel()))
    x = randn(2, 5, 32, seed=8).requires_grad_()
    gate, value = mlp.w12(x).chunk(2, dim=-1)
    plain = mlp.w3(torch.nn.functional.silu(gate) * value)
    fast = mlp(x)
    assert rel_error(fast, plain) <= RTOL
    with torch.no_grad():  # inference computes SiLU·value in place: the same numbers
        assert torch.equal(mlp(x), fast.detach())
    fast_grads = torch.autograd.grad(fast.square().sum(), [x, *mlp.parameters()])
    plain_grads = torch.autograd.grad(plain.square().sum(), [x, *mlp.parameters()])
    for f, p in zip(fast_grads, plain_grads, strict=True):
        assert rel_error(f, p) <= RTOL


def test_norm_modulate_in_place_at_inference_equals_the_autograd_path():
    norm = RMSNorm(16)
    x, shift, scale = randn(3, 5, 16, seed=2), randn(3, 16, seed=3), randn(3, 16, seed=4)
    with_grad = norm_modulate(norm, x, shift, scale)
    assert with_grad.requires_grad
    with torch.no_grad():
        assert torch.equal(norm_modulate(norm, x, shift, scale), with_grad.detach())
    assert torch.equal(x, randn(3, 5, 16, seed=2))  # the input is never written


def test_network_with_fast_paths_equals_the_plain_network(monkeypatch):
    net = random_net()
    gen = torch.Generator().manual_seed(9)
    x, t, y = torch.randn(3, 3, 16, 16, generator=gen), torch.rand(3, generator=gen), torch.tensor([0, 4, 10])
    fast = net(x, t, y)
    monkeypatch.setattr(VisionRotaryEmbedding, "rotate", VisionRotaryEmbedding.forward)
    monkeypatch.setattr(
        model_module, "norm_modulate", lambda norm, x, shift, scale: modulate(norm(x), shift, scale)
    )
    for block in net.blocks:
        monkeypatch.setattr(block.mlp, "pad", 0)
    assert rel_error(fast, net(x, t, y)) <= 1e-5


# --- hand-written backward passes -------------------------------------------------------------------------------


def test_hand_written_backward_passes_pass_gradcheck_in_float64():
    gen = torch.Generator().manual_seed(11)

    def leaf(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_()

    x, factor, shift = leaf(2, 5, 8), leaf(2, 8), leaf(2, 8)
    assert torch.autograd.gradcheck(lambda *a: layers.NormModulate.apply(*a, 1e-6), (x, factor, shift))
    qkv, q_gain, k_gain = (
        leaf(2, 5, 3 * 2 * 4),
        leaf(4),
        leaf(4),
    )  # 2 heads of 4 channels, no RoPE (float32 tables)
    assert torch.autograd.gradcheck(
        lambda *a: layers.QKNormRope.apply(*a, None, 0, 2, 1e-6), (qkv, q_gain, k_gain)
    )


def gradients(fn, leaves: list[Tensor], fused: bool, monkeypatch) -> tuple[Tensor, list[Tensor]]:
    """fn() and the gradients of a weighted square loss of it for ``leaves``, with or without the hand-written passes."""
    monkeypatch.setattr(layers, "FUSED_BACKWARD", fused)
    out = fn()
    weight = torch.linspace(-1, 1, out.numel()).reshape(out.shape)  # a loss whose gradient is not out itself
    return out, list(torch.autograd.grad((out * weight).square().sum(), leaves))


@pytest.mark.parametrize("num_prefix", [0, 4])
def test_attention_backward_equals_autograds_with_rope_and_class_tokens(num_prefix, monkeypatch):
    attention, rope = Attention(32, 4), VisionRotaryEmbedding(8, 3)
    with torch.no_grad():
        for p in attention.parameters():
            p.copy_(randn(*p.shape, seed=p.numel()))
    x = randn(2, num_prefix + 9, 32, seed=12).requires_grad_()
    leaves = [x, *attention.parameters()]
    fast, fast_grads = gradients(lambda: attention(x, rope, num_prefix), leaves, True, monkeypatch)
    plain, plain_grads = gradients(lambda: attention(x, rope, num_prefix), leaves, False, monkeypatch)
    assert torch.equal(fast, plain)  # the same forward operations
    for f, p in zip(fast_grads, plain_grads, strict=True):
        assert rel_error(f, p) <= RTOL


def test_training_network_gradients_equal_autograds(monkeypatch):
    net = random_net()
    gen = torch.Generator().manual_seed(13)
    x, t, y = torch.randn(3, 3, 16, 16, generator=gen), torch.rand(3, generator=gen), torch.tensor([0, 4, 10])
    used = set()
    for name in ("NormModulate", "QKNormRope"):
        function = getattr(layers, name)
        monkeypatch.setattr(
            function,
            "apply",
            classmethod(lambda cls, *a, _f=function.apply: used.add(cls.__name__) or _f(*a)),
        )
    params = [p for p in net.parameters() if p.requires_grad]
    fast, fast_grads = gradients(lambda: net(x, t, y), params, True, monkeypatch)
    assert used == {"NormModulate", "QKNormRope"}  # every hand-written backward ran
    plain, plain_grads = gradients(lambda: net(x, t, y), params, False, monkeypatch)
    assert torch.equal(fast, plain)
    assert len(fast_grads) == len(params) > 60
    for f, p in zip(fast_grads, plain_grads, strict=True):
        assert rel_error(f, p) <= RTOL


def test_compiled_graphs_and_inference_take_the_plain_operations(monkeypatch):
    net = random_net()
    x, t, y = randn(2, 3, 16, 16, seed=14), torch.rand(2), torch.tensor([1, 2])
    calls = []
    for name in ("NormModulate", "QKNormRope"):
        monkeypatch.setattr(getattr(layers, name), "apply", classmethod(lambda cls, *a: calls.append(cls)))
    with torch.no_grad():
        net(x, t, y)  # inference: nothing to differentiate
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    net(x, t, y).sum().backward()  # what a compiler traces: the plain operations, which it fuses itself
    assert calls == []


# --- validation at the edges ------------------------------------------------------------------------------------


def test_expand_t_reads_a_time_tensor_once():
    t = torch.empty(4, device="meta")  # a meta tensor has no values: any read would raise
    assert expand_t(t, torch.empty(4, 3, 2, 2, device="meta")).shape == (4, 1, 1, 1)
    with pytest.raises(ValueError, match=r"t has shape \(3,\)"):
        expand_t(torch.zeros(3), torch.zeros(4, 2))
    t, x = torch.tensor([0.25, 0.5]), torch.zeros(2, 3)
    expand_t(t, x)
    assert interpolation._LAST_CHECKED_T[0]() is t  # later conversions with this tensor read nothing
    t[1] = 1.5  # changed in place: read again
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        expand_t(t, x)


@pytest.mark.parametrize("bad", [1.5, -0.25])
def test_times_outside_0_1_are_refused_where_they_enter(bad):
    x = torch.zeros(2, 3)
    t = torch.tensor([0.5, bad])
    message = r"t must lie in \[0, 1\] \(0 = noise, 1 = data\); got values in"
    entries = [
        lambda: check_t(t),
        lambda: interpolate(x, x, t),
        lambda: Denoiser(lambda z, t, y: z).loss(x, x, t),
        lambda: implied_weight("x", "v", t),
    ]
    for call in entries:
        with pytest.raises(ValueError, match=message) as err:
            call()
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"time_grid=.* must be ≥ 2 strictly increasing times in \[0, 1\]"):
        sample(lambda z, t, y: None, x, time_grid=[0.0, bad] if bad > 1 else [bad, 1.0])


def test_labels_are_checked_once_per_tensor_and_again_after_a_change():
    net = random_net()
    x, t = torch.zeros(3, 3, 16, 16), torch.full((3,), 0.5)
    y = torch.tensor([0, 1, 2])
    assert not model_module._labels_checked(y, 10)
    net(x, t, y)
    assert model_module._labels_checked(y, 10)  # the next forward with this tensor reads no values
    assert not model_module._labels_checked(y, 5)  # … for this class count only
    y[1] = 11  # in place: a new version, checked again
    assert not model_module._labels_checked(y, 10)
    with pytest.raises(
        ValueError, match="class id 11 out of range: valid ids are 0..9, and 10 for the null label"
    ):
        net(x, t, y)
    with pytest.raises(ValueError, match="class id -1 out of range"):
        net(x, t, torch.tensor([0, -1, 1]))


def test_a_sample_reads_no_time_values_from_the_device(monkeypatch):
    """sample() checks its time grid once (Python floats) and steps inside ``trusted_t``: a 6-step guided Heun sample
    of a real network calls check_t zero times; the same conversions outside the sampler still check."""
    calls = []
    real = interpolation.check_t
    monkeypatch.setattr(interpolation, "check_t", lambda t: calls.append(1) or real(t))
    net = random_net()
    denoiser = Denoiser(net, target="x", t_eps=0.05)
    z = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([1, 2])
    out = sample(denoiser, z, steps=6, labels=y, null_label=10, cfg_scale=2.0, cfg_interval=(0.0, 1.0))
    assert torch.isfinite(out).all() and calls == []
    denoiser(z, torch.full((2,), 0.5), y)  # outside the sampler: the first use of a t tensor reads it
    assert calls == [1]
    assert not interpolation._TRUSTED_T.get()  # the block ended with the sample


@pytest.mark.parametrize("num_prefix", [0, 4])
def test_attention_in_place_at_inference_equals_the_training_path(num_prefix):
    attention, rope = Attention(32, 4), VisionRotaryEmbedding(8, 3)
    with torch.no_grad():
        for p in attention.parameters():
            p.copy_(randn(*p.shape, seed=p.numel()))
    x = randn(2, num_prefix + 9, 32, seed=15)
    for table in (rope, None):  # with RoPE and without
        recorded = attention(x.clone().requires_grad_(), table, num_prefix)
        assert recorded.grad_fn is not None
        with torch.no_grad():
            assert torch.equal(
                attention(x, table, num_prefix), recorded.detach()
            )  # the same operations, in place
    assert torch.equal(x, randn(2, num_prefix + 9, 32, seed=15))  # the input is never written


def test_fast_paths_step_aside_for_hooks():
    """A hook on a module the fast paths skip (q_norm, norm1) or reuse the output of (qkv) sees the plain forward."""
    net = random_net()
    block = net.blocks[0]
    x, t, y = randn(2, 3, 16, 16, seed=16), torch.rand(2), torch.tensor([1, 2])
    expected = net(x, t, y).detach()
    with torch.no_grad():
        expected_eval = net(x, t, y)
    seen, qkv = [], []
    hooks = [
        m.register_forward_hook(lambda m, i, out: seen.append(m)) for m in (block.attn.q_norm, block.norm1)
    ]
    hooks.append(block.attn.qkv.register_forward_hook(lambda m, i, out: qkv.append((i[0].clone(), out))))
    try:
        assert rel_error(net(x, t, y).detach(), expected) <= RTOL  # through the modules' own forward
        assert seen == [block.norm1, block.attn.q_norm]
        with torch.no_grad():
            assert rel_error(net(x, t, y), expected_eval) <= RTOL
        assert len(seen) == 4
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():  # what the qkv hook kept is qkv's output, not overwritten by the in-place path
        assert all(torch.equal(out, block.attn.qkv(inp)) for inp, out in qkv)
