"""The manifold view (§3.1 of the paper): how many directions of patch space do images, noise and velocities really use?

JiT feeds a Transformer p×p×3 pixel patches, vectors in R^D with D = 3p². Principal component analysis of many such
patches gives the spectrum λ_1 ≥ … ≥ λ_D of their covariance: the variance along each principal direction. Natural
image patches put almost all of their variance into a few directions (they lie near a low-dimensional manifold);
Gaussian noise ε ~ N(0, s²I) spreads it evenly, λ_i = s²; and a velocity target v = x − ε with ε independent of x
has Cov(v) = Cov(x) + s²I, so its spectrum is the image spectrum lifted by s² in every direction.

By the Eckart–Young theorem the best a rank-k linear map can do — e.g. a bottleneck patch embedding of width k, or any
network layer of width k that its output must pass through — is to keep the top k principal components, so the
fraction of variance it can carry is Σ_{i≤k} λ_i / Σ_i λ_i (:func:`retained_variance`). That is the quantitative form
of the paper's argument: a width-768 network can carry image patches of dimension 3,072, not noise of that dimension.
"""

from __future__ import annotations

import torch
from torch import Tensor


def image_patches(
    images: Tensor,
    patch_size: int,
    *,
    stride: int | None = None,
    max_patches: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """p×p patches of images (B, C, H, W) flattened channel-last like JiT tokens: shape (N, p·p·C), N ≤ max_patches.

    ``stride`` defaults to ``patch_size`` (JiT's non-overlapping patches); a smaller stride gives overlapping
    patches, i.e. more samples for the same images. With ``max_patches`` a random subset (drawn with ``generator``)
    of that many patches is returned, in random order.
    """
    if images.dim() != 4:
        raise ValueError(f"images has shape {tuple(images.shape)}; expected (B, C, H, W)")
    height, width = images.shape[-2:]
    if not 1 <= patch_size <= min(height, width):
        raise ValueError(
            f"patch_size={patch_size} must be an integer in [1, {min(height, width)}] for {height}×{width} images"
        )
    stride = patch_size if stride is None else stride
    if stride < 1:
        raise ValueError(f"stride={stride} must be an integer ≥ 1")
    # (B, C, nh, nw, p, p) -> (B, nh, nw, p, p, C): channel-last within a patch, as in JiT's patchify.
    windows = images.unfold(2, patch_size, stride).unfold(3, patch_size, stride)
    patches = windows.permute(0, 2, 3, 4, 5, 1).reshape(-1, patch_size * patch_size * images.shape[1])
    if max_patches is None or max_patches >= patches.shape[0]:
        return patches
    if max_patches < 1:
        raise ValueError(f"max_patches={max_patches} must be ≥ 1 (or None for all patches)")
    keep = torch.randperm(patches.shape[0], generator=generator)[:max_patches]
    return patches[keep]


def pca_spectrum(vectors: Tensor) -> Tensor:
    """λ_1 ≥ … ≥ λ_D, the eigenvalues of the sample covariance (X − X̄)ᵀ(X − X̄)/(N − 1) of vectors X (N, D).

    Computed from the smaller of the D×D covariance and the N×N Gram matrix (they share their non-zero eigenvalues);
    with N ≤ D the last D − N + 1 values are zero. Rounding negatives are clipped to 0. Same dtype as ``vectors``
    (pass float64 when the zeros matter).
    """
    if vectors.dim() != 2 or vectors.shape[0] < 2 or vectors.shape[1] < 1:
        raise ValueError(f"vectors has shape {tuple(vectors.shape)}; expected (N, D) with N ≥ 2 samples")
    if not vectors.is_floating_point():
        raise TypeError(f"vectors has dtype {vectors.dtype}; expected a floating-point tensor")
    n, dim = vectors.shape
    centred = vectors - vectors.mean(dim=0)
    small = centred.T @ centred if n >= dim else centred @ centred.T
    eigenvalues = torch.linalg.eigvalsh(small / (n - 1)).flip(0).clamp_min(0)
    if n < dim:
        eigenvalues = torch.cat([eigenvalues, eigenvalues.new_zeros(dim - n)])
    return eigenvalues


def _check_spectrum(spectrum: Tensor) -> None:
    """Raise a one-line ValueError unless ``spectrum`` is a non-increasing, non-negative 1-D tensor with a positive sum."""
    if spectrum.dim() != 1 or spectrum.numel() < 1:
        raise ValueError(f"spectrum has shape {tuple(spectrum.shape)}; expected (D,) eigenvalues")
    if bool((spectrum < 0).any()) or not spectrum.sum() > 0:
        raise ValueError("spectrum must be non-negative variances with a positive sum")
    if bool((spectrum[1:] > spectrum[:-1] * (1 + 1e-6) + 1e-12).any()):
        raise ValueError("spectrum must be sorted largest first (as pca_spectrum returns it)")


def cumulative_variance(spectrum: Tensor) -> Tensor:
    """c_k = Σ_{i≤k} λ_i / Σ_i λ_i for k = 1 … D: the share of variance in the top k principal components."""
    _check_spectrum(spectrum)
    return spectrum.cumsum(0) / spectrum.sum()


def effective_dimension(spectrum: Tensor, fraction: float = 0.9) -> int:
    """min{k : Σ_{i≤k} λ_i ≥ fraction · Σ_i λ_i}: how many principal components hold ``fraction`` of the variance."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction} must lie in (0, 1]")
    share = cumulative_variance(spectrum)
    # A relative tolerance so that fraction = 1 is reached despite rounding in the cumulative sum.
    return int((share < fraction * (1 - 1e-9)).sum()) + 1


def retained_variance(spectrum: Tensor, k: int) -> float:
    """Σ_{i≤k} λ_i / Σ_i λ_i: the most variance any rank-k linear map (a width-k layer) can carry (Eckart–Young)."""
    _check_spectrum(spectrum)
    if not 0 <= k:
        raise ValueError(f"k={k} must be a width ≥ 0")
    if k == 0:
        return 0.0
    return float(spectrum[:k].sum() / spectrum.sum())


def numerical_rank(vectors: Tensor, rtol: float = 1e-9) -> int:
    """dim span{rows of X}: the number of singular values of X (N, D) above rtol · the largest (0 for X = 0)."""
    if vectors.dim() != 2:
        raise ValueError(f"vectors has shape {tuple(vectors.shape)}; expected (N, D)")
    if not 0 < rtol < 1:
        raise ValueError(f"rtol={rtol} must lie in (0, 1)")
    singular = torch.linalg.svdvals(vectors)
    if singular.numel() == 0 or singular[0] == 0:
        return 0
    return int((singular > rtol * singular[0]).sum())
