"""The noising path of JiT: z_t = t·x + (1 − t)·ε (Eq. 1), its velocity v = x − ε (Eq. 2) and the training-time sampler of t.

Conventions (the paper's, rectified-flow style): t = 0 is pure noise, t = 1 is clean data; ε ~ N(0, s²I) with noise
scale s = image_size / 256 (App. A), which the *caller* applies when drawing ε. Time tensors have shape (B,) and are
broadcast against data of shape (B, ...) with :func:`expand_t`.

``T_EPS`` is the paper's clip (§4.3, Tab. 9 "clip of (1 − t) in division 0.05"): wherever a formula divides by 1 − t,
jitlib divides by max(1 − t, t_eps) instead, and wherever it divides by t (ε-prediction → x) by max(t, t_eps). Without
it the x → v conversion v = (x̂ − z)/(1 − t) would weight the x-error by up to 1/(1 − t)² → ∞ as t → 1.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import warnings
import weakref
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor

T_EPS: float = 0.05
RULE_MIN_SIZE = (
    256  # App. A states s = image_size / 256 for 256, 512 and 1024 px; below 256 the paper gives no rule
)
TimeDistribution = Literal["logit_normal", "uniform"]
TIME_DISTRIBUTIONS: tuple[str, ...] = ("logit_normal", "uniform")


def expand_t(t: Tensor, like: Tensor) -> Tensor:
    """t of shape (B,) viewed as (B, 1, ..., 1) so it broadcasts against ``like`` of shape (B, ...); checks 0 ≤ t ≤ 1.

    The range check reads t's values (a device sync on a GPU) once per tensor: the conversions of one prediction
    or one loss all pass the same t, and only the first call reads it (:func:`check_t`); a tensor changed in place
    since is read again. Inside :func:`trusted_t` (the sampler's loop, which checked its time grid once) it reads
    nothing.
    """
    if t.dim() != 1 or like.dim() < 1 or t.shape[0] != like.shape[0]:
        raise ValueError(
            f"t has shape {tuple(t.shape)} but must be (B,) with B = {like.shape[0] if like.dim() else '?'} "
            f"for data of shape {tuple(like.shape)}"
        )
    ref, version = _LAST_CHECKED_T
    fresh = ref is None or ref() is not t or version != t._version
    if fresh and not _TRUSTED_T.get() and t.device.type != "meta" and not torch.compiler.is_compiling():
        check_t(t)
        _LAST_CHECKED_T[:] = [weakref.ref(t), t._version]
    return t.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)


# [weak reference to the last time tensor found in range, its version counter]
_LAST_CHECKED_T: list = [None, -1]
_TRUSTED_T: contextvars.ContextVar[bool] = contextvars.ContextVar("jitlib_trusted_t", default=False)


@contextlib.contextmanager
def trusted_t() -> Iterator[None]:
    """Within the block, :func:`expand_t` does not read t's values: the caller built every t from times it checked.

    Validation at the edge: :func:`~jitlib.diffusion.sampling.sample` checks its time grid (Python floats) once and
    runs its steps inside this block, so a 50-step sample reads no t from the device.
    """
    token = _TRUSTED_T.set(True)
    try:
        yield
    finally:
        _TRUSTED_T.reset(token)


def check_t(t: Tensor) -> Tensor:
    """``t`` itself, after a one-line ValueError unless every value lies in [0, 1] (reads the values)."""
    if t.numel() and not bool(((t >= 0) & (t <= 1)).all()):
        raise ValueError(
            f"t must lie in [0, 1] (0 = noise, 1 = data); got values in [{t.min():g}, {t.max():g}]"
        )
    return t


def check_same_shape(**tensors: Tensor) -> None:
    """Raise a one-line ValueError unless all named tensors have the same shape."""
    shapes = {name: tuple(x.shape) for name, x in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"shapes must match, got {', '.join(f'{k}={v}' for k, v in shapes.items())}")


def interpolate(x: Tensor, eps: Tensor, t: Tensor) -> Tensor:
    """z_t = t·x + (1 − t)·ε  (Eq. 1): data at t = 1, noise at t = 0."""
    check_same_shape(x=x, eps=eps)
    tt = expand_t(t, x)
    return tt * x + (1 - tt) * eps


def velocity(x: Tensor, eps: Tensor) -> Tensor:
    """v = dz_t/dt = x − ε  (Eq. 2), the flow-matching target."""
    check_same_shape(x=x, eps=eps)
    return x - eps


def sample_t(
    n: int,
    dist: TimeDistribution = "logit_normal",
    mu: float = -0.8,
    sigma: float = 0.8,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Training times t ~ logit-normal: t = sigmoid(μ + σ·n), n ~ N(0, 1) (App. A, Tab. 9: μ = −0.8, σ = 0.8); or t ~ U(0, 1).

    μ < 0 biases t toward noise (median sigmoid(−0.8) ≈ 0.31); Tab. 3 sweeps μ. Returns a tensor of shape (n,).
    """
    if n < 0:
        raise ValueError(f"n={n} must be a non-negative number of samples")
    if dist == "logit_normal":
        if not sigma > 0:
            raise ValueError(f"sigma={sigma} must be > 0 for the logit-normal time distribution")
        noise = torch.randn(n, generator=generator, device=device, dtype=dtype)
        return torch.sigmoid(mu + sigma * noise)
    if dist == "uniform":
        return torch.rand(n, generator=generator, device=device, dtype=dtype)
    raise ValueError(f"dist={dist!r} is not a time distribution; valid: {', '.join(TIME_DISTRIBUTIONS)}")


def logit_normal_pdf(t: Tensor, mu: float = -0.8, sigma: float = 0.8) -> Tensor:
    """p(t) = exp(−(logit t − μ)² / 2σ²) / (σ√(2π)·t(1 − t)): the density of t = sigmoid(μ + σn), n ~ N(0, 1)."""
    if not sigma > 0:
        raise ValueError(f"sigma={sigma} must be > 0")
    t = t.double()
    inside = (t > 0) & (t < 1)
    tc = t.clamp(1e-12, 1 - 1e-12)
    logit = torch.log(tc) - torch.log1p(-tc)
    density = torch.exp(-0.5 * ((logit - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi) * tc * (1 - tc))
    return torch.where(inside, density, torch.zeros_like(density))


class NoiseScaleWarning(UserWarning):
    """The noise scale of a run does not follow image_size / 256 (App. A), or sampling uses another one than training."""


def default_noise_scale(image_size: int) -> float:
    """s = image_size / 256 (App. A: 1.0 at 256, 2.0 at 512, 4.0 at 1024), the default when a run does not set it."""
    if image_size <= 0:
        raise ValueError(f"image_size={image_size} must be > 0")
    return image_size / 256


def noise_scale_mismatch(noise_scale: float, image_size: int, trained: float | None = None) -> str | None:
    """One line describing what is off with ``noise_scale`` (None if nothing).

    Off means: it differs from the scale the model was ``trained`` with (sampling from another starting noise than
    the one the network learnt, JiT#53), or — at image_size ≥ 256, where the paper states the rule — from
    image_size / 256.
    """
    if trained is not None and not math.isclose(noise_scale, trained, rel_tol=1e-6):
        return (
            f"noise_scale={noise_scale:g} differs from the noise_scale={trained:g} the model was trained with"
        )
    rule = default_noise_scale(image_size)
    if image_size >= RULE_MIN_SIZE and not math.isclose(noise_scale, rule, rel_tol=1e-6):
        return (
            f"noise_scale={noise_scale:g} differs from image_size/256 = {rule:g} at {image_size} px "
            f"(paper App. A; JiT#53)"
        )
    return None


def warn_noise_scale(
    noise_scale: float, image_size: int, trained: float | None = None, *, where: str = ""
) -> bool:
    """Emit :func:`noise_scale_mismatch`'s line as a :class:`NoiseScaleWarning` (prefixed by ``where``); True if warned."""
    message = noise_scale_mismatch(noise_scale, image_size, trained)
    if message is not None:
        warnings.warn(f"{where}: {message}" if where else message, NoiseScaleWarning, stacklevel=2)
    return message is not None
