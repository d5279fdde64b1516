"""Generating images from a model ready to sample (a :class:`Pipeline`): integrate the ODE from noise (Heun, CFG with
interval), in memory (:func:`generate`) or streamed to ``.npz`` shards that an interrupted run resumes
(:func:`generate_shards`); write PNG grids, ``.npz`` files and PNG folders.

Sample i starts from its own noise z₀ = s·n, n ~ N(0, I) seeded by (seed, i), so an image depends only on the seed and
its global index — never on the batch size, the shard size, or whether the run was interrupted and resumed.
Pipelines come from :func:`jitlib.artifact.load` (any checkpoint, run folder, artifact folder, shipped asset or
official ``.pth``), which applies the noise scale, target and ``t_eps`` stored with the model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from jitlib.device import autocast_dtype
from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.interpolation import default_noise_scale, warn_noise_scale
from jitlib.diffusion.sampling import sample
from jitlib.nn.model import JiT
from jitlib.training.compiling import resolve_compile
from jitlib.training.config import DiffusionConfig, SampleConfig
from jitlib.training.data import unit_to_uint8

SHARD_PATTERN = "shard-{:06d}.npz"
MANIFEST = "generation.json"


@dataclass
class Pipeline:
    """A network ready to sample, with what sampling it needs to know: classes, noise scale, target, default sampler."""

    net: JiT
    diffusion: DiffusionConfig  # the recipe the network was trained with: target, t_eps, noise scale, precond
    defaults: SampleConfig = field(default_factory=SampleConfig)
    description: str = ""
    class_names: tuple[str, ...] = ()
    #: ``torch.compile`` the network for sampling: ``"auto"`` compiles on CUDA only (as training does), ``True`` /
    #: ``False`` force it. Compiled sampling pads the last batch so every call has the same shape (one graph).
    compile: bool | str = "auto"
    #: On CUDA, with compiling on: capture each network call in a CUDA graph (``mode="reduce-overhead"``), which
    #: removes the per-kernel launch cost that dominates small batches. Ignored elsewhere.
    cuda_graphs: bool = False
    _compiled: torch.nn.Module | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def noise_scale(self) -> float:
        """s of z₀ = s·n (App. A): the noise scale stored with the model (image_size / 256 if it stored none)."""
        s = self.diffusion.noise_scale
        return s if s is not None else default_noise_scale(self.net.config.input_size)

    @property
    def pred(self) -> str:
        return self.diffusion.pred

    @property
    def t_eps(self) -> float:
        return self.diffusion.t_eps

    @property
    def compiled(self) -> bool:
        """Whether sampling runs the compiled network (:attr:`compile` resolved on the network's device)."""
        return resolve_compile(self.compile, next(self.net.parameters()).device)

    def network(self) -> torch.nn.Module:
        """The module sampling calls: the network itself, or its compiled form (built once, then reused)."""
        if not self.compiled:
            return self.net
        if self._compiled is None:
            device = next(self.net.parameters()).device
            graphs = self.cuda_graphs and device.type == "cuda"
            compiled = torch.compile(self.net, dynamic=False, mode="reduce-overhead" if graphs else None)
            self._compiled = _GraphSafe(compiled) if graphs else compiled
        return self._compiled

    def denoiser(self) -> Denoiser:
        """``Denoiser(net, target, t_eps, precond)`` of the stored recipe: the callable (z, t, y) → x̂, ε̂, v̂."""
        d = self.diffusion
        return Denoiser(self.network(), target=d.pred, t_eps=d.t_eps, precond=d.precond)

    @property
    def num_classes(self) -> int:
        return self.net.config.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c = self.net.config
        return (c.in_channels, c.input_size, c.input_size)


class _GraphSafe(torch.nn.Module):
    """A CUDA-graph compiled network whose outputs survive the next call (Heun keeps one step's velocity).

    A CUDA graph writes every call's output into the same memory; marking a new step and cloning the output keeps
    the previous result valid, at the cost of one copy of the output.
    """

    def __init__(self, compiled: torch.nn.Module) -> None:
        super().__init__()
        self.compiled = compiled

    def __getattr__(self, name: str):  # the Denoiser reads the network's config
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.compiled, name)

    def forward(self, *args, **kwargs) -> Tensor:
        torch.compiler.cudagraph_mark_step_begin()
        return self.compiled(*args, **kwargs).clone()


