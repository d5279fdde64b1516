"""Auto-check for chapter 9 (Measuring): the Fréchet distance between two Gaussians (FID's formula).

The check compares the reader's function with ``jitlib.evaluation.metrics.frechet_distance`` on Gaussians with full
covariances, prints one line when it agrees and raises an AssertionError naming the likely mistake otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jitlib.evaluation.metrics import frechet_distance, gaussian_stats


def _cases() -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Pairs of Gaussians fitted to correlated random features (full, non-commuting covariances)."""
    rng = np.random.default_rng(0)
    cases = []
    for dim in (2, 3, 8):
        a = rng.normal(size=(500, dim)) @ rng.normal(size=(dim, dim))
        b = rng.normal(size=(500, dim)) @ rng.normal(size=(dim, dim)) + 0.5
        cases.append((*gaussian_stats(a), *gaussian_stats(b)))
    return cases


def check_frechet_distance(fn: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]) -> None:
    """Check fn(μ₁, Σ₁, μ₂, Σ₂) = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) against ``frechet_distance``."""
    for mu1, s1, mu2, s2 in _cases():
        want = frechet_distance(mu1, s1, mu2, s2)
        got = fn(mu1.copy(), s1.copy(), mu2.copy(), s2.copy())
        try:
            got = float(np.real(got))
        except (TypeError, ValueError):
            raise AssertionError(f"your function returned {type(got).__name__}; expected a number") from None
        if abs(got - want) <= 1e-6 * max(1.0, abs(want)):
            continue
        diff = mu1 - mu2
        mean_term = float(diff @ diff)
        if abs(got - (want - mean_term + np.sqrt(mean_term))) <= 1e-6 * max(1.0, abs(want)):
            raise AssertionError("the mean term is the squared distance ‖μ₁ − μ₂‖², not the distance")
        if abs(got - mean_term) <= 1e-9 * max(1.0, mean_term):
            raise AssertionError("you compared only the means; add Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½)")
        root = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
        if abs(got - (want + root)) <= 1e-6 * max(1.0, abs(want)):
            raise AssertionError("the cross term is −2·Tr (Σ₁Σ₂)^½; you subtracted it once")
        elementwise = np.trace(np.sqrt(np.abs(s1 * s2)))
        if abs(got - (want + 2 * root - 2 * elementwise)) <= 1e-6 * max(1.0, abs(want)):
            raise AssertionError("(Σ₁Σ₂)^½ is a matrix square root of the product, not an element-wise one")
        raise AssertionError(f"for {len(mu1)}-d Gaussians your distance is {got:.6g}, expected {want:.6g}")
    print(
        "✓ check_frechet_distance: your distance equals jitlib.evaluation.metrics.frechet_distance in 2, 3 and 8 dimensions"
    )
