"""jitlib.book.manifold: patches, PCA spectra, effective dimension and the rank-k (bottleneck) bound."""

import numpy as np
import pytest
import torch

from jitlib.book.manifold import (
    cumulative_variance,
    effective_dimension,
    image_patches,
    numerical_rank,
    pca_spectrum,
    retained_variance,
)


def _images(b: int = 2, c: int = 3, h: int = 12, w: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_patches_are_channel_last_tiles_in_raster_order() -> None:
    images = _images()
    patches = image_patches(images, 2)
    assert patches.shape == (2 * 6 * 5, 2 * 2 * 3)
    # Patch (image 1, row 3, column 4) is pixels [6:8, 8:10], flattened as (p, p, C).
    expected = images[1, :, 6:8, 8:10].permute(1, 2, 0).reshape(-1)
    assert torch.equal(patches[1 * 30 + 3 * 5 + 4], expected)


def test_overlapping_patches_and_random_subset() -> None:
    images = _images()
    every = image_patches(images, 4, stride=1)
    assert every.shape == (2 * 9 * 7, 48)
    some = image_patches(images, 4, stride=1, max_patches=20, generator=torch.Generator().manual_seed(3))
    again = image_patches(images, 4, stride=1, max_patches=20, generator=torch.Generator().manual_seed(3))
    assert some.shape == (20, 48) and torch.equal(some, again)
    # Every sampled patch is one of the patches, and no patch is drawn twice.
    matches = (some[:, None, :] == every[None]).all(-1)
    assert bool((matches.sum(1) == 1).all()) and len(set(matches.float().argmax(1).tolist())) == 20


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"patch_size": 0}, "patch_size=0"),
        ({"patch_size": 11}, "patch_size=11"),
        ({"patch_size": 2, "stride": 0}, "stride=0"),
    ],
)
def test_patch_arguments_are_checked(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        image_patches(_images(), **kwargs)
    with pytest.raises(ValueError, match="expected \\(B, C, H, W\\)"):
        image_patches(torch.zeros(3, 8, 8), 2)


@pytest.mark.parametrize("n", [50, 7])  # N > D uses the covariance, N < D the Gram matrix
def test_spectrum_matches_numpy_covariance(n: int) -> None:
    x = torch.randn(n, 12, generator=torch.Generator().manual_seed(n), dtype=torch.float64) * torch.linspace(
        0.1, 3, 12
    )
    got = pca_spectrum(x)
    want = np.sort(np.linalg.eigvalsh(np.cov(x.numpy(), rowvar=False)))[::-1].clip(0)
    assert got.shape == (12,)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-10)


def test_data_in_a_k_dim_subspace_has_k_nonzero_eigenvalues() -> None:
    g = torch.Generator().manual_seed(1)
    basis = torch.linalg.qr(torch.randn(40, 5, generator=g, dtype=torch.float64))[
        0
    ]  # column-orthogonal, 40×5
    x = torch.randn(300, 5, generator=g, dtype=torch.float64) @ basis.T + 2.0  # affine 5-dim subspace of R^40
    spectrum = pca_spectrum(x)
    assert int((spectrum > 1e-9 * spectrum[0]).sum()) == 5
    assert effective_dimension(spectrum, 1.0) == 5
    assert numerical_rank(x) == 6  # the offset adds one direction to the linear span
    assert numerical_rank(x - x.mean(0)) == 5


def test_velocity_spectrum_is_image_spectrum_plus_noise_variance() -> None:
    """Cov(x − ε) = Cov(x) + s²I for ε ~ N(0, s²I) independent of x: the claim chapter 3 plots."""
    g = torch.Generator().manual_seed(2)
    s = 0.7
    x = torch.randn(200_000, 6, generator=g, dtype=torch.float64) * torch.tensor(
        [2.0, 1.0, 0.5, 0.1, 0.0, 0.0]
    )
    eps = s * torch.randn(x.shape, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(pca_spectrum(x - eps).numpy(), (pca_spectrum(x) + s**2).numpy(), rtol=0.02)
    np.testing.assert_allclose(pca_spectrum(eps).numpy(), np.full(6, s**2), rtol=0.02)


def test_effective_dimension_and_cumulative_share() -> None:
    spectrum = torch.tensor([5.0, 3.0, 1.0, 1.0])
    np.testing.assert_allclose(cumulative_variance(spectrum).numpy(), [0.5, 0.8, 0.9, 1.0])
    assert effective_dimension(spectrum, 0.5) == 1
    assert effective_dimension(spectrum, 0.51) == 2
    assert effective_dimension(spectrum, 0.9) == 3  # exactly reached at k = 3
    assert effective_dimension(spectrum, 1.0) == 4
    assert effective_dimension(torch.ones(100), 0.9) == 90  # isotropic noise: 90 % of the dimensions
    with pytest.raises(ValueError, match="fraction=1.5"):
        effective_dimension(spectrum, 1.5)
    with pytest.raises(ValueError, match="sorted"):
        effective_dimension(torch.tensor([1.0, 2.0]))


def test_retained_variance_is_the_best_rank_k_reconstruction() -> None:
    """Eckart–Young: projecting on the top-k principal directions leaves exactly the tail of the spectrum."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(500, 8, generator=g, dtype=torch.float64) @ torch.randn(
        8, 8, generator=g, dtype=torch.float64
    )
    centred = x - x.mean(0)
    spectrum = pca_spectrum(x)
    directions = torch.linalg.eigh(centred.T @ centred)[1].flip(1)
    for k in (0, 1, 3, 8):
        top = directions[:, :k]
        kept = (centred @ top @ top.T).pow(2).sum() / centred.pow(2).sum()
        assert retained_variance(spectrum, k) == pytest.approx(float(kept), abs=1e-12)
    # Any other rank-3 projection keeps less.
    other = torch.linalg.qr(torch.randn(8, 3, generator=g, dtype=torch.float64))[0]
    assert float((centred @ other @ other.T).pow(2).sum() / centred.pow(2).sum()) < retained_variance(
        spectrum, 3
    )
    with pytest.raises(ValueError, match="k=-1"):
        retained_variance(spectrum, -1)


def test_upsampled_8x8_images_span_at_most_64_dimensions() -> None:
    """Any linear upsampling maps R^64 into a 64-dim subspace of R^1024 (the chapter 3 digits fact)."""
    small = torch.randn(200, 1, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    big = torch.nn.functional.interpolate(small, size=32, mode="bilinear", align_corners=False)
    assert numerical_rank(big.reshape(200, -1)) == 64
    assert numerical_rank(torch.zeros(3, 4)) == 0


def test_spectrum_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="N ≥ 2"):
        pca_spectrum(torch.zeros(1, 3))
    with pytest.raises(TypeError, match="int64"):
        pca_spectrum(torch.zeros(4, 3, dtype=torch.long))
