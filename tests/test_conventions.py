"""The Rosetta stone: other libraries' noising conventions mapped exactly onto JiT's, and the convention checkers.

Each library's noising and training targets are re-written here the way its own code writes them (flow_matching's
AffineProbPath, SiT's ICPlan, diffusers' scale_noise / add_noise / get_velocity, EDM's preconditioning), so the
module is tested against independent formulas, not against itself.
"""

import math

import pytest
import torch

from jitlib.book import conventions as C
from jitlib.book.convention_checks import check_noising, check_target
from jitlib.diffusion.interpolation import interpolate
from jitlib.diffusion.oracle import GaussianMixture
from jitlib.diffusion.sampling import sample
from jitlib.diffusion.targets import Prediction

SHAPE = (3, 4, 4)


def _col(v, like):
    return v.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def _ddpm_alphas_cumprod():
    """diffusers' default: betas = linspace(1e-4, 0.02, 1000), ᾱ = cumprod(1 − β)."""
    return torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), dim=0)


def library(name, x, n, tau):
    """(state, {kind: training target}) as the library computes them from data x, unit noise n and its time τ."""
    tt = _col(tau.to(torch.float64), x)
    if name == "jit":
        return tt * x + (1 - tt) * n, {"x": x, "eps": n, "v": x - n}
    if name in (
        "flow_matching",
        "sit_code",
    ):  # x_t = σ_t·x_0 + α_t·x_1 with α = t, σ = 1 − t; x_0 noise, x_1 data
        x0, x1 = n, x
        state, velocity = (1 - tt) * x0 + tt * x1, -x0 + x1
        if name == "flow_matching":
            return state, {"velocity": velocity, "target": x1, "epsilon": x0}
        return state, {"velocity": velocity, "noise": x0, "score": -x0 / (1 - tt)}
    if name == "sit_paper":  # x_t = α_t x_* + σ_t ε, α = 1 − t, σ = t
        return (1 - tt) * x + tt * n, {"velocity": -x + n, "noise": n, "score": -n / tt}
    if name == "diffusers_flow":  # scale_noise: σ·noise + (1 − σ)·sample; SD3 target: noise − latents
        return tt * n + (1 - tt) * x, {"velocity": n - x}
    if name == "ddpm":  # add_noise and get_velocity
        abar = _col(_ddpm_alphas_cumprod()[tau.long()], x)
        state = abar.sqrt() * x + (1 - abar).sqrt() * n
        return state, {"epsilon": n, "sample": x, "v_prediction": abar.sqrt() * n - (1 - abar).sqrt() * x}
    if name == "edm":  # x = y + σ n; D → y; F target (y − c_skip·x)/c_out with σ_data = 0.5
        sd = 0.5
        state = x + tt * n
        c_skip, c_out = sd**2 / (tt**2 + sd**2), tt * sd / (tt**2 + sd**2).sqrt()
        return state, {"denoised": x, "epsilon": n, "F": (x - c_skip * state) / c_out}
    raise AssertionError(name)


def reader_noising(name):
    """A reader's noising function fn(x, eps, τ) in convention ``name``, written the library's way."""
    return lambda x, eps, tau: library(name, x, eps, tau)[0].to(x.dtype)


def reader_target(name, kind):
    return lambda x, eps, tau: library(name, x, eps, tau)[1][kind].to(x.dtype)


def _data(n=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *SHAPE, generator=g, dtype=dtype), torch.randn(n, *SHAPE, generator=g, dtype=dtype)


NAMES = list(C.CONVENTIONS)
KINDS = [(name, kind) for name in NAMES for kind in C.CONVENTIONS[name].outputs]


