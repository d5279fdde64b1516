"""A network plus the name of what it predicts: the callable that samplers and trainers use.

JiT's network outputs x̂ directly (x-prediction, §4.3); ε- and v-prediction networks (the other columns of Tab. 1)
are wrapped the same way. :class:`Denoiser` completes the output to x̂, ε̂, v̂ with the conversions of
``jitlib.diffusion.targets`` (so a sampler only needs ``.v``) and computes any cell of Tab. 1 as the training loss.

Two ablations of the paper live here, both off by default:

- **pre-conditioning** (App. B.2, Tab. 10): x̂ = c_skip(t)·z + c_out(t)·net(z, t, y) instead of x̂ = net. "linear"
  is c_skip = t, c_out = 1 − t; "edm" is EDM's (Karras et al. 2022) c_skip = σ_d²/(σ² + σ_d²), c_out = σσ_d/√(σ² + σ_d²)
  written for z/t = x + σ·ε/s, σ = (1 − t)s/t: c_skip = tσ_d²/D², c_out = (1 − t)sσ_d/D, D² = t²σ_d² + (1 − t)²s²,
  σ_d = 0.5. The paper gives the formula x̂ = c_skip·z + c_out·net but not its constants: EDM's σ_d and the absence
  of EDM's input scaling c_in are jitlib's reading (UNVERIFIED).
- **auxiliary classification loss** (App. B.3, Tab. 11): λ·CE of the network's classification head (a JiT with
  ``aux_cls_block > 0``) added to the per-sample loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from jitlib.diffusion.interpolation import T_EPS, check_same_shape, expand_t, interpolate
from jitlib.diffusion.losses import prediction_loss
from jitlib.diffusion.targets import Prediction, Target, check_target

Net = Callable[[Tensor, Tensor, Tensor | None], Tensor]
Precond = Literal["none", "linear", "edm"]
PRECONDS: tuple[str, ...] = ("none", "linear", "edm")
SIGMA_DATA = 0.5


def precondition_coefficients(
    kind: Precond, t: Tensor, noise_scale: float = 1.0, sigma_data: float = SIGMA_DATA
) -> tuple[Tensor, Tensor]:
    """(c_skip, c_out) of x̂ = c_skip·z + c_out·net: linear (t, 1 − t); edm (tσ_d²/D², (1 − t)sσ_d/D), D² = t²σ_d² + (1 − t)²s²."""
    if kind == "linear":
        return t, 1 - t
    if kind == "edm":
        d2 = (t * sigma_data) ** 2 + ((1 - t) * noise_scale) ** 2
        return t * sigma_data**2 / d2, (1 - t) * noise_scale * sigma_data / d2.sqrt()
    raise ValueError(f"precond={kind!r} has no coefficients; valid: linear, edm")


class Denoiser(nn.Module):
    """Wraps ``net(z, t, y) -> output`` that predicts ``target`` ∈ {x, ε, v}; returns x̂, ε̂, v̂ (Tab. 1 columns).

    ``precond`` ("none", "linear", "edm"; x-prediction only) pre-conditions the output (module docstring);
    ``noise_scale`` s enters the EDM coefficients.
    """

    def __init__(
        self,
        net: Net,
        target: Target = "x",
        t_eps: float = T_EPS,
        *,
        precond: Precond = "none",
        noise_scale: float = 1.0,
    ) -> None:
        super().__init__()
        check_target(target)
        if not 0 <= t_eps < 0.5:
            raise ValueError(f"t_eps={t_eps} must lie in [0, 0.5) (paper: 0.05)")
        if precond not in PRECONDS:
            raise ValueError(f"precond={precond!r} is not a pre-conditioner; valid: {', '.join(PRECONDS)}")
        if precond != "none" and target != "x":
            raise ValueError(f"precond={precond!r} pre-conditions x-prediction only; got target={target!r}")
        self.net = net
        self.target = target
        self.t_eps = t_eps
        self.precond = precond
        self.noise_scale = noise_scale

    @property
    def null_label(self) -> int | None:
        """The label id meaning "no class" (CFG's unconditional pass): the net's ``num_classes`` (or its config's)."""
        classes = getattr(self.net, "num_classes", None)
        if classes is None:
            classes = getattr(getattr(self.net, "config", None), "num_classes", None)
        return classes or None  # 0 classes = an unconditional net, which has no null label

    def output(self, out: Tensor, z: Tensor, t: Tensor) -> Tensor:
        """The network's raw ``out`` pre-conditioned: c_skip·z + c_out·out (unchanged for precond="none")."""
        check_same_shape(net_output=out, z=z)
        if self.precond == "none":
            return out
        c_skip, c_out = precondition_coefficients(self.precond, expand_t(t, z), self.noise_scale)
        return c_skip * z + c_out * out

    def forward(
        self, z: Tensor, t: Tensor, y: Tensor | None = None, *, t_eps: float | None = None
    ) -> Prediction:
        """x̂, ε̂, v̂ at (z_t, t) from one call of net(z, t, y); ``t_eps`` overrides the clip (e.g. 1e-3 at sampling, JiT#59)."""
        out = self.output(self.net(z, t, y), z, t)
        return Prediction.from_output(out, self.target, z, t, self.t_eps if t_eps is None else t_eps)

    def loss(
        self,
        x: Tensor,
        eps: Tensor,
        t: Tensor,
        y: Tensor | None = None,
        loss_target: Target = "v",
        *,
        cls_labels: Tensor | None = None,
        cls_weight: float = 0.0,
    ) -> Tensor:
        """Per-sample Tab. 1 loss at z = t·x + (1 − t)·ε (Eq. 1); default v-loss, i.e. Alg. 1 for an x-prediction net.

        ``eps`` must already carry the noise scale s (ε ~ N(0, s²I)); ``t`` has shape (B,). With ``cls_weight`` λ > 0
        the net must have a classification head (JiT ``aux_cls_block > 0``): λ·CE(logits, cls_labels) is added,
        ``cls_labels`` being the true classes (not the label-dropped ``y``). Returns shape (B,).
        """
        z = interpolate(x, eps, t)
        if cls_weight > 0:
            if cls_labels is None:
                raise ValueError(f"cls_weight={cls_weight} needs cls_labels, the true class of each sample")
            out, logits = self.net(z, t, y, return_aux=True)
            extra = cls_weight * F.cross_entropy(logits.float(), cls_labels, reduction="none")
        else:
            out, extra = self.net(z, t, y), 0.0
        out = self.output(out, z, t)
        return prediction_loss(out, self.target, loss_target, x, eps, z, t, self.t_eps) + extra

    def extra_repr(self) -> str:
        return f"target={self.target!r}, t_eps={self.t_eps}, precond={self.precond!r}"
