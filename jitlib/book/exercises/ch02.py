"""Auto-checks for chapter 2 (Three targets, one network): a target conversion and a loss weight, clip included.

Each check calls the reader's function on fixed inputs, compares it with jitlib (``targets.x_to_eps``,
``losses.implied_weight``), prints one line when it agrees and raises an AssertionError naming the likely mistake.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from jitlib.book.exercises._checks import as_expected
from jitlib.diffusion.interpolation import T_EPS, interpolate
from jitlib.diffusion.losses import implied_weight
from jitlib.diffusion.targets import x_to_eps

# Times across [0, 1], including both clip regions (t < t_eps and 1 − t < t_eps) and the end points.
CHECK_TIMES = (0.0, 0.01, 0.2, 0.5, 0.8, 0.96, 0.99, 1.0)


def check_eps_from_x(fn: Callable[[Tensor, Tensor, Tensor], Tensor]) -> None:
    """Check fn(x̂, z, t) = (z − t·x̂)/max(1 − t, 0.05), the ε̂ of an x-prediction network, against ``x_to_eps``."""
    g = torch.Generator().manual_seed(0)
    t = torch.tensor(CHECK_TIMES)
    x, eps = torch.rand(len(t), 3, 4, 4, generator=g) * 2 - 1, torch.randn(len(t), 3, 4, 4, generator=g)
    z = interpolate(x, eps, t)
    x_hat = x + 0.1 * torch.randn(x.shape, generator=g)  # an imperfect prediction, so x̂ ≠ x matters
    want = x_to_eps(x_hat, z, t)
    got = as_expected(fn(x_hat.clone(), z.clone(), t.clone()), want, "your function")
    if not torch.isfinite(got).all():
        raise AssertionError("your ε̂ is not finite at t = 1; divide by max(1 − t, 0.05), not by 1 − t")
    inside = (t > T_EPS) & (t < 1 - T_EPS)
    close = (got - want).abs().flatten(1).amax(1) < 1e-4
    if bool(close[inside].all()) and not bool(close.all()):
        bad = ", ".join(f"{v:g}" for v in t[~close].tolist())
        raise AssertionError(
            f"right inside the clip, wrong at t = {bad}: the paper divides by max(1 − t, 0.05)"
        )
    if not bool(close.all()):
        if torch.allclose(got, z - t[:, None, None, None] * x_hat, atol=1e-4):
            raise AssertionError("you forgot to divide z − t·x̂ by max(1 − t, 0.05)")
        err = (got - want).abs().max().item()
        raise AssertionError(f"ε̂ differs from (z − t·x̂)/max(1 − t, 0.05) by up to {err:.3g}")
    print("✓ check_eps_from_x: your ε̂ equals jitlib.diffusion.targets.x_to_eps, clip included")


def check_eps_loss_weight(fn: Callable[[Tensor], Tensor]) -> None:
    """Check fn(t) = w(t) with ‖ε̂ − ε‖² = w(t)·‖x̂ − x‖² for x-prediction, i.e. t²/max(1 − t, 0.05)² (``implied_weight``)."""
    t = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)
    want = implied_weight("x", "eps", t)
    got = as_expected(fn(t.clone()), want, "your function")
    if torch.allclose(got, want, rtol=1e-5):
        print(
            "✓ check_eps_loss_weight: your w(t) equals jitlib.diffusion.losses.implied_weight('x', 'eps', t)"
        )
        return
    unclipped = t[:-1] ** 2 / (1 - t[:-1]) ** 2
    if torch.allclose(got[:-1], unclipped, rtol=1e-5):
        raise AssertionError(
            "right for t < 0.95, but the weight must use the clipped 1 − t: t²/max(1 − t, 0.05)²"
        )
    if torch.allclose(got, want.sqrt(), rtol=1e-5):
        raise AssertionError("you gave the factor on x̂ − x itself; the loss is squared, so square it")
    err = ((got - want).abs() / want.clamp_min(1e-12)).max().item()
    raise AssertionError(f"w(t) differs from t²/max(1 − t, 0.05)² by up to {err:.1%} (relative)")