def class_labels(num_classes: int, num: int | None = None, labels: Sequence[int] | None = None) -> Tensor:
    """The class ids to generate: ``labels`` as given (checked to be in 0..K−1), or ``num`` ids cycling 0, 1, …, K−1."""
    if labels is not None:
        out = torch.as_tensor(list(labels), dtype=torch.long)
        if num_classes == 0:
            raise ValueError("this model is unconditional (0 classes); omit the class labels")
        bad = out[(out < 0) | (out >= num_classes)]
        if bad.numel():
            raise ValueError(
                f"class id {int(bad[0])} out of range for a {num_classes}-class model; valid ids 0..{num_classes - 1}"
            )
        return out
    if num is None or num <= 0:
        raise ValueError(f"number of images must be > 0, got {num}")
    return torch.arange(num) % max(num_classes, 1)


def sample_noise(num: int, shape: tuple[int, ...], seed: int, start: int = 0) -> Tensor:
    """Standard normal noise ``(num, *shape)`` where row i comes from a generator seeded by (seed, start + i)."""
    gen = torch.Generator()
    rows = []
    for i in range(start, start + num):
        gen.manual_seed(int(np.random.SeedSequence([seed, i]).generate_state(1, dtype=np.uint64)[0]))
        rows.append(torch.randn(shape, generator=gen))
    return torch.stack(rows)


@dataclass(frozen=True)
class SamplerSettings:
    """The sampler of one generation run: the pipeline's defaults with any argument the caller set."""

    steps: int
    method: str
    cfg_scale: float
    cfg_interval: tuple[float, float]
    last_step: str

    @classmethod
    def resolve(
        cls,
        pipe: Pipeline,
        steps: int | None = None,
        method: str | None = None,
        cfg_scale: float | None = None,
        cfg_interval: tuple[float, float] | None = None,
        last_step: str | None = None,
    ) -> SamplerSettings:
        """Unset arguments take the pipeline's defaults (Tab. 9: Heun, 50 steps, CFG interval); unconditional: cfg_scale 1."""
        d = pipe.defaults
        guided = (d.cfg_scale if cfg_scale is None else cfg_scale) if pipe.num_classes > 0 else 1.0
        interval = tuple(float(v) for v in (cfg_interval or d.cfg_interval))
        return cls(steps or d.steps, method or d.method, float(guided), interval, last_step or d.last_step)


@torch.no_grad()
def iter_batches(
    pipe: Pipeline, labels: Tensor, settings: SamplerSettings, *, seed: int, batch_size: int, start: int = 0
) -> Iterator[Tensor]:
    """Images x ∈ [−1, 1] (B, C, H, W) of ``labels`` batch by batch; image i uses noise (seed, start + i)."""
    device = next(pipe.net.parameters()).device
    warn_noise_scale(pipe.noise_scale, pipe.net.config.input_size, where="sample")
    denoiser = pipe.denoiser()
    conditional = pipe.num_classes > 0
    dtype = autocast_dtype(device)
    fixed = pipe.compiled  # one shape for every call: pad the last batch with extra images, then drop them
    for first in range(0, len(labels), batch_size):
        y = labels[first : first + batch_size].to(device)
        keep = len(y)
        if fixed and keep < batch_size:
            y = torch.cat([y, y[:1].expand(batch_size - keep)])
        noise = sample_noise(len(y), pipe.image_shape, seed, start + first).to(device) * pipe.noise_scale
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            x = sample(
                denoiser,
                noise,
                steps=settings.steps,
                method=settings.method,
                labels=y if conditional else None,
                null_label=pipe.num_classes if conditional else None,
                cfg_scale=settings.cfg_scale,
                cfg_interval=settings.cfg_interval,
                last_step=settings.last_step,
            )
        yield x[:keep].float().clamp(-1, 1).cpu()


