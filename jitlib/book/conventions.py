r"""A Rosetta stone: how other libraries write the noising path, and exact maps between theirs and JiT's.

JiT (Eq. 1): z_t = t·x + (1 − t)·ε with ε ~ N(0, s²I), t = 0 pure noise, t = 1 clean data, v = x − ε. Every library
registered here uses a path of the same family: in its own time τ its state and its network's output are

.. math::

    \text{state} = a(\tau)\,x + b(\tau)\,n, \qquad \text{output} = c_x(\tau)\,x + c_n(\tau)\,n,
    \qquad n \sim \mathcal N(0, I)

(a clean image, a noise, a velocity, a score). Two states carry the same information exactly when their
noise-to-signal ratios b/a agree; JiT's is (1 − t)·s/t. So for every convention

.. math::

    t = \frac{a s}{b + a s}, \qquad z_t = \frac{s}{b + a s}\,\text{state}
    \qquad \Bigl(s = 1:\; t = \frac{a}{a + b},\; z_t = \frac{\text{state}}{a + b}\Bigr),

which for a variance-preserving path (a = √ᾱ, b = √(1 − ᾱ)) is the familiar reparametrisation
t = √ᾱ/(√ᾱ + √(1 − ᾱ)). An output is mapped by solving the 2×2 system (state, output) = [[a, b], [c_x, c_n]]·(x, n)
for x̂ and n̂; then JiT's ε̂ = s·n̂ and v̂ = x̂ − ε̂. The maps are exact (no t_eps clip): a network trained in any of
these conventions can be sampled with ``jitlib.diffusion.sampling`` through :func:`as_jit_denoiser`; which
convention a reader's own code follows is found by :mod:`jitlib.book.convention_checks`.

Conventions are checked against the libraries' own code: Meta's ``flow_matching`` (``AffineProbPath``,
``CondOTScheduler``), SiT (paper: ``x_t = α_t x_* + σ_t ε``, t = 0 data; official code ``transport/path.py``
``ICPlan``: ``x_t = t·x_1 + (1 − t)·x_0``, x_1 data — the code runs time the other way from the paper),
diffusers (``FlowMatchEulerDiscreteScheduler.scale_noise`` and ``step``; ``DDPMScheduler.add_noise`` and
``get_velocity``) and EDM (Karras et al. 2022, Tab. 1 and the ``EDMPrecond`` preconditioning).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from jitlib.diffusion.targets import Prediction

Pair = tuple[Tensor, Tensor]
CoefficientFn = Callable[[Tensor], Pair]
BetaSchedule = Literal["linear", "scaled_linear", "squaredcos_cap_v2"]
BETA_SCHEDULES: tuple[str, ...] = ("linear", "scaled_linear", "squaredcos_cap_v2")
PROBES = 8  # probe times per convention in the checkers


@dataclass(frozen=True)
class Output:
    """One kind of network output, c_x(τ)·x + c_n(τ)·n, with its formula as the library writes it."""

    formula: str
    coefficients: CoefficientFn


@dataclass(frozen=True)
class Convention:
    """A noising convention: state = a(τ)·x + b(τ)·n (n ~ N(0, I)) in native time τ, and its output kinds.

    The text fields describe the convention for people (they fill the appendix's table); ``path``, ``outputs``,
    ``time_from_ratio`` and ``domain`` are the maths every conversion uses. ``time_from_ratio`` inverts the
    noise-to-signal ratio ρ(τ) = b(τ)/a(τ); ``domain`` is the closed range of valid τ, ``typical`` the range
    the library uses in practice (where the checkers probe).
    """

    name: str
    library: str
    symbol: str
    time: str
    data_at: str
    noise_at: str
    symbols: str
    state: str
    to_jit: str
    path: CoefficientFn
    outputs: dict[str, Output]
    time_from_ratio: Callable[[Tensor], Tensor]
    domain: tuple[float, float]
    typical: tuple[float, float]
    integer_time: bool = False
    log_spaced: bool = False
    notes: str = ""

    def probe_times(self, n: int = PROBES) -> Tensor:
        """n native times spread over the typical range (integers for DDPM-style timesteps), for the checkers."""
        lo, hi = self.typical
        if self.log_spaced:
            return torch.logspace(math.log10(lo), math.log10(hi), n, dtype=torch.float64)
        times = torch.linspace(lo, hi, n, dtype=torch.float64)
        return times.round().long() if self.integer_time else times


def _const(value: float) -> Callable[[Tensor], Tensor]:
    """τ ↦ value, shaped like τ."""
    return lambda tau: torch.full_like(tau, value)


def _output(formula: str, cx: Callable[[Tensor], Tensor], cn: Callable[[Tensor], Tensor]) -> Output:
    """An Output from its two coefficient functions."""
    return Output(formula, lambda tau: (cx(tau), cn(tau)))


def _check_noise_scale(noise_scale: float) -> float:
    """noise_scale as a float, or a one-line ValueError unless it is > 0."""
    if not (isinstance(noise_scale, (int, float)) and noise_scale > 0 and math.isfinite(noise_scale)):
        raise ValueError(f"noise_scale={noise_scale} must be a finite number > 0 (JiT: image size / 256)")
    return float(noise_scale)


def jit_convention(noise_scale: float = 1.0) -> Convention:
    """JiT (Li & He 2025, Eq. 1–2): z_t = t·x + (1 − t)·ε, ε = s·n ~ N(0, s²I), v = x − ε; t = 1 is data."""
    s = _check_noise_scale(noise_scale)
    return Convention(
        name="jit",
        symbol="t",
        library="JiT (this book, jitlib)",
        time="t ∈ [0, 1]",
        data_at="t = 1",
        noise_at="t = 0",
        symbols="x data, ε ~ N(0, s²I) noise",
        state="z_t = t·x + (1 − t)·ε",
        to_jit="identity",
        path=lambda t: (t, (1 - t) * s),
        outputs={
            "x": _output("x̂ (clean image)", _const(1.0), _const(0.0)),
            "eps": _output("ε̂", _const(0.0), _const(s)),
            "v": _output("v = dz/dt = x − ε (towards data)", _const(1.0), _const(-s)),
        },
        time_from_ratio=lambda rho: s / (s + rho),
        domain=(0.0, 1.0),
        typical=(0.1, 0.9),
        notes="noise scale s = image size / 256 (App. A); the table uses s = 1",
    )


def _flow_matching() -> Convention:
    """Meta's flow_matching, CondOT path: x_t = σ_t·x_0 + α_t·x_1, α_t = t, σ_t = 1 − t; x_0 noise, x_1 data."""
    return Convention(
        name="flow_matching",
        symbol="t",
        library="Meta flow_matching (AffineProbPath + CondOTScheduler)",
        time="t ∈ [0, 1]",
        data_at="t = 1",
        noise_at="t = 0",
        symbols="x_0 noise (source), x_1 data (target)",
        state="x_t = t·x_1 + (1 − t)·x_0",
        to_jit="t = t, z = x_t (same path)",
        path=lambda t: (t, 1 - t),
        outputs={
            "velocity": _output("dx_t = x_1 − x_0 (towards data)", _const(1.0), _const(-1.0)),
            "target": _output("x_1 (clean data)", _const(1.0), _const(0.0)),
            "epsilon": _output("x_0 (the noise)", _const(0.0), _const(1.0)),
        },
        time_from_ratio=lambda rho: 1 / (1 + rho),
        domain=(0.0, 1.0),
        typical=(0.1, 0.9),
        notes="output names follow AffineProbPath's target_to_velocity / epsilon_to_velocity",
    )


def _sit_paper() -> Convention:
    """SiT as written in the paper (Ma et al. 2024): x_t = α_t·x_* + σ_t·ε, linear α_t = 1 − t, σ_t = t; t = 0 is data."""
    return Convention(
        name="sit_paper",
        symbol="t",
        library="SiT, as in the paper (linear interpolant)",
        time="t ∈ [0, 1]",
        data_at="t = 0",
        noise_at="t = 1",
        symbols="x_* data, ε noise",
        state="x_t = (1 − t)·x_* + t·ε",
        to_jit="t_JiT = 1 − t, z = x_t",
        path=lambda t: (1 - t, t),
        outputs={
            "velocity": _output("v = α̇·x_* + σ̇·ε = ε − x_* (towards noise)", _const(-1.0), _const(1.0)),
            "noise": _output("ε", _const(0.0), _const(1.0)),
            "score": _output("∇log p_t = −ε/σ_t", _const(0.0), lambda t: -1 / t),
        },
        time_from_ratio=lambda rho: 1 - 1 / (1 + rho),  # = ρ/(1 + ρ), finite at ρ = ∞
        domain=(0.0, 1.0),
        typical=(0.1, 0.9),
        notes="the official SiT code runs time the other way: see sit_code",
    )


def _sit_code() -> Convention:
    """SiT's official code (transport/path.py ICPlan): x_t = t·x_1 + (1 − t)·x_0, x_0 ~ N(0, I), x_1 data; u_t = x_1 − x_0."""
    return Convention(
        name="sit_code",
        symbol="t",
        library="SiT, official code (transport ICPlan, Linear path)",
        time="t ∈ [0, 1]",
        data_at="t = 1",
        noise_at="t = 0",
        symbols="x_0 noise, x_1 data",
        state="x_t = t·x_1 + (1 − t)·x_0",
        to_jit="t = t, z = x_t (same path)",
        path=lambda t: (t, 1 - t),
        outputs={
            "velocity": _output("u_t = x_1 − x_0 (towards data)", _const(1.0), _const(-1.0)),
            "noise": _output("x_0", _const(0.0), _const(1.0)),
            "score": _output("−x_0/σ_t, σ_t = 1 − t", _const(0.0), lambda t: -1 / (1 - t)),
        },
        time_from_ratio=lambda rho: 1 / (1 + rho),
        domain=(0.0, 1.0),
        typical=(0.1, 0.9),
        notes="the opposite time direction from the SiT paper's notation",
    )


def _diffusers_flow() -> Convention:
    """diffusers FlowMatchEulerDiscreteScheduler (SD3, Flux): x_σ = (1 − σ)·x + σ·ε; the model outputs ε − x."""
    return Convention(
        name="diffusers_flow",
        symbol="σ",
        library="diffusers FlowMatchEulerDiscreteScheduler (SD3, Flux)",
        time="σ ∈ [0, 1]",
        data_at="σ = 0",
        noise_at="σ = 1",
        symbols="sample x data, noise ε",
        state="x_σ = (1 − σ)·x + σ·ε",
        to_jit="t = 1 − σ, z = x_σ",
        path=lambda sigma: (1 - sigma, sigma),
        outputs={
            "velocity": _output(
                "dx/dσ = ε − x (towards noise; step: x + (σ_next − σ)·out)", _const(-1.0), _const(1.0)
            ),
        },
        time_from_ratio=lambda rho: 1 - 1 / (1 + rho),  # = ρ/(1 + ρ), finite at ρ = ∞
        domain=(0.0, 1.0),
        typical=(0.1, 0.9),
        notes="the transformer is called with timestep = 1000·σ (num_train_timesteps·σ); shift only changes the σ grid",
    )


def ddpm_alphas_cumprod(
    num_train_timesteps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    beta_schedule: BetaSchedule = "linear",
) -> Tensor:
    """ᾱ_k = Π_{i ≤ k} (1 − β_i), k = 0 … N − 1, for diffusers' beta schedules (float64, shape (N,)).

    "linear": β = linspace(β_start, β_end) (DDPM, diffusers' default); "scaled_linear": β = linspace(√β_start,
    √β_end)² (Stable Diffusion: 0.00085, 0.012); "squaredcos_cap_v2": β_i = min(1 − ᾱ(i+1)/ᾱ(i), 0.999) with
    ᾱ(u) = cos²((u/N + 0.008)/1.008 · π/2) (improved DDPM).
    """
    if num_train_timesteps < 2:
        raise ValueError(f"num_train_timesteps={num_train_timesteps} must be an integer ≥ 2")
    n = num_train_timesteps
    if beta_schedule == "linear":
        betas = torch.linspace(beta_start, beta_end, n, dtype=torch.float64)
    elif beta_schedule == "scaled_linear":
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float64) ** 2
    elif beta_schedule == "squaredcos_cap_v2":
        u = torch.arange(n + 1, dtype=torch.float64) / n
        abar = torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = (1 - abar[1:] / abar[:-1]).clamp_max(0.999)
    else:
        raise ValueError(f"beta_schedule={beta_schedule!r} is not known; valid: {', '.join(BETA_SCHEDULES)}")
    if not bool(((betas > 0) & (betas < 1)).all()):
        raise ValueError(f"betas from beta_start={beta_start}, beta_end={beta_end} must lie in (0, 1)")
    return torch.cumprod(1 - betas, dim=0)


