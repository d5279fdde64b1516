"""A network plus the name of what it predicts: the callable that samplers and trainers use.

JiT's network outputs x̂ directly (x-prediction, §4.3); ε- and v-prediction networks (the other columns of Tab. 1)
are wrapped the same way. :class:`Denoiser` completes the output to x̂, ε̂, v̂ with the conversions of
``jitlib.diffusion.targets`` (so a sampler only needs ``.v``) and computes any cell of Tab. 1 as the training loss.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from jitlib.diffusion.interpolation import T_EPS, check_same_shape, interpolate
from jitlib.diffusion.losses import prediction_loss
from jitlib.diffusion.targets import Prediction, Target, check_target

Net = Callable[[Tensor, Tensor, Tensor | None], Tensor]


class Denoiser(nn.Module):
    """Wraps ``net(z, t, y) -> output`` that predicts ``target`` ∈ {x, ε, v}; returns x̂, ε̂, v̂ (Tab. 1 columns)."""

    def __init__(self, net: Net, target: Target = "x", t_eps: float = T_EPS) -> None:
        super().__init__()
        check_target(target)
        if not 0 <= t_eps < 0.5:
            raise ValueError(f"t_eps={t_eps} must lie in [0, 0.5) (paper: 0.05)")
        self.net = net
        self.target = target
        self.t_eps = t_eps

    @property
    def null_label(self) -> int | None:
        """The label id meaning "no class" (CFG's unconditional pass): the net's ``num_classes`` (or its config's)."""
        classes = getattr(self.net, "num_classes", None)
        if classes is None:
            classes = getattr(getattr(self.net, "config", None), "num_classes", None)
        return classes or None  # 0 classes = an unconditional net, which has no null label

    def forward(
        self, z: Tensor, t: Tensor, y: Tensor | None = None, *, t_eps: float | None = None
    ) -> Prediction:
        """x̂, ε̂, v̂ at (z_t, t) from one call of net(z, t, y); ``t_eps`` overrides the clip (e.g. 1e-3 at sampling, JiT#59)."""
        out = self.net(z, t, y)
        check_same_shape(net_output=out, z=z)
        return Prediction.from_output(out, self.target, z, t, self.t_eps if t_eps is None else t_eps)

    def loss(
        self, x: Tensor, eps: Tensor, t: Tensor, y: Tensor | None = None, loss_target: Target = "v"
    ) -> Tensor:
        """Per-sample Tab. 1 loss at z = t·x + (1 − t)·ε (Eq. 1); default v-loss, i.e. Alg. 1 for an x-prediction net.

        ``eps`` must already carry the noise scale s (ε ~ N(0, s²I)); ``t`` has shape (B,). Returns shape (B,).
        """
        z = interpolate(x, eps, t)
        out = self.net(z, t, y)
        return prediction_loss(out, self.target, loss_target, x, eps, z, t, self.t_eps)

    def extra_repr(self) -> str:
        return f"target={self.target!r}, t_eps={self.t_eps}"
