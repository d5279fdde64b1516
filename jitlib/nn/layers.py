"""The layers JiT is built from (:mod:`jitlib.nn.model` assembles them): patch embeddings, the timestep and label
embedders, RMSNorm and adaLN modulation, 2-D RoPE, attention with q/k-norm, and the SwiGLU / GELU MLPs.

Parameter names and layout details follow the official ``LTH14/JiT`` code (see :mod:`jitlib.nn.weights`). Where a
layer has an eager fast path (RoPE as a complex product, RMSNorm's gain folded into the modulation, in-place SiLU at
inference), the plain form stays beside it as the reference that tests compare it with.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.nn.modules import module as torch_module


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN modulation x·(1 + scale) + shift, with (B, D) shift/scale broadcast over tokens."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def norm_modulate(norm: nn.Module, x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """``modulate(norm(x), shift, scale)`` in fewer passes over the tokens when ``norm`` is an :class:`RMSNorm`.

    RMSNorm's gain w and the modulation are one per-channel factor per sample: (x·r)·(w·(1 + scale)) + shift with
    r = 1/rms(x) — three passes over (B, N, D) instead of six. Equal to the plain form up to float rounding. Under
    eager autograd the backward pass is :class:`NormModulate`'s hand-written one.
    """
    if not isinstance(norm, RMSNorm) or x.dtype != torch.float32 or hooked(norm):
        return modulate(norm(x), shift, scale)
    factor = norm.weight * (1 + scale)
    recording = torch.is_grad_enabled() and any(t.requires_grad for t in (x, factor, shift))
    if recording and x.ndim == 3 and fused_backward():
        return NormModulate.apply(x, factor, shift, norm.eps)
    normed = x * norm.inverse_rms(x)
    out = None if recording else normed  # inference: in place, no second (B, N, D) buffer
    return torch.addcmul(shift.unsqueeze(1), normed, factor.unsqueeze(1), out=out)


# ----------------------------------------------------------------------------------------------------
# Hand-written backward passes (eager training)
# ----------------------------------------------------------------------------------------------------

FUSED_BACKWARD = True  # tests turn it off to compare with the backward autograd derives from the plain ops


def fused_backward() -> bool:
    """Whether the layers use their hand-written backward passes: eager only (a compiler derives and fuses its own)."""
    return FUSED_BACKWARD and not torch.compiler.is_compiling()


def hooked(*modules: nn.Module) -> bool:
    """Whether a hook watches any of ``modules`` (or every module): the fast paths, which skip those modules' own
    ``forward`` or reuse their outputs' memory, then step aside so that the hooks see what they expect."""
    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        return True
    if torch_module._global_backward_hooks or torch_module._global_backward_pre_hooks:
        return True
    return any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
        for m in modules
    )


