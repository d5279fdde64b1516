"""The closed-form ideal denoiser of a Gaussian mixture, checked against brute-force quadrature."""

import pytest
import torch

from jitlib.diffusion.interpolation import interpolate
from jitlib.diffusion.oracle import GaussianMixture


def _mixture_1d():
    return GaussianMixture([[-1.0], [0.5], [2.0]], [0.2, 0.4, 0.3], [0.3, 0.5, 0.2])


@pytest.mark.parametrize("noise_scale", [1.0, 2.0])
def test_ideal_denoiser_matches_quadrature_in_1d(noise_scale):
    gm = _mixture_1d()
    grid = torch.linspace(-6, 6, 20_001, dtype=torch.float64)  # x values
    prior = torch.exp(-gm.nll(grid[:, None]))  # p(x) on the grid
    for t_val in [0.0, 0.2, 0.5, 0.8, 0.97]:
        z = torch.tensor([[-1.3], [0.1], [0.9], [2.4]], dtype=torch.float64)
        t = torch.full((4,), t_val, dtype=torch.float64)
        # p(x | z) ∝ p(x) N(z; t x, (1 − t)² s²): a 1-D integral per z
        like = torch.exp(-0.5 * ((z - t_val * grid[None]) / ((1 - t_val) * noise_scale)) ** 2)
        post = prior[None] * like
        post = post / post.sum(1, keepdim=True)
        x_mean = (post * grid[None]).sum(1)
        pred = gm.denoiser(noise_scale)(z, t)
        torch.testing.assert_close(pred.x[:, 0], x_mean, rtol=1e-6, atol=1e-6)
        eps_mean = (z[:, 0] - t_val * x_mean) / (1 - t_val)
        torch.testing.assert_close(pred.eps[:, 0], eps_mean, rtol=1e-6, atol=1e-6)


def test_ideal_predictions_are_consistent_and_right_at_the_ends():
    gm = GaussianMixture([[-1.0, 0.0], [1.0, 1.0]], 0.3)
    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for t_val in [0.0, 0.3, 0.9, 1.0]:
        t = torch.full((6,), t_val, dtype=torch.float64)
        p = gm.denoiser(1.5)(z, t)
        torch.testing.assert_close(interpolate(p.x, p.eps, t), z)  # z = t x̂ + (1 − t) ε̂ exactly
        torch.testing.assert_close(p.v, p.x - p.eps)
    p0 = gm.denoiser()(z, torch.zeros(6, dtype=torch.float64))
    torch.testing.assert_close(p0.x, gm.mean().expand(6, 2))  # pure noise says nothing: E[x]
    p1 = gm.denoiser()(z, torch.ones(6, dtype=torch.float64))
    torch.testing.assert_close(p1.x, z)  # clean data: x = z
    torch.testing.assert_close(p1.eps, torch.zeros_like(z))


def test_sample_moments_match_the_mixture():
    gm = GaussianMixture([[-1.0, 0.0], [1.5, 1.0]], [0.3, 0.6], [0.7, 0.3])
    x = gm.sample(50_000, torch.Generator().manual_seed(1)).double()
    torch.testing.assert_close(x.mean(0), gm.mean(), atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), gm.cov(), atol=0.03, rtol=0)
    again = gm.sample(5, torch.Generator().manual_seed(1))
    assert torch.equal(again, gm.sample(5, torch.Generator().manual_seed(1)))


def test_class_conditional_mixture():
    gm = GaussianMixture([[-2.0, 0.0], [2.0, 0.0], [2.0, 2.0]], 0.1, classes=[0, 1, 1])
    assert gm.num_classes == 2 and gm.null_label == 2
    g = torch.Generator().manual_seed(2)
    y = torch.tensor([0, 1] * 50)
    x = gm.sample(100, g, y=y)
    assert bool((x[y == 0, 0] < 0).all()) and bool((x[y == 1, 0] > 0).all())
    z = torch.randn(4, 2, generator=g, dtype=torch.float64)
    t = torch.full((4,), 0.5, dtype=torch.float64)
    den = gm.denoiser()
    post = gm.posterior(z, t, torch.tensor([0, 1, 2, 2]))
    torch.testing.assert_close(post.sum(1), torch.ones(4, dtype=torch.float64))
    assert post[0, 1:].max() == 0 and post[1, 0] == 0
    torch.testing.assert_close(den(z, t, torch.full((4,), 2)).x, den(z, t).x)  # null label = unconditional


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: GaussianMixture([1.0, 2.0], 0.1), r"means has shape \(2,\)"),
        (lambda: GaussianMixture([[1.0], [2.0]], [0.1, 0.0]), "stds=.* must all be > 0"),
        (lambda: GaussianMixture([[1.0], [2.0]], 0.1, weights=[1.0]), "weights="),
        (lambda: GaussianMixture([[1.0], [2.0]], 0.1, classes=[0, -1]), "classes="),
        (lambda: _mixture_1d().denoiser()(torch.zeros(2, 3), torch.zeros(2)), r"expected \(B, 1\)"),
        (lambda: _mixture_1d().denoiser()(torch.zeros(2, 1), torch.full((2,), 2.0)), r"\[0, 1\]"),
        (
            lambda: _mixture_1d().denoiser()(torch.zeros(2, 1), torch.zeros(2), torch.tensor([0, 5])),
            "y must be",
        ),
        (
            lambda: _mixture_1d().denoiser(noise_scale=0.0)(torch.zeros(2, 1), torch.zeros(2)),
            "noise_scale=0.0",
        ),
    ],
)
def test_bad_input_gives_one_line_value_error(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