def ddpm_convention(
    num_train_timesteps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    beta_schedule: BetaSchedule = "linear",
) -> Convention:
    """diffusers DDPM/DDIM: x_k = √ᾱ_k·x + √(1 − ᾱ_k)·ε, integer timestep k (k = 0 least noisy).

    Fractional k interpolates log ᾱ linearly between the integer timesteps, so that every JiT time inside the
    schedule's range has a timestep (round it if your model only takes integers).
    """
    log_abar = ddpm_alphas_cumprod(num_train_timesteps, beta_start, beta_end, beta_schedule).log()
    last = num_train_timesteps - 1

    def abar(k: Tensor) -> Tensor:
        """ᾱ at (fractional) timestep k, by linear interpolation of log ᾱ."""
        k = k.to(torch.float64)
        lo = k.floor().clamp(0, last - 1).long()
        w = k - lo
        return (log_abar[lo] * (1 - w) + log_abar[lo + 1] * w).exp()

    def time_from_ratio(rho: Tensor) -> Tensor:
        """The fractional k with (1 − ᾱ_k)/ᾱ_k = ρ²; NaN outside the schedule's range (up to rounding)."""
        neg = -log_abar  # −log ᾱ_k, increasing in k
        target = torch.log1p(rho.to(torch.float64) ** 2)
        slack = 1e-5  # float32 times round ᾱ by ~1e-7 relative: still the end timestep
        inside = (target >= neg[0] - slack) & (target <= neg[-1] + slack)
        target = target.clamp(neg[0], neg[-1])
        idx = torch.searchsorted(neg, target).clamp(1, last)
        k = (idx - 1) + (target - neg[idx - 1]) / (neg[idx] - neg[idx - 1])
        return torch.where(inside, k, torch.full_like(k, math.nan))

    def v_x(k: Tensor) -> Tensor:
        return -(1 - abar(k)).sqrt()

    return Convention(
        name="ddpm",
        symbol="k",
        library="diffusers DDPMScheduler / DDIMScheduler (variance preserving)",
        time=f"integer k ∈ [0, {last}]",
        data_at="k = 0 (ᾱ₀ < 1)",
        noise_at=f"k = {last} (ᾱ > 0)",
        symbols="x_0 data (original_samples), ε noise",
        state="x_k = √ᾱ_k·x_0 + √(1 − ᾱ_k)·ε",
        to_jit="t = √ᾱ/(√ᾱ + √(1 − ᾱ)), z = x_k/(√ᾱ + √(1 − ᾱ))",
        path=lambda k: (abar(k).sqrt(), (1 - abar(k)).sqrt()),
        outputs={
            "epsilon": _output("ε̂", _const(0.0), _const(1.0)),
            "sample": _output("x̂_0 (clean data)", _const(1.0), _const(0.0)),
            "v_prediction": _output("v = √ᾱ·ε − √(1 − ᾱ)·x_0 (get_velocity)", v_x, lambda k: abar(k).sqrt()),
        },
        time_from_ratio=time_from_ratio,
        domain=(0.0, float(last)),
        typical=(0.0, float(last)),
        integer_time=True,
        notes=f"beta_schedule={beta_schedule!r}, β from {beta_start:g} to {beta_end:g}; DDIM uses the same ᾱ",
    )


