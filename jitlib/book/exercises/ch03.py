"""Auto-checks for chapter 3 (The manifold view): a PCA spectrum and the effective dimension read off it.

Each check calls the reader's function on fixed inputs, compares it with ``jitlib.book.manifold``, prints one line when it
agrees and raises an AssertionError naming the likely mistake when it does not.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from jitlib.book.manifold import effective_dimension, pca_spectrum


def check_pca_spectrum(fn: Callable[[Tensor], Tensor]) -> None:
    """Check fn(X) = eigenvalues of the covariance of the rows of X (N, D), largest first, against ``pca_spectrum``.

    Dividing by N instead of N − 1 is accepted (the checks use N = 2,000, where the two differ by 0.05 %).
    """
    g = torch.Generator().manual_seed(0)
    scales = torch.logspace(0, -2, 12, dtype=torch.float64)
    vectors = (
        3.0 + torch.randn(2000, 12, generator=g, dtype=torch.float64) * scales
    )  # offset: centring matters
    mixing = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64))[0]
    vectors = vectors @ mixing.T  # rotate, so the variances are not simply those of the coordinates
    want = pca_spectrum(vectors)
    got = fn(vectors.clone())
    if not isinstance(got, Tensor) or got.shape != want.shape:
        shape = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
        raise AssertionError(
            f"your function returned {shape}; expected a tensor of shape {tuple(want.shape)}"
        )
    got = got.to(torch.float64)
    if torch.allclose(got.flip(0), want, rtol=1e-3, atol=1e-9) and not torch.allclose(got, want, rtol=1e-3):
        raise AssertionError(
            "the eigenvalues are in increasing order; return them largest first (e.g. .flip(0))"
        )
    if got[0] > 10 * want[0]:
        raise AssertionError(
            "the largest eigenvalue is far too big: subtract the mean of X before forming X^T X"
        )
    if not torch.allclose(got, want, rtol=1e-3, atol=1e-9):
        err = ((got - want).abs() / want).max().item()
        raise AssertionError(
            f"eigenvalues differ from jitlib.book.manifold.pca_spectrum by up to {err:.2%} (relative)"
        )
    print("✓ check_pca_spectrum: your spectrum equals jitlib.book.manifold.pca_spectrum")


def check_effective_dimension(fn: Callable[[Tensor, float], int]) -> None:
    """Check fn(spectrum, fraction) = the fewest top components holding ``fraction`` of the variance (``effective_dimension``)."""
    cases = [
        (torch.tensor([5.0, 3.0, 1.0, 1.0], dtype=torch.float64), 0.9),  # reached exactly at k = 3
        (torch.tensor([5.0, 3.0, 1.0, 1.0], dtype=torch.float64), 0.5),  # reached exactly at k = 1
        (torch.tensor([5.0, 3.0, 1.0, 1.0], dtype=torch.float64), 0.95),
        (torch.ones(1000, dtype=torch.float64), 0.9),  # isotropic noise: 900 of 1,000 components
        (torch.logspace(0, -6, 300, dtype=torch.float64), 0.99),
        (torch.logspace(0, -6, 300, dtype=torch.float64), 0.5),
    ]
    for spectrum, fraction in cases:
        want = effective_dimension(spectrum, fraction)
        got = fn(spectrum.clone(), fraction)
        if not isinstance(got, int | Tensor) or int(got) != want:
            hint = (
                " (off by one: k counts components, so the first component gives k = 1)"
                if got in (want - 1, want + 1)
                else ""
            )
            raise AssertionError(
                f"for {fraction:.0%} of a spectrum of {spectrum.numel()} values you returned {got}, expected {want}{hint}"
            )
    print("✓ check_effective_dimension: your k agrees with jitlib.book.manifold.effective_dimension")
