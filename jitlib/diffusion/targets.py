"""The three prediction targets x, ε, v and the six conversions between them given (z_t, t) — the cells of Tab. 1.

From z_t = t·x + (1 − t)·ε (Eq. 1) and v = x − ε (Eq. 2), any one of x, ε, v determines the other two:

    x = (z − (1 − t)·ε) / t = z + (1 − t)·v          ε = (z − t·x) / (1 − t) = z − t·v
    v = (x − z) / (1 − t)   = (z − ε) / t

Divisions use the clip of ``jitlib.diffusion.interpolation.T_EPS`` (paper §4.3): 1 − t → max(1 − t, t_eps) and t → max(t, t_eps).
Pass ``t_eps=0`` for the unclipped formulas (then t must stay away from the division's pole). Inside
t_eps ≤ t ≤ 1 − t_eps every round trip is exact; outside it the clipped conversions are deliberately *not* inverse to
each other — that is the damping the paper wants in training and the source of JiT#59's residual sampling noise.
Every conversion is affine in the prediction, which is why each cell of Tab. 1 is a reweighted x-loss (``losses``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from jitlib.diffusion.interpolation import T_EPS, check_same_shape, expand_t

Target = Literal["x", "eps", "v"]
TARGETS: tuple[str, ...] = ("x", "eps", "v")


def check_target(name: str, what: str = "target") -> None:
    """Raise a one-line ValueError unless ``name`` is one of ``TARGETS``."""
    if name not in TARGETS:
        raise ValueError(f"{what}={name!r} is not a target; valid: {', '.join(TARGETS)}")


def _prepared(pred: Tensor, z: Tensor, t: Tensor, t_eps: float) -> Tensor:
    """Validate shapes, t range and t_eps; return t broadcastable against z."""
    check_same_shape(pred=pred, z=z)
    if not 0 <= t_eps < 0.5:
        raise ValueError(f"t_eps={t_eps} must lie in [0, 0.5) (paper: 0.05)")
    return expand_t(t, z)


def _one_minus_t(tt: Tensor, t_eps: float) -> Tensor:
    """max(1 − t, t_eps): the clipped denominator of §4.3."""
    return (1 - tt).clamp_min(t_eps)


def x_to_eps(x: Tensor, z: Tensor, t: Tensor, t_eps: float = T_EPS) -> Tensor:
    """ε = (z − t·x) / max(1 − t, t_eps)  (Tab. 1 cell (2)(a))."""
    tt = _prepared(x, z, t, t_eps)
    return (z - tt * x) / _one_minus_t(tt, t_eps)


def x_to_v(x: Tensor, z: Tensor, t: Tensor, t_eps: float = T_EPS) -> Tensor:
    """v = (x − z) / max(1 − t, t_eps)  (Tab. 1 cell (3)(a); Alg. 1, Eq. 6)."""
    tt = _prepared(x, z, t, t_eps)
    return (x - z) / _one_minus_t(tt, t_eps)


def eps_to_x(eps: Tensor, z: Tensor, t: Tensor, t_eps: float = T_EPS) -> Tensor:
    """x = (z − (1 − t)·ε) / max(t, t_eps)  (Tab. 1 cell (1)(b))."""
    tt = _prepared(eps, z, t, t_eps)
    return (z - (1 - tt) * eps) / tt.clamp_min(t_eps)


def eps_to_v(eps: Tensor, z: Tensor, t: Tensor, t_eps: float = T_EPS) -> Tensor:
    """v = (z − ε) / max(t, t_eps)  (Tab. 1 cell (3)(b))."""
    tt = _prepared(eps, z, t, t_eps)
    return (z - eps) / tt.clamp_min(t_eps)


def v_to_x(v: Tensor, z: Tensor, t: Tensor, t_eps: float = T_EPS) -> Tensor:
    """x = z + (1 − t)·v  (Tab. 1 cell (1)(c)); no division, so t_eps is unused."""
    tt = _prepared(v, z, t, t_eps)
    return z + (1 - tt) * v


def v_to_eps(v: Tensor, z: Tensor, t: Tensor, t_eps: float = T_EPS) -> Tensor:
    """ε = z − t·v  (Tab. 1 cell (2)(c)); no division, so t_eps is unused."""
    tt = _prepared(v, z, t, t_eps)
    return z - tt * v


_CONVERSIONS = {
    ("x", "eps"): x_to_eps,
    ("x", "v"): x_to_v,
    ("eps", "x"): eps_to_x,
    ("eps", "v"): eps_to_v,
    ("v", "x"): v_to_x,
    ("v", "eps"): v_to_eps,
}


def convert(pred: Tensor, source: Target, dest: Target, z: Tensor, t: Tensor, t_eps: float = T_EPS) -> Tensor:
    """dest-space value of a source-space prediction at (z_t, t), by the formulas of Tab. 1 (identity when source = dest)."""
    check_target(source, "source")
    check_target(dest, "dest")
    if source == dest:
        _prepared(pred, z, t, t_eps)
        return pred
    return _CONVERSIONS[(source, dest)](pred, z, t, t_eps)


@dataclass
class Prediction:
    """A denoiser's output at (z_t, t) in all three spaces: clean image x̂, noise ε̂, velocity v̂.

    v̂ = x̂ − ε̂ holds exactly wherever the conversion that filled them did not clip (t_eps ≤ t ≤ 1 − t_eps).
    """

    x: Tensor
    eps: Tensor
    v: Tensor

    def get(self, target: Target) -> Tensor:
        """The prediction in space ``target`` ("x", "eps" or "v")."""
        check_target(target)
        return getattr(self, target)

    @classmethod
    def from_output(
        cls, out: Tensor, target: Target, z: Tensor, t: Tensor, t_eps: float = T_EPS
    ) -> Prediction:
        """Complete a network output ``out`` in space ``target`` to all three spaces with :func:`convert`."""
        check_target(target)
        return cls(**{dest: convert(out, target, dest, z, t, t_eps) for dest in TARGETS})

    def lerp(self, other: Prediction, weight: float | Tensor) -> Prediction:
        """self + w·(other − self) in every space: CFG's v_u + ω(v_c − v_u), applied alike to x̂ and ε̂.

        Each conversion is affine with the same z-coefficient, so an affine combination (weights summing to 1) in one
        space equals the same combination in the others: guiding v is guiding x̂ is guiding ε̂.
        """
        return Prediction(
            x=self.x + weight * (other.x - self.x),
            eps=self.eps + weight * (other.eps - self.eps),
            v=self.v + weight * (other.v - self.v),
        )
