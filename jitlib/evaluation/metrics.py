"""Scoring generated images: an offline proxy metric for the small data sets, and FID / IS / precision–recall.

**Proxy metric** (no download, seconds on a CPU): a small CNN classifier is trained on the real data set
(deterministically; the one for 32-px digits ships with jitlib, others are cached to a file). Generated images are
scored by

- the Fréchet distance between Gaussians fitted to the classifier's penultimate features of generated and of real
  training images, FD = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) — FID's formula with a small domain-specific network;
- the classifier's accuracy on class-conditional samples (does a "3" look like a 3?).

Both come with what real images score: the FD of as many real images (FD is biased upwards for small samples), and
the classifier's accuracy on held-out real images.

**FID / IS / PR** go through torch-fidelity's Inception-v3 (the optional extra ``jitlib[fid]``; it pulls torchvision,
so it is imported only when used). Reference statistics (μ, Σ of the 2048-d pool features) can be computed by
jitlib for any image folder, center-cropped like the training data.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from jitlib.integrity import verify_file
from jitlib.training.config import DataConfig
from jitlib.training.data import (
    IMAGE_EXTENSIONS,
    DataError,
    build_dataset,
    center_crop_adm,
    stack_dataset,
    unit_to_uint8,
)

PROXY_VERSION = 3
PROXY_ASSET_DIR = Path(__file__).parents[1] / "assets" / "proxy"
PROXY_DATASETS = ("digits", "shapes", "cifar10")
FID_INSTALL_HINT = (
    "pip install 'jitlib[fid]' (it pulls torchvision, so install it with a torch build that matches)"
)


def cache_dir() -> Path:
    """Where jitlib caches files it can recompute: ``$JITLIB_CACHE`` or ``~/.cache/jitlib``."""
    return Path(os.environ.get("JITLIB_CACHE", Path.home() / ".cache" / "jitlib"))


# ---------------------------------------------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------------------------------------------


def gaussian_stats(features: np.ndarray | Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean μ (D,) and covariance Σ (D, D) (unbiased, N − 1) of features (N, D), in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be (N, D) with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """‖μ₁ − μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2 Tr (Σ₁Σ₂)^½, with Tr (Σ₁Σ₂)^½ = Σᵢ √λᵢ(Σ₁Σ₂) (λ real, ≥ 0 for PSD Σ's)."""
    mu1, mu2, sigma1, sigma2 = (np.asarray(a, dtype=np.float64) for a in (mu1, mu2, sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f"statistics do not match: μ {mu1.shape} vs {mu2.shape}, Σ {sigma1.shape} vs {sigma2.shape}"
        )
    eigenvalues = np.linalg.eigvals(sigma1 @ sigma2).real
    tr_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_sqrt)


def frechet_distance_features(a: np.ndarray | Tensor, b: np.ndarray | Tensor) -> float:
    """The Fréchet distance of the Gaussians fitted to feature rows a (N, D) and b (M, D), with unbiased covariances.

    Σ_a = AᵀA/(N − 1) for the centred rows A, so the non-zero eigenvalues of Σ_aΣ_b are the squared singular values
    of AB ᵀ/√((N − 1)(M − 1)): Tr (Σ_aΣ_b)^½ = ‖ABᵀ‖_* / √((N − 1)(M − 1)). An N×M SVD instead of a D×D
    eigen-problem: exact, and fast when N, M ≪ D (a few hundred Inception features of 2048 dimensions); when
    N·M > D² the D×D route of :func:`frechet_distance` is used instead.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"features must be (N, D) and (M, D) with N, M >= 2, got {a.shape} and {b.shape}")
    if len(a) * len(b) > a.shape[1] ** 2:  # more rows than dimensions: the D×D route is the smaller problem
        return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    ca, cb = a - a.mean(axis=0), b - b.mean(axis=0)
    na, nb = len(a) - 1, len(b) - 1
    tr_sqrt = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt(na * nb)
    diff = a.mean(axis=0) - b.mean(axis=0)
    return float(diff @ diff + (ca * ca).sum() / na + (cb * cb).sum() / nb - 2 * tr_sqrt)


def precision_recall(
    real_feats: np.ndarray | Tensor, fake_feats: np.ndarray | Tensor, k: int = 3
) -> dict[str, float]:
    """Improved precision/recall (Kynkäänniemi et al. 2019): the share of fake features inside the real k-NN manifold
    (∪ balls of radius = distance to the k-th nearest real neighbour) and of real features inside the fake one."""
    real = torch.as_tensor(np.asarray(real_feats), dtype=torch.float64)
    fake = torch.as_tensor(np.asarray(fake_feats), dtype=torch.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"features must be (N, D) and (M, D), got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    if not 1 <= k < min(len(real), len(fake)):
        raise ValueError(
            f"k={k} must be in [1, {min(len(real), len(fake)) - 1}] for {len(real)} real, {len(fake)} fake"
        )

    def radii(
        points: Tensor,
    ) -> Tensor:  # distance to the k-th nearest other point (index k: index 0 is itself)
        return torch.cat([torch.cdist(c, points).kthvalue(k + 1, dim=1).values for c in points.split(1024)])

    def coverage(points: Tensor, centres: Tensor, radius: Tensor) -> float:
        inside = [(torch.cdist(c, centres) <= radius).any(dim=1) for c in points.split(1024)]
        return float(torch.cat(inside).double().mean())

    return {
        "precision": coverage(fake, real, radii(real)),
        "recall": coverage(real, fake, radii(fake)),
    }


def inception_score(probs: np.ndarray | Tensor, splits: int = 10) -> tuple[float, float]:
    """IS = exp E_x KL(p(y|x) ‖ p(y)) per split of the class probabilities (N, C); mean and std over ``splits`` chunks."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) < splits or splits < 1:
        raise ValueError(f"probs must be (N, C) with N >= splits={splits}, got shape {p.shape}")
    scores = []
    for chunk in np.array_split(p, splits):
        marginal = chunk.mean(axis=0, keepdims=True)
        kl = (chunk * (np.log(np.clip(chunk, 1e-12, None)) - np.log(np.clip(marginal, 1e-12, None)))).sum(
            axis=1
        )
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


@torch.no_grad()
def denoising_loss_by_t(
    denoiser: Callable[..., Tensor],
    images: Tensor,
    ts: Iterable[float],
    *,
    seed: int = 0,
    noise_scale: float = 1.0,
    loss_target: str = "v",
) -> list[float]:
    """Mean per-sample loss E‖·‖² in ``loss_target`` space of ``denoiser.loss`` on ``images`` at each fixed t, same noise ε ~ N(0, s²I) at every t."""
    eps = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)) * noise_scale
    out = []
    for t in ts:
        tt = torch.full((len(images),), float(t))
        out.append(float(denoiser.loss(images, eps, tt, None, loss_target=loss_target).mean()))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Proxy metric: a small classifier of the data set itself