def edm_preconditioning(sigma: Tensor, sigma_data: float = 0.5) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """EDM's (c_skip, c_out, c_in, c_noise): D(x; σ) = c_skip·x + c_out·F(c_in·x; c_noise) (Karras et al. 2022, Tab. 1).

    c_skip = σ_d²/(σ² + σ_d²), c_out = σ·σ_d/√(σ² + σ_d²), c_in = 1/√(σ² + σ_d²), c_noise = ln(σ)/4.
    """
    if not sigma_data > 0:
        raise ValueError(f"sigma_data={sigma_data} must be > 0 (EDM: 0.5)")
    var = sigma**2 + sigma_data**2
    return sigma_data**2 / var, sigma * sigma_data / var.sqrt(), 1 / var.sqrt(), sigma.log() / 4


def edm_convention(sigma_data: float = 0.5) -> Convention:
    """EDM (Karras et al. 2022): x = y + σ·n with σ the noise level; D(x; σ) ≈ y is the denoiser (x-prediction)."""
    edm_preconditioning(torch.ones(1), sigma_data)  # validates sigma_data

    def raw(sigma: Tensor) -> Pair:
        """F's target (y − c_skip·x)/c_out as c_x·y + c_n·n (EDM Eq. 8)."""
        c_skip, c_out, _, _ = edm_preconditioning(sigma, sigma_data)
        return (1 - c_skip) / c_out, -c_skip * sigma / c_out

    return Convention(
        name="edm",
        symbol="σ",
        library="EDM (Karras et al. 2022; NVlabs/edm, k-diffusion)",
        time="σ ∈ [0.002, 80]",
        data_at="σ = 0",
        noise_at="σ = 80 (not pure noise)",
        symbols="y data, n ~ N(0, I), x the noisy input",
        state="x = y + σ·n",
        to_jit="t = 1/(1 + σ), z = x/(1 + σ)",
        path=lambda sigma: (torch.ones_like(sigma), sigma),
        outputs={
            "denoised": _output(
                "D(x; σ) ≈ y (x-prediction); ODE dx/dσ = (x − D)/σ", _const(1.0), _const(0.0)
            ),
            "epsilon": _output("n = (x − D)/σ", _const(0.0), _const(1.0)),
            "F": Output("raw net F = (D − c_skip·x)/c_out, fed c_in·x and c_noise", raw),
        },
        time_from_ratio=lambda rho: rho,
        domain=(0.0, math.inf),
        typical=(0.002, 80.0),
        log_spaced=True,
        notes=f"σ is the noise standard deviation; σ_data = {sigma_data:g} sets the preconditioning (edm_preconditioning)",
    )


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        jit_convention(),
        _flow_matching(),
        _sit_paper(),
        _sit_code(),
        _diffusers_flow(),
        ddpm_convention(),
        edm_convention(),
    )
}