def rms_backward(
    grad: Tensor,
    normed: Tensor,
    r: Tensor,
    gain: Tensor,
    gain_dims: tuple[int, ...],
    out: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Gradients of y = x̂·gain, x̂ = x·r, r = 1/√(‖x‖²/D + eps), given g = ∂L/∂y: (∂L/∂x, ∂L/∂gain).

    ∂L/∂x = r·(g·gain − x̂·⟨g·gain, x̂⟩/D): only x̂ and r are needed, not x. ``gain`` broadcasts over ``grad``
    ((D,) or (B, 1, D)) and ``gain_dims`` are the axes it is broadcast along (summed for its gradient). One
    temporary the size of ``grad``, which becomes ∂L/∂x unless ``out`` is given (then ∂L/∂x is written there).
    """
    temp = grad * normed
    grad_gain = temp.sum(gain_dims)
    # ⟨g·gain, x̂⟩ over D = (g·x̂)·gain: a matrix-vector product, no second temporary
    column = gain.transpose(-1, -2) if gain.ndim > 1 else gain  # (B, D, 1) or (D,)
    dot = torch.matmul(temp, column)
    dot = dot if gain.ndim > 1 else dot.unsqueeze(-1)
    grad_x = torch.mul(grad, gain, out=temp)
    grad_x.addcmul_(normed, dot, value=-1.0 / normed.shape[-1])
    return torch.mul(grad_x, r, out=grad_x if out is None else out), grad_gain


class NormModulate(torch.autograd.Function):
    """``norm_modulate``'s RMSNorm path, y = (x·r)·factor + shift, with a backward that keeps only x·r and r.

    The forward is the same operations as the plain path (the same numbers). The backward takes the gradients in
    seven passes over (B, N, D) where autograd's derivation of the plain path takes about ten and keeps x as well.
    x: (B, N, D) float32; factor = w·(1 + scale) and shift: (B, D).
    """

    @staticmethod
    def forward(ctx, x: Tensor, factor: Tensor, shift: Tensor, eps: float) -> Tensor:  # type: ignore[override]
        """(x·r)·factor + shift; keeps x·r, r and factor for the backward pass."""
        r = torch.rsqrt(torch.linalg.vector_norm(x, dim=-1, keepdim=True).square() / x.shape[-1] + eps)
        normed = x * r
        ctx.save_for_backward(normed, r, factor)
        ctx.shift_dtype = shift.dtype
        return torch.addcmul(shift.unsqueeze(1), normed, factor.unsqueeze(1))

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        """Gradients for x, factor and shift from x·r and r (:func:`rms_backward`)."""
        normed, r, factor = ctx.saved_tensors
        need_x, need_factor, need_shift, _ = ctx.needs_input_grad
        with autocast_disabled(grad.device):
            grad_shift = grad.sum(1).to(ctx.shift_dtype) if need_shift else None
            grad_x, grad_factor = rms_backward(grad, normed, r, factor.unsqueeze(1), (1,))
        return grad_x if need_x else None, grad_factor if need_factor else None, grad_shift, None


class QKNormRope(torch.autograd.Function):
    """q̃, k̃, v from qkv's output: per-head RMSNorm of q and k, then RoPE (optional); v is a view of the input.

    The forward is the plain path's operations (``RMSNorm.forward``, ``VisionRotaryEmbedding.rotate``): the same
    numbers. The backward undoes the rotation (a product with the conjugate table), takes the RMSNorm gradient
    from x̂ and r alone (:func:`rms_backward`) and writes the q, k and v gradients straight into one buffer in
    qkv's layout, instead of autograd's chain of products and its final stack of the three. Float32 only.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        qkv: Tensor,
        q_gain: Tensor,
        k_gain: Tensor,
        rope: VisionRotaryEmbedding | None,
        num_prefix: int,
        heads: int,
        eps: float,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(q̃, k̃, v), each (b, heads, n, head_dim); keeps the normalised q and k and their rsqrt."""
        q, k, v = (part.transpose(1, 2) for part in qkv.unflatten(-1, (3, heads, -1)).unbind(2))
        saved, outs = [], []
        for x, gain in ((q, q_gain), (k, k_gain)):
            r = torch.rsqrt(torch.linalg.vector_norm(x, dim=-1, keepdim=True).square() / x.shape[-1] + eps)
            normed = x * r
            y = gain * normed
            if rope is not None:  # rope.rotate's product, in y's own memory (y is this function's to reuse)
                y = torch.view_as_real(complex_pairs(y).mul_(rope.rotations(num_prefix))).flatten(-2)
            outs.append(y)
            saved += [normed, r]
        ctx.save_for_backward(*saved, q_gain, k_gain)
        ctx.rotation = rope.rotations(num_prefix).conj().resolve_conj() if rope is not None else None
        return outs[0], outs[1], v

    @staticmethod
    def backward(  # type: ignore[override]
        ctx, grad_q: Tensor | None, grad_k: Tensor | None, grad_v: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        """Gradients for qkv (one buffer in its layout) and the two gains."""
        normed_q, r_q, normed_k, r_k, q_gain, k_gain = ctx.saved_tensors
        b, heads, n, d = normed_q.shape
        grad = normed_q.new_empty(b, n, 3, heads, d)
        slots = [part.transpose(1, 2) for part in grad.unbind(2)]  # (b, heads, n, d) views of the buffer
        gains = []
        with autocast_disabled(normed_q.device):
            for g, normed, r, gain, slot in (
                (grad_q, normed_q, r_q, q_gain, slots[0]),
                (grad_k, normed_k, r_k, k_gain, slots[1]),
            ):
                if g is None:
                    slot.zero_()
                    gains.append(None)
                    continue
                if ctx.rotation is not None:  # RoPE's gradient: rotate back, a product with cos − i·sin
                    g = torch.view_as_real(complex_pairs(g) * ctx.rotation).flatten(-2)
                gains.append(rms_backward(g, normed, r, gain, (0, 1, 2), out=slot)[1])
            if grad_v is None:
                slots[2].zero_()
            else:
                slots[2].copy_(grad_v)
        return grad.flatten(2), gains[0], gains[1], None, None, None, None


def sincos_pos_embed_2d(dim: int, grid_size: int, device: torch.device | str | None = None) -> Tensor:
    """Fixed 2-D sin-cos table (n², dim): [sin(col·ω), cos(col·ω), sin(row·ω), cos(row·ω)], ω_k = 10000^(−k/(dim/4)).

    Row-major tokens (index = row·n + col). The first half encodes the *column* index, as in the official
    (MAE) code whose meshgrid puts w first. Computed in float64 like the official numpy code.
    """
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64, device=device) / (dim / 4))
    positions = torch.arange(grid_size, dtype=torch.float64, device=device)
    row, col = torch.meshgrid(positions, positions, indexing="ij")

    def one_axis(pos: Tensor) -> Tensor:
        angles = pos.reshape(-1, 1) * omega
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([one_axis(col), one_axis(row)], dim=1).float()


def rope_tables(
    head_dim: int, grid_size: int, theta: float = 10000.0, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """2-D axial RoPE tables cos, sin of shape (n², head_dim), angle row·f_j | col·f_j, f_j = θ^(−2j/(head_dim/2)).

    Each frequency is repeated for an adjacent channel pair ([f0, f0, f1, f1, …]); the first head_dim/2
    channels rotate by the row index and the last head_dim/2 by the column index (official layout,
    opposite to the sin-cos pos_embed). Float32 throughout, as the official tables.
    """
    axis_dim = head_dim // 2
    freqs = 1.0 / theta ** (torch.arange(0, axis_dim, 2, device=device).float() / axis_dim)
    freqs = freqs.repeat_interleave(2)  # (head_dim/2,)
    positions = torch.arange(grid_size, device=device).float()
    row, col = torch.meshgrid(positions, positions, indexing="ij")
    angles = torch.cat([row.reshape(-1, 1) * freqs, col.reshape(-1, 1) * freqs], dim=1)
    return angles.cos(), angles.sin()


def rotate_half(x: Tensor) -> Tensor:
    """Rotate adjacent channel pairs by 90°: (x_{2i}, x_{2i+1}) → (−x_{2i+1}, x_{2i}) (interleaved / GPT-J style)."""
    pairs = rearrange(x, "... (d two) -> ... d two", two=2)
    even, odd = pairs.unbind(-1)
    return rearrange(torch.stack([-odd, even], dim=-1), "... d two -> ... (d two)")


def autocast_disabled(device: torch.device) -> contextlib.AbstractContextManager:
    """A context with autocast off on `device` (a no-op where autocast does not exist, e.g. meta)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def unpatchify(tokens: Tensor, patch_size: int, channels: int) -> Tensor:
    """(B, n², p·p·C) → (B, C, n·p, n·p): pixel (c, row·p+i, col·p+j) = token row·n+col, channel (i·p+j)·C+c.

    The per-token layout is (p, p, C) with C fastest — not the (C, p, p) layout of the input conv.
    """
    n = math.isqrt(tokens.shape[1])
    return rearrange(
        tokens, "b (h w) (p q c) -> b c (h p) (w q)", h=n, w=n, p=patch_size, q=patch_size, c=channels
    )


def timestep_embedding(t: Tensor, dim: int = 256, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features [cos(t·f_k), sin(t·f_k)], f_k = max_period^(−k/(dim/2)), of the raw t ∈ [0, 1] (cos first)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


# ----------------------------------------------------------------------------------------------------
# Components (Fig. 3)
# ----------------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """w ⊙ x / sqrt(mean(x²) + eps), computed in float32 and cast back to the input dtype."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        normed = xf * self.inverse_rms(xf)
        return (self.weight * normed).to(x.dtype)

    def inverse_rms(self, x: Tensor) -> Tensor:
        """1 / sqrt(mean(x²) + eps) over the last dim, kept as a size-1 dim (float32 ``x``).

        mean(x²) is taken as ‖x‖² / D: one pass over x (forward and backward) instead of squaring it first.
        """
        mean_square = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square() / x.shape[-1]
        return torch.rsqrt(mean_square + self.eps)


def make_norm(kind: str, dim: int) -> nn.Module:
    """RMSNorm(dim) for "rms" (JiT), LayerNorm(dim, eps 1e-6, learnable gain and bias) for "layer" (the ablation)."""
    return RMSNorm(dim) if kind == "rms" else nn.LayerNorm(dim, eps=1e-6)


def patchify(x: Tensor, patch_size: int) -> Tensor:
    """(B, C, n·p, n·p) → (B, n², C·p·p): token row·n+col holds its patch in a conv weight's (C, p, p) order."""
    return rearrange(x, "b c (h p) (w q) -> b (h w) (c p q)", p=patch_size, q=patch_size)


class BottleneckPatchEmbed(nn.Module):
    """Low-rank patch embedding W₂·(W₁·patch) + b: p·p·C → d′ (no bias) → D, as the official Conv2d pair."""

    def __init__(self, in_channels: int, patch_size: int, bottleneck_dim: int, hidden_size: int) -> None:
        super().__init__()
        # A conv with kernel = stride = p is a per-patch linear map; kept as convs so official weights load.
        self.proj1 = nn.Conv2d(in_channels, bottleneck_dim, patch_size, stride=patch_size, bias=False)
        self.proj2 = nn.Conv2d(bottleneck_dim, hidden_size, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        # Computed as two matmuls on the patches, not as the convs: faster, and already in token layout.
        patches = patchify(x, self.proj1.kernel_size[0])
        return F.linear(
            F.linear(patches, self.proj1.weight.flatten(1)), self.proj2.weight.flatten(1), self.proj2.bias
        )


class PatchEmbed(nn.Module):
    """Plain linear patch embedding W·patch + b: p·p·C → D (the "no bottleneck" ablation)."""

    def __init__(self, in_channels: int, patch_size: int, hidden_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden_size, patch_size, stride=patch_size, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        # One matmul on the patches, as in BottleneckPatchEmbed.
        return F.linear(patchify(x, self.proj.kernel_size[0]), self.proj.weight.flatten(1), self.proj.bias)


class TimestepEmbedder(nn.Module):
    """t ↦ Linear(SiLU(Linear(timestep_embedding(t)))): raw t ∈ [0, 1] to a D-dim vector."""

    def __init__(self, hidden_size: int, frequency_dim: int = 256) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(
            nn.Linear(frequency_dim, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size)
        )

    def forward(self, t: Tensor) -> Tensor:
        features = timestep_embedding(t, self.frequency_dim)  # float32; match a network cast to another dtype
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    """y ↦ table[y] with num_classes + 1 rows; row `num_classes` is the null label used for CFG."""

    def __init__(self, num_classes: int, hidden_size: int) -> None:
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, hidden_size)

    def forward(self, y: Tensor) -> Tensor:
        return self.embedding_table(y)


class VisionRotaryEmbedding(nn.Module):
    """2-D axial RoPE: x ↦ x·cos + rotate_half(x)·sin per image token; prefix (class) tokens are not rotated.

    The tables are non-persistent float32 buffers (not in the state dict). They are recomputed whenever the
    module is moved or materialised (`to`, `to_empty`, `cuda`, `half`, ...), so a network built on the meta
    device and then materialised has valid tables, and a dtype cast keeps them in float32.
    """

    def __init__(self, head_dim: int, grid_size: int, theta: float = 10000.0) -> None:
        super().__init__()
        self.head_dim, self.grid_size, self.theta = head_dim, grid_size, theta
        self._rotations: dict[int, Tensor] = {}  # num_prefix -> complex table of `rotate`
        self.register_buffer("cos", torch.empty(grid_size**2, head_dim), persistent=False)
        self.register_buffer("sin", torch.empty(grid_size**2, head_dim), persistent=False)
        self.reset_tables()

    def reset_tables(self) -> None:
        """Recompute cos/sin on the buffers' current device."""
        self.cos, self.sin = rope_tables(self.head_dim, self.grid_size, self.theta, device=self.cos.device)
        self._rotations = {}

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> VisionRotaryEmbedding:
        # torch's hook behind every move/cast; recomputing here is what makes meta → to_empty safe.
        super()._apply(fn, recurse)
        self.reset_tables()
        return self

    def forward(self, x: Tensor, num_prefix: int = 0) -> Tensor:
        """Rotate x (B, heads, num_prefix + n², head_dim); the first `num_prefix` tokens get cos = 1, sin = 0."""
        prefix, tokens = x[:, :, :num_prefix], x[:, :, num_prefix:]
        # Type promotion with the float32 tables computes the rotation in (at least) float32, as officially.
        rotated = tokens * self.cos + rotate_half(tokens) * self.sin
        return torch.cat([prefix, rotated.to(x.dtype)], dim=2)

    def rotations(self, num_prefix: int) -> Tensor:
        """cos + i·sin per channel pair, shape (num_prefix + n², head_dim/2), complex64; 1 for the prefix tokens."""
        table = self._rotations.get(num_prefix)
        if table is None:
            table = torch.complex(self.cos[:, ::2], self.sin[:, ::2])  # each pair shares one angle
            table = torch.cat([torch.ones_like(table[:num_prefix].expand(num_prefix, -1)), table])
            if not torch.compiler.is_compiling():
                self._rotations[num_prefix] = table
        return table

    def rotate(self, x: Tensor, num_prefix: int = 0) -> Tensor:
        """``forward`` in one pass: each adjacent pair (x_2i, x_2i+1) read as a complex number times cos + i·sin.

        (x_2i + i·x_2i+1)(cos + i·sin) = (x_2i·cos − x_2i+1·sin) + i·(x_2i+1·cos + x_2i·sin), which is
        x·cos + rotate_half(x)·sin; the prefix tokens are multiplied by 1. Float32 like ``forward``; equal to it
        up to float rounding. Any leading dims (…, num_prefix + n², head_dim).
        """
        return torch.view_as_real(complex_pairs(x) * self.rotations(num_prefix)).flatten(-2).to(x.dtype)


def complex_pairs(x: Tensor) -> Tensor:
    """Adjacent channel pairs (x_2i, x_2i+1) of float32 ``x`` as complex numbers x_2i + i·x_2i+1: a view when the
    layout allows (a copy only when it does not), shape (…, head_dim/2)."""
    pairs = x.float().unflatten(-1, (-1, 2))
    if pairs.stride(-1) != 1 or pairs.storage_offset() % 2 or any(s % 2 for s in pairs.stride()[:-1]):
        pairs = pairs.contiguous()  # a complex view needs whole pairs
    return torch.view_as_complex(pairs)


class Attention(nn.Module):
    """Multi-head self-attention softmax(q̃·k̃ᵀ/√d)·v with q̃, k̃ = RoPE(RMSNorm(q)), RoPE(RMSNorm(k))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        fp32_logits: bool = False,
        qk_norm: str | None = "rms",
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.fp32_logits = fp32_logits
        head_dim = dim // num_heads
        # registered first: the official state-dict order; no qk-norm = identity, no parameters
        self.q_norm = make_norm(qk_norm, head_dim) if qk_norm else nn.Identity()
        self.k_norm = make_norm(qk_norm, head_dim) if qk_norm else nn.Identity()
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, rope: VisionRotaryEmbedding | None, num_prefix: int) -> Tensor:
        # qkv output channels are laid out (3, heads, head_dim): all q heads, then k, then v. Split along that
        # axis before moving the heads forward, so the backward stacks the three gradients straight into qkv's layout.
        qkv = self.qkv(x)
        eager_rms = (
            qkv.dtype == torch.float32
            and not torch.compiler.is_compiling()
            and all(isinstance(n, RMSNorm) and n.eps == self.q_norm.eps for n in (self.q_norm, self.k_norm))
            and not hooked(self.qkv, self.q_norm, self.k_norm)
        )
        if eager_rms and qkv.requires_grad and fused_backward():
            # eager fp32 training: the same forward, with a hand-written backward
            q, k, v = QKNormRope.apply(
                qkv, self.q_norm.weight, self.k_norm.weight, rope, num_prefix, self.num_heads, self.q_norm.eps
            )
        elif eager_rms and not qkv.requires_grad:
            q, k, v = self.qk_in_place(qkv, rope, num_prefix)
        else:
            parts = rearrange(qkv, "b n (three h d) -> b n three h d", three=3, h=self.num_heads)
            q, k, v = (part.transpose(1, 2) for part in parts.unbind(2))  # each (b, h, n, d)
            q, k = self.q_norm(q), self.k_norm(k)
            if rope is not None and not torch.compiler.is_compiling():
                # eager: the same rotation as one complex product per pair (fewer passes); a compiler fuses `rope`
                q, k = rope.rotate(q, num_prefix), rope.rotate(k, num_prefix)
            elif rope is not None:
                q, k = rope(q, num_prefix), rope(k, num_prefix)
        dropout_p = self.attn_drop if self.training else 0.0
        if self.fp32_logits:
            with autocast_disabled(x.device):
                out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), dropout_p=dropout_p)
            out = out.to(v.dtype)
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        return self.proj_drop(self.proj(rearrange(out, "b h n d -> b n (h d)")))

    def qk_in_place(
        self, qkv: Tensor, rope: VisionRotaryEmbedding | None, num_prefix: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Inference: q and k normalised and rotated inside qkv's own memory, which nothing else reads.

        The operations of the plain path (x·r, then the gain, then the complex product) done in place: no new
        (b, h, n, d) buffers, the same numbers. Returns (q, k, v) as (b, h, n, d) views of ``qkv``.
        """
        q, k, v = (part.transpose(1, 2) for part in qkv.unflatten(-1, (3, self.num_heads, -1)).unbind(2))
        for x, norm in ((q, self.q_norm), (k, self.k_norm)):
            x.mul_(norm.inverse_rms(x)).mul_(norm.weight)
            if rope is not None:
                rotated = complex_pairs(x).mul_(rope.rotations(num_prefix))
                if rotated.untyped_storage().data_ptr() != x.untyped_storage().data_ptr():
                    x.copy_(
                        torch.view_as_real(rotated).flatten(-2)
                    )  # the layout needed a copy: write it back
        return q, k, v


class GeluMLP(nn.Module):
    """GELU MLP W₂·GELU(W₁·x) (tanh approximation, biases on): the MLP of ViT/DiT, the SwiGLU ablation."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=True)
        self.ffn_dropout = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.ffn_dropout(F.gelu(self.fc1(x), approximate="tanh")))


class SwiGLUFFN(nn.Module):
    """SwiGLU MLP W₃·(SiLU(gate) ⊙ value) with [gate, value] = W₁₂·x (all with biases)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden, bias=True)
        self.ffn_dropout = nn.Dropout(drop)
        self.w3 = nn.Linear(hidden, dim, bias=True)
        # zero channels that make the hidden width a multiple of 8 when sampling on a CPU (see `padded_forward`)
        self.pad = -hidden % 8

    def forward(self, x: Tensor) -> Tensor:
        if self.pad and x.device.type == "cpu" and not torch.is_grad_enabled():
            return self.padded_forward(x)
        gate, value = self.w12(x).chunk(2, dim=-1)
        return self.w3(self.ffn_dropout(silu_gate(gate, value)))

    def padded_forward(self, x: Tensor) -> Tensor:
        """``forward`` with the hidden width padded by zero channels to a multiple of 8: the same output, faster on a CPU.

        The CPU matrix multiply is slower on odd widths: JiT-tiny's w12 has 2·341 = 682 outputs, and on this
        project's CPU (one thread, a (32, 68, 128) input) it took 5.8–7.0 ms against 4.6–4.8 ms for 688. Zero
        rows of w12 give gate = value = 0 in the padded channels, SiLU(0)·0 = 0, and zero columns of w3 ignore them:
        equal up to float rounding. Used on CPUs only (other devices unmeasured) and without autograd (sampling):
        training keeps the plain layer, so what autograd saves is the model's own (:mod:`jitlib.training.budget`
        counts it exactly). The padding costs pad/hidden more MLP multiply-adds (3/341 ≈ 0.9 % for JiT-tiny) than
        the model's count in ``jitlib.nn.flops``.
        """
        dim, hidden = self.w3.out_features, self.w3.in_features
        w12 = F.pad(self.w12.weight.view(2, hidden, dim), (0, 0, 0, self.pad)).flatten(0, 1)
        b12 = F.pad(self.w12.bias.view(2, hidden), (0, self.pad)).flatten()
        gate, value = F.linear(x, w12, b12).chunk(2, dim=-1)
        hidden_out = self.ffn_dropout(silu_gate(gate, value))
        return F.linear(hidden_out, F.pad(self.w3.weight, (0, self.pad)), self.w3.bias)


def silu_gate(gate: Tensor, value: Tensor) -> Tensor:
    """SiLU(gate) ⊙ value; at inference computed in place in ``gate`` (two fewer (B, N, hidden) buffers)."""
    if gate.requires_grad or value.requires_grad:
        return F.silu(gate) * value
    return F.silu(gate, inplace=True).mul_(value)
