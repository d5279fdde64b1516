"""The JiT network ("Just image Transformers", Li & He 2025, Fig. 3 and §4.4).

A plain DiT-style Transformer on raw pixel patches that predicts the clean image x̂:

    patches --BottleneckPatchEmbed--> tokens (+ fixed 2-D sin-cos pos_embed)
            --JiTBlock × depth-->     (class tokens prepended before block `in_context_start`)
            --FinalLayer-->           per-token p·p·C pixels --unpatchify--> x̂

conditioned on c = TimestepEmbedder(t) + LabelEmbedder(y) through adaLN-Zero. Parameter names and every
layout detail (sin-cos order, RoPE channel order, unpatchify order, chunk orders) follow the official
`LTH14/JiT` code, so its state dicts load with the `net.` prefix stripped (see `jitlib.nn.weights`).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

# the layers, re-exported: tests, exercises and chapter 6 import them from jitlib.nn.model
from jitlib.nn.layers import (  # noqa: F401
    Attention,
    BottleneckPatchEmbed,
    GeluMLP,
    LabelEmbedder,
    PatchEmbed,
    RMSNorm,
    SwiGLUFFN,
    TimestepEmbedder,
    VisionRotaryEmbedding,
    autocast_disabled,
    make_norm,
    modulate,
    norm_modulate,
    patchify,
    rope_tables,
    rotate_half,
    silu_gate,
    sincos_pos_embed_2d,
    timestep_embedding,
    unpatchify,
)


@dataclass(frozen=True)
class JiTConfig:
    """Hyper-parameters of a JiT network; argument names follow the official constructor.

    The defaults are the paper's final model (JiT-B/16). Each component of the paper's ablations (Tabs. 2, 4,
    Fig. 4, footnote 5) has a switch: `bottleneck_dim=None` gives a plain linear patch embedding; `rope`,
    `qk_norm` turn 2-D RoPE and the per-head q/k RMSNorm off; `in_context_len=0` drops the in-context class
    tokens (adaLN only; `in_context_start` is the block before which they are prepended); `mlp="gelu"` is a
    4·D GELU MLP instead of SwiGLU and `norm="layer"` LayerNorm (learnable gain and bias, eps 1e-6) instead of
    RMSNorm everywhere — the paper does not publish how its non-SwiGLU/RMSNorm variant was built, so these two
    follow DiT's GELU MLP and timm's LayerNorm. `num_classes=0` gives an unconditional network.
    `aux_cls_block=k > 0` adds Tab. 11's classification head (global average pool + linear) on the tokens entering
    block k, and the blocks before it get no class conditioning (c = t_emb): off (0) by default.
    `attn_fp32_logits=True` computes attention in float32 even under autocast, as the official code does (a
    legacy choice that suppressed loss spikes for v/ε-prediction, LTH14/JiT issue #15); the default runs SDPA
    in the input dtype, faster and leaner (under bf16 autocast the outputs differ, see `jitlib.nn.registry`).
    """

    input_size: int = 256
    patch_size: int = 16
    in_channels: int = 3
    hidden_size: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    bottleneck_dim: int | None = 128
    num_classes: int = 1000
    in_context_len: int = 32
    in_context_start: int = 4
    attn_drop: float = 0.0
    proj_drop: float = 0.0
    attn_fp32_logits: bool = False
    rope: bool = True
    qk_norm: bool = True
    mlp: Literal["swiglu", "gelu"] = "swiglu"
    norm: Literal["rms", "layer"] = "rms"
    aux_cls_block: int = 0

    def __post_init__(self) -> None:
        positive = ("input_size", "patch_size", "in_channels", "hidden_size", "depth", "num_heads")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"JiTConfig.{name} must be a positive int, got {value!r}")
        if self.input_size % self.patch_size:
            raise ValueError(
                f"image size {self.input_size} is not divisible by patch size {self.patch_size}; "
                f"use a multiple of {self.patch_size}"
            )
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.hidden_size % 4:
            raise ValueError(f"hidden_size {self.hidden_size} must be divisible by 4 (2-D sin-cos table)")
        if self.rope and self.head_dim % 4:
            raise ValueError(
                f"head dim {self.head_dim} (hidden_size/num_heads) must be divisible by 4 (2-D RoPE)"
            )
        if self.bottleneck_dim is not None and self.bottleneck_dim <= 0:
            raise ValueError(f"bottleneck_dim must be a positive int or None, got {self.bottleneck_dim!r}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0 = unconditional), got {self.num_classes}")
        if self.in_context_len < 0:
            raise ValueError(f"in_context_len must be >= 0, got {self.in_context_len}")
        if self.in_context_len > 0 and not 0 <= self.in_context_start < self.depth:
            raise ValueError(
                f"in_context_start {self.in_context_start} must be in [0, depth={self.depth}) "
                f"when in_context_len > 0"
            )
        if self.mlp not in ("swiglu", "gelu"):
            raise ValueError(f"JiTConfig.mlp must be 'swiglu' or 'gelu', got {self.mlp!r}")
        if self.norm not in ("rms", "layer"):
            raise ValueError(f"JiTConfig.norm must be 'rms' or 'layer', got {self.norm!r}")
        if self.aux_cls_block and not (0 < self.aux_cls_block < self.depth and self.num_classes > 0):
            raise ValueError(
                f"aux_cls_block {self.aux_cls_block} needs a conditional network and 0 < aux_cls_block < "
                f"depth={self.depth} (0 = no classification head)"
            )
        if self.aux_cls_block and self.in_context_len > 0 and self.in_context_start < self.aux_cls_block:
            raise ValueError(
                f"in_context_start {self.in_context_start} < aux_cls_block {self.aux_cls_block}: the class tokens "
                f"would reach the classification head; start them at block {self.aux_cls_block} or later"
            )
        for name in ("attn_drop", "proj_drop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"JiTConfig.{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def grid_size(self) -> int:
        """Tokens per image side, n = input_size / patch_size."""
        return self.input_size // self.patch_size

    @property
    def head_dim(self) -> int:
        """Channels per attention head, hidden_size / num_heads."""
        return self.hidden_size // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        """MLP hidden width: int(int(D·mlp_ratio)·2/3) for SwiGLU (parameters ≈ a GELU MLP), int(D·mlp_ratio) for GELU."""
        width = int(self.hidden_size * self.mlp_ratio)
        return int(width * 2 / 3) if self.mlp == "swiglu" else width

    def has_dropout(self, block: int) -> bool:
        """Whether block `block` uses dropout: only the middle half, depth//4 ≤ i < (depth//4)·3 (official)."""
        return self.depth // 4 <= block < (self.depth // 4) * 3


# ----------------------------------------------------------------------------------------------------
# Fixed tables and layout helpers
# ----------------------------------------------------------------------------------------------------


class JiTBlock(nn.Module):
    """adaLN-Zero block: x += g₁·Attn(mod(RMSNorm(x))), then x += g₂·MLP(mod(RMSNorm(x))), (shift, scale, g) from c."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden: int,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        fp32_logits: bool = False,
        norm: str = "rms",
        qk_norm: bool = True,
        mlp: str = "swiglu",
    ) -> None:
        super().__init__()
        self.norm1 = make_norm(norm, dim)
        self.attn = Attention(dim, num_heads, attn_drop, proj_drop, fp32_logits, norm if qk_norm else None)
        self.norm2 = make_norm(norm, dim)
        self.mlp = (SwiGLUFFN if mlp == "swiglu" else GeluMLP)(dim, mlp_hidden, proj_drop)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim, bias=True))

    def forward(self, x: Tensor, c: Tensor, rope: VisionRotaryEmbedding | None, num_prefix: int) -> Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(
            6, dim=-1
        )
        # x + g·f(…) as one addcmul; norm_modulate = modulate(norm(x), …) in fewer passes
        x = torch.addcmul(
            x,
            gate_msa.unsqueeze(1),
            self.attn(norm_modulate(self.norm1, x, shift_msa, scale_msa), rope, num_prefix),
        )
        return torch.addcmul(
            x, gate_mlp.unsqueeze(1), self.mlp(norm_modulate(self.norm2, x, shift_mlp, scale_mlp))
        )


class FinalLayer(nn.Module):
    """Head Linear(mod(RMSNorm(x), shift, scale)) → p·p·C pixels per token, (shift, scale) from c."""

    def __init__(self, dim: int, patch_size: int, out_channels: int, norm: str = "rms") -> None:
        super().__init__()
        self.norm_final = make_norm(norm, dim)
        self.linear = nn.Linear(dim, patch_size * patch_size * out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim, bias=True))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(norm_modulate(self.norm_final, x, shift, scale))


# ----------------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------------

# [weak reference to the last labels tensor found valid, its version counter, the class count it was checked for]
_LAST_CHECKED_LABELS: list = [None, -1, -1]


def _labels_checked(y: Tensor, num_classes: int) -> bool:
    """Whether ``y``, unchanged since, is the labels tensor last found valid for ``num_classes`` classes."""
    ref, version, classes = _LAST_CHECKED_LABELS
    return ref is not None and ref() is y and version == y._version and classes == num_classes


class JiT(nn.Module):
    """x̂ = JiT(x, t, y): the clean-image prediction for a noisy image x at time t ∈ [0, 1] and label y.

    Built on the current default device (`with torch.device("meta"): JiT(cfg)` works for any size);
    `generator` seeds the initialisation. y = `num_classes` (or y = None) is the null label; an
    unconditional network (`num_classes=0`) ignores y.
    """

    def __init__(self, config: JiTConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = cfg = config
        device = torch.get_default_device()
        # Build on meta, then materialise: skips torch's default init (it would draw from the global RNG
        # and be overwritten by `initialize_weights` anyway) and makes huge models cheap to construct.
        with torch.device("meta"):
            self.pos_embed = nn.Parameter(
                torch.empty(1, cfg.grid_size**2, cfg.hidden_size), requires_grad=False
            )
            if cfg.in_context_len > 0:
                self.in_context_posemb = nn.Parameter(torch.empty(1, cfg.in_context_len, cfg.hidden_size))
            self.t_embedder = TimestepEmbedder(cfg.hidden_size)
            self.y_embedder = LabelEmbedder(cfg.num_classes, cfg.hidden_size)
            if cfg.bottleneck_dim is None:
                self.x_embedder = PatchEmbed(cfg.in_channels, cfg.patch_size, cfg.hidden_size)
            else:
                self.x_embedder = BottleneckPatchEmbed(
                    cfg.in_channels, cfg.patch_size, cfg.bottleneck_dim, cfg.hidden_size
                )
            self.rope = VisionRotaryEmbedding(cfg.head_dim, cfg.grid_size) if cfg.rope else None
            self.blocks = nn.ModuleList(
                JiTBlock(
                    cfg.hidden_size,
                    cfg.num_heads,
                    cfg.mlp_hidden,
                    attn_drop=cfg.attn_drop if cfg.has_dropout(i) else 0.0,
                    proj_drop=cfg.proj_drop if cfg.has_dropout(i) else 0.0,
                    fp32_logits=cfg.attn_fp32_logits,
                    norm=cfg.norm,
                    qk_norm=cfg.qk_norm,
                    mlp=cfg.mlp,
                )
                for i in range(cfg.depth)
            )
            self.final_layer = FinalLayer(cfg.hidden_size, cfg.patch_size, cfg.in_channels, cfg.norm)
            if cfg.aux_cls_block:
                self.aux_head = nn.Linear(cfg.hidden_size, cfg.num_classes)
        # Initialise where the generator lives, then move: a seed gives the same weights on every device.
        init_device = device if generator is None or device.type == "meta" else generator.device
        self.to_empty(device=init_device)
        if device.type != "meta":  # meta tensors hold no values to initialise
            self.initialize_weights(generator)
        self.to(device)

    @torch.no_grad()
    def initialize_weights(self, generator: torch.Generator | None = None) -> None:
        """The official initialisation; the zero adaLN and head make the untrained network output x̂ = 0."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, generator=generator)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv2d):  # patch embedding: Xavier as if it were the linear map it is
                nn.init.xavier_uniform_(module.weight.view(module.weight.shape[0], -1), generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (RMSNorm, nn.LayerNorm)):
                nn.init.ones_(module.weight)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        table = sincos_pos_embed_2d(
            self.config.hidden_size, self.config.grid_size, device=self.pos_embed.device
        )
        self.pos_embed.copy_(table.unsqueeze(0))
        if self.config.in_context_len > 0:
            nn.init.normal_(self.in_context_posemb, std=0.02, generator=generator)
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02, generator=generator)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02, generator=generator)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02, generator=generator)
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def _labels(self, y: Tensor | None, batch: int, device: torch.device) -> Tensor:
        """Label ids to embed: y itself, the null label for y = None, always the null row if unconditional."""
        nc = self.config.num_classes
        if y is None or nc == 0:
            return torch.full((batch,), nc, dtype=torch.long, device=device)
        if y.shape != (batch,) or y.is_floating_point() or y.is_complex():
            raise ValueError(
                f"y must be an integer tensor of shape ({batch},), got {y.dtype} {tuple(y.shape)}"
            )
        # Data-dependent check: eager only (it would break a compiled graph and means nothing on meta). It reads
        # the values (a device sync on a GPU), so it runs once per labels tensor: a sampler passes the same tensor
        # at every step, and a tensor changed in place since (a new version) is checked again.
        if not torch.compiler.is_compiling() and y.device.type != "meta" and not _labels_checked(y, nc):
            bad = y[(y < 0) | (y > nc)]
            if bad.numel():
                raise ValueError(
                    f"class id {bad[0].item()} out of range: valid ids are 0..{nc - 1}, and {nc} for the null label"
                )
            _LAST_CHECKED_LABELS[:] = [weakref.ref(y), y._version, nc]
        return y

    def forward(
        self, x: Tensor, t: Tensor, y: Tensor | None = None, *, return_aux: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """x̂ of shape (B, C, H, W) from x (B, C, H, W), t (B,) or scalar in [0, 1], y (B,) long or None.

        ``return_aux``: also return the classification logits (B, num_classes) of the head (``aux_cls_block > 0``).
        """
        cfg = self.config
        expected = (cfg.in_channels, cfg.input_size, cfg.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x must have shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        batch = x.shape[0]
        if t.ndim == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"t must have shape ({batch},) or (), got {tuple(t.shape)}")
        if return_aux and not cfg.aux_cls_block:
            raise ValueError(
                "return_aux=True needs a classification head: build the network with aux_cls_block > 0"
            )
        y_emb = self.y_embedder(self._labels(y, batch, x.device))
        t_emb = self.t_embedder(t)
        c = t_emb + y_emb

        h = self.x_embedder(x) + self.pos_embed
        num_prefix, logits = 0, None
        for i, block in enumerate(self.blocks):
            if cfg.aux_cls_block and i == cfg.aux_cls_block:  # Tab. 11: GAP + linear on what enters block k
                logits = self.aux_head(h.mean(dim=1))
            if cfg.in_context_len > 0 and i == cfg.in_context_start:
                # L copies of the label embedding (not c), each with its own learned position, prepended.
                in_context = y_emb.unsqueeze(1) + self.in_context_posemb
                h = torch.cat([in_context, h], dim=1)
                num_prefix = cfg.in_context_len
            h = block(h, t_emb if i < cfg.aux_cls_block else c, self.rope, num_prefix)
        out = unpatchify(self.final_layer(h[:, num_prefix:], c), cfg.patch_size, cfg.in_channels)
        return (out, logits) if return_aux else out
