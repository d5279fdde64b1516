"""Weights: jitlib's artifact format (exact rebuild), the official checkpoint layout and key set, and a reference forward.

The official layout is written here independently of jitlib: the key/shape table `official_shapes` (checked
against the official JiT-B/16 key list in tests/data) and `reference_forward`, a literal functional
transcription of the official network as described in the spec (manual fp32 attention, explicit RoPE
table, einsum unpatchify), which a loaded jitlib network must reproduce.
"""

import argparse
import ast
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from jitlib.artifact import Artifact, ModelCard, load
from jitlib.integrity import write_sums
from jitlib.nn.flops import count_params
from jitlib.nn.model import JiTConfig
from jitlib.nn.registry import create_model, get_config
from jitlib.nn.weights import load_official, official_to_jitlib
from jitlib.training.config import DiffusionConfig, SampleConfig

torch.set_num_threads(1)

KEY_FILE = Path(__file__).parent / "data" / "official-keys-jit-b16.txt"


def parse_key_file() -> tuple[list[tuple[str, tuple[int, ...]]], dict[str, str]]:
    """(key, shape) rows in state-dict order, and the `# name: value` footer facts."""
    rows, facts = [], {}
    for line in KEY_FILE.read_text().splitlines():
        if line.startswith("#"):
            name, _, value = line[1:].partition(":")
            facts[name.strip()] = value.strip()
        elif line.strip():
            key, shape, dtype, numel = line.split("\t")
            assert dtype == "float32" and math.prod(ast.literal_eval(shape)) == int(numel)
            rows.append((key, tuple(ast.literal_eval(shape))))
    return rows, facts


def official_shapes(cfg: JiTConfig) -> dict[str, tuple[int, ...]]:
    """The official network's state-dict keys and shapes for any config (spec §10), in state-dict order."""
    d, c, p, h = (
        cfg.hidden_size,
        cfg.in_channels,
        cfg.patch_size,
        int(int(cfg.hidden_size * cfg.mlp_ratio) * 2 / 3),
    )
    head = d // cfg.num_heads
    shapes = {
        "pos_embed": (1, cfg.grid_size**2, d),
        "in_context_posemb": (1, cfg.in_context_len, d),
        "t_embedder.mlp.0.weight": (d, 256),
        "t_embedder.mlp.0.bias": (d,),
        "t_embedder.mlp.2.weight": (d, d),
        "t_embedder.mlp.2.bias": (d,),
        "y_embedder.embedding_table.weight": (cfg.num_classes + 1, d),
        "x_embedder.proj1.weight": (cfg.bottleneck_dim, c, p, p),
        "x_embedder.proj2.weight": (d, cfg.bottleneck_dim, 1, 1),
        "x_embedder.proj2.bias": (d,),
    }
    for i in range(cfg.depth):
        block = {
            "norm1.weight": (d,),
            "attn.q_norm.weight": (head,),
            "attn.k_norm.weight": (head,),
            "attn.qkv.weight": (3 * d, d),
            "attn.qkv.bias": (3 * d,),
            "attn.proj.weight": (d, d),
            "attn.proj.bias": (d,),
            "norm2.weight": (d,),
            "mlp.w12.weight": (2 * h, d),
            "mlp.w12.bias": (2 * h,),
            "mlp.w3.weight": (d, h),
            "mlp.w3.bias": (d,),
            "adaLN_modulation.1.weight": (6 * d, d),
            "adaLN_modulation.1.bias": (6 * d,),
        }
        shapes.update({f"blocks.{i}.{key}": shape for key, shape in block.items()})
    shapes.update(
        {
            "final_layer.norm_final.weight": (d,),
            "final_layer.linear.weight": (p * p * c, d),
            "final_layer.linear.bias": (p * p * c,),
            "final_layer.adaLN_modulation.1.weight": (2 * d, d),
            "final_layer.adaLN_modulation.1.bias": (2 * d,),
        }
    )
    return shapes


