"""A data distribution whose ideal denoiser is known in closed form: an isotropic Gaussian mixture.

Data x ~ Σ_k π_k N(μ_k, σ_k² I) in R^D, noise ε ~ N(0, s² I), z_t = t·x + (1 − t)·ε (Eq. 1). Given component k,
(x, ε, z_t) are jointly Gaussian with

    z_t | k ~ N(t·μ_k, τ_k² I),  τ_k² = t²σ_k² + (1 − t)² s²,
    E[x | z_t, k] = μ_k + (t σ_k² / τ_k²)(z_t − t μ_k),   E[ε | z_t, k] = ((1 − t) s² / τ_k²)(z_t − t μ_k),

and the ideal (MSE-optimal) predictions average these over the posterior p(k | z_t) ∝ π_k N(z_t; t μ_k, τ_k² I).
E[v | z_t] = E[x | z_t] − E[ε | z_t] is the exact velocity field of the probability-flow ODE (Eq. 4). No division by
t or 1 − t occurs, so no clip is needed and every t in [0, 1] is valid (σ_k > 0).

Components may carry class labels, giving class-conditional data; the label id ``num_classes`` (the null label, as for
JiT's networks) or ``y=None`` means "any class".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from jitlib.diffusion.interpolation import expand_t
from jitlib.diffusion.targets import Prediction, Target


class GaussianMixture:
    """Σ_k π_k N(μ_k, σ_k² I): ``means`` (K, D), ``stds`` (K,) or a scalar, ``weights`` (K,) (default uniform), ``classes`` (K,)."""

    def __init__(
        self,
        means: Tensor | Sequence[Sequence[float]],
        stds: Tensor | Sequence[float] | float,
        weights: Tensor | Sequence[float] | None = None,
        classes: Tensor | Sequence[int] | None = None,
    ) -> None:
        self.means = torch.as_tensor(means, dtype=torch.float64)
        if self.means.dim() != 2 or self.means.shape[0] < 1:
            raise ValueError(f"means has shape {tuple(self.means.shape)}; expected (K, D) with K ≥ 1")
        k = self.means.shape[0]
        self.stds = torch.as_tensor(stds, dtype=torch.float64).expand(k).clone()
        if not bool((self.stds > 0).all()):
            raise ValueError(f"stds={self.stds.tolist()} must all be > 0")
        w = (
            torch.ones(k, dtype=torch.float64)
            if weights is None
            else torch.as_tensor(weights, dtype=torch.float64)
        )
        if w.shape != (k,) or not bool((w >= 0).all()) or not w.sum() > 0:
            raise ValueError(f"weights={w.tolist()} must be {k} non-negative numbers with a positive sum")
        self.weights = w / w.sum()
        self.classes = (
            torch.zeros(k, dtype=torch.long)
            if classes is None
            else torch.as_tensor(classes, dtype=torch.long)
        )
        if self.classes.shape != (k,) or not bool((self.classes >= 0).all()):
            raise ValueError(
                f"classes={self.classes.tolist()} must be {k} non-negative class ids, one per component"
            )
        self.num_classes = int(self.classes.max()) + 1

    @property
    def dim(self) -> int:
        """D, the data dimension."""
        return self.means.shape[1]

    @property
    def null_label(self) -> int:
        """The "no class" label id (= num_classes), as for JiT networks."""
        return self.num_classes

    def mean(self) -> Tensor:
        """E[x] = Σ_k π_k μ_k, shape (D,)."""
        return self.weights @ self.means

    def cov(self) -> Tensor:
        """Cov[x] = Σ_k π_k (σ_k² I + μ_k μ_kᵀ) − E[x]E[x]ᵀ, shape (D, D)."""
        second = torch.einsum("k,ki,kj->ij", self.weights, self.means, self.means)
        m = self.mean()
        return (
            second
            + (self.weights @ self.stds**2) * torch.eye(self.dim, dtype=torch.float64)
            - torch.outer(m, m)
        )

    def _component_weights(self, y: Tensor | None, n: int) -> Tensor:
        """π_k restricted to each sample's class (rows of shape (n, K)); y = None or the null label keeps all classes."""
        prior = self.weights.expand(n, -1)
        if y is None:
            return prior
        if tuple(y.shape) != (n,) or not bool(((y >= 0) & (y <= self.num_classes)).all()):
            raise ValueError(
                f"y must be ({n},) class ids in [0, {self.num_classes}] (null = {self.num_classes})"
            )
        y = y.to("cpu", torch.long)
        keep = (self.classes[None, :] == y[:, None]) | (y[:, None] == self.num_classes)
        masked = prior * keep
        return masked / masked.sum(dim=1, keepdim=True)

    def sample(self, n: int, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        """n draws x ~ Σ_k π_k N(μ_k, σ_k² I) (of class y[i] when ``y`` is given), shape (n, D), float32 on the CPU."""
        if n < 1:
            raise ValueError(f"n={n} must be ≥ 1")
        k = torch.multinomial(self._component_weights(y, n), 1, generator=generator).squeeze(1)
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return (self.means[k] + self.stds[k, None] * noise).float()

    def posterior(self, z: Tensor, t: Tensor, y: Tensor | None = None, noise_scale: float = 1.0) -> Tensor:
        """p(k | z_t) ∝ π_k N(z_t; t μ_k, τ_k² I), τ_k² = t²σ_k² + (1 − t)² s²; shape (B, K), float64."""
        z64, tt, var = self._moments(z, t, noise_scale)
        sq = ((z64[:, None, :] - tt[:, None, None] * self.means[None]) ** 2).sum(-1)
        log_p = self._component_weights(y, z.shape[0]).log() - 0.5 * sq / var - 0.5 * self.dim * var.log()
        return torch.softmax(log_p, dim=1)

    def _moments(self, z: Tensor, t: Tensor, noise_scale: float) -> tuple[Tensor, Tensor, Tensor]:
        """z and t in float64 on the CPU, and τ_k² per sample and component, shape (B, K)."""
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"z has shape {tuple(z.shape)}; expected (B, {self.dim}) for this mixture")
        if not noise_scale > 0:
            raise ValueError(f"noise_scale={noise_scale} must be > 0")
        expand_t(t, z)
        tt = t.to("cpu", torch.float64)
        var = (tt[:, None] * self.stds[None]) ** 2 + ((1 - tt[:, None]) * noise_scale) ** 2
        return z.to("cpu", torch.float64), tt, var

    def ideal(self, z: Tensor, t: Tensor, y: Tensor | None = None, noise_scale: float = 1.0) -> Prediction:
        """The ideal denoiser: E[x | z_t], E[ε | z_t], E[v | z_t] exactly (module docstring), on z's device/dtype."""
        z64, tt, var = self._moments(z, t, noise_scale)
        post = self.posterior(z, t, y, noise_scale)
        resid = z64[:, None, :] - tt[:, None, None] * self.means[None]  # z − t μ_k, (B, K, D)
        x_k = self.means[None] + (tt[:, None] * self.stds[None] ** 2 / var)[..., None] * resid
        eps_k = ((1 - tt[:, None]) * noise_scale**2 / var)[..., None] * resid
        x = torch.einsum("bk,bkd->bd", post, x_k)
        eps = torch.einsum("bk,bkd->bd", post, eps_k)
        back = {"dtype": z.dtype, "device": z.device}
        return Prediction(x=x.to(**back), eps=eps.to(**back), v=(x - eps).to(**back))

    def denoiser(self, noise_scale: float = 1.0) -> OracleDenoiser:
        """The ideal denoiser as a callable (z, t, y) -> Prediction, for noise ε ~ N(0, noise_scale² I)."""
        return OracleDenoiser(self, noise_scale)

    def nll(self, x: Tensor) -> Tensor:
        """−log p(x) per sample under the mixture, shape (n,): a check that samples land on the data."""
        x64 = x.to("cpu", torch.float64)
        var = self.stds**2
        sq = ((x64[:, None, :] - self.means[None]) ** 2).sum(-1)
        log_p = self.weights.log() - 0.5 * sq / var - 0.5 * self.dim * (2 * math.pi * var).log()
        return -torch.logsumexp(log_p, dim=1)


class OracleDenoiser:
    """Callable (z, t, y) -> Prediction giving E[x|z_t], E[ε|z_t], E[v|z_t] of a :class:`GaussianMixture` exactly."""

    def __init__(self, mixture: GaussianMixture, noise_scale: float = 1.0) -> None:
        self.mixture = mixture
        self.noise_scale = noise_scale
        self.null_label = mixture.null_label

    def __call__(self, z: Tensor, t: Tensor, y: Tensor | None = None) -> Prediction:
        """E[· | z_t] for x, ε and v under the mixture (class y, or any class for y = None / the null label)."""
        return self.mixture.ideal(z, t, y, self.noise_scale)

    def net(self, target: Target = "x") -> Callable[..., Tensor]:
        """This oracle as a network ``net(z, t, y) -> tensor`` predicting ``target``, to wrap in a Denoiser."""
        return lambda z, t, y=None: self(z, t, y).get(target)
