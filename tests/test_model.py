"""The JiT network: zero init, shapes and dtypes, conditioning, RoPE, official layouts, precision, devices."""

import math

import pytest
import torch

from jitlib.nn.model import (
    JiT,
    JiTConfig,
    VisionRotaryEmbedding,
    rope_tables,
    sincos_pos_embed_2d,
    timestep_embedding,
    unpatchify,
)

torch.set_num_threads(1)

TINY = dict(
    input_size=16,
    patch_size=4,
    in_channels=3,
    hidden_size=32,
    depth=4,
    num_heads=2,
    bottleneck_dim=8,
    num_classes=5,
    in_context_len=2,
    in_context_start=1,
)


def tiny(**overrides) -> JiTConfig:
    return JiTConfig(**{**TINY, **overrides})


def randomised(config: JiTConfig, seed: int = 0) -> JiT:
    """A network whose zero-initialised layers (adaLN, head) are perturbed, so outputs depend on everything."""
    g = torch.Generator().manual_seed(seed)
    model = JiT(config, generator=g).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


def inputs(config: JiTConfig, batch: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, config.in_channels, config.input_size, config.input_size, generator=g)
    t = torch.rand(batch, generator=g)
    y = torch.randint(0, config.num_classes + 1, (batch,), generator=g) if config.num_classes else None
    return x, t, y


@pytest.mark.parametrize(
    "overrides",
    [{}, {"bottleneck_dim": None}, {"in_context_len": 0}, {"num_classes": 0}, {"in_channels": 1}],
    ids=["default", "no-bottleneck", "no-in-context", "unconditional", "one-channel"],
)
def test_untrained_network_outputs_exact_zeros(overrides):
    config = tiny(**overrides)
    model = JiT(config, generator=torch.Generator().manual_seed(0))
    x, t, y = inputs(config)
    out = model(x, t, y)
    assert out.shape == x.shape
    assert torch.equal(out, torch.zeros_like(x))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_output_shape_and_dtype_under_autocast(dtype):
    config = tiny()
    model = randomised(config)
    x, t, y = inputs(config)
    with torch.autocast("cpu", dtype=dtype):
        out = model(x, t, y)
    assert out.shape == x.shape and out.dtype == dtype
    assert torch.isfinite(out).all()


def test_fp32_and_bf16_autocast_agree():
    # Tolerance: bf16 keeps 8 mantissa bits (relative precision 2^-8 ≈ 4e-3); through 4 blocks this
    # network measures ≈ 0.5 % relative L2 error, and we allow 2 %.
    config = tiny()
    model = randomised(config)
    x, t, y = inputs(config)
    reference = model(x, t, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x, t, y).float()
    rel = (low - reference).norm() / reference.norm()
    assert rel < 2e-2, rel