@pytest.mark.parametrize("s", [1.0, 2.0])
@pytest.mark.parametrize("name", NAMES)
def test_state_maps_onto_jit_interpolation(name, s):
    x, n = _data()
    tau = C.get_convention(name).probe_times()
    state, _ = library(name, x, n, tau)
    t = C.to_jit_time(tau.to(torch.float64), name, noise_scale=s)
    z = C.to_jit_state(state, tau, name, noise_scale=s)
    torch.testing.assert_close(z, interpolate(x, s * n, t), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(C.from_jit_state(z, t, name, noise_scale=s), state, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("s", [1.0, 2.0])
@pytest.mark.parametrize("name, kind", KINDS)
def test_native_targets_map_onto_jit_truth(name, kind, s):
    x, n = _data(seed=1)
    tau = C.get_convention(name).probe_times()
    state, targets = library(name, x, n, tau)
    pred = C.to_jit_prediction(targets[kind], kind, state, tau, name, noise_scale=s)
    torch.testing.assert_close(pred.x, x, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(pred.eps, s * n, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(pred.v, x - s * n, rtol=1e-8, atol=1e-8)
    t = C.to_jit_time(tau.to(torch.float64), name, noise_scale=s)
    back = C.from_jit_prediction(pred, kind, t, name, noise_scale=s)
    torch.testing.assert_close(back, targets[kind], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name, kind", KINDS)
def test_any_output_round_trips(name, kind):
    """Not only the truth: an arbitrary output maps to JiT and back to itself."""
    x, n = _data(seed=2)
    out = torch.randn_like(x)
    tau = C.get_convention(name).probe_times().to(torch.float64)
    state, _ = library(name, x, n, tau)
    pred = C.to_jit_prediction(out, kind, state, tau, name)
    torch.testing.assert_close(C.from_jit_prediction(pred, kind, C.to_jit_time(tau, name), name), out)


@pytest.mark.parametrize("s", [1.0, 3.0])
@pytest.mark.parametrize("name", NAMES)
def test_time_round_trips_both_ways(name, s):
    conv = C.get_convention(name)
    lo, hi = conv.typical
    u = torch.rand(50, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    tau = torch.exp(math.log(lo) + u * math.log(hi / lo)) if conv.log_spaced else lo + (hi - lo) * u
    t = C.to_jit_time(tau, name, noise_scale=s)
    assert bool(((t > 0) & (t < 1)).all())
    torch.testing.assert_close(C.from_jit_time(t, name, noise_scale=s), tau, rtol=1e-9, atol=1e-9)
    t_lo, t_hi = t.min(), t.max()
    ts = t_lo + (t_hi - t_lo) * u
    torch.testing.assert_close(
        C.to_jit_time(C.from_jit_time(ts, name, noise_scale=s), name, noise_scale=s), ts
    )


def test_variance_preserving_reparametrisation():
    """DDPM timesteps: t = √ᾱ/(√ᾱ + √(1 − ᾱ)) and z = x_k/(√ᾱ + √(1 − ᾱ)), with diffusers' ᾱ."""
    k = torch.tensor([0, 1, 250, 500, 998, 999])
    abar = _ddpm_alphas_cumprod()[k]
    alpha, sigma = abar.sqrt(), (1 - abar).sqrt()
    torch.testing.assert_close(C.to_jit_time(k.to(torch.float64), "ddpm"), alpha / (alpha + sigma))
    assert C.to_jit_time(k, "ddpm").dtype == torch.get_default_dtype()  # integer timesteps give float times
    state = torch.randn(6, 5, dtype=torch.float64)
    torch.testing.assert_close(C.to_jit_state(state, k, "ddpm"), state / (alpha + sigma)[:, None])
    # the time runs from data to noise, and a fractional k falls between its neighbours
    assert bool((C.to_jit_time(k.double(), "ddpm").diff() < 0).all())
    half = C.to_jit_time(torch.tensor([250.5], dtype=torch.float64), "ddpm")
    assert C.to_jit_time(torch.tensor([251.0]), "ddpm") < half < C.to_jit_time(torch.tensor([250.0]), "ddpm")


def test_edm_and_flow_times_have_closed_forms():
    sigma = torch.tensor([0.002, 0.5, 1.0, 80.0], dtype=torch.float64)
    torch.testing.assert_close(C.to_jit_time(sigma, "edm"), 1 / (1 + sigma))
    torch.testing.assert_close(C.to_jit_time(sigma, "edm", noise_scale=2.0), 2 / (2 + sigma))
    s = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    torch.testing.assert_close(C.to_jit_time(s, "diffusers_flow"), 1 - s)
    torch.testing.assert_close(C.to_jit_time(s, "sit_paper"), 1 - s)
    torch.testing.assert_close(C.to_jit_time(s, "flow_matching"), s)
    torch.testing.assert_close(
        C.from_jit_time(torch.tensor([0.0, 1.0]), "diffusers_flow"), torch.tensor([1.0, 0.0])
    )


def test_jit_is_the_identity_at_unit_noise_scale():
    x, n = _data(seed=4)
    t = torch.rand(8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    z = interpolate(x, n, t)
    torch.testing.assert_close(C.to_jit_time(t, "jit"), t)
    torch.testing.assert_close(C.to_jit_state(z, t, "jit"), z)
    pred = C.to_jit_prediction(x - n, "v", z, t, "jit")
    torch.testing.assert_close(pred.x, x)


def test_ddpm_schedules_match_their_definitions():
    n = 1000
    sd = C.ddpm_alphas_cumprod(n, 0.00085, 0.012, "scaled_linear")
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, n, dtype=torch.float64) ** 2
    torch.testing.assert_close(sd, torch.cumprod(1 - betas, 0))
    cos = C.ddpm_alphas_cumprod(n, beta_schedule="squaredcos_cap_v2")

    def f(u):
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    # away from the 0.999 cap, ᾱ_k telescopes to f((k + 1)/N) / f(0)
    for k in (0, 100, 500, 900):
        assert cos[k].item() == pytest.approx(f((k + 1) / n) / f(0), rel=1e-9)
    custom = C.ddpm_convention(n, 0.00085, 0.012, "scaled_linear")
    k = torch.tensor([10.0, 700.0], dtype=torch.float64)
    torch.testing.assert_close(
        C.to_jit_time(k, custom), sd[[10, 700]].sqrt() / (sd[[10, 700]].sqrt() + (1 - sd[[10, 700]]).sqrt())
    )


@pytest.mark.parametrize("s", [1.0, 2.0])
def test_native_ideal_denoisers_agree_with_the_oracle(s):
    """Closed forms written in EDM and DDPM terms, mapped to JiT, equal the JiT-convention oracle exactly."""
    mu, sd = torch.tensor([0.7, -0.2, 0.4], dtype=torch.float64), 0.3
    oracle = GaussianMixture(mu[None], sd).denoiser(noise_scale=s)
    g = torch.Generator().manual_seed(5)
    sigma = torch.tensor([0.01, 0.3, 2.0, 50.0], dtype=torch.float64)
    state = (
        mu
        + sd * torch.randn(4, 3, generator=g, dtype=torch.float64)
        + sigma[:, None] * torch.randn(4, 3, generator=g, dtype=torch.float64)
    )
    denoised = mu + (sd**2 / (sd**2 + sigma**2))[:, None] * (state - mu)  # E[y | y + σn]
    pred = C.to_jit_prediction(denoised, "denoised", state, sigma, "edm", noise_scale=s)
    t = C.to_jit_time(sigma, "edm", noise_scale=s)
    truth = oracle(C.to_jit_state(state, sigma, "edm", noise_scale=s), t)
    for got, want in zip((pred.x, pred.eps, pred.v), (truth.x, truth.eps, truth.v), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    k = torch.tensor([3, 200, 600, 990])
    abar = _ddpm_alphas_cumprod()[k][:, None]
    xk = abar.sqrt() * (mu + sd * torch.randn(4, 3, generator=g, dtype=torch.float64)) + (
        1 - abar
    ).sqrt() * torch.randn(4, 3, generator=g, dtype=torch.float64)
    eps_hat = (1 - abar).sqrt() * (xk - abar.sqrt() * mu) / (abar * sd**2 + 1 - abar)  # E[n | x_k]
    pred = C.to_jit_prediction(eps_hat, "epsilon", xk, k, "ddpm", noise_scale=s)
    truth = oracle(
        C.to_jit_state(xk, k, "ddpm", noise_scale=s), C.to_jit_time(k.double(), "ddpm", noise_scale=s)
    )
    torch.testing.assert_close(pred.x, truth.x, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(pred.eps, truth.eps, rtol=1e-9, atol=1e-9)


def test_a_foreign_network_samples_like_the_oracle_through_jitlib():
    """An EDM-native denoiser wrapped by as_jit_denoiser and sampled by jitlib.sample equals the JiT oracle's run."""
    mixture = GaussianMixture([[1.0, 0.0], [-1.0, 0.5]], 0.2)

    def edm_net(x, sigma, y=None):  # D(x; σ) for the mixture, from the JiT oracle at the equivalent (z, t)
        t = 1 / (1 + sigma)
        return mixture.ideal(x * t[:, None], t).x

    wrapped = C.as_jit_denoiser(edm_net, "edm", "denoised")
    assert wrapped.null_label is None
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(6))
    grid = torch.linspace(float(C.to_jit_time(80.0, "edm")), 1.0, 30)
    ours = sample(wrapped, noise, time_grid=grid, method="heun")
    reference = sample(mixture.denoiser(), noise, time_grid=grid, method="heun")
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="start a sampling grid at t = 0.01"):
        sample(wrapped, noise, steps=10)


@pytest.mark.parametrize("name", NAMES)
def test_check_noising_identifies_each_convention(name):
    result = check_noising(reader_noising(name))
    assert name in result.matches and result.ok, result.message
    named = check_noising(reader_noising(name), name)
    assert named.ok and named.message.startswith("✓"), named.message
    # paths that are the same path under another name are reported together, and only those
    same_path = {"jit": {"flow_matching", "sit_code"}, "sit_paper": {"diffusers_flow"}}
    groups = [{k} | v for k, v in same_path.items()]
    group = next((g for g in groups if name in g), {name})
    assert set(result.matches) == group


@pytest.mark.parametrize("name, kind", KINDS)
def test_check_target_identifies_each_output(name, kind):
    result = check_target(reader_target(name, kind), name, kind)
    assert result.ok, result.message
    assert f"{name}:{kind}" in check_target(reader_target(name, kind)).matches


def test_checkers_reject_and_explain_wrong_code():
    def tcol(t):
        return t.view(-1, 1, 1, 1)

    flipped = check_target(lambda x, e, t: e - x, "jit", "v")
    assert not flipped.ok and "sign is flipped" in flipped.message
    assert "diffusers_flow:velocity" in flipped.matches  # ε − x is diffusers' flow target
    reversed_time = check_noising(lambda x, e, t: (1 - tcol(t)) * x + tcol(t) * e, "jit")
    assert not reversed_time.ok and "swapped" in reversed_time.message
    clipped = check_noising(lambda x, e, t: interpolate(x, e, t).clamp(-1, 1), "jit")
    assert not clipped.ok and "not a fixed combination" in clipped.message and not clipped.matches
    scaled = check_target(lambda x, e, t: 2 * (x - e), "flow_matching", "velocity")
    assert not scaled.ok and "2 ×" in scaled.message
    squared = check_noising(lambda x, e, t: tcol(t) ** 2 * x + (1 - tcol(t)) * e)
    assert not squared.ok and squared.matches == () and "matches no registered convention" in squared.message
    wrong_v = check_target(reader_target("ddpm", "epsilon"), "ddpm", "v_prediction")
    assert not wrong_v.ok and "ddpm:epsilon" in wrong_v.matches
    abar = _ddpm_alphas_cumprod().float()

    def ddpm_noising(x, e, k):  # indexing ᾱ with a float σ raises: reported, not propagated
        return tcol(abar[k]).sqrt() * x + tcol(1 - abar[k]).sqrt() * e

    ddpm_as_edm = check_noising(ddpm_noising, "edm")
    assert not ddpm_as_edm.ok and "raised" in ddpm_as_edm.message and ddpm_as_edm.matches == ("ddpm",)
    shape = check_noising(lambda x, e, t: x.flatten(1), "jit")
    assert not shape.ok and "shape" in shape.message


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: C.get_convention("ddim"), "not registered; valid: jit"),
        (lambda: C.to_jit_time(torch.tensor([1000.0]), "ddpm"), r"must lie in \[0, 999\]"),
        (lambda: C.to_jit_time(torch.tensor([1.5]), "flow_matching"), r"must lie in \[0, 1\]"),
        (lambda: C.from_jit_time(torch.tensor([1.2]), "edm"), r"t must lie in \[0, 1\]"),
        (lambda: C.from_jit_time(torch.tensor([0.0]), "edm"), "no edm time"),
        (lambda: C.from_jit_time(torch.tensor([0.999]), "ddpm"), "covers JiT times 0.0063"),
        (lambda: C.to_jit_time(0.5, "jit", noise_scale=-1.0), "noise_scale=-1.0 must be"),
        (lambda: C.to_jit_state(torch.zeros(3, 2), torch.zeros(2), "jit"), r"time has shape \(2,\)"),
        (
            lambda: C.to_jit_prediction(torch.zeros(2, 3), "v", torch.zeros(2, 3), 0.5, "ddpm"),
            "not a ddpm output",
        ),
        (lambda: C.to_jit_prediction(torch.zeros(2, 3), "x", torch.zeros(2, 2), 0.5, "jit"), "must match"),
        (
            lambda: C.to_jit_prediction(
                torch.zeros(1, 3), "epsilon", torch.zeros(1, 3), 0.0, "flow_matching"
            ),
            "does not determine",
        ),
        (lambda: C.ddpm_alphas_cumprod(beta_schedule="cosine"), "beta_schedule='cosine' is not known"),
        (lambda: C.edm_convention(sigma_data=-1.0), "sigma_data=-1.0 must be > 0"),
        (lambda: C.edm_preconditioning(torch.ones(1), sigma_data=0.0), "sigma_data=0.0 must be > 0"),
        (lambda: C.conventions_table(columns=("name", "colour")), r"\['colour'\] are not table columns"),
        (lambda: check_target(lambda x, e, t: x, kind="v"), "needs a convention"),
        (lambda: check_noising(lambda x, e, t: x, data_shape=(1,)), "at least 2 elements"),
    ],
)
def test_bad_input_gives_one_line_errors(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_check_rejects_a_non_function():
    with pytest.raises(TypeError, match="fn must be a function"):
        check_noising("not a function")  # type: ignore[arg-type]


def test_table_has_a_row_per_convention():
    table = C.conventions_table()
    lines = table.splitlines()
    assert len(lines) == 2 + len(C.CONVENTIONS)
    assert lines[0].count("|") == len(C.TABLE_COLUMNS) + 1
    for name in C.CONVENTIONS:
        assert f"`{name}`" in table
    two = C.conventions_table(columns=("name", "to JiT"), names=("edm",)).splitlines()
    assert two[2] == "| `edm` | t = 1/(1 + σ), z = x/(1 + σ) |"


def test_prediction_from_jit_uses_x_and_eps():
    x, n = _data(seed=7)
    t = torch.full((8,), 0.3, dtype=torch.float64)
    pred = Prediction(x=x, eps=n, v=torch.full_like(x, math.nan))  # v is not needed
    out = C.from_jit_prediction(pred, "velocity", t, "diffusers_flow")
    torch.testing.assert_close(out, n - x)
