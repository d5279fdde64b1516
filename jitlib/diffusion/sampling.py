"""ODE samplers: integrate dz/dt = v̂(z_t, t) from noise at t = 0 to data at t = 1 (Eq. 4), Euler or Heun.

JiT samples with 50-step Heun on the linear grid t_i = i/50 (Tab. 9); the official code makes the last step
(0.98 → 1) a plain Euler step, so the network is never evaluated at t = 1 (``last_step="euler"``, the default).
With x-prediction that last step is z_1 = z + (1 − t)·(x̂ − z)/max(1 − t, t_eps): when 1 − t < t_eps (t_eps = 0.05,
any grid finer than 20 steps) only (1 − t)/t_eps of the remaining way to x̂ is travelled, and noise is left in the
sample (JiT#59). ``last_step="x"`` instead returns the final evaluation's x̂ = z + (1 − t)·v̂ — with an unclipped
velocity this is exactly the Euler step, with a clipped one it removes the leftover noise.

Classifier-free guidance (§4.2, App. A) mixes conditional and unconditional velocities, v = v_u + ω·(v_c − v_u),
only at the times the official code guides: t < t_hi and (t > t_lo or t_lo = 0). The interval is open at both ends,
except that t_lo = 0 (the code's default, "no interval") also guides at t = 0 itself. So the paper's (0.1, 1.0)
leaves the noisiest 10 % unguided, t = 0.1 included; and (0, 1) guides every evaluation, since the network is never
evaluated at t = 1. ``tests/test_guidance.py`` checks whole trajectories against an independent transcription of the
official sampler (max difference ≤ 1e-6 in float64). Both passes go through the denoiser as ONE batch of 2B — the
official code runs them as two forwards, which gives the same result up to floating-point rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from jitlib.diffusion.interpolation import trusted_t
from jitlib.diffusion.targets import Prediction

DenoiserFn = Callable[..., Prediction]
METHODS: tuple[str, ...] = ("heun", "euler")
LAST_STEPS: tuple[str, ...] = ("euler", "x")
DEFAULT_STEPS = 50


@dataclass
class Trajectory:
    """A sampling run for figures: z[i] is the state at ts[i] (z[0] = noise, z[-1] = final); x_hat[i] the x̂ at (z[i], ts[i])."""

    ts: Tensor
    z: list[Tensor]
    x_hat: list[Tensor]
    final: Tensor


def linear_grid(steps: int) -> list[float]:
    """t_i = i / steps, i = 0 … steps: the paper's linear time grid (Tab. 9)."""
    if steps < 1:
        raise ValueError(f"steps={steps} must be an integer ≥ 1")
    return [i / steps for i in range(steps + 1)]


def _time_grid(steps: int | None, time_grid: Sequence[float] | Tensor | None) -> list[float]:
    """The grid to integrate on, validated: strictly increasing times in [0, 1], steps = len − 1."""
    if time_grid is None:
        return linear_grid(DEFAULT_STEPS if steps is None else steps)
    grid = [float(t) for t in (time_grid.tolist() if isinstance(time_grid, Tensor) else time_grid)]
    if (
        len(grid) < 2
        or any(b <= a for a, b in zip(grid, grid[1:], strict=False))
        or grid[0] < 0
        or grid[-1] > 1
    ):
        raise ValueError(f"time_grid={grid} must be ≥ 2 strictly increasing times in [0, 1]")
    if steps is not None and steps != len(grid) - 1:
        raise ValueError(f"steps={steps} disagrees with time_grid, which has {len(grid) - 1} steps")
    return grid


def guidance_active(t: float, cfg_interval: tuple[float, float]) -> bool:
    """The official rule: guide when t < t_hi and (t > t_lo or t_lo = 0) — open interval, plus t = 0 when t_lo = 0."""
    lo, hi = cfg_interval
    return t < hi and (t > lo or lo == 0)