def test_fp32_attention_logits_option_agrees_with_plain_sdpa():
    base = randomised(tiny())
    fp32 = randomised(tiny(attn_fp32_logits=True))
    x, t, y = inputs(base.config)
    torch.testing.assert_close(fp32(x, t, y), base(x, t, y), atol=1e-5, rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fp32(x, t, y)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_in_context_tokens_leave_output_shape_unchanged_but_change_output():
    with_tokens = randomised(tiny(in_context_len=3, in_context_start=2))
    without = randomised(tiny(in_context_len=0))
    x, t, y = inputs(with_tokens.config)
    out = with_tokens(x, t, y)
    assert out.shape == without(x, t, y).shape == x.shape
    # The tokens are used: changing their learned positions changes x̂ (they are attended to, then dropped).
    with torch.no_grad():
        with_tokens.in_context_posemb.add_(1.0)
    assert not torch.allclose(with_tokens(x, t, y), out)


def test_label_changes_output_once_weights_are_nonzero():
    config = tiny()
    model = randomised(config)
    x, t, _ = inputs(config)
    out_a = model(x, t, torch.tensor([0, 1, 2]))
    out_b = model(x, t, torch.tensor([3, 4, 2]))
    assert not torch.allclose(out_a[:2], out_b[:2])
    torch.testing.assert_close(out_a[2], out_b[2])  # same label, same output: samples do not mix


def test_none_label_is_the_null_label():
    config = tiny()
    model = randomised(config)
    x, t, _ = inputs(config)
    null = torch.full((3,), config.num_classes)
    torch.testing.assert_close(model(x, t, None), model(x, t, null))


def test_unconditional_network_ignores_labels():
    config = tiny(num_classes=0)
    model = randomised(config)
    x, t, _ = inputs(config)
    assert model.y_embedder.embedding_table.weight.shape == (1, config.hidden_size)
    torch.testing.assert_close(model(x, t, torch.tensor([7, 0, 3])), model(x, t))


def test_time_changes_output_and_scalar_t_broadcasts():
    config = tiny()
    model = randomised(config)
    x, _, y = inputs(config)
    out = model(x, torch.full((3,), 0.3), y)
    torch.testing.assert_close(model(x, torch.tensor(0.3), y), out)
    assert not torch.allclose(model(x, torch.full((3,), 0.7), y), out)


def test_rope_is_a_norm_preserving_rotation():
    rope = VisionRotaryEmbedding(head_dim=16, grid_size=4)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    rotated = rope(x)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rotated[:, :, 0], x[:, :, 0])  # token (0, 0): angle 0
    assert not torch.allclose(rotated[:, :, 1:], x[:, :, 1:])


def test_rope_is_relative_shifting_both_positions_keeps_dot_product():
    n, head_dim = 6, 16
    rope = VisionRotaryEmbedding(head_dim, n)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(head_dim, generator=g), torch.randn(head_dim, generator=g)

    def score(q_pos, k_pos):
        qs = torch.zeros(1, 1, n * n, head_dim)
        ks = torch.zeros(1, 1, n * n, head_dim)
        qs[0, 0, q_pos[0] * n + q_pos[1]] = q
        ks[0, 0, k_pos[0] * n + k_pos[1]] = k
        return (rope(qs)[0, 0, q_pos[0] * n + q_pos[1]] * rope(ks)[0, 0, k_pos[0] * n + k_pos[1]]).sum()

    base = score((1, 0), (3, 2))
    torch.testing.assert_close(score((3, 2), (5, 4)), base)  # shift both by (2, 2)
    torch.testing.assert_close(score((1, 3), (3, 5)), base)  # shift both by (0, 3)
    assert not torch.allclose(score((1, 0), (2, 4)), base)  # a different offset changes it


