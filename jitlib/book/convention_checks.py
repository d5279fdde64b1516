"""Which convention does a reader's function follow? Checkers of noising paths and training targets.

:func:`check_noising` and :func:`check_target` probe a reader's function with random x and ε at a few times, fit
fn(x, ε, τ) = a·x + b·ε per sample, and compare (a, b) with every convention registered in
:mod:`jitlib.book.conventions`; a mismatch is named in one line (time reversed, x and ε swapped, a scale, a clip).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from jitlib.book.conventions import CONVENTIONS, Convention, _output_of, get_convention

Fn = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class ConventionCheck:
    """What :func:`check_noising` / :func:`check_target` found: the conventions (or ``convention:kind``) matched.

    ``ok`` is True when the expected convention (or, with none expected, any registered one) matched; ``message``
    says so, or what differs, in one line (``str()`` wraps it for printing).
    """

    matches: tuple[str, ...]
    expected: str | None
    message: str

    @property
    def ok(self) -> bool:
        """True when the function follows the expected convention (or some registered one if none was named)."""
        return bool(_followed(self.matches, self.expected))

    def __str__(self) -> str:
        """The message, wrapped at 80 characters for printing."""
        return textwrap.fill(self.message, 80, subsequent_indent="  ")


def _followed(matches: tuple[str, ...], expected: str | None) -> list[str]:
    """The matches that satisfy ``expected`` ("ddpm" accepts every "ddpm:kind"; None accepts all)."""
    if expected is None:
        return list(matches)
    return [m for m in matches if m == expected or m.startswith(expected + ":")]


def _probe(fn: Fn, times: Tensor, data_shape: tuple[int, ...]) -> tuple[Tensor | None, str]:
    """Least-squares (a_i, b_i) with fn(x, ε, τ)_i = a_i·x_i + b_i·ε_i per sample, or None and what is wrong."""
    g = torch.Generator().manual_seed(0)
    n = times.shape[0]
    x = torch.randn((n, *data_shape), generator=g)
    eps = torch.randn((n, *data_shape), generator=g)
    out = fn(x.clone(), eps.clone(), times.float() if times.is_floating_point() else times.clone())
    if not isinstance(out, Tensor) or tuple(out.shape) != tuple(x.shape):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        return None, f"it returned {got}; expected a tensor of shape {tuple(x.shape)} like x"
    if not bool(torch.isfinite(out).all()):
        return None, "it returned non-finite values"
    design = torch.stack([x.reshape(n, -1), eps.reshape(n, -1)], dim=-1).double()  # (n, D, 2)
    target = out.reshape(n, -1).double().unsqueeze(-1)
    coef = torch.linalg.lstsq(design, target).solution  # (n, 2, 1)
    misfit = (design @ coef - target).norm(dim=(1, 2)) / target.norm(dim=(1, 2)).clamp_min(1e-12)
    if bool((misfit > 1e-3).any()):
        i = int(misfit.argmax())
        return None, (
            f"it is not a fixed combination a·x + b·ε (relative misfit {float(misfit[i]):.2g} at time "
            f"{float(times[i]):g}): does it clip, add its own noise or mix samples?"
        )
    return coef.squeeze(-1), ""


def _diagnose(measured: Tensor, expected: Tensor, times: Tensor, conv: Convention) -> tuple[str, bool]:
    """('', True) when measured ≈ expected rows (a, b); else (reason, True for a recognised slip, False otherwise)."""

    def close(m: Tensor) -> bool:
        return torch.allclose(m, expected, rtol=1e-3, atol=1e-4)

    sign_x, sign_n = (
        torch.tensor([-1.0, 1.0], dtype=measured.dtype),
        torch.tensor([1.0, -1.0], dtype=measured.dtype),
    )
    if close(measured):
        return "", True
    if close(-measured):
        return "the sign is flipped (you have −1 × the expected combination)", True
    if close(measured * sign_x):
        return "the sign of the x term is flipped", True
    if close(measured * sign_n):
        return "the sign of the noise term is flipped", True
    if close(measured.flip(-1)):
        return "x and ε are swapped" + (
            " (equivalently, time runs the other way)" if conv.domain == (0, 1) else ""
        ), True
    nonzero = expected.abs() > 1e-6
    scale = float((measured[nonzero] / expected[nonzero]).mean()) if bool(nonzero.any()) else 1.0
    if abs(scale - 1) > 1e-3 and close(measured / scale):
        return f"it is {scale:.4g} × the expected combination (a scale error)", True
    i = int((measured - expected).abs().sum(-1).argmax())
    (ma, mb), (ea, eb) = measured[i].tolist(), expected[i].tolist()
    reason = f"at {conv.symbol} = {float(times[i]):g} it is {ma:.4g}·x + {mb:.4g}·ε, expected {ea:.4g}·x + {eb:.4g}·ε"
    return reason, False


def _check(
    fn: Fn,
    what: Literal["noising", "target"],
    convention: str | Convention | None,
    kind: str | None,
    data_shape: tuple[int, ...],
) -> ConventionCheck:
    """Probe ``fn`` in every registered convention's own time units; compare its (a, b) with paths or outputs."""
    if not callable(fn):
        raise TypeError(f"fn must be a function (x, eps, time) -> tensor, got {type(fn).__name__}")
    if len(data_shape) < 1 or math.prod(data_shape) < 2:
        raise ValueError(f"data_shape={data_shape} must have at least 2 elements per sample")
    conv_expected = None if convention is None else get_convention(convention)
    if kind is not None:
        if conv_expected is None:
            raise ValueError(f"kind={kind!r} needs a convention (e.g. convention='ddpm')")
        _output_of(conv_expected, kind)
    expected = None if conv_expected is None else conv_expected.name + ("" if kind is None else f":{kind}")
    candidates = dict(CONVENTIONS)
    if conv_expected is not None:
        candidates[conv_expected.name] = conv_expected
    reasons: dict[str, tuple[str, bool]] = {}  # label -> (why not, recognised slip); '' = match
    for conv in candidates.values():
        times = conv.probe_times()
        try:
            measured, problem = _probe(fn, times, data_shape)
        except Exception as err:  # the reader's function may only take its own kind of time
            first_line = (str(err).splitlines() or [""])[0]
            measured, problem = None, f"it raised {type(err).__name__} ({first_line}) on {conv.name} times"
        refs = (
            {conv.name: conv.path}
            if what == "noising"
            else {f"{conv.name}:{k}": o.coefficients for k, o in conv.outputs.items()}
        )
        tau = times.to(torch.float64)
        for label, ref in refs.items():
            if measured is None:
                reasons[label] = (problem, False)
                continue
            a, b = ref(tau)
            reasons[label] = _diagnose(
                measured, torch.stack([a.expand_as(tau), b.expand_as(tau)], dim=-1), tau, conv
            )
    matches = tuple(label for label, (why, _) in reasons.items() if not why)
    followed = _followed(matches, expected)
    others = [m for m in matches if m not in followed]
    if followed:
        same = f" (identical to {', '.join(others)})" if others else ""
        message = f"✓ your {what} follows {', '.join(followed)}{same}"
    else:
        pool = [
            (k, why, slip)
            for k, (why, slip) in reasons.items()
            if expected is None or _followed((k,), expected)
        ]
        slips = [item for item in pool if item[2]]
        also = f"; it matches {', '.join(matches)}" if matches else ""
        if expected is None:
            hint = f"; closest: {slips[0][0]}, where {slips[0][1]}" if slips else ""
            message = f"✗ your {what} matches no registered convention{hint}"
        else:
            label, why, _ = (slips or pool)[0]
            named = "" if label == expected else f" (closest: {label})"
            message = f"✗ your {what} does not follow {expected}{named}: {why}{also}"
    return ConventionCheck(matches, expected, message)