@torch.no_grad()
def sample(
    denoiser: DenoiserFn,
    noise: Tensor,
    *,
    steps: int | None = None,
    method: Literal["heun", "euler"] = "heun",
    labels: Tensor | None = None,
    null_label: int | None = None,
    cfg_scale: float = 1.0,
    cfg_interval: tuple[float, float] = (0.1, 1.0),
    time_grid: Sequence[float] | Tensor | None = None,
    last_step: Literal["euler", "x"] = "euler",
    t_eps: float | None = None,
    return_trajectory: bool = False,
) -> Tensor | Trajectory:
    """Solve dz/dt = v̂(z, t) (Eq. 4) from z = noise at t_0 to t_N (Euler: z += h·v̂; Heun: trapezoid with an Euler predictor).

    Args:
        denoiser: callable (z, t, y) -> Prediction, e.g. a :class:`~jitlib.diffusion.denoiser.Denoiser`.
        noise: z at time_grid[0], shape (B, ...) — already scaled by the noise scale s (App. A).
        steps: number of steps on the linear grid (default 50, Tab. 9); with ``time_grid`` it must match or be None.
        method: "heun" (paper) or "euler".
        labels: class ids (B,) for a conditional model, None for unconditional.
        null_label: the "no class" id for CFG's unconditional pass; default ``denoiser.null_label`` if it has one.
        cfg_scale: guidance scale ω; 1 means no guidance (and no unconditional pass).
        cfg_interval: (t_lo, t_hi); guidance acts where :func:`guidance_active` says (JiT: (0.1, 1.0)).
        time_grid: increasing times in [0, 1] to integrate on, instead of the linear grid.
        last_step: "euler" (official code) or "x" (return x̂ of the last evaluation: no leftover noise, JiT#59).
        t_eps: override the denoiser's clip while sampling (None: the denoiser's own; the denoiser must then
            accept a ``t_eps`` keyword, as :class:`~jitlib.diffusion.denoiser.Denoiser` does).
        return_trajectory: also return z and x̂ at every grid time as a :class:`Trajectory`.
    Returns the final sample (shape of ``noise``), or the Trajectory. Deterministic: all randomness is in ``noise``.
    """
    grid = _time_grid(steps, time_grid)
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not a sampler; valid: {', '.join(METHODS)}")
    if last_step not in LAST_STEPS:
        raise ValueError(f"last_step={last_step!r} is not valid; valid: {', '.join(LAST_STEPS)}")
    lo, hi = cfg_interval
    if not 0 <= lo <= hi <= 1:
        raise ValueError(f"cfg_interval={cfg_interval} must satisfy 0 ≤ t_lo ≤ t_hi ≤ 1")
    if noise.dim() < 1 or noise.shape[0] < 1:
        raise ValueError(f"noise has shape {tuple(noise.shape)}; expected (B, ...) with B ≥ 1")
    batch = noise.shape[0]
    if labels is not None and tuple(labels.shape) != (batch,):
        raise ValueError(f"labels has shape {tuple(labels.shape)}; expected ({batch},) to match noise")
    guided = cfg_scale != 1.0
    if guided:
        if labels is None:
            raise ValueError(
                f"cfg_scale={cfg_scale} needs class labels; pass labels=(B,) or use cfg_scale=1.0"
            )
        null_label = getattr(denoiser, "null_label", None) if null_label is None else null_label
        if null_label is None:
            raise ValueError(
                f"cfg_scale={cfg_scale} needs null_label (the unconditional class id); pass null_label="
            )
        # conditional ⊕ unconditional labels, built once: the same tensor every step (the network checks it once)
        both_labels = torch.cat([labels, torch.full_like(labels, null_label)])
    extra = {} if t_eps is None else {"t_eps": t_eps}

    def predict(z: Tensor, t: float) -> Prediction:
        """Guided prediction at (z, t): one forward of B (no guidance) or 2B (conditional ⊕ unconditional)."""
        # t stays at least float32 even for bf16/fp16 states: bf16 cannot tell 0.98 from 0.9805
        t_dtype = torch.promote_types(z.dtype, torch.float32)
        if not (guided and guidance_active(t, cfg_interval)):
            return denoiser(z, torch.full((batch,), t, dtype=t_dtype, device=z.device), labels, **extra)
        tb = torch.full((2 * batch,), t, dtype=t_dtype, device=z.device)
        both = denoiser(torch.cat([z, z]), tb, both_labels, **extra)
        cond = Prediction(both.x[:batch], both.eps[:batch], both.v[:batch])
        uncond = Prediction(both.x[batch:], both.eps[batch:], both.v[batch:])
        return uncond.lerp(cond, cfg_scale)  # v_u + ω(v_c − v_u)

    z = noise
    zs, x_hats = [z], []
    n_steps = len(grid) - 1
    with trusted_t():  # every t below comes from the grid checked above: no device reads
        for i, (t, t_next) in enumerate(zip(grid[:-1], grid[1:], strict=True)):
            h = t_next - t
            pred = predict(z, t)
            x_hats.append(pred.x)
            last = i == n_steps - 1
            if last and last_step == "x":
                z = pred.x
            elif (
                method == "euler" or last
            ):  # the paper's Heun ends with an Euler step: no evaluation at t_N = 1
                z = z + h * pred.v
            else:
                v_next = predict(z + h * pred.v, t_next).v
                z = z + 0.5 * h * (pred.v + v_next)
            zs.append(z)
    if not return_trajectory:
        return z
    return Trajectory(ts=torch.tensor(grid, dtype=torch.float64), z=zs, x_hat=x_hats, final=z)