def test_rope_layout_rows_first_then_columns_with_interleaved_pairs():
    # Independent reference of the official layout: channel pair (2j, 2j+1) of the first head_dim/2
    # channels is rotated by row·f_j, the same pair of the last head_dim/2 by col·f_j, f_j = 10000^(-4j/head_dim).
    n, head_dim = 5, 16
    cos, sin = rope_tables(head_dim, n)
    rope = VisionRotaryEmbedding(head_dim, n)
    x = torch.randn(1, 1, n * n, head_dim, generator=torch.Generator().manual_seed(0))
    out = rope(x)[0, 0]
    for row, col in [(2, 3), (4, 1)]:
        token = row * n + col
        for j in range(head_dim // 4):
            f = 10000.0 ** (-2 * j / (head_dim // 2))
            for offset, pos in [(0, row), (head_dim // 2, col)]:
                a, b = x[0, 0, token, offset + 2 * j], x[0, 0, token, offset + 2 * j + 1]
                angle = torch.tensor(pos * f)
                assert math.isclose(cos[token, offset + 2 * j], math.cos(pos * f), abs_tol=1e-6)
                torch.testing.assert_close(out[token, offset + 2 * j], a * angle.cos() - b * angle.sin())
                torch.testing.assert_close(out[token, offset + 2 * j + 1], b * angle.cos() + a * angle.sin())
    assert torch.equal(sin[0], torch.zeros(head_dim))


def test_rope_leaves_prefix_tokens_unrotated():
    rope = VisionRotaryEmbedding(head_dim=8, grid_size=3)
    x = torch.randn(2, 2, 4 + 9, 8, generator=torch.Generator().manual_seed(0))
    out = rope(x, num_prefix=4)
    assert torch.equal(out[:, :, :4], x[:, :, :4])
    torch.testing.assert_close(out[:, :, 4:], rope(x[:, :, 4:]))


def test_sincos_first_half_encodes_the_column_sin_first():
    n, dim = 5, 16
    table = sincos_pos_embed_2d(dim, n)
    assert table.shape == (n * n, dim) and table.dtype == torch.float32
    for row in range(n):
        for col in range(n):
            token = row * n + col
            for k in range(dim // 4):
                omega = 10000.0 ** (-k / (dim / 4))
                expected = [
                    (k, math.sin(col * omega)),
                    (dim // 4 + k, math.cos(col * omega)),
                    (dim // 2 + k, math.sin(row * omega)),
                    (3 * dim // 4 + k, math.cos(row * omega)),
                ]
                for channel, value in expected:
                    assert math.isclose(table[token, channel], value, abs_tol=1e-6)


def test_unpatchify_layout_is_p_p_c_with_c_fastest():
    b, n, p, c = 2, 3, 2, 3
    tokens = torch.randn(b, n * n, p * p * c, generator=torch.Generator().manual_seed(0))
    image = unpatchify(tokens, p, c)
    assert image.shape == (b, c, n * p, n * p)
    for row in range(n):
        for col in range(n):
            for i in range(p):
                for j in range(p):
                    for ch in range(c):
                        expected = tokens[:, row * n + col, (i * p + j) * c + ch]
                        assert torch.equal(image[:, ch, row * p + i, col * p + j], expected)


def test_timestep_embedding_is_cos_first_of_raw_t():
    t = torch.tensor([0.0, 0.25, 1.0])
    emb = timestep_embedding(t)
    assert emb.shape == (3, 256)
    torch.testing.assert_close(emb[:, 0], torch.cos(t))  # frequency 1, raw t (not ×1000)
    torch.testing.assert_close(emb[:, 128], torch.sin(t))
    f = math.exp(-math.log(10000) * 5 / 128)
    torch.testing.assert_close(emb[:, 5], torch.cos(t * f))


def test_meta_construction_then_to_empty_recomputes_rope_and_matches():
    config = tiny()
    eager = randomised(config)
    with torch.device("meta"):
        lazy = JiT(config)
    assert lazy.rope.cos.is_meta
    lazy.to_empty(device="cpu")
    lazy.load_state_dict(eager.state_dict())
    assert "rope.cos" not in lazy.state_dict()
    assert torch.equal(lazy.rope.cos, eager.rope.cos) and torch.equal(lazy.rope.sin, eager.rope.sin)
    x, t, y = inputs(config)
    assert torch.equal(lazy.eval()(x, t, y), eager(x, t, y))


def test_dtype_cast_keeps_rope_tables_float32_and_runs():
    config = tiny()
    model = randomised(config).to(torch.bfloat16)
    assert model.rope.cos.dtype == torch.float32 and model.pos_embed.dtype == torch.bfloat16
    x, t, y = inputs(config)
    out = model(x.bfloat16(), t.bfloat16(), y)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_initialize_weights_sets_every_parameter():
    config = tiny()
    with torch.device("meta"):
        model = JiT(config)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    model.initialize_weights(torch.Generator().manual_seed(0))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_same_generator_same_weights_and_official_init_statistics():
    config = tiny(hidden_size=64, num_heads=4)
    a = JiT(config, generator=torch.Generator().manual_seed(3))
    b = JiT(config, generator=torch.Generator().manual_seed(3))
    c = JiT(config, generator=torch.Generator().manual_seed(4))
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.blocks[0].attn.qkv.weight, c.blocks[0].attn.qkv.weight)
    qkv = a.blocks[0].attn.qkv.weight  # Xavier-uniform: bound sqrt(6 / (fan_in + fan_out))
    assert qkv.abs().max() <= math.sqrt(6 / (64 + 192)) and torch.equal(
        a.blocks[0].attn.qkv.bias, torch.zeros(192)
    )
    assert abs(a.y_embedder.embedding_table.weight.std().item() - 0.02) < 0.004
    assert torch.equal(a.final_layer.linear.weight, torch.zeros_like(a.final_layer.linear.weight))
    assert not a.pos_embed.requires_grad
    torch.testing.assert_close(a.pos_embed[0], sincos_pos_embed_2d(64, config.grid_size))


def test_construction_with_a_generator_leaves_the_global_rng_alone():
    before = torch.get_rng_state()
    JiT(tiny(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), before)


def test_dropout_only_in_the_middle_half_of_the_blocks():
    config = tiny(depth=8, attn_drop=0.1, proj_drop=0.2)
    model = JiT(config)
    proj = [block.attn.proj_drop.p for block in model.blocks]
    attn = [block.attn.attn_drop for block in model.blocks]
    mlp = [block.mlp.ffn_dropout.p for block in model.blocks]
    assert proj == mlp == [0.0, 0.0, 0.2, 0.2, 0.2, 0.2, 0.0, 0.0]
    assert attn == [0.0, 0.0, 0.1, 0.1, 0.1, 0.1, 0.0, 0.0]


@pytest.mark.parametrize("hidden, expected", [(768, 2048), (1024, 2730), (1280, 3413), (1664, 4437)])
def test_swiglu_hidden_width(hidden, expected):
    assert JiTConfig(hidden_size=hidden, num_heads=16 if hidden != 768 else 12).mlp_hidden == expected


@pytest.mark.slow  # ~20 s of Dynamo tracing on a busy 2-core machine
def test_torch_compile_has_no_graph_break():
    config = tiny()
    model = randomised(config)
    x, t, y = inputs(config)
    compiled = torch.compile(model, backend="eager", fullgraph=True)  # fullgraph: a graph break is an error
    torch.testing.assert_close(compiled(x, t, y), model(x, t, y))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"input_size": 18}, "not divisible by patch size 4"),
        ({"in_context_start": 4}, "in_context_start 4 must be in [0, depth=4)"),
        ({"hidden_size": 24, "num_heads": 4}, "head dim 6"),
        ({"hidden_size": 32, "num_heads": 3}, "not divisible by num_heads 3"),
        ({"num_classes": -1}, "num_classes must be >= 0"),
        ({"proj_drop": 1.0}, "proj_drop must be in [0, 1)"),
    ],
)
def test_bad_config_is_a_one_line_error(overrides, message):
    with pytest.raises(
        ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ) as err:
        tiny(**overrides)
    assert "\n" not in str(err.value)


def test_bad_forward_input_is_a_one_line_error():
    config = tiny()
    model = JiT(config)
    x, t, y = inputs(config)
    cases = [
        (
            lambda: model(torch.zeros(3, 3, 18, 18), t, y),
            r"x must have shape \(B, 3, 16, 16\), got \(3, 3, 18, 18\)",
        ),
        (lambda: model(x, t, torch.tensor([0, 6, 1])), r"class id 6 out of range: valid ids are 0..4, and 5"),
        (lambda: model(x, t, torch.tensor([0, -1, 1])), r"class id -1 out of range"),
        (lambda: model(x, t, torch.tensor([0.0, 1.0, 1.0])), r"y must be an integer tensor"),
        (lambda: model(x, torch.rand(2), y), r"t must have shape \(3,\) or \(\), got \(2,\)"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            call()
        assert "\n" not in str(err.value)