def get_convention(convention: str | Convention) -> Convention:
    """The registered convention called ``convention`` (or the Convention itself when one is given)."""
    if isinstance(convention, Convention):
        return convention
    if convention not in CONVENTIONS:
        raise ValueError(f"convention={convention!r} is not registered; valid: {', '.join(CONVENTIONS)}")
    return CONVENTIONS[convention]


def _native_time(time: Tensor | float, conv: Convention) -> Tensor:
    """τ as float64, checked to lie in the convention's domain."""
    tau = torch.as_tensor(time).to(torch.float64)
    lo, hi = conv.domain
    if tau.numel() and not bool(((tau >= lo) & (tau <= hi)).all()):
        raise ValueError(
            f"{conv.name} time {conv.symbol} must lie in [{lo:g}, {hi:g}]; "
            f"got values in [{tau.min():g}, {tau.max():g}]"
        )
    return tau


def _out_dtype(time: Tensor | float) -> torch.dtype:
    """Floating inputs keep their dtype; integer timesteps and Python numbers give the default float dtype."""
    return time.dtype if isinstance(time, Tensor) and time.is_floating_point() else torch.get_default_dtype()


def _per_sample(value: Tensor, like: Tensor) -> Tensor:
    """A (B,) or 0-d per-sample value viewed as (B, 1, ..., 1) against ``like`` of shape (B, ...), in like's dtype."""
    if value.dim() == 0:
        return value.to(like.dtype)
    if value.dim() != 1 or like.dim() < 1 or value.shape[0] != like.shape[0]:
        raise ValueError(
            f"time has shape {tuple(value.shape)} but must be (B,) or a number for data of shape {tuple(like.shape)}"
        )
    return value.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def to_jit_time(time: Tensor | float, convention: str | Convention, *, noise_scale: float = 1.0) -> Tensor:
    """JiT's t for a native time τ: t = a(τ)·s/(b(τ) + a(τ)·s), i.e. the t with the same noise-to-signal ratio."""
    conv, s = get_convention(convention), _check_noise_scale(noise_scale)
    a, b = conv.path(_native_time(time, conv))
    return (a * s / (b + a * s)).to(_out_dtype(time))


