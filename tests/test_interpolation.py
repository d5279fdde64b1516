"""Eq. 1–2 and the time sampler of App. A."""

import math

import pytest
import torch

from jitlib.diffusion.interpolation import T_EPS, expand_t, interpolate, sample_t, velocity


def _data(shape=(5, 3, 4, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g), torch.rand(shape[0], generator=g)


def test_default_clip_is_the_papers():
    assert T_EPS == 0.05


def test_expand_t_broadcasts_over_any_data_shape():
    t = torch.tensor([0.1, 0.9])
    for shape in [(2,), (2, 7), (2, 3, 4, 4)]:
        tt = expand_t(t, torch.zeros(shape))
        assert tt.shape == (2,) + (1,) * (len(shape) - 1)
        assert torch.equal(tt.flatten(), t)


def test_interpolate_endpoints_are_noise_and_data():
    x, eps, _ = _data()
    ones, zeros = torch.ones(5), torch.zeros(5)
    assert torch.equal(interpolate(x, eps, ones), x)  # t = 1 is clean data
    assert torch.equal(interpolate(x, eps, zeros), eps)  # t = 0 is pure noise


def test_velocity_is_the_time_derivative_of_the_path():
    x, eps, t = _data()
    t = t * 0.8 + 0.1
    h = 1e-3
    x, eps, t = x.double(), eps.double(), t.double()
    finite_diff = (interpolate(x, eps, t + h) - interpolate(x, eps, t - h)) / (2 * h)
    torch.testing.assert_close(finite_diff, velocity(x, eps), rtol=1e-9, atol=1e-9)


def test_logit_normal_has_the_requested_logit_moments():
    t = sample_t(40_000, "logit_normal", mu=-0.8, sigma=0.8, generator=torch.Generator().manual_seed(1))
    logit = torch.log(t / (1 - t))
    assert abs(logit.mean().item() + 0.8) < 0.02 and abs(logit.std().item() - 0.8) < 0.02
    assert abs(t.median().item() - 1 / (1 + math.exp(0.8))) < 0.01  # median sigmoid(−0.8) ≈ 0.31: noise-heavy


def test_uniform_time_and_determinism():
    t = sample_t(20_000, "uniform", generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert t.dtype == torch.float64 and 0 <= t.min() and t.max() <= 1 and abs(t.mean().item() - 0.5) < 0.01
    a = sample_t(8, generator=torch.Generator().manual_seed(3))
    b = sample_t(8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (8,)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: interpolate(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2)), "shapes must match"),
        (lambda: interpolate(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3)), r"t has shape \(3,\)"),
        (lambda: interpolate(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0.5, 1.5])), r"\[0, 1\]"),
        (
            lambda: interpolate(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0.5, math.nan])),
            r"\[0, 1\]",
        ),
        (lambda: sample_t(4, "beta"), "'beta' is not a time distribution; valid: logit_normal, uniform"),
        (lambda: sample_t(4, sigma=0.0), "sigma=0.0"),
        (lambda: sample_t(-1), "n=-1"),
    ],
)
def test_bad_input_gives_one_line_value_error(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
