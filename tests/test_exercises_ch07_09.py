"""Chapter 7–9 exercise checks: correct solutions pass, and each typical mistake fails with a message that names it."""

import numpy as np
import pytest
import scipy.linalg

from jitlib.book.exercises import ch07, ch08, ch09


def ema_update(ema, param, decay):
    return decay * ema + (1 - decay) * param


def v_loss(x_hat, x, z, t):
    one_minus_t = (1 - t).clamp_min(0.05).reshape(-1, 1, 1, 1)
    return (((x_hat - z) - (x - z)) / one_minus_t).pow(2).flatten(1).mean(1)


def heun_step(velocity, z, t, t_next):
    h = t_next - t
    v0 = velocity(z, t)
    return z + 0.5 * h * (v0 + velocity(z + h * v0, t_next))


def frechet(mu1, s1, mu2, s2):
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real))


def test_correct_solutions_pass(capsys) -> None:
    ch07.check_ema_update(ema_update)
    ch07.check_v_loss(v_loss)
    ch08.check_heun_step(heun_step)
    ch09.check_frechet_distance(frechet)
    assert capsys.readouterr().out.count("✓") == 4


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda e, p, d: d * p + (1 - d) * e, "weighted the new weights by d"),
        (lambda e, p, d: p.clone(), "equals the current weights"),
        (lambda e, p, d: None, "return the updated EMA tensor"),
        (lambda e, p, d: 0.5 * e + 0.5 * p, "differs from jitlib's"),
    ],
)
def test_ema_mistakes_are_named(wrong, message) -> None:
    with pytest.raises(AssertionError, match=message):
        ch07.check_ema_update(wrong)


def _unclipped(x_hat, x, z, t):
    return ((x_hat - x) / (1 - t).reshape(-1, 1, 1, 1)).pow(2).flatten(1).mean(1)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda xh, x, z, t: (xh - x).pow(2).flatten(1).mean(1), "that is the x-loss"),
        (lambda xh, x, z, t: v_loss(xh, x, z, t).mean(), "one loss per sample"),
        (lambda xh, x, z, t: v_loss(xh, x, z, t) * x[0].numel(), "summed over pixels"),
        (
            lambda xh, x, z, t: (xh - x).pow(2).flatten(1).mean(1) / (1 - t).clamp_min(0.05),
            "divides by that squared",
        ),
        (_unclipped, "not finite|differs from the v-loss"),
    ],
)
def test_v_loss_mistakes_are_named(wrong, message) -> None:
    with pytest.raises(AssertionError, match=message):
        ch07.check_v_loss(wrong)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda v, z, t, tn: z + (tn - t) * v(z, t), "that is an Euler step"),
        (
            lambda v, z, t, tn: z + (tn - t) * (v(z, t) + v(z + (tn - t) * v(z, t), tn)),
            "added both slopes in full",
        ),
        (lambda v, z, t, tn: z + (tn - t) * v(z + (tn - t) * v(z, t), tn), "used only the slope"),
        (lambda v, z, t, tn: z + 0.5 * (tn - t) * (v(z, t) + v(z, tn)), "differs from jitlib's Heun step"),
    ],
)
def test_heun_mistakes_are_named(wrong, message) -> None:
    with pytest.raises(AssertionError, match=message):
        ch08.check_heun_step(wrong)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (
            lambda m1, s1, m2, s2: (
                frechet(m1, s1, m2, s2) - ((m1 - m2) ** 2).sum() + np.sqrt(((m1 - m2) ** 2).sum())
            ),
            "squared distance",
        ),
        (lambda m1, s1, m2, s2: float(((m1 - m2) ** 2).sum()), "compared only the means"),
        (
            lambda m1, s1, m2, s2: float(
                ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - scipy.linalg.sqrtm(s1 @ s2).real)
            ),
            "subtracted it once",
        ),
        (
            lambda m1, s1, m2, s2: float(
                ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * np.sqrt(np.abs(s1 * s2)))
            ),
            "element-wise",
        ),
        (lambda m1, s1, m2, s2: "no", "expected a number"),
    ],
)
def test_frechet_mistakes_are_named(wrong, message) -> None:
    with pytest.raises(AssertionError, match=message):
        ch09.check_frechet_distance(wrong)