# ---------------------------------------------------------------------------------------------------------------


class ProxyNet(nn.Module):
    """A small CNN on images average-pooled to 16×16; features(x) is the 64-d penultimate layer the proxy FD compares.

    Pooling to 16×16 first and striding instead of max-pooling keep it at ~2M multiply-adds per image (CPU-quick).
    """

    def __init__(self, channels: int, num_classes: int, width: int = 32, feature_dim: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.AdaptiveAvgPool2d(16),
            nn.Conv2d(channels, width, 3, padding=1),
            nn.GroupNorm(8, width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.GroupNorm(8, 2 * width),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.GroupNorm(8, 2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(2 * width, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """He-normal weights and zero biases drawn from ``generator`` (no global RNG: the classifier is reproducible)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
                nn.init.zeros_(module.bias)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


@dataclass
class ProxyScore:
    """Proxy metric of a set of generated images, beside what the same number of real images scores."""

    fd: float  # Fréchet distance of generated vs. all real features
    accuracy: float | None  # classifier accuracy on conditional samples (None when no labels were given)
    num_images: int
    real_fd: float  # FD of the same number of real images: the floor (FD is biased upwards at small N)
    real_accuracy: float  # classifier accuracy on held-out real images

    def __str__(self) -> str:
        acc = "n/a" if self.accuracy is None else f"{100 * self.accuracy:.1f}%"
        return (
            f"proxy FD {self.fd:.3f} (real images: {self.real_fd:.3f}), class accuracy {acc} "
            f"(real {100 * self.real_accuracy:.1f}%) on {self.num_images} images"
        )


class ProxyClassifier:
    """A trained :class:`ProxyNet` plus the penultimate features of every real image, which it scores against."""

    def __init__(self, net: ProxyNet, real_features: np.ndarray, real_accuracy: float) -> None:
        self.net, self.real_features, self.real_accuracy = net.eval(), real_features, real_accuracy
        self.mu, self.sigma = gaussian_stats(real_features)

    @torch.no_grad()
    def features(self, images: Tensor, batch_size: int = 256) -> np.ndarray:
        """Penultimate features (N, 64) of images (N, C, H, W) in [−1, 1]."""
        return torch.cat([self.net.features(b.float()) for b in images.split(batch_size)]).numpy()

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 256) -> Tensor:
        """Predicted class ids (N,)."""
        return torch.cat([self.net(b.float()).argmax(1) for b in images.split(batch_size)])

    def real_fd(self, n: int, seed: int = 0) -> float:
        """FD of n real images (a seeded random subset) against all real images: what a perfect generator scores."""
        rows = np.random.default_rng(seed).permutation(len(self.real_features))[
            : min(n, len(self.real_features))
        ]
        return frechet_distance(*gaussian_stats(self.real_features[rows]), self.mu, self.sigma)

    def score(self, images: Tensor, labels: Tensor | None = None) -> ProxyScore:
        """FD of ``images`` against the real statistics, and accuracy w.r.t. ``labels`` when given."""
        mu, sigma = gaussian_stats(self.features(images))
        acc = None if labels is None else float((self.predict(images) == labels.cpu()).float().mean())
        fd = frechet_distance(mu, sigma, self.mu, self.sigma)
        return ProxyScore(fd, acc, len(images), self.real_fd(len(images)), self.real_accuracy)

    def state(self) -> dict:
        return {
            "version": PROXY_VERSION,
            "net": self.net.state_dict(),
            "real_features": torch.from_numpy(self.real_features),
            "real_accuracy": self.real_accuracy,
            "shape": [self.net.body[1].in_channels, self.net.head.out_features],
        }


def train_proxy(
    images: Tensor,
    labels: Tensor,
    num_classes: int,
    *,
    seed: int = 0,
    steps: int = 1000,
    batch_size: int = 64,
    holdout: float = 0.15,
) -> ProxyClassifier:
    """Train a ProxyNet with Adam on a seeded 85 % split of (images, labels); its accuracy is measured on the rest."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=gen)
    n_val = max(2 * num_classes, int(holdout * len(images)))
    val, train = order[:n_val], order[n_val:]
    net = ProxyNet(images.shape[1], num_classes)
    net.reset_parameters(gen)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    position, perm = len(train), train
    for _ in range(steps):
        if position + batch_size > len(train):
            perm, position = train[torch.randperm(len(train), generator=gen)], 0
        idx = perm[position : position + batch_size]
        position += batch_size
        loss = F.cross_entropy(net(images[idx].float()), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        features = torch.cat([net.features(b.float()) for b in images.split(256)]).numpy()
        accuracy = float(
            (torch.cat([net(b.float()).argmax(1) for b in images[val].split(256)]) == labels[val])
            .float()
            .mean()
        )
    return ProxyClassifier(net, features, accuracy)


def proxy_key(data: DataConfig) -> str:
    """File name of the cached classifier for a data set (its identity: name, size, and count for shapes)."""
    extra = f"-{data.num_images}" if data.name == "shapes" else ""
    return f"proxy-v{PROXY_VERSION}-{data.name}-{data.image_size}px{extra}.pt"


def shipped_proxy_path(data: DataConfig) -> Path | None:
    """The proxy classifier shipped inside jitlib for ``data``, or None (only digits at 32 px is shipped).

    The stored results of chapter 5 were scored with exactly this file; shipping it makes the proxy metric the same
    on every machine (a retrain on other hardware can differ in the last bits) and saves half a minute of training.
    """
    path = PROXY_ASSET_DIR / proxy_key(data)
    return path if path.is_file() else None


def load_proxy(path: str | Path) -> ProxyClassifier:
    """Read a classifier written by :meth:`ProxyClassifier.state` (``torch.load`` with ``weights_only=True``)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("version") != PROXY_VERSION:
        raise ValueError(
            f"{path} holds proxy classifier v{state.get('version')}, jitlib needs v{PROXY_VERSION}"
        )
    net = ProxyNet(*state["shape"])
    net.load_state_dict(state["net"])
    return ProxyClassifier(net, state["real_features"].numpy(), state["real_accuracy"])


def proxy_classifier(
    data: DataConfig,
    *,
    cache: str | Path | None = None,
    steps: int = 1000,
    seed: int = 0,
    dataset=None,
    shipped: bool = True,
) -> ProxyClassifier:
    """The proxy classifier of a small data set: shipped, cached in ``cache/proxy-…pt``, or trained (seeded) and cached.

    With the default recipe (``steps=1000, seed=0``, the data set built from ``data``) a classifier shipped in
    ``jitlib/assets/proxy`` is used first, after its SHA-256 is checked; ``shipped=False`` skips it.
    """
    if data.name not in PROXY_DATASETS:
        raise ValueError(
            f"the proxy metric covers {', '.join(PROXY_DATASETS)}, not data.name={data.name!r}; use FID"
        )
    packaged = (
        shipped_proxy_path(data) if (shipped and steps == 1000 and seed == 0 and dataset is None) else None
    )
    if packaged is not None:
        verify_file(packaged)
        return load_proxy(packaged)
    path = Path(cache) if cache is not None else cache_dir()
    path = path / proxy_key(data)
    if path.is_file():
        try:
            return load_proxy(path)
        except Exception:  # an unreadable or outdated cache file is rebuilt below
            pass
    dataset = dataset if dataset is not None else build_dataset(data, seed=seed)
    images, labels = stack_dataset(dataset)
    classifier = train_proxy(images, labels, dataset.num_classes, seed=seed, steps=steps)
    save_proxy(classifier, path)
    return classifier


def save_proxy(classifier: ProxyClassifier, path: str | Path) -> Path:
    """Write ``classifier`` to ``path`` atomically (a temporary file renamed into place: never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(classifier.state(), handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ---------------------------------------------------------------------------------------------------------------
# FID / IS / precision–recall through torch-fidelity (optional extra)
# ---------------------------------------------------------------------------------------------------------------


def require_torch_fidelity():
    """The ``torch_fidelity`` module, or an ImportError that says how to install it."""
    try:
        import torch_fidelity
    except ImportError:
        raise ImportError(
            f"FID/IS/PR need torch-fidelity, which is not installed: {FID_INSTALL_HINT}; "
            f"on a CPU without it, score small data sets with the proxy metric"
        ) from None
    return torch_fidelity


def inception(device: torch.device | str = "cpu") -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """torch-fidelity's Inception-v3: uint8 images (N, 3, H, W) → (2048-d pool features, 1008 unbiased logits)."""
    fidelity = require_torch_fidelity()
    net = (
        fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"])
        .to(device)
        .eval()
    )
    return lambda x: net(x.to(device))


def _rgb_uint8(images: Tensor) -> Tensor:
    """Images in [−1, 1] (N, C, H, W) → uint8 RGB (grey images repeated over 3 channels)."""
    out = unit_to_uint8(images)
    return out.expand(-1, 3, -1, -1) if out.shape[1] == 1 else out


@torch.no_grad()
def inception_features(
    batches: Iterable[Tensor], extractor: Callable | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(pool features (N, 2048), logits (N, 1008)) of batches of images in [−1, 1]."""
    extractor = extractor or inception("cuda" if torch.cuda.is_available() else "cpu")
    pools, logits = [], []
    for batch in batches:
        pool, logit = extractor(_rgb_uint8(batch))
        pools.append(pool.double().cpu())
        logits.append(logit.double().cpu())
    return torch.cat(pools).numpy(), torch.cat(logits).numpy()


def image_files(folder: str | Path) -> list[Path]:
    """All image files under ``folder`` (recursively, sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder {str(folder)!r} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"image folder {str(folder)!r} has no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def folder_batches(
    folder: str | Path, image_size: int | None, batch_size: int = 100, limit: int | None = None
):
    """Batches of the folder's images in [−1, 1], ADM center-cropped to ``image_size`` (None: as stored)."""
    files = image_files(folder)[:limit]
    for start in range(0, len(files), batch_size):
        arrays = []
        for path in files[start : start + batch_size]:
            try:
                with Image.open(path) as image:
                    rgb = image.convert("RGB")
            except (OSError, SyntaxError, ValueError) as err:
                raise DataError(f"cannot read image {str(path)!r}: {err}") from None
            arrays.append(np.asarray(center_crop_adm(rgb, image_size) if image_size else rgb))
        yield torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1


def reference_stats(
    folder: str | Path,
    out: str | Path,
    image_size: int | None = None,
    *,
    limit: int | None = None,
    extractor=None,
) -> Path:
    """Write ``out`` (.npz with mu, sigma of Inception pool features) for every image under ``folder``."""
    pools, _ = inception_features(folder_batches(folder, image_size, limit=limit), extractor)
    mu, sigma = gaussian_stats(pools)
    np.savez(out, mu=mu, sigma=sigma, num_images=len(pools))
    return Path(out)


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) from a reference .npz (jitlib's, the official ``jit_in256_stats.npz`` and torch-fidelity's use these keys)."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"reference statistics {str(path)!r} not found; make them with: jitlib eval ref-stats FOLDER --out FILE"
        )
    with np.load(path) as stats:
        if "mu" not in stats or "sigma" not in stats:
            raise ValueError(f"{str(path)!r} has no 'mu'/'sigma' arrays (found {', '.join(stats.files)})")
        return stats["mu"], stats["sigma"]


def fid_is(batches: Iterable[Tensor], ref_stats: str | Path, extractor=None) -> dict[str, float]:
    """FID against the reference statistics and Inception Score of images in [−1, 1] (any iterable of batches)."""
    mu_ref, sigma_ref = load_stats(ref_stats)
    pools, logits = inception_features(batches, extractor)
    mu, sigma = gaussian_stats(pools)
    is_mean, is_std = inception_score(torch.from_numpy(logits).softmax(dim=1).numpy())
    return {
        "fid": frechet_distance(mu, sigma, mu_ref, sigma_ref),
        "is": is_mean,
        "is_std": is_std,
        "num_images": len(pools),
    }


# ---------------------------------------------------------------------------------------------------------------
# Sweeps over CFG scale × EMA decay (the command line is jitlib.cli.eval)
# ---------------------------------------------------------------------------------------------------------------


def sweep(
    source: str | Path,
    cfg_scales: list[float],
    emas: list[str],
    *,
    num_images: int = 1000,
    metric: str = "proxy",
    ref_stats: str | Path | None = None,
    seed: int = 0,
    steps: int | None = None,
    batch_size: int = 100,
    device: str | torch.device = "cpu",
    cache: str | Path | None = None,
) -> list[dict[str, float | str]]:
    """Score every (EMA decay, CFG scale) pair on ``num_images`` class-cycled samples (the paper chooses both this way).

    ``source`` is anything :func:`jitlib.load` reads (run folder, checkpoint, artifact folder, shipped model name,
    official .pth); ``emas`` holds decays, "model" (the raw weights) or "all" (every EMA the model keeps). metric
    "proxy" (small data sets, offline) reports FD and class accuracy with the proxy classifier of the model's training
    data; "fid" reports FID against ``ref_stats`` (μ, Σ in an .npz) with the in-wheel Inception of
    :mod:`jitlib.evaluation.fid`. The same noise (``seed``) is used for every pair, so differences come from the pair
    alone.
    """
    from jitlib.artifact import RAW, load
    from jitlib.evaluation.generate import class_labels, generate

    if metric not in ("proxy", "fid"):
        raise ValueError(f"metric={metric!r} is not a metric; valid: proxy, fid")
    if metric == "fid" and ref_stats is None:
        raise ValueError(
            "metric fid needs reference statistics: --ref-stats FILE (make them with jitlib eval ref-stats)"
        )
    if not cfg_scales or not emas or num_images < 2 or batch_size < 1:
        raise ValueError(
            "give at least one CFG scale, one EMA, --num of 2 or more and a positive --batch-size"
        )
    ref_mu, ref_sigma = load_stats(ref_stats) if metric == "fid" else (None, None)
    model = load(source)
    every_ema = [v for v in model.variants if v != RAW]
    emas = [model.variant(e) for ema in emas for e in (every_ema if ema == "all" else [ema])]
    classifier = proxy_classifier(model.training_config.data, cache=cache) if metric == "proxy" else None
    rows: list[dict[str, float | str]] = []
    for ema in emas:
        gen = model.pipeline(ema, device)
        labels = class_labels(gen.num_classes, num_images)
        for scale in cfg_scales:
            images = generate(gen, labels, seed=seed, steps=steps, cfg_scale=scale, batch_size=batch_size)
            row: dict[str, float | str] = {"ema": ema, "cfg_scale": scale}
            if classifier is not None:
                score = classifier.score(images, labels if gen.num_classes > 0 else None)
                row.update(
                    fd=score.fd,
                    accuracy=score.accuracy if score.accuracy is not None else float("nan"),
                    real_fd=score.real_fd,
                )
            else:
                from jitlib.evaluation.fid import FeatureStats, inception_features

                stats = FeatureStats()
                for batch in images.split(batch_size):
                    stats.update(inception_features(batch, device=str(device)))
                row.update(fid=frechet_distance(stats.mean, stats.cov, ref_mu, ref_sigma), num_images=stats.n)
            rows.append(row)
    return rows


def format_table(rows: list[dict[str, float | str]]) -> str:
    """Rows of equal keys as an aligned text table, the best row (lowest fd/fid) marked with ``*``."""
    if not rows:
        return ""
    keys = list(rows[0])
    target = "fd" if "fd" in keys else "fid"
    best = min(range(len(rows)), key=lambda i: float(rows[i][target]))
    cells = [[f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True))]
    for i, c in enumerate(cells):
        lines.append(
            "  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)) + ("  *" if i == best else "")
        )
    return "\n".join(lines)