def _jit_span(conv: Convention, times: tuple[float, float], s: float) -> tuple[float, float]:
    """The JiT times [t_lo, t_hi] that native times in ``times`` cover (∞ noise maps to t = 0)."""
    ends = [float(to_jit_time(v, conv, noise_scale=s)) if math.isfinite(v) else 0.0 for v in times]
    return min(ends), max(ends)


def from_jit_time(t: Tensor | float, convention: str | Convention, *, noise_scale: float = 1.0) -> Tensor:
    """The native time τ with JiT's noise-to-signal ratio at t: b(τ)/a(τ) = (1 − t)·s/t (fractional for DDPM)."""
    conv, s = get_convention(convention), _check_noise_scale(noise_scale)
    tt = torch.as_tensor(t).to(torch.float64)
    if tt.numel() and not bool(((tt >= 0) & (tt <= 1)).all()):
        raise ValueError(
            f"t must lie in [0, 1] (0 = noise, 1 = data); got values in [{tt.min():g}, {tt.max():g}]"
        )
    rho = torch.where(tt > 0, (1 - tt) * s / tt, torch.full_like(tt, math.inf))
    tau = conv.time_from_ratio(rho)
    finite = torch.isfinite(tau)
    if not bool(finite.all()):
        lo, hi = _jit_span(conv, conv.domain, s)
        start = _jit_span(conv, conv.typical, s)[0]
        covered = f"0 < t ≤ {hi:.4g}" if lo == 0 else f"{lo:.4g} ≤ t ≤ {hi:.4g}"
        raise ValueError(
            f"t={float(tt[~finite].flatten()[0]):g} has no {conv.name} time {conv.symbol}: it covers JiT times "
            f"{covered}; start a sampling grid at t = {start:.4g}"
        )
    return tau.to(_out_dtype(t))