def reference_forward(sd: dict, cfg: JiTConfig, x, t, y):
    """The official forward pass, transcribed step by step from spec §10 (fp32, eval mode)."""
    d, heads, p, c, n, L = (
        cfg.hidden_size,
        cfg.num_heads,
        cfg.patch_size,
        cfg.in_channels,
        cfg.grid_size,
        cfg.in_context_len,
    )
    hd = d // heads

    def rms(v, w):
        v32 = v.float()
        return w * (v32 * torch.rsqrt(v32.pow(2).mean(-1, keepdim=True) + 1e-6))

    def linear(v, name):
        return F.linear(v, sd[name + ".weight"], sd[name + ".bias"])

    freqs = torch.exp(-math.log(10000) * torch.arange(0, 128, dtype=torch.float32) / 128)
    angles = t[:, None].float() * freqs[None]
    t_emb = linear(
        F.silu(linear(torch.cat([torch.cos(angles), torch.sin(angles)], -1), "t_embedder.mlp.0")),
        "t_embedder.mlp.2",
    )
    y_emb = sd["y_embedder.embedding_table.weight"][y]
    cond = t_emb + y_emb

    tokens = F.conv2d(x, sd["x_embedder.proj1.weight"], stride=p)
    tokens = F.conv2d(tokens, sd["x_embedder.proj2.weight"], sd["x_embedder.proj2.bias"])
    tokens = tokens.flatten(2).transpose(1, 2) + sd["pos_embed"]

    # RoPE (VisionRotaryEmbeddingFast, dim = hd/2): freqs [f0, f0, f1, f1, ...]; rows, then columns.
    axis = hd // 2
    f = 1.0 / (10000 ** (torch.arange(0, axis, 2)[: axis // 2].float() / axis))
    f = torch.stack([f, f], dim=-1).reshape(-1)
    table = torch.zeros(n * n, hd)
    for k in range(n * n):
        table[k] = torch.cat([(k // n) * f, (k % n) * f])
    cos_img, sin_img = table.cos(), table.sin()
    cos_ctx = torch.cat([torch.ones(L, hd), cos_img])
    sin_ctx = torch.cat([torch.zeros(L, hd), sin_img])

    def rotate_half(v):
        v = v.reshape(*v.shape[:-1], hd // 2, 2)
        return torch.stack([-v[..., 1], v[..., 0]], dim=-1).reshape(*v.shape[:-2], hd)

    for i in range(cfg.depth):
        pre = f"blocks.{i}."
        if L > 0 and i == cfg.in_context_start:
            ctx = y_emb.unsqueeze(1).repeat(1, L, 1) + sd["in_context_posemb"]
            tokens = torch.cat([ctx, tokens], dim=1)
        cos, sin = (cos_ctx, sin_ctx) if L > 0 and i >= cfg.in_context_start else (cos_img, sin_img)
        mods = linear(F.silu(cond), pre + "adaLN_modulation.1").chunk(6, dim=-1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (m.unsqueeze(1) for m in mods)
        hidden = rms(tokens, sd[pre + "norm1.weight"]) * (1 + scale_msa) + shift_msa
        b, seq = hidden.shape[:2]
        qkv = linear(hidden, pre + "attn.qkv").reshape(b, seq, 3, heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q, k = rms(q, sd[pre + "attn.q_norm.weight"]), rms(k, sd[pre + "attn.k_norm.weight"])
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        logits = (q.float() @ k.float().transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        attn = torch.softmax(logits, dim=-1) @ v
        attn = attn.transpose(1, 2).reshape(b, seq, d)
        tokens = tokens + gate_msa * linear(attn, pre + "attn.proj")
        hidden = rms(tokens, sd[pre + "norm2.weight"]) * (1 + scale_mlp) + shift_mlp
        gate, value = linear(hidden, pre + "mlp.w12").chunk(2, dim=-1)
        tokens = tokens + gate_mlp * linear(F.silu(gate) * value, pre + "mlp.w3")
    tokens = tokens[:, L:]
    shift, scale = linear(F.silu(cond), "final_layer.adaLN_modulation.1").chunk(2, dim=-1)
    hidden = rms(tokens, sd["final_layer.norm_final.weight"]) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)
    patches = linear(hidden, "final_layer.linear")
    patches = patches.reshape(x.shape[0], n, n, p, p, c)
    return torch.einsum("nhwpqc->nchpwq", patches).reshape(x.shape[0], c, n * p, n * p)


def random_state_dict(shapes: dict, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    sd = {key: 0.1 * torch.randn(shape, generator=g) for key, shape in shapes.items()}
    for key in sd:  # norm gains around 1, as trained ones are
        if "norm" in key:
            sd[key] += 1.0
    return sd


def write_official_checkpoint(path: Path, cfg_name: str, cfg: JiTConfig, **extra) -> dict[str, dict]:
    """An official-format .pth: Denoiser state dicts (prefix `net.`) for model/EMA1/EMA2, optimizer, args."""
    entries = {
        entry: {"net." + k: v for k, v in random_state_dict(official_shapes(cfg), seed).items()}
        for seed, entry in enumerate(("model", "model_ema1", "model_ema2"))
    }
    args = argparse.Namespace(
        model=cfg_name,
        img_size=cfg.input_size,
        class_num=cfg.num_classes,
        attn_dropout=0.0,
        proj_dropout=0.0,
        blr=5e-5,
        output_dir="./output_dir",
    )
    torch.save(
        {**entries, "optimizer": {"state": {}, "param_groups": []}, "epoch": 5, "args": args, **extra}, path
    )
    return entries


def test_official_b16_keys_and_shapes_equal_jitlib_b16_on_meta():
    rows, facts = parse_key_file()
    model = create_model("JiT-B/16", device="meta")
    ours = [(key, tuple(value.shape)) for key, value in model.state_dict().items()]
    assert ours == rows  # same names, same shapes, same order
    assert len(rows) == int(facts["num_keys"]) == 183
    assert all(v.dtype == torch.float32 for v in model.state_dict().values())
    assert count_params(model) == int(facts["trainable_parameters (requires_grad=True)"])
    assert count_params(model, trainable_only=False) == int(facts["total_state_dict_elements"])
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == ["pos_embed"]


def test_official_shape_table_matches_the_official_b16_key_list():
    rows, _ = parse_key_file()
    assert list(official_shapes(get_config("JiT-B/16")).items()) == rows


@pytest.mark.parametrize("ema, entry", [("ema1", "model_ema1"), ("ema2", "model_ema2"), ("model", "model")])
def test_official_checkpoint_round_trips_and_matches_the_reference_forward(tmp_path, ema, entry):
    cfg = get_config("JiT-tiny/4", input_size=16, hidden_size=32, num_heads=2, bottleneck_dim=8, depth=3)
    path = tmp_path / "checkpoint-last.pth"
    entries = write_official_checkpoint(path, "JiT-tiny/4", cfg)
    model = load_official(
        path, ema=ema, input_size=16, hidden_size=32, num_heads=2, bottleneck_dim=8, depth=3
    )
    assert model.config == cfg
    expected = official_to_jitlib(entries[entry])
    loaded = model.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)

    g = torch.Generator().manual_seed(5)
    x, t = torch.randn(2, 3, 16, 16, generator=g), torch.rand(2, generator=g)
    y = torch.tensor([3, cfg.num_classes])  # a class and the null label
    # SDPA scales q before the product, the official code after it: ~1e-7 apart in fp32.
    torch.testing.assert_close(
        model.eval()(x, t, y), reference_forward(expected, cfg, x, t, y), atol=2e-5, rtol=1e-5
    )


def test_load_official_reads_the_architecture_from_the_checkpoint_args(tmp_path):
    cfg = get_config("JiT-tiny/8")
    path = tmp_path / "ckpt.pth"
    write_official_checkpoint(path, "JiT-tiny/8", cfg)
    assert load_official(path).config == cfg


def test_checkpoint_of_another_architecture_names_the_first_mismatching_key(tmp_path):
    path = tmp_path / "ckpt.pth"
    write_official_checkpoint(path, "JiT-tiny/4", get_config("JiT-tiny/4"))
    with pytest.raises(
        ValueError, match=r"key 'pos_embed' has shape \(1, 64, 128\) in the checkpoint but \(1, 16, 128\)"
    ) as err:
        load_official(path, name="JiT-tiny/8")
    assert "\n" not in str(err.value)
    with pytest.raises(
        ValueError, match=r"key 'blocks.0.attn.q_norm.weight' has shape \(32,\) in the checkpoint but \(16,\)"
    ):
        load_official(path, num_heads=8)
    with pytest.raises(ValueError, match=r"lacks key 'blocks.4.norm1.weight'"):
        load_official(path, depth=5)


def test_load_official_refuses_arbitrary_pickled_objects(tmp_path):
    path = tmp_path / "evil.pth"
    write_official_checkpoint(path, "JiT-tiny/4", get_config("JiT-tiny/4"), hook=torch.nn.ReLU())
    with pytest.raises(
        ValueError, match=r"holds torch.nn.modules.activation.ReLU; refusing to unpickle"
    ) as err:
        load_official(path)
    assert "\n" not in str(err.value)


def test_load_official_bad_arguments(tmp_path):
    path = tmp_path / "ckpt.pth"
    write_official_checkpoint(path, "JiT-tiny/4", get_config("JiT-tiny/4"))
    with pytest.raises(ValueError, match="ema='ema3' is not one of ema1, ema2, model"):
        load_official(path, ema="ema3")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_official(tmp_path / "missing.pth")
    torch.save({"model": {"blocks.0.norm1.weight": torch.ones(3)}}, tmp_path / "plain.pth")
    with pytest.raises(ValueError, match="no 'model_ema1' entry"):
        load_official(tmp_path / "plain.pth", name="JiT-tiny/4")
    with pytest.raises(ValueError, match="no key starts with 'net.'"):
        load_official(tmp_path / "plain.pth", ema="model", name="JiT-tiny/4")


def artifact_of(net) -> Artifact:
    """An artifact holding exactly ``net``'s float32 weights as its one variant (the raw weights)."""
    card = ModelCard(
        model_name="JiT-tiny/4",
        architecture=net.config,
        diffusion=DiffusionConfig(noise_scale=1.0),
        sampler=SampleConfig(),
        variants=("model",),
        default_ema="model",
        class_names=tuple(str(i) for i in range(net.config.num_classes)),
    )
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return Artifact(card, lambda variant: state, "memory", "net")


def test_artifact_save_and_load_rebuild_the_exact_model(tmp_path):
    """jitlib's one on-disk format (Artifact.save_pretrained → jitlib.load) gives back the network bit for bit."""
    model = create_model(
        "JiT-tiny/4", in_channels=1, bottleneck_dim=None, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    folder = artifact_of(model).save_pretrained(tmp_path / "run")
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    again = load(folder).net()
    assert again.config == model.config
    assert list(again.state_dict()) == list(model.state_dict())
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True)
    )
    assert not again.pos_embed.requires_grad
    x, t, y = torch.randn(2, 1, 32, 32), torch.rand(2), torch.tensor([1, 10])
    assert torch.equal(again.eval()(x, t, y), model.eval()(x, t, y))


def test_artifact_with_mismatched_files_names_the_key(tmp_path):
    a = artifact_of(create_model("JiT-tiny/4")).save_pretrained(tmp_path / "a")
    b = artifact_of(create_model("JiT-tiny/8")).save_pretrained(tmp_path / "b")
    (a / "config.json").write_text((b / "config.json").read_text())
    with pytest.raises(
        ValueError, match="config.json is corrupt"
    ) as err:  # the checksum catches the swap first
        load(a)
    assert "\n" not in str(err.value)
    write_sums(a, ["config.json", "model.safetensors"])  # a consistent folder whose card and weights disagree
    with pytest.raises(
        ValueError, match=r"key 'pos_embed' has shape \(1, 64, 128\) in the checkpoint but \(1, 16, 128\)"
    ) as err:
        load(a).net()
    assert "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(tmp_path / "nowhere")


def test_artifact_carries_every_switch_and_refuses_a_mismatched_one(tmp_path):
    """RoPE, which no weight reveals, travels in the card; a card whose switch disagrees with its weights is one line."""
    norope = artifact_of(create_model("JiT-tiny/4", rope=False)).save_pretrained(tmp_path / "norope")
    assert load(norope).net().config.rope is False
    for name, value, other in [("qk_norm", True, False), ("mlp", "swiglu", "gelu"), ("in_context_len", 4, 0)]:
        folder = artifact_of(create_model("JiT-tiny/4")).save_pretrained(tmp_path / name)
        assert getattr(load(folder).card.architecture, name) == value
        card = json.loads((folder / "config.json").read_text())
        card["architecture"][name] = other
        (folder / "config.json").write_text(json.dumps(card))
        write_sums(folder, ["config.json", "model.safetensors"])
        with pytest.raises(
            ValueError, match=f"holds a network with {name}={value!r} but the model has {name}={other!r}"
        ) as err:
            load(folder).net()
        assert "\n" not in str(err.value)