def generate(
    pipe: Pipeline,
    labels: Tensor,
    *,
    seed: int = 0,
    steps: int | None = None,
    method: str | None = None,
    cfg_scale: float | None = None,
    cfg_interval: tuple[float, float] | None = None,
    last_step: str | None = None,
    batch_size: int = 64,
    progress: bool = False,
    on_batch: Callable[[Tensor, Tensor], None] | None = None,
) -> Tensor:
    """Images x ∈ [−1, 1] of shape (N, C, H, W) for class ids ``labels`` (N,): the ODE dz/dt = v̂ from z₀ = s·n to t = 1.

    Unset sampler arguments take the pipeline's defaults; ``on_batch(images, labels)`` sees each batch (float, [−1, 1]).
    """
    settings = SamplerSettings.resolve(pipe, steps, method, cfg_scale, cfg_interval, last_step)
    batches = iter_batches(pipe, labels, settings, seed=seed, batch_size=batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=math.ceil(len(labels) / batch_size), unit="batch", desc="sampling")
    out = []
    for first, images in zip(range(0, len(labels), batch_size), batches, strict=True):
        if on_batch is not None:
            on_batch(images, labels[first : first + batch_size])
        out.append(images)
    return torch.cat(out)


def generate_shards(
    pipe: Pipeline,
    labels: Tensor,
    out_dir: str | Path,
    *,
    seed: int = 0,
    steps: int | None = None,
    method: str | None = None,
    cfg_scale: float | None = None,
    cfg_interval: tuple[float, float] | None = None,
    last_step: str | None = None,
    batch_size: int = 64,
    shard_size: int = 1024,
    progress: bool = False,
    on_batch: Callable[[Tensor, Tensor], None] | None = None,
) -> list[Path]:
    """Stream the images of ``labels`` to ``out_dir/shard-000000.npz``, … (``arr_0`` uint8 NHWC, ``arr_1`` labels).

    Each shard is written to a temporary file and renamed, so a killed run leaves only complete shards; calling again
    with the same arguments keeps them and generates the rest, and the shards equal those of an uninterrupted run
    (``generation.json`` records the settings; other settings in the same folder are refused). ``on_batch(images,
    labels)`` sees every image once, in order, as uint8 (B, C, H, W) — kept shards are read back from disk.
    Memory holds one shard of uint8 images.
    """
    if shard_size <= 0 or batch_size <= 0:
        raise ValueError(f"shard_size={shard_size} and batch_size={batch_size} must be > 0")
    out_dir = Path(out_dir)
    settings = SamplerSettings.resolve(pipe, steps, method, cfg_scale, cfg_interval, last_step)
    manifest = {
        "weights": weights_digest(pipe.net),
        "diffusion": asdict(pipe.diffusion) | {"noise_scale": pipe.noise_scale},
        "seed": seed,
        "num": len(labels),
        "labels": hashlib.sha256(labels.to(torch.int64).numpy().tobytes()).hexdigest(),
        "batch_size": batch_size,
        "shard_size": shard_size,
        "sampler": asdict(settings),
    }
    _check_manifest(out_dir, json.loads(json.dumps(manifest)))
    starts = range(0, len(labels), shard_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, unit="shard", desc="sampling")
    paths = []
    for start in starts:
        path = out_dir / SHARD_PATTERN.format(start // shard_size)
        wanted = labels[start : start + shard_size]
        if path.is_file():
            images = _read_shard(path, wanted)
            for first in range(0, len(wanted), batch_size) if on_batch is not None else ():
                on_batch(images[first : first + batch_size], wanted[first : first + batch_size])
        else:
            chunks = []
            batches = iter_batches(pipe, wanted, settings, seed=seed, batch_size=batch_size, start=start)
            for first, batch in zip(range(0, len(wanted), batch_size), batches, strict=True):
                chunks.append(unit_to_uint8(batch))
                if on_batch is not None:
                    on_batch(chunks[-1], wanted[first : first + batch_size])
            _write_shard(path, torch.cat(chunks), wanted)
        paths.append(path)
    return paths


def weights_digest(net: torch.nn.Module) -> str:
    """SHA-256 over the names, dtypes and bytes of a network's state dict: which weights made a set of images."""
    digest = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _check_manifest(out_dir: Path, manifest: dict) -> None:
    """Write ``generation.json`` in a new folder; in an existing one, refuse settings that differ from it."""
    path = out_dir / MANIFEST
    if path.is_file():
        saved = json.loads(path.read_text())
        diffs = [key for key in manifest if saved.get(key) != manifest[key]]
        if diffs:
            raise ValueError(
                f"{str(out_dir)!r} holds a generation run with other settings ({', '.join(diffs)} differ); "
                f"use another folder, or the same settings to resume it"
            )
        return
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise ValueError(
            f"{str(out_dir)!r} is not empty and holds no {MANIFEST}; use a new folder for shards"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest) + "\n")