def _state_scale(tau: Tensor, conv: Convention, s: float) -> Tensor:
    """k(τ) = s/(b + a·s) with z_t = k·state (float64)."""
    a, b = conv.path(tau)
    return s / (b + a * s)


def to_jit_state(
    state: Tensor, time: Tensor | float, convention: str | Convention, *, noise_scale: float = 1.0
) -> Tensor:
    """JiT's z_t for a native state: z_t = s/(b(τ) + a(τ)·s) · state (s = 1: state/(a + b)), at t = to_jit_time(τ)."""
    conv, s = get_convention(convention), _check_noise_scale(noise_scale)
    return state * _per_sample(_state_scale(_native_time(time, conv), conv, s), state)


def from_jit_state(
    z: Tensor, t: Tensor | float, convention: str | Convention, *, noise_scale: float = 1.0
) -> Tensor:
    """The native state for JiT's z_t: state = (b(τ) + a(τ)·s)/s · z_t, at τ = from_jit_time(t)."""
    conv, s = get_convention(convention), _check_noise_scale(noise_scale)
    tau = from_jit_time(torch.as_tensor(t).to(torch.float64), conv, noise_scale=s).to(torch.float64)
    return z / _per_sample(_state_scale(tau, conv, s), z)


def _output_of(conv: Convention, kind: str) -> Output:
    """The convention's output ``kind``, or a one-line ValueError naming the valid kinds."""
    if kind not in conv.outputs:
        raise ValueError(f"kind={kind!r} is not a {conv.name} output; valid: {', '.join(conv.outputs)}")
    return conv.outputs[kind]


def to_jit_prediction(
    output: Tensor,
    kind: str,
    state: Tensor,
    time: Tensor | float,
    convention: str | Convention,
    *,
    noise_scale: float = 1.0,
) -> Prediction:
    """x̂, ε̂, v̂ in JiT's terms from a native output: solve (state, out) = [[a, b], [c_x, c_n]]·(x̂, n̂); ε̂ = s·n̂, v̂ = x̂ − ε̂.

    ``output`` is what a network in ``convention`` returns as ``kind`` (e.g. ddpm "v_prediction") at ``state``
    and native ``time``; the result is exact wherever the output determines x̂ (a·c_n ≠ b·c_x).
    """
    conv, s = get_convention(convention), _check_noise_scale(noise_scale)
    out = _output_of(conv, kind)
    if output.shape != state.shape:
        raise ValueError(
            f"output has shape {tuple(output.shape)} but state has {tuple(state.shape)}; they must match"
        )
    tau = _native_time(time, conv)
    a, b = conv.path(tau)
    cx, cn = out.coefficients(tau)
    det = a * cn - b * cx
    if not bool((det != 0).all()):
        bad = float(tau.expand_as(det)[det == 0][0])
        raise ValueError(f"a {conv.name} {kind!r} output does not determine x̂ at {conv.symbol} = {bad:g}")
    x = (_per_sample(cn / det, state) * state) - _per_sample(b / det, state) * output
    n = _per_sample(a / det, state) * output - _per_sample(cx / det, state) * state
    return Prediction(x=x, eps=s * n, v=x - s * n)


