"""The 3×3 grid of Tab. 1: a network predicts in one space (x, ε or v) and is trained with an ℓ2 loss in another.

Cell (loss row L, prediction column P): convert the prediction to space L with the formulas of ``jitlib.diffusion.targets``,
and compare it with the *truth converted by the same formula* — for x-prediction with v-loss that is Alg. 1's
v_θ = (x_θ − z)/max(1 − t, t_eps) against v = (x − z)/max(1 − t, t_eps) (the clip acts on both terms, JiT#12).
Each conversion is affine, pred_L = a(t)·pred_P + b(t)·z, so every cell is the prediction-space error reweighted by
a(t)²: its minimiser stays the ideal prediction E[target_P | z_t] for every t, clip or not.

Measured against the x-error ‖x̂ − x‖² the weight depends only on the loss row (footnote 4, for x-prediction):
x-loss 1, ε-loss t²/(1 − t)², v-loss 1/(1 − t)² — see :func:`implied_weight`. The paper's default and JiT's final
recipe is cell (3)(a): x-prediction with v-loss (§4.3).
"""

from __future__ import annotations

import torch
from torch import Tensor

from jitlib.diffusion.interpolation import T_EPS, check_same_shape, check_t
from jitlib.diffusion.targets import Target, check_target, convert


def per_sample_mse(a: Tensor, b: Tensor) -> Tensor:
    """‖a − b‖² / numel per sample: squared error averaged over all non-batch dims, shape (B,) (the official reduction)."""
    check_same_shape(a=a, b=b)
    return (a - b).pow(2).reshape(a.shape[0], -1).mean(dim=1)


def prediction_loss(
    pred: Tensor,
    pred_target: Target,
    loss_target: Target,
    x: Tensor,
    eps: Tensor,
    z: Tensor,
    t: Tensor,
    t_eps: float = T_EPS,
) -> Tensor:
    """Tab. 1 cell (loss_target, pred_target): mean_dims (conv(pred) − conv(truth))², conv = pred_target → loss_target.

    ``pred`` is the network output in space ``pred_target``; ``x``, ``eps`` are the clean data and noise that made
    ``z`` = t·x + (1 − t)·ε; truth in space P is x, ε or v = x − ε. Returns the per-sample loss, shape (B,).
    For P = x, L = v this is the JiT loss E‖v_θ − v‖² of Alg. 1 / Eq. 6.
    """
    check_target(pred_target, "pred_target")
    check_target(loss_target, "loss_target")
    check_same_shape(pred=pred, x=x, eps=eps, z=z)
    truth = {"x": x, "eps": eps, "v": x - eps}[pred_target]
    predicted = convert(pred, pred_target, loss_target, z, t, t_eps)
    target = convert(truth, pred_target, loss_target, z, t, t_eps)
    return per_sample_mse(predicted, target)


def conversion_slope(source: Target, dest: Target, t: Tensor, t_eps: float = T_EPS) -> Tensor:
    """a(t) in conv(pred) = a(t)·pred + b(t)·z for the Tab. 1 conversion source → dest (clipped like ``targets``).

    x→ε: −t/max(1−t, t_eps), x→v: 1/max(1−t, t_eps), ε→x: −(1−t)/max(t, t_eps), ε→v: −1/max(t, t_eps),
    v→x: 1 − t, v→ε: −t, identity: 1.
    """
    check_target(source, "source")
    check_target(dest, "dest")
    one_minus = (1 - t).clamp_min(t_eps)
    t_clip = t.clamp_min(t_eps)
    slopes = {
        ("x", "eps"): -t / one_minus,
        ("x", "v"): 1 / one_minus,
        ("eps", "x"): -(1 - t) / t_clip,
        ("eps", "v"): -1 / t_clip,
        ("v", "x"): 1 - t,
        ("v", "eps"): -t,
    }
    return torch.ones_like(t) if source == dest else slopes[(source, dest)]


def implied_weight(pred_target: Target, loss_target: Target, t: Tensor, t_eps: float = T_EPS) -> Tensor:
    """w(t) with loss = w(t)·‖x̂ − x̃‖², x̂, x̃ = prediction and truth converted to x:  w = (a_{P→L} / a_{P→x})².

    Unclipped, every column gives footnote 4's row weights: x-loss 1, ε-loss t²/(1 − t)², v-loss 1/(1 − t)².
    The clip enters only through conversions the loss really performs: x-prediction gives 1, t²/max(1−t, t_eps)²,
    1/max(1−t, t_eps)² (max 400 for the default v-loss); ε-prediction gives 1, max(t, t_eps)²/(1−t)², 1/(1−t)²;
    v-prediction gives 1, t²/(1−t)², 1/(1−t)². For ε- and v-prediction the 1/(1 − t)² comes from x̂ itself losing
    its dependence on the prediction as t → 1 (x̂ = z at t = 1), so there it is +inf at t = 1, not clipped.
    Returns a tensor shaped like ``t``; the identity holds for every t in [0, 1] with the same ``t_eps`` as the loss.
    """
    check_target(pred_target, "pred_target")
    check_target(loss_target, "loss_target")
    check_t(t)
    if loss_target == "x":
        return torch.ones_like(t)
    return (
        conversion_slope(pred_target, loss_target, t, t_eps) / conversion_slope(pred_target, "x", t, t_eps)
    ) ** 2