def check_noising(
    fn: Fn, convention: str | Convention | None = None, *, data_shape: tuple[int, ...] = (3, 8, 8)
) -> ConventionCheck:
    """Which convention does ``fn(x, eps, time) -> state`` follow? Fits state = a·x + b·ε at probe times, compares (a, b).

    ``fn`` is your noising code: x and eps of shape ``(B, *data_shape)``, time of shape (B,) in a convention's own units
    (float32; int64 timesteps for DDPM). Every registered convention is probed in its own units and matched when
    a(τ), b(τ) agree with its path. With ``convention`` named, the message says what differs: a flipped sign, x and
    ε swapped (time reversed), a scale, or the coefficients at one time. Returns a :class:`ConventionCheck`;
    ``print`` it or test ``.ok``.
    """
    return _check(fn, "noising", convention, None, tuple(data_shape))


def check_target(
    fn: Fn,
    convention: str | Convention | None = None,
    kind: str | None = None,
    *,
    data_shape: tuple[int, ...] = (3, 8, 8),
) -> ConventionCheck:
    """Which output does ``fn(x, eps, time) -> training target`` compute? Fits c_x·x + c_n·ε, compares every output.

    Like :func:`check_noising`, for the regression target of a training loss (a velocity, a noise, a clean image);
    matches are named ``"convention:kind"``, e.g. ``"ddpm:v_prediction"``. A sign-flipped velocity is reported as such.
    """
    return _check(fn, "target", convention, kind, tuple(data_shape))
