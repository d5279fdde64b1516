"""Auto-check for chapter 8 (Sampling): one Heun step of the ODE dz/dt = v̂(z, t).

The check runs the reader's step on an exact denoiser (a Gaussian mixture, ``jitlib.diffusion.oracle``) and compares it with
the state after the first step of ``jitlib.diffusion.sampling.sample(method="heun")``; it prints one line when they agree and
raises an AssertionError naming the likely mistake otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from jitlib.diffusion.oracle import GaussianMixture
from jitlib.diffusion.sampling import sample

Velocity = Callable[[Tensor, float], Tensor]


def check_heun_step(fn: Callable[[Velocity, Tensor, float, float], Tensor]) -> None:
    """Check fn(velocity, z, t, t_next) = z + h/2·(v̂(z, t) + v̂(z + h·v̂(z, t), t_next)), h = t_next − t."""
    mixture = GaussianMixture([[-2.0, 0.5], [1.5, -1.0], [0.5, 2.0]], stds=0.3)
    denoiser = mixture.denoiser()
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def velocity(z: Tensor, t: float) -> Tensor:
        return denoiser(z, torch.full((z.shape[0],), float(t), dtype=z.dtype), None).v

    for t, t_next in ((0.0, 0.25), (0.3, 0.5), (0.6, 0.9)):
        # A three-point grid: sample's first step is Heun (its last step is always plain Euler).
        run = sample(denoiser, noise, time_grid=[t, t_next, 1.0], method="heun", return_trajectory=True)
        want = run.z[1]
        got = fn(velocity, noise.clone(), t, t_next)
        if not isinstance(got, Tensor) or got.shape != want.shape:
            raise AssertionError(
                f"your step returned {type(got).__name__}; expected z of shape {tuple(want.shape)}"
            )
        if torch.allclose(got, want, atol=1e-6):
            continue
        h = t_next - t
        v0 = velocity(noise, t)
        if torch.allclose(got, noise + h * v0, atol=1e-6):
            raise AssertionError(
                "that is an Euler step z + h·v̂(z, t); Heun averages it with v̂ at the predicted point"
            )
        v1 = velocity(noise + h * v0, t_next)
        if torch.allclose(got, noise + h * (v0 + v1), atol=1e-6):
            raise AssertionError(
                "you added both slopes in full; Heun's step uses their average, h·(v̂₀ + v̂₁)/2"
            )
        if torch.allclose(got, noise + h * v1, atol=1e-6):
            raise AssertionError("you used only the slope at the predicted point; average it with v̂(z, t)")
        err = (got - want).abs().max().item()
        raise AssertionError(
            f"from t = {t} to {t_next} your step differs from jitlib's Heun step by {err:.3g}"
        )
    print("✓ check_heun_step: your step equals the Heun step of jitlib.diffusion.sampling.sample")
