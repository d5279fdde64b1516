"""The 3×3 grid of Tab. 1: implied weights (footnote 4), the JiT loss of Alg. 1, and that the ideal denoiser minimises
every cell."""

import itertools

import pytest
import torch

from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.interpolation import T_EPS, interpolate
from jitlib.diffusion.losses import implied_weight, per_sample_mse, prediction_loss
from jitlib.diffusion.oracle import GaussianMixture
from jitlib.diffusion.targets import TARGETS, convert

CELLS = list(itertools.product(TARGETS, TARGETS))  # (prediction space, loss space)


def _batch(lo=0.0, hi=1.0, n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(n, 3, 4, generator=g, dtype=torch.float64)
    t = lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)
    return x, eps, t, interpolate(x, eps, t)


def test_x_prediction_weights_are_footnote_4():
    t = torch.linspace(0, 1 - T_EPS, 20, dtype=torch.float64)
    torch.testing.assert_close(implied_weight("x", "x", t), torch.ones_like(t))
    torch.testing.assert_close(implied_weight("x", "eps", t), t**2 / (1 - t) ** 2)
    torch.testing.assert_close(implied_weight("x", "v", t), 1 / (1 - t) ** 2)
    near_one = torch.tensor(
        [0.97, 1.0], dtype=torch.float64
    )  # the clip caps the v-loss weight at 1/0.05² = 400
    torch.testing.assert_close(implied_weight("x", "v", near_one), torch.full_like(near_one, 400.0))


@pytest.mark.parametrize("pred_target", TARGETS)
def test_weight_depends_only_on_the_loss_row_where_nothing_is_clipped(pred_target):
    t = torch.linspace(T_EPS, 1 - T_EPS, 19, dtype=torch.float64)
    rows = {"x": torch.ones_like(t), "eps": t**2 / (1 - t) ** 2, "v": 1 / (1 - t) ** 2}
    for loss_target, expected in rows.items():
        torch.testing.assert_close(implied_weight(pred_target, loss_target, t), expected)


@pytest.mark.parametrize("pred_target, loss_target", CELLS)
def test_loss_is_implied_weight_times_x_error_in_every_cell(pred_target, loss_target):
    x, eps, t, z = _batch(hi=0.995, seed=1)  # includes both clipped regions t < t_eps and t > 1 − t_eps
    truth = {"x": x, "eps": eps, "v": x - eps}[pred_target]
    pred = truth + 0.1 * torch.randn(
        truth.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64
    )
    loss = prediction_loss(pred, pred_target, loss_target, x, eps, z, t)
    x_err = per_sample_mse(convert(pred, pred_target, "x", z, t), convert(truth, pred_target, "x", z, t))
    torch.testing.assert_close(
        loss, implied_weight(pred_target, loss_target, t) * x_err, rtol=1e-9, atol=1e-12
    )


def test_jit_loss_is_algorithm_1():
    x, eps, t, z = _batch(seed=2)
    x_pred = x + 0.05 * torch.randn_like(x)
    denom = (1 - t).clamp_min(T_EPS).view(-1, 1, 1)
    alg1 = ((x_pred - z) / denom - (x - z) / denom).pow(2).mean(dim=(1, 2))  # v_θ vs v, both clipped (Alg. 1)
    torch.testing.assert_close(prediction_loss(x_pred, "x", "v", x, eps, z, t), alg1)
    den = Denoiser(lambda z_in, t_in, y: x_pred)  # defaults: x-prediction, v-loss
    torch.testing.assert_close(den.loss(x, eps, t), alg1)
    assert den.loss(x, eps, t).shape == (x.shape[0],)


def test_perfect_prediction_has_zero_loss_in_every_cell():
    x, eps, t, z = _batch(seed=3)
    for pred_target, loss_target in CELLS:
        truth = {"x": x, "eps": eps, "v": x - eps}[pred_target]
        assert prediction_loss(truth, pred_target, loss_target, x, eps, z, t).abs().max() < 1e-20


@pytest.mark.parametrize("pred_target, loss_target", CELLS)
def test_ideal_denoiser_minimises_every_cell(pred_target, loss_target):
    """Monte-Carlo loss along pred* + α·u is an exact parabola in α; with common random numbers its vertex is ≈ 0."""
    gm = GaussianMixture([[-1.0, 0.5], [1.0, -0.5], [0.0, 1.5]], [0.3, 0.5, 0.2])
    g = torch.Generator().manual_seed(4)
    n = 20_000
    x = gm.sample(n, g).double()
    eps = torch.randn(n, 2, generator=g, dtype=torch.float64)
    t = torch.rand(n, generator=g, dtype=torch.float64)
    z = interpolate(x, eps, t)
    ideal = gm.denoiser()(z, t).get(pred_target)
    direction = torch.randn(n, 2, generator=g, dtype=torch.float64)

    def vertex(offset: float) -> float:
        """argmin over α of the MC loss of pred* + (offset + α)·u, from three points of the exact parabola."""
        losses = [
            prediction_loss(ideal + (offset + a) * direction, pred_target, loss_target, x, eps, z, t)
            .mean()
            .item()
            for a in (-0.2, 0.0, 0.2)
        ]
        return 0.2 * (losses[0] - losses[2]) / (2 * (losses[0] - 2 * losses[1] + losses[2]))

    assert abs(vertex(0.0)) < 0.03, f"minimiser at α = {vertex(0.0):.4f}, not at the ideal prediction"
    assert abs(vertex(0.3) + 0.3) < 0.03  # the test sees a biased prediction


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda z: prediction_loss(z, "x", "score", z, z, z, torch.zeros(2)), "loss_target='score'"),
        (lambda z: prediction_loss(z, "eps0", "v", z, z, z, torch.zeros(2)), "pred_target='eps0'"),
        (lambda z: prediction_loss(z[:, :1], "x", "v", z, z, z, torch.zeros(2)), "shapes must match"),
        (lambda z: implied_weight("x", "v", torch.tensor([1.2])), r"\[0, 1\]"),
        (lambda z: Denoiser(lambda *a: z).loss(z, z, torch.zeros(2), loss_target="s"), "loss_target='s'"),
    ],
)
def test_bad_input_gives_one_line_value_error(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call(torch.zeros(2, 3))
    assert "\n" not in str(info.value)