def _write_shard(path: Path, images: Tensor, labels: Tensor) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, arr_0=images.permute(0, 2, 3, 1).numpy(), arr_1=labels.numpy())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_shard(path: Path, labels: Tensor) -> Tensor:
    """A kept shard's uint8 images (N, C, H, W), checked to hold exactly ``labels``."""
    with np.load(path) as shard:
        images, stored = shard["arr_0"], shard["arr_1"]
    if stored.tolist() != labels.tolist():
        raise ValueError(
            f"{path} does not hold the expected {len(labels)} images; delete it to regenerate it"
        )
    return torch.from_numpy(images).permute(0, 3, 1, 2)


def read_shards(out_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """All images (N, H, W, C) uint8 and labels (N,) of the shards in ``out_dir``, in order."""
    paths = sorted(Path(out_dir).glob(SHARD_PATTERN.replace("{:06d}", "*")))
    if not paths:
        raise FileNotFoundError(f"no {SHARD_PATTERN.format(0)} in {str(out_dir)!r}")
    images, labels = [], []
    for path in paths:
        with np.load(path) as shard:
            images.append(shard["arr_0"])
            labels.append(shard["arr_1"])
    return np.concatenate(images), np.concatenate(labels)


def image_grid(images: Tensor, nrow: int | None = None) -> np.ndarray:
    """Tile images (N, C, H, W) in [−1, 1] into one uint8 array (rows·H, nrow·W[, C]) with 2-px gaps."""
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    pad = 2
    grid = np.zeros((rows * (h + pad) - pad, nrow * (w + pad) - pad, c), dtype=np.uint8)
    pixels = unit_to_uint8(images).permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[r * (h + pad) : r * (h + pad) + h, col * (w + pad) : col * (w + pad) + w] = pixels[i]
    return grid[..., 0] if c == 1 else grid


def save_grid(images: Tensor, path: str | Path, nrow: int | None = None, scale: int = 1) -> Path:
    """Write a PNG grid of ``images`` (upscaled ``scale`` times with nearest neighbours, for tiny images)."""
    picture = Image.fromarray(image_grid(images, nrow))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    picture.save(path)
    return Path(path)


def save_npz(images: Tensor, labels: Tensor, path: str | Path) -> Path:
    """Write ``arr_0`` = uint8 images (N, H, W, C) and ``arr_1`` = labels, the layout of ADM's evaluation suite."""
    np.savez(path, arr_0=unit_to_uint8(images).permute(0, 2, 3, 1).numpy(), arr_1=labels.numpy())
    return Path(path)


def save_pngs(images: Tensor, folder: str | Path, start: int = 0) -> Path:
    """One PNG per image, ``folder/000000.png`` … (the input torch-fidelity reads)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(unit_to_uint8(images).permute(0, 2, 3, 1).numpy()):
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
            folder / f"{start + i:06d}.png"
        )
    return folder
