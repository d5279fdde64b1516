"""Auto-checks for chapter 4 (A spiral in D dimensions): the column-orthogonal embedding and the off-manifold error.

Each check calls the reader's function on fixed random inputs, compares it with :mod:`jitlib.book.toy`, prints one line
when it agrees and raises an AssertionError that names the likely mistake when it does not.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from jitlib.book.toy import column_orthogonal, embed, off_manifold_error, project


def check_column_orthogonal(fn: Callable[[int, torch.Generator], Tensor]) -> None:
    """Check that fn(D, generator) returns a random P ∈ R^{D×2} with PᵀP = I (orthonormal columns), for several D."""
    for dim in (2, 8, 512):
        p = fn(dim, torch.Generator().manual_seed(dim))
        if not isinstance(p, Tensor):
            raise AssertionError(
                f"your function returned {type(p).__name__}; expected a tensor of shape ({dim}, 2)"
            )
        if p.shape == (2, dim) and dim != 2:
            raise AssertionError(
                f"you returned shape (2, {dim}) — that is Pᵀ; P has D = {dim} rows and 2 columns"
            )
        if p.shape != (dim, 2):
            raise AssertionError(
                f"you returned shape {tuple(p.shape)}; expected ({dim}, 2) — with torch.linalg.qr use the reduced Q"
            )
        gram = p.double().T @ p.double()
        if not torch.allclose(gram.diagonal(), torch.ones(2, dtype=torch.float64), atol=1e-4):
            raise AssertionError(
                f"the columns of P have squared lengths {gram.diagonal().tolist()}; they must be 1"
            )
        if abs(float(gram[0, 1])) > 1e-4:
            raise AssertionError(
                f"the columns of P are not orthogonal (p₁·p₂ = {float(gram[0, 1]):.3g} at D = {dim}); normalising "
                "each column is not enough — orthogonalise them, e.g. with torch.linalg.qr"
            )
    a, b = fn(64, torch.Generator().manual_seed(0)), fn(64, torch.Generator().manual_seed(1))
    if torch.allclose(a, b):
        raise AssertionError(
            "two different generators gave the same P; draw the Gaussian matrix from the generator"
        )
    print("✓ check_column_orthogonal: PᵀP = I for D = 2, 8 and 512, and P is random")


def check_off_manifold_error(fn: Callable[[Tensor, Tensor], float | Tensor]) -> None:
    """Check fn(x, P) = mean over rows of ‖(I − PPᵀ)x‖ against :func:`jitlib.book.toy.off_manifold_error`."""
    g = torch.Generator().manual_seed(0)
    for dim in (8, 512):
        proj = column_orthogonal(dim, generator=g)
        x = torch.randn(100, dim, generator=g)
        on_plane = embed(torch.randn(100, 2, generator=g), proj)
        want = off_manifold_error(x, proj)
        raw = fn(x.clone(), proj.clone())
        if isinstance(raw, Tensor) and raw.numel() != 1:
            raise AssertionError(
                f"your function returned shape {tuple(raw.shape)}; expected one number (the mean)"
            )
        got = float(raw)
        residual = x - embed(project(x, proj), proj)
        hints = {
            "you measured the part IN the plane, ‖Pᵀx‖; the error is what is left after removing it, (I − PPᵀ)x": float(
                project(x, proj).norm(dim=1).mean()
            ),
            "you summed over the samples; take the mean": float(residual.norm(dim=1).sum()),
            "you averaged the squared norms; take the norm ‖·‖ of each row, then the mean": float(
                residual.pow(2).sum(dim=1).mean()
            ),
        }
        for hint, value in hints.items():
            if abs(got - value) <= 1e-4 * max(1.0, abs(value)) and abs(got - want) > 1e-4 * max(1.0, want):
                raise AssertionError(hint)
        if abs(got - want) > 1e-4 * max(1.0, want):
            raise AssertionError(f"at D = {dim} you got {got:.5g}, expected {want:.5g} = mean ‖x − PPᵀx‖")
        on = float(fn(on_plane.clone(), proj.clone()))
        if abs(on) > 1e-4:
            raise AssertionError(
                f"points x = P·a in the plane gave {on:.3g}; their off-manifold error must be 0"
            )
    print(
        "✓ check_off_manifold_error: your measure equals jitlib.book.toy.off_manifold_error (and is 0 on the plane)"
    )
