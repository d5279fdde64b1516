"""Auto-checks for chapter 1 (Denoising is generation): the noising path and a hand-written Euler sampler.

Each check calls the reader's function on fixed random inputs, compares it with jitlib's own implementation, prints
one line when it agrees and raises an AssertionError that names the likely mistake when it does not.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from jitlib.book.exercises._checks import as_expected
from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.interpolation import interpolate
from jitlib.diffusion.oracle import GaussianMixture
from jitlib.diffusion.sampling import sample


def check_interpolation(fn: Callable[[Tensor, Tensor, Tensor], Tensor]) -> None:
    """Check fn(x, ε, t) = t·x + (1 − t)·ε (t of shape (B,), broadcast over the other dims) against ``interpolate``."""
    g = torch.Generator().manual_seed(0)
    for shape in [(6, 2), (4, 3, 8, 8)]:
        x, eps = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        t = torch.rand(shape[0], generator=g)
        want = interpolate(x, eps, t)
        got = as_expected(fn(x.clone(), eps.clone(), t.clone()), want, "your function")
        if torch.allclose(got, interpolate(eps, x, t), atol=1e-5):
            raise AssertionError(
                "you computed t·ε + (1 − t)·x; in this book t = 0 is noise and t = 1 is data"
            )
        if not torch.allclose(got, want, atol=1e-5):
            err = (got - want).abs().max().item()
            raise AssertionError(
                f"z_t differs from t·x + (1 − t)·ε by up to {err:.3g} for data of shape {shape}"
            )
    print("✓ check_interpolation: your z_t equals jitlib.diffusion.interpolation.interpolate")


def _toy_net() -> Callable[[Tensor, Tensor, Tensor | None], Tensor]:
    """An exact x-predicting network: the ideal denoiser of a 3-component mixture in R^3."""
    mixture = GaussianMixture([[1.0, 0.0, 0.5], [-1.0, 0.5, 0.0], [0.0, -1.0, -0.5]], 0.1)
    return mixture.denoiser().net("x")


def check_euler_sampler(fn: Callable[[Callable, Tensor, int], Tensor]) -> None:
    """Check fn(net, noise, steps) against ``sample(Denoiser(net, "x"), noise, steps=steps, method="euler")``.

    ``net(z, t, y)`` predicts x; the reader's loop must convert x̂ to v̂ = (x̂ − z)/max(1 − t, 0.05) and step
    z ← z + h·v̂ on the grid t_i = i/steps from t = 0 (noise) to t = 1.
    """
    net = _toy_net()
    noise = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    for steps in (4, 50):
        want = sample(Denoiser(net, "x"), noise, steps=steps, method="euler")
        got = as_expected(fn(net, noise.clone(), steps), want, "your sampler")
        if torch.allclose(got, want, atol=1e-4):
            continue
        if torch.allclose(
            got, sample(Denoiser(net, "x", t_eps=0.0), noise, steps=steps, method="euler"), atol=1e-4
        ):
            raise AssertionError(
                "you divided by 1 − t without the clip; use jitlib.diffusion.targets.x_to_v (it divides by max(1 − t, 0.05))"
            )
        if torch.allclose(
            got, sample(Denoiser(net, "x"), noise, steps=steps, method="euler", last_step="x"), atol=1e-4
        ):
            raise AssertionError("your last step returns x̂; take the plain Euler step z + h·v̂ there too")
        err = (got - want).abs().max().item()
        raise AssertionError(
            f"with {steps} steps your samples differ from jitlib's Euler sampler by up to {err:.3g}"
        )
    print(
        "✓ check_euler_sampler: your loop gives the same samples as jitlib.diffusion.sampling.sample(method='euler')"
    )
