"""Eq. 1–2 and the time sampler of App. A."""

import math

import pytest
import torch

from jitlib.diffusion.interpolation import (
    T_EPS,
    NoiseScaleWarning,
    default_noise_scale,
    expand_t,
    interpolate,
    noise_scale_mismatch,
    sample_t,
    velocity,
    warn_noise_scale,
)
from jitlib.training.config import load_config


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


def test_noise_scale_defaults_to_image_size_over_256():
    assert [default_noise_scale(n) for n in (256, 512, 1024)] == [1.0, 2.0, 4.0]  # App. A
    assert load_config(None, ["data.image_size=512"]).diffusion.noise_scale == 2.0
    assert (
        load_config(None, ["data.image_size=512", "diffusion.noise_scale=1.5"]).diffusion.noise_scale == 1.5
    )
    assert load_config("tiny-digits").diffusion.noise_scale == 1.0  # set by the preset: kept
    with pytest.raises(ValueError, match="image_size=0 must be > 0"):
        default_noise_scale(0)


def test_noise_scale_mismatch_warns_in_one_line():
    assert (
        noise_scale_mismatch(2.0, 512) is None and noise_scale_mismatch(1.0, 32) is None
    )  # no rule below 256
    assert noise_scale_mismatch(1.0, 512) == (
        "noise_scale=1 differs from image_size/256 = 2 at 512 px (paper App. A; JiT#53)"
    )
    assert noise_scale_mismatch(1.0, 32, trained=2.0) == (
        "noise_scale=1 differs from the noise_scale=2 the model was trained with"
    )
    with pytest.warns(NoiseScaleWarning, match=r"^sample: noise_scale=1 differs") as record:
        assert warn_noise_scale(1.0, 512, where="sample")
    assert "\n" not in str(record[0].message)
    assert not warn_noise_scale(2.0, 512, trained=2.0)
