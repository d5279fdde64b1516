"""The six conversions of Tab. 1, the Prediction container and the Denoiser wrapper."""

import itertools

import pytest
import torch

from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.interpolation import T_EPS, interpolate
from jitlib.diffusion.targets import (
    TARGETS,
    Prediction,
    convert,
    eps_to_v,
    eps_to_x,
    v_to_eps,
    v_to_x,
    x_to_eps,
    x_to_v,
)


def _batch(lo=T_EPS, hi=1 - T_EPS, n=64, shape=(3, 4, 4), seed=0):
    """Clean x, noise ε, t in [lo, hi] and z = t·x + (1 − t)·ε, in float64."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    eps = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    t = lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)
    return x, eps, t, interpolate(x, eps, t)


@pytest.mark.parametrize("source, dest", list(itertools.permutations(TARGETS, 2)))
def test_round_trip_is_exact_inside_the_clip(source, dest):
    x, eps, t, z = _batch()
    pred = {"x": x, "eps": eps, "v": x - eps}[source] + 0.3  # any tensor, not only the truth
    there = convert(pred, source, dest, z, t)
    torch.testing.assert_close(convert(there, dest, source, z, t), pred, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("source, dest", list(itertools.permutations(TARGETS, 2)))
def test_round_trip_is_exact_without_clip_on_the_open_interval(source, dest):
    x, eps, t, z = _batch(lo=1e-3, hi=1 - 1e-3, seed=1)
    pred = torch.randn_like(x)
    back = convert(convert(pred, source, dest, z, t, t_eps=0), dest, source, z, t, t_eps=0)
    torch.testing.assert_close(back, pred, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("source, dest", list(itertools.product(TARGETS, TARGETS)))
def test_truth_converts_to_truth(source, dest):
    x, eps, t, z = _batch(seed=2)
    truth = {"x": x, "eps": eps, "v": x - eps}
    torch.testing.assert_close(
        convert(truth[source], source, dest, z, t), truth[dest], rtol=1e-12, atol=1e-12
    )


def test_named_conversions_state_their_formulas():
    x, eps, t, z = _batch(lo=0.0, hi=1.0, seed=3)
    tt = t.view(-1, 1, 1, 1)
    one_minus, t_clip = (1 - tt).clamp_min(T_EPS), tt.clamp_min(T_EPS)
    torch.testing.assert_close(x_to_eps(x, z, t), (z - tt * x) / one_minus)
    torch.testing.assert_close(x_to_v(x, z, t), (x - z) / one_minus)
    torch.testing.assert_close(eps_to_x(eps, z, t), (z - (1 - tt) * eps) / t_clip)
    torch.testing.assert_close(eps_to_v(eps, z, t), (z - eps) / t_clip)
    torch.testing.assert_close(v_to_x(x - eps, z, t), z + (1 - tt) * (x - eps))
    torch.testing.assert_close(v_to_eps(x - eps, z, t), z - tt * (x - eps))


def test_clip_damps_x_to_v_near_the_data_end():
    x, eps, _, _ = _batch(seed=4)
    t = torch.full((x.shape[0],), 0.99, dtype=torch.float64)
    z = interpolate(x, eps, t)
    # (x − z)/max(0.01, 0.05) = 0.2·(x − ε): the clipped velocity is 1/5 of the true one.
    torch.testing.assert_close(x_to_v(x, z, t), 0.2 * (x - eps))
    torch.testing.assert_close(x_to_v(x, z, t, t_eps=0), x - eps)


def test_prediction_completes_any_output_and_guides_affinely():
    x, eps, t, z = _batch(seed=5)
    for target in TARGETS:
        pred = Prediction.from_output({"x": x, "eps": eps, "v": x - eps}[target], target, z, t)
        for name, truth in [("x", x), ("eps", eps), ("v", x - eps)]:
            torch.testing.assert_close(pred.get(name), truth)
    a = Prediction.from_output(x, "x", z, t)
    b = Prediction.from_output(x + 1.0, "x", z, t)
    guided = a.lerp(b, 2.5)  # CFG: u + ω(c − u) in every space at once
    torch.testing.assert_close(guided.x, x + 2.5)
    torch.testing.assert_close(guided.v, x_to_v(guided.x, z, t))
    torch.testing.assert_close(guided.eps, x_to_eps(guided.x, z, t))


@pytest.mark.parametrize("target", TARGETS)
def test_denoiser_returns_all_three_targets_of_any_network(target):
    x, eps, t, z = _batch(seed=6)
    truth = {"x": x, "eps": eps, "v": x - eps}
    calls = []

    def net(z_in, t_in, y):
        calls.append(y)
        return truth[target]

    den = Denoiser(net, target=target)
    pred = den(z, t, torch.arange(len(t)))
    assert len(calls) == 1 and calls[0] is not None
    for name in TARGETS:
        torch.testing.assert_close(pred.get(name), truth[name])


def test_denoiser_sampling_clip_override():
    x, eps, _, _ = _batch(seed=7)
    t = torch.full((x.shape[0],), 0.99, dtype=torch.float64)
    z = interpolate(x, eps, t)
    den = Denoiser(lambda z_in, t_in, y: x, target="x")
    torch.testing.assert_close(den(z, t).v, 0.2 * (x - eps))
    torch.testing.assert_close(den(z, t, t_eps=1e-3).v, x - eps)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda z: convert(z, "x0", "v", z, torch.zeros(2)), "source='x0' is not a target; valid: x, eps, v"),
        (lambda z: convert(z, "x", "noise", z, torch.zeros(2)), "dest='noise' is not a target"),
        (lambda z: x_to_v(z[:, :2], z, torch.zeros(2)), "shapes must match"),
        (lambda z: x_to_v(z, z, torch.tensor([0.2, -0.1])), r"\[0, 1\]"),
        (lambda z: x_to_v(z, z, torch.tensor([0.2, 0.1]), t_eps=0.7), "t_eps=0.7"),
        (lambda z: Prediction(z, z, z).get("y"), "target='y'"),
        (lambda z: Denoiser(lambda *a: z, target="score"), "target='score'"),
        (lambda z: Denoiser(lambda *a: z[:, :1], target="x")(z, torch.zeros(2)), "net_output=.*z="),
    ],
)
def test_bad_input_gives_one_line_value_error(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call(torch.zeros(2, 3))
    assert "\n" not in str(info.value)
