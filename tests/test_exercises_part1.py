"""Part I exercise checks: correct solutions pass, and each typical mistake fails with a message that names it."""

import pytest
import torch

from jitlib.book.exercises import ch01, ch02, ch03
from jitlib.diffusion.targets import x_to_v


def _bt(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, *([1] * (like.dim() - 1)))


def _euler(net, noise, steps, clip=0.05):
    z = noise
    for i in range(steps):
        t = torch.full((z.shape[0],), i / steps)
        z = z + (net(z, t, None) - z) / (1 - _bt(t, z)).clamp_min(clip) / steps
    return z


def _loop_with_jitlib(net, noise, steps):
    """Chapter 1's own Euler loop, built on jitlib.diffusion.targets.x_to_v."""
    z = noise
    for i in range(steps):
        t = torch.full((z.shape[0],), i / steps)
        z = z + x_to_v(net(z, t, None), z, t) / steps
    return z


def test_ch01_interpolation(capsys: pytest.CaptureFixture[str]) -> None:
    ch01.check_interpolation(lambda x, eps, t: _bt(t, x) * x + (1 - _bt(t, x)) * eps)
    assert "✓" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="t = 0 is noise"):
        ch01.check_interpolation(lambda x, eps, t: _bt(t, x) * eps + (1 - _bt(t, x)) * x)
    with pytest.raises(AssertionError, match="differs"):
        ch01.check_interpolation(lambda x, eps, t: 0.5 * x + 0.5 * eps)
    with pytest.raises(AssertionError, match="returned NoneType"):
        ch01.check_interpolation(lambda x, eps, t: None)


def test_ch01_euler_sampler(capsys: pytest.CaptureFixture[str]) -> None:
    ch01.check_euler_sampler(_euler)
    ch01.check_euler_sampler(_loop_with_jitlib)
    assert capsys.readouterr().out.count("✓") == 2
    with pytest.raises(AssertionError, match="without the clip"):
        ch01.check_euler_sampler(lambda net, noise, steps: _euler(net, noise, steps, clip=0.0))
    with pytest.raises(AssertionError, match="differ from jitlib's Euler sampler"):
        ch01.check_euler_sampler(lambda net, noise, steps: _euler(net, noise, steps - 1 if steps > 1 else 1))


def test_ch02_eps_from_x(capsys: pytest.CaptureFixture[str]) -> None:
    def right(x_hat, z, t):
        t = _bt(t, z)
        return (z - t * x_hat) / (1 - t).clamp_min(0.05)

    ch02.check_eps_from_x(right)
    assert "✓" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="not finite at t = 1"):
        ch02.check_eps_from_x(lambda x_hat, z, t: (z - _bt(t, z) * x_hat) / (1 - _bt(t, z)))
    with pytest.raises(AssertionError, match="right inside the clip"):
        ch02.check_eps_from_x(lambda x_hat, z, t: (z - _bt(t, z) * x_hat) / (1 - _bt(t, z)).clamp_min(0.01))
    with pytest.raises(AssertionError, match="forgot to divide"):
        ch02.check_eps_from_x(lambda x_hat, z, t: z - _bt(t, z) * x_hat)


def test_ch02_eps_loss_weight(capsys: pytest.CaptureFixture[str]) -> None:
    ch02.check_eps_loss_weight(lambda t: t**2 / (1 - t).clamp_min(0.05) ** 2)
    assert "✓" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="clipped"):
        ch02.check_eps_loss_weight(lambda t: t**2 / (1 - t) ** 2)
    with pytest.raises(AssertionError, match="square it"):
        ch02.check_eps_loss_weight(lambda t: t / (1 - t).clamp_min(0.05))
    with pytest.raises(AssertionError, match="differs"):
        ch02.check_eps_loss_weight(lambda t: 1 / (1 - t).clamp_min(0.05) ** 2)  # the v-loss weight instead


def test_ch03_pca_spectrum(capsys: pytest.CaptureFixture[str]) -> None:
    def centred_cov(X, denominator):
        c = X - X.mean(0)
        return torch.linalg.eigvalsh(c.T @ c / denominator)

    ch03.check_pca_spectrum(lambda X: centred_cov(X, X.shape[0] - 1).flip(0))
    ch03.check_pca_spectrum(lambda X: centred_cov(X, X.shape[0]).flip(0))  # 1/N is accepted
    assert capsys.readouterr().out.count("✓") == 2
    with pytest.raises(AssertionError, match="increasing order"):
        ch03.check_pca_spectrum(lambda X: centred_cov(X, X.shape[0] - 1))
    with pytest.raises(AssertionError, match="subtract the mean"):
        ch03.check_pca_spectrum(lambda X: torch.linalg.eigvalsh(X.T @ X / X.shape[0]).flip(0))
    with pytest.raises(AssertionError, match="expected a tensor of shape"):
        ch03.check_pca_spectrum(lambda X: centred_cov(X, 1)[:3])


def test_ch03_effective_dimension(capsys: pytest.CaptureFixture[str]) -> None:
    def right(spectrum, fraction):
        return int((spectrum.cumsum(0) / spectrum.sum() < fraction - 1e-12).sum()) + 1

    ch03.check_effective_dimension(right)
    assert "✓" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="off by one"):
        ch03.check_effective_dimension(lambda s, f: right(s, f) - 1)
    with pytest.raises(AssertionError, match="expected"):
        ch03.check_effective_dimension(
            lambda s, f: int(f * s.numel())
        )  # counts dimensions, ignores the spectrum
