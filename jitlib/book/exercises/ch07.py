"""Auto-checks for chapter 7 (Training): the EMA update and JiT's loss (x-prediction, v-loss, clipped 1 − t).

Each check calls the reader's function on fixed inputs, compares it with jitlib (``ema.EMA``,
``losses.prediction_loss``), prints one line when it agrees and raises an AssertionError naming the likely mistake.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from jitlib.diffusion.interpolation import interpolate
from jitlib.diffusion.losses import prediction_loss
from jitlib.training.ema import EMA

CHECK_DECAYS = (0.9, 0.99)
CHECK_TIMES = (0.0, 0.2, 0.5, 0.9, 0.97, 0.995)  # the last two lie in the clip region 1 − t < 0.05


def check_ema_update(fn: Callable[[Tensor, Tensor, float], Tensor]) -> None:
    """Check fn(ema, param, d) = d·ema + (1 − d)·param, applied for 50 steps, against ``jitlib.training.ema.EMA``."""
    g = torch.Generator().manual_seed(0)
    for decay in CHECK_DECAYS:
        layer = nn.Linear(3, 2)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(2, 3, generator=g))
            layer.bias.zero_()
        reference = EMA(layer, [decay])
        mine = layer.weight.detach().clone()
        for _ in range(50):
            with torch.no_grad():
                layer.weight.add_(0.1 * torch.randn(2, 3, generator=g))
            reference.update(layer)
            got = fn(mine.clone(), layer.weight.detach().clone(), decay)
            if not isinstance(got, Tensor) or got.shape != mine.shape:
                raise AssertionError(
                    f"your function returned {type(got).__name__}; return the updated EMA tensor (same shape)"
                )
            swapped = decay * layer.weight.detach() + (1 - decay) * mine
            mine = got.detach()
            if torch.allclose(mine, swapped, atol=1e-6) and not torch.allclose(
                mine, reference.shadows[reference.key(decay)][0], atol=1e-6
            ):
                raise AssertionError(
                    "you weighted the new weights by d; the EMA keeps d of its old value: d·ema + (1 − d)·param"
                )
        want = reference.shadows[reference.key(decay)][0]
        if not torch.allclose(mine, want, atol=1e-5):
            if torch.allclose(mine, layer.weight.detach(), atol=1e-6):
                raise AssertionError("your EMA equals the current weights: it must average over past steps")
            err = (mine - want).abs().max().item()
            raise AssertionError(
                f"after 50 updates with d = {decay} your EMA differs from jitlib's by {err:.3g}"
            )
    print("✓ check_ema_update: 50 updates agree with jitlib.training.ema.EMA for d = 0.9 and 0.99")


def check_v_loss(fn: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]) -> None:
    """Check fn(x̂, x, z, t) = mean over pixels of ((x̂ − z) − (x − z))² / max(1 − t, 0.05)², shape (B,)."""
    g = torch.Generator().manual_seed(1)
    t = torch.tensor(CHECK_TIMES)
    x = torch.rand(len(t), 1, 4, 4, generator=g) * 2 - 1
    eps = torch.randn(x.shape, generator=g)
    z = interpolate(x, eps, t)
    x_hat = x + 0.2 * torch.randn(x.shape, generator=g)
    want = prediction_loss(x_hat, "x", "v", x, eps, z, t)
    got = fn(x_hat.clone(), x.clone(), z.clone(), t.clone())
    if not isinstance(got, Tensor):
        raise AssertionError(f"your function returned {type(got).__name__}; expected a tensor of shape (B,)")
    if got.shape != want.shape:
        hint = " (one loss per sample: average over all dims but the batch)" if got.dim() == 0 else ""
        raise AssertionError(f"your loss has shape {tuple(got.shape)}; expected {tuple(want.shape)}{hint}")
    if not torch.isfinite(got).all():
        raise AssertionError("your loss is not finite: divide by max(1 − t, 0.05), not by 1 − t")
    if torch.allclose(got, want, rtol=1e-4):
        print("✓ check_v_loss: your loss equals jitlib.diffusion.losses.prediction_loss(x̂, 'x', 'v', ...)")
        return
    mse = (x_hat - x).pow(2).flatten(1).mean(1)
    one_minus_t = (1 - t).clamp_min(0.05)
    if torch.allclose(got, mse, rtol=1e-4):
        raise AssertionError(
            "that is the x-loss ‖x̂ − x‖²; convert both to velocities: divide by max(1 − t, 0.05)"
        )
    if torch.allclose(got, mse * x[0].numel(), rtol=1e-4) or torch.allclose(
        got, mse * x[0].numel() / one_minus_t**2, rtol=1e-4
    ):
        raise AssertionError("you summed over pixels; JiT averages the squared error over (C, H, W)")
    if torch.allclose(got, mse / one_minus_t, rtol=1e-4):
        raise AssertionError(
            "the velocity error is (x̂ − x)/max(1 − t, 0.05); its square divides by that squared"
        )
    err = ((got - want).abs() / want).max().item()
    raise AssertionError(f"your loss differs from the v-loss by up to {err:.1%} (relative)")