def from_jit_prediction(
    pred: Prediction, kind: str, t: Tensor | float, convention: str | Convention, *, noise_scale: float = 1.0
) -> Tensor:
    """The native output ``kind`` of a JiT prediction: c_x(τ)·x̂ + c_n(τ)·ε̂/s at τ = from_jit_time(t).

    Uses ``pred.x`` and ``pred.eps`` (a Prediction whose conversions did not clip has v̂ = x̂ − ε̂ as well).
    """
    conv, s = get_convention(convention), _check_noise_scale(noise_scale)
    out = _output_of(conv, kind)
    tau = from_jit_time(torch.as_tensor(t).to(torch.float64), conv, noise_scale=s).to(torch.float64)
    cx, cn = out.coefficients(tau)
    return _per_sample(cx, pred.x) * pred.x + _per_sample(cn / s, pred.eps) * pred.eps


class ConventionDenoiser:
    """A network of another convention as a JiT denoiser: (z, t, y) -> Prediction, for ``jitlib.diffusion.sampling.sample``.

    Each call maps (z_t, t) to the native (state, τ), calls ``net(state, τ, y)`` and maps its output of kind
    ``kind`` back with :func:`to_jit_prediction`. Native times are floats (fractional DDPM timesteps included).
    Conventions without pure noise (EDM: σ ≤ σ_max; DDPM: k ≤ N − 1) need a time grid that starts at
    ``to_jit_time(τ_max, convention)`` instead of t = 0.
    """

    def __init__(
        self, net: Callable[..., Tensor], convention: str | Convention, kind: str, *, noise_scale: float = 1.0
    ) -> None:
        self.net = net
        self.convention = get_convention(convention)
        _output_of(self.convention, kind)
        self.kind = kind
        self.noise_scale = _check_noise_scale(noise_scale)
        self.null_label = getattr(net, "null_label", getattr(net, "num_classes", None))

    def __call__(self, z: Tensor, t: Tensor, y: Tensor | None = None) -> Prediction:
        """x̂, ε̂, v̂ at (z_t, t) from one call of the native network."""
        s, conv = self.noise_scale, self.convention
        tau = from_jit_time(t.to(torch.float64), conv, noise_scale=s)
        state = from_jit_state(z, t, conv, noise_scale=s)
        native = self.net(state, tau.to(z.dtype), y)
        return to_jit_prediction(native, self.kind, state, tau, conv, noise_scale=s)


def as_jit_denoiser(
    net: Callable[..., Tensor], convention: str | Convention, kind: str, *, noise_scale: float = 1.0
) -> ConventionDenoiser:
    """Wrap ``net(state, τ, y) -> output`` of a foreign convention as a JiT denoiser (z, t, y) -> Prediction."""
    return ConventionDenoiser(net, convention, kind, noise_scale=noise_scale)


TABLE_COLUMNS: dict[str, Callable[[Convention], str]] = {
    "name": lambda c: f"`{c.name}`",
    "library": lambda c: c.library,
    "time": lambda c: c.time,
    "data at": lambda c: c.data_at,
    "noise at": lambda c: c.noise_at,
    "symbols": lambda c: c.symbols,
    "state": lambda c: c.state,
    "outputs": lambda c: "; ".join(f"`{k}`: {o.formula}" for k, o in c.outputs.items()),
    "to JiT": lambda c: c.to_jit,
}


def conventions_table(
    columns: tuple[str, ...] = tuple(TABLE_COLUMNS), names: tuple[str, ...] | None = None
) -> str:
    """A Markdown table of registered conventions, one row each, with ``columns`` from :data:`TABLE_COLUMNS`."""
    unknown = [c for c in columns if c not in TABLE_COLUMNS]
    if unknown:
        raise ValueError(f"columns {unknown} are not table columns; valid: {', '.join(TABLE_COLUMNS)}")
    rows = [get_convention(n) for n in (names or tuple(CONVENTIONS))]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for conv in rows:
        lines.append("| " + " | ".join(TABLE_COLUMNS[col](conv).replace("|", "/") for col in columns) + " |")
    return "\n".join(lines)
