"""Euler/Heun (Eq. 4, Tab. 9) driven by the exact ideal denoiser of a Gaussian mixture; CFG and its interval."""

import math

import pytest
import torch

from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.oracle import GaussianMixture
from jitlib.diffusion.sampling import Trajectory, guidance_active, linear_grid, sample

STEPS = (4, 8, 16, 32, 64)


def _mixture():
    return GaussianMixture(
        [[-1.5, 0.0], [1.0, 1.0], [0.5, -1.2]], [0.3, 0.2, 0.4], [0.5, 0.3, 0.2], classes=[0, 1, 1]
    )


def _noise(n=512, d=2, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _gaussian_x_net(mu: float, sigma: float, s: float = 1.0):
    """x-prediction net of the ideal denoiser for data N(mu, sigma² I) of any shape: E[x|z] = mu + tσ²/τ²(z − t mu)."""

    def net(z, t, y=None):
        tt = t.view(-1, *[1] * (z.dim() - 1))
        tau2 = (tt * sigma) ** 2 + ((1 - tt) * s) ** 2
        return mu + tt * sigma**2 / tau2 * (z - tt * mu)

    return net


class CountingDenoiser:
    """Records (t, batch size, labels) of every call, to prove one batched forward per evaluation."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []
        self.null_label = inner.null_label

    def __call__(self, z, t, y=None):
        assert bool((t == t[0]).all())
        self.calls.append((float(t[0]), z.shape[0], None if y is None else y.clone()))
        return self.inner(z, t, y)


def test_error_falls_with_steps_heun_faster_than_euler():
    """Error to a 400-step Heun reference on a 2-D mixture; prints the table of the report."""
    gm = _mixture()
    den, noise = gm.denoiser(), _noise(256)
    ref = sample(den, noise, steps=400, method="heun")
    # the reference itself carries N(0, I) to the mixture (sample moments within ~4 standard errors)
    se = gm.cov().diagonal().sqrt() / math.sqrt(len(noise))
    assert bool(((ref.mean(0) - gm.mean()).abs() < 4 * se).all())
    assert (torch.cov(ref.T) - gm.cov()).abs().max() < 0.25
    err = {}  # median pathwise ‖z_1 − z_1^ref‖ and Frobenius error of the sample covariance
    for method in ("euler", "heun"):
        for n in STEPS:
            out = sample(den, noise, steps=n, method=method)
            path = (out - ref).norm(dim=1).median().item()
            err[method, n] = (path, torch.linalg.matrix_norm(torch.cov(out.T) - torch.cov(ref.T)).item())
    print("\nsteps | NFE Euler | NFE Heun | Euler path err | Heun path err | Euler cov err | Heun cov err")
    for n in STEPS:
        (ep, ec), (hp, hc) = err["euler", n], err["heun", n]
        print(f"{n:5d} | {n:9d} | {2 * n - 1:8d} | {ep:14.2e} | {hp:13.2e} | {ec:13.2e} | {hc:12.2e}")
    for n, n2 in zip(STEPS[1:-1], STEPS[2:], strict=True):
        euler_ratio = err["euler", n][0] / err["euler", n2][0]
        heun_ratio = err["heun", n][0] / err["heun", n2][0]
        assert 1.6 < euler_ratio < 2.6, (
            f"Euler should be first order, error ratio {euler_ratio:.2f} at {n}→{n2}"
        )
        assert 3.0 < heun_ratio < 5.5, (
            f"Heun should be second order, error ratio {heun_ratio:.2f} at {n}→{n2}"
        )
    for n in STEPS[1:-1]:
        assert err["heun", n][0] < err["euler", 2 * n][0]  # Heun wins even at equal network evaluations
    assert all(err["heun", n][1] < err["euler", n][1] for n in STEPS)


def test_heun_matches_the_closed_form_flow_for_gaussian_images():
    """For data N(μ, σ²I) the ODE is solved by z_t = tμ + (τ_t/s) z_0: check on (B, C, H, W) tensors."""
    mu, sigma = 0.3, 0.5
    noise = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    den = Denoiser(_gaussian_x_net(mu, sigma), "x", t_eps=0.0)
    worst = []
    for steps in (50, 100):
        traj = sample(den, noise, steps=steps, return_trajectory=True)
        exact = [t * mu + math.sqrt((t * sigma) ** 2 + (1 - t) ** 2) * noise for t in traj.ts.tolist()]
        worst.append(max((z - e).abs().max().item() for z, e in zip(traj.z, exact, strict=True)))
    assert worst[1] < 5e-4 and worst[0] / worst[1] > 3.5  # accurate along the whole path, second order


def test_last_step_x_removes_the_residual_noise_of_the_clip():
    """JiT#59: with t_eps = 0.05 the Euler last step of 50-step Heun leaves noise; returning x̂ removes most of it."""
    mu, sigma = 0.3, 0.05
    noise = torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    exact = mu + sigma * noise

    def rms(out):
        return (out - exact).pow(2).mean().sqrt().item()

    clipped = Denoiser(_gaussian_x_net(mu, sigma), "x", t_eps=0.05)
    leftover, clean = rms(sample(clipped, noise)), rms(sample(clipped, noise, last_step="x"))
    assert clean < 0.5 * leftover
    assert (
        rms(sample(clipped, noise, t_eps=1e-3)) < 0.5 * leftover
    )  # JiT#59's other fix: a smaller clip at sampling
    exact_v = Denoiser(_gaussian_x_net(mu, sigma), "x", t_eps=0.0)  # unclipped: the Euler last step *is* x̂
    torch.testing.assert_close(
        sample(exact_v, noise, last_step="x"), sample(exact_v, noise), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("method, evaluations", [("heun", 2 * 10 - 1), ("euler", 10)])
def test_cfg_uses_one_batched_forward_per_evaluation(method, evaluations):
    gm = _mixture()
    den = CountingDenoiser(gm.denoiser())
    labels = torch.tensor([0, 1, 1, 0])
    sample(den, _noise(4), steps=10, method=method, labels=labels, cfg_scale=3.0, cfg_interval=(0.1, 1.0))
    assert len(den.calls) == evaluations
    for t, batch, y in den.calls:
        if guidance_active(t, (0.1, 1.0)):
            assert batch == 8 and torch.equal(y, torch.cat([labels, torch.full((4,), gm.null_label)]))
        else:
            assert batch == 4 and torch.equal(y, labels)
    assert [batch for t, batch, _ in den.calls if t <= 0.1] == [4] * (2 if method == "euler" else 3)


def test_cfg_scale_one_equals_no_guidance():
    gm = _mixture()
    noise, labels = _noise(64, seed=3), torch.randint(0, 2, (64,), generator=torch.Generator().manual_seed(3))
    den = CountingDenoiser(gm.denoiser())
    plain = sample(den, noise, steps=12, labels=labels)
    assert all(batch == 64 for _, batch, _ in den.calls)  # ω = 1: no unconditional pass at all
    through_cfg = sample(
        gm.denoiser(), noise, steps=12, labels=labels, cfg_scale=1.0 + 1e-12, cfg_interval=(0.0, 1.0)
    )
    torch.testing.assert_close(through_cfg, plain, rtol=0, atol=1e-9)
    guided = sample(gm.denoiser(), noise, steps=12, labels=labels, cfg_scale=3.0, cfg_interval=(0.0, 1.0))
    assert (guided - plain).abs().max() > 1e-2


def test_guidance_is_off_outside_its_interval():
    gm = _mixture()
    noise, labels = _noise(32, seed=4), torch.tensor([0, 1] * 16)
    kwargs = {"steps": 20, "labels": labels, "return_trajectory": True}
    interval = (0.5, 0.75)
    plain = sample(gm.denoiser(), noise, **kwargs)
    guided = sample(gm.denoiser(), noise, cfg_scale=4.0, cfg_interval=interval, **kwargs)
    for t, z_plain, z_guided, x_guided in zip(
        plain.ts.tolist(), plain.z, guided.z, guided.x_hat, strict=False
    ):
        if t <= 0.5:  # no guided evaluation has happened yet (t = 0.5 itself is outside (0.5, 0.75])
            assert torch.equal(z_plain, z_guided)
        tb = torch.full((32,), t, dtype=noise.dtype)
        unguided_x = gm.denoiser()(z_guided, tb, labels).x  # what x̂ would be without guidance at this point
        assert torch.equal(x_guided, unguided_x) != guidance_active(t, interval)
    empty = sample(gm.denoiser(), noise, steps=20, labels=labels, cfg_scale=4.0, cfg_interval=(1.0, 1.0))
    assert torch.equal(empty, plain.final)


def test_guidance_interval_boundaries():
    """The official rule t < t_hi and (t > t_lo or t_lo = 0): open at both ends, except t = 0 when t_lo = 0."""
    assert not guidance_active(0.1, (0.1, 1.0))  # open at t_lo: the paper's grid point t = 0.1 is unguided
    assert guidance_active(0.1 + 1e-9, (0.1, 1.0))
    assert not guidance_active(1.0, (0.1, 1.0))  # open at t_hi (the sampler never evaluates t = 1 anyway)
    assert not guidance_active(0.5, (0.1, 0.5)) and guidance_active(0.5 - 1e-9, (0.1, 0.5))
    assert guidance_active(0.0, (0.0, 1.0)) and guidance_active(0.0, (0.0, 0.7))  # t_lo = 0: "no interval"
    assert not guidance_active(0.0, (0.1, 1.0)) and not guidance_active(0.7, (0.0, 0.7))
    assert guidance_active(0.98, (0.1, 1.0)) and not guidance_active(0.5, (1.0, 1.0))
    assert linear_grid(50)[5] == 0.1 and linear_grid(50)[-1] == 1.0


def test_guidance_pushes_samples_toward_their_class():
    gm = _mixture()
    noise, labels = _noise(256, seed=5), torch.ones(256, dtype=torch.long)
    far = gm.means[0]  # class 0's only component
    dist = [
        (sample(gm.denoiser(), noise, steps=20, labels=labels, cfg_scale=w) - far).norm(dim=1).mean().item()
        for w in (1.0, 3.0)
    ]
    assert dist[1] > dist[0]


def test_trajectory_and_determinism():
    gm = _mixture()
    noise = _noise(16, seed=6)
    traj = sample(gm.denoiser(), noise, steps=7, method="heun", last_step="x", return_trajectory=True)
    assert isinstance(traj, Trajectory) and traj.ts.tolist() == linear_grid(7)
    assert len(traj.z) == 8 and len(traj.x_hat) == 7 and traj.z[0] is noise
    assert torch.equal(traj.final, traj.z[-1]) and torch.equal(traj.final, traj.x_hat[-1])
    assert torch.equal(traj.final, sample(gm.denoiser(), noise, steps=7, last_step="x"))
    grid = [0.0, 0.2, 0.5, 0.9, 1.0]  # a custom time grid
    custom = sample(
        gm.denoiser(), noise, time_grid=torch.tensor(grid, dtype=torch.float64), return_trajectory=True
    )
    assert custom.ts.tolist() == grid and len(custom.x_hat) == 4
    half = sample(gm.denoiser(), noise.float(), steps=7, last_step="x")  # dtype follows the noise
    assert half.dtype == torch.float32 and (half.double() - traj.final).abs().max() < 1e-4


def test_null_label_comes_from_the_network():
    class Net(torch.nn.Module):
        num_classes = 2

        def forward(self, z, t, y):
            return _mixture().denoiser()(z, t, y).x

    den = Denoiser(Net(), "x", t_eps=0.0)
    labels = torch.tensor([0, 1])
    out = sample(den, _noise(2), steps=4, labels=labels, cfg_scale=2.0)
    ref = sample(_mixture().denoiser(), _noise(2), steps=4, labels=labels, cfg_scale=2.0)
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 0}, "steps=0 must be an integer ≥ 1"),
        ({"method": "rk4"}, "method='rk4' is not a sampler; valid: heun, euler"),
        ({"last_step": "heun"}, "last_step='heun'"),
        ({"cfg_scale": 2.0}, "cfg_scale=2.0 needs class labels"),
        ({"cfg_scale": 2.0, "labels": torch.zeros(4, dtype=torch.long)}, "needs null_label"),
        ({"labels": torch.zeros(3, dtype=torch.long)}, r"labels has shape \(3,\); expected \(4,\)"),
        ({"cfg_interval": (0.5, 0.2)}, r"cfg_interval=\(0.5, 0.2\)"),
        ({"time_grid": [0.0, 0.5, 0.4, 1.0]}, "strictly increasing"),
        ({"time_grid": [0.0, 0.5, 1.0], "steps": 3}, "steps=3 disagrees"),
    ],
)
def test_bad_input_gives_one_line_value_error(kwargs, match):
    def no_label_denoiser(z, t, y=None):
        return _mixture().denoiser()(z, t)

    with pytest.raises(ValueError, match=match) as info:
        sample(no_label_denoiser, _noise(4), **kwargs)
    assert "\n" not in str(info.value)
