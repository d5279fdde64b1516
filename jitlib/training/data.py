"""Image data sets for training JiT, all returning (image, label) with image a float (C, H, W) tensor in [−1, 1].

- :func:`digits` — scikit-learn's 1,797 handwritten digits (8×8, 10 classes), upsampled; bundled, fully offline.
  Upsampling is linear, so the upsampled images span only a 64-dimensional subspace of the pixel space.
- :class:`Shapes` — procedural coloured shapes (6 classes) at any size, a deterministic function of (seed, index).
- :class:`~jitlib.training.photos.PhotoCrops` — seeded random crops of ~60 colour photos packaged in scikit-image,
  scikit-learn and mvtb-data, split by whole photos into train and reference (``jitlib.training.photos``).
- :class:`ImageFolder` — any ``root/<class>/<image>`` tree (the ImageNet layout) with the ADM center crop the paper
  uses; PIL only.
- :func:`cifar10` — CIFAR-10's python archive, downloaded on demand and verified by its MD5 checksum.

The 2-D spiral embedded in D dimensions (chapter 4) lives in :mod:`jitlib.book.toy`. Randomness that belongs to training
(the horizontal flip) is *not* drawn here but by the trainer from per-sample seeds (:func:`random_flip`), so that a
sample's augmentation depends neither on the worker that loads it nor on the process that trains on it.
"""

from __future__ import annotations

import codecs
import itertools
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from jitlib.integrity import file_digest
from jitlib.training.config import DataConfig
from jitlib.training.photos import PhotoCrops

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".gif")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SHAPE_CLASSES = ("circle", "square", "triangle", "diamond", "cross", "ring")


class DataError(ValueError):
    """A data set cannot be built or read (missing folder, corrupt file, failed download); the message is one line."""


class TensorImages(Dataset):
    """Images held in memory as one tensor (N, C, H, W): float in [−1, 1], or uint8 in [0, 255] (converted per item)."""

    def __init__(self, images: Tensor, labels: Tensor, classes: tuple[str, ...]) -> None:
        if images.ndim != 4 or labels.shape != (images.shape[0],):
            raise ValueError(
                f"images must be (N, C, H, W) with labels (N,), got {tuple(images.shape)}, {tuple(labels.shape)}"
            )
        self.images, self.labels, self.classes = images, labels.long(), classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = self.images[index]
        if image.dtype == torch.uint8:
            image = uint8_to_unit(image)
        return image, int(self.labels[index])


def uint8_to_unit(image: Tensor | np.ndarray) -> Tensor:
    """x ∈ {0..255} → x/127.5 − 1 ∈ [−1, 1] as float32 (the official code's x/255·2 − 1)."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.array(image))  # a writable copy: PIL's arrays are read-only
    return image.float().div(127.5).sub(1.0)


def unit_to_uint8(images: Tensor) -> Tensor:
    """x ∈ [−1, 1] → round((x + 1)·127.5) clipped to {0..255} (uint8, same shape)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def digits(image_size: int = 32, mode: str = "bilinear") -> TensorImages:
    """scikit-learn's digits (8×8, values 0..16) as x = v/8 − 1 ∈ [−1, 1], upsampled to image_size² (1 channel).

    Bilinear or nearest upsampling is a linear injective map R^64 → R^(image_size²): all images lie in a
    64-dimensional subspace, the low-dimensional-manifold situation of the paper's §3 at image scale.
    """
    from sklearn.datasets import load_digits

    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode={mode!r} is not an upsampling mode; valid: bilinear, nearest")
    if image_size < 8:
        raise DataError(
            f"data.image_size={image_size} is smaller than the 8×8 digits; use 8 or more (e.g. 32)"
        )
    bunch = load_digits()
    small = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    images = F.interpolate(small, size=(image_size, image_size), mode=mode, **kwargs)
    return TensorImages(images, torch.tensor(bunch.target), tuple(str(d) for d in range(10)))


class Shapes(Dataset):
    """Procedural RGB shapes, label = index mod 6 (circle, square, triangle, diamond, cross, ring).

    Image i is a deterministic function of (seed, i): random size, position, rotation, foreground and background
    colours, drawn 4× larger and box-filtered down for smooth edges.
    """

    classes = SHAPE_CLASSES
    num_classes = len(SHAPE_CLASSES)
    channels = 3

    def __init__(self, num_images: int = 10000, image_size: int = 32, seed: int = 0) -> None:
        if num_images <= 0:
            raise DataError(f"data.num_images={num_images} must be > 0")
        if image_size < 16:
            raise DataError(
                f"data.image_size={image_size} is too small for the shapes set; use 16 or more (32–64)"
            )
        self.num_images, self.image_size, self.seed = num_images, image_size, seed

    def __len__(self) -> int:
        return self.num_images

    def render(self, index: int) -> np.ndarray:
        """The uint8 (H, W, 3) image of item ``index``."""
        rng = np.random.default_rng([self.seed, index])
        label = index % len(self.classes)
        big = 4 * self.image_size
        bg = rng.integers(0, 110, size=3)
        fg = rng.integers(0, 256, size=3)
        fg[rng.integers(0, 3)] = rng.integers(
            200, 256
        )  # at least one bright channel: visible on a dark background
        image = Image.new("RGB", (big, big), tuple(int(c) for c in bg))
        draw = ImageDraw.Draw(image)
        radius = big * rng.uniform(0.2, 0.35)
        cx, cy = big * rng.uniform(0.35, 0.65, size=2)
        angle = rng.uniform(0, 2 * np.pi)
        colour = tuple(int(c) for c in fg)

        def polygon(vertices: int, start: float) -> list[tuple[float, float]]:
            phases = start + 2 * np.pi * np.arange(vertices) / vertices
            return [(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in phases]

        name = self.classes[label]
        if name == "circle":
            draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
        elif name == "ring":
            draw.ellipse(
                [cx - radius, cy - radius, cx + radius, cy + radius], outline=colour, width=int(radius * 0.35)
            )
        elif name == "square":
            draw.polygon(polygon(4, angle), fill=colour)
        elif name == "diamond":  # a rhombus: one diagonal 0.55 of the other
            r1, r2 = radius, 0.55 * radius
            c, s = np.cos(angle), np.sin(angle)
            draw.polygon(
                [
                    (cx + r1 * c, cy + r1 * s),
                    (cx - r2 * s, cy + r2 * c),
                    (cx - r1 * c, cy - r1 * s),
                    (cx + r2 * s, cy - r2 * c),
                ],
                fill=colour,
            )
        elif name == "triangle":
            draw.polygon(polygon(3, angle), fill=colour)
        else:  # cross: two bars through the centre
            width = radius * 0.35
            for a in (angle, angle + np.pi / 2):
                c, s = np.cos(a), np.sin(a)
                draw.polygon(
                    [
                        (cx + radius * c - width * s, cy + radius * s + width * c),
                        (cx + radius * c + width * s, cy + radius * s - width * c),
                        (cx - radius * c + width * s, cy - radius * s - width * c),
                        (cx - radius * c - width * s, cy - radius * s + width * c),
                    ],
                    fill=colour,
                )
        return np.asarray(image.resize((self.image_size, self.image_size), Image.BOX))

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} shapes")
        return uint8_to_unit(self.render(index)).permute(2, 0, 1).contiguous(), index % len(self.classes)


def center_crop_adm(image: Image.Image, size: int) -> Image.Image:
    """ADM's center crop: halve with a box filter while the short side ≥ 2·size, bicubic-resize it to size, crop the middle."""
    while min(image.size) >= 2 * size:
        image = image.resize(tuple(s // 2 for s in image.size), resample=Image.BOX)
    scale = size / min(image.size)
    image = image.resize(tuple(round(s * scale) for s in image.size), resample=Image.BICUBIC)
    left, top = (image.size[0] - size) // 2, (image.size[1] - size) // 2
    return image.crop((left, top, left + size, top + size))


class ImageFolder(Dataset):
    """``root/<class>/<image>`` (ImageNet layout): classes are the sorted sub-folder names, images ADM center-cropped."""

    def __init__(self, root: str | Path, image_size: int) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(
                f"data folder {str(self.root)!r} does not exist; set data.root to a folder of class sub-folders"
            )
        self.classes = tuple(
            sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        )
        if not self.classes:
            raise DataError(
                f"data folder {str(self.root)!r} has no class sub-folders; expected root/<class>/<image>.jpg"
            )
        self.samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.classes):
            for dirpath, _, files in sorted(os.walk(self.root / name, followlinks=True)):
                self.samples += [
                    (Path(dirpath) / f, label) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)
                ]
        if not self.samples:
            raise DataError(f"data folder {str(self.root)!r} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        self.image_size = image_size

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    channels = 3

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, label = self.samples[index]
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except (OSError, SyntaxError, ValueError) as err:
            raise DataError(f"cannot read image {str(path)!r}: {err}") from None
        array = np.asarray(center_crop_adm(rgb, self.image_size))
        return uint8_to_unit(array).permute(2, 0, 1).contiguous(), label


def file_md5(path: str | Path) -> str:
    """Hex MD5 digest of a file (the checksum data sets publish)."""
    return file_digest(path, "md5")


def download(url: str, path: str | Path, md5: str, timeout: float = 30.0) -> Path:
    """Fetch ``url`` to ``path`` (via a temporary file, renamed only once its MD5 equals ``md5``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        got = file_md5(tmp)
        if got != md5:
            raise DataError(
                f"download of {url} has MD5 {got}, expected {md5}; the transfer was corrupted, try again"
            )
        os.replace(tmp, path)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DataError(
            f"could not download {url} ({reason}); without internet, fetch it elsewhere and copy it to {str(path)!r}"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain containers and numpy arrays: any other global is refused, never called."""

    def find_class(self, module: str, name: str) -> object:
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return np.ndarray.__reduce__(np.zeros(0))[
                0
            ]  # numpy's own array reconstructor, whatever its module
        if module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray") and name in (
            "ndarray",
            "dtype",
        ):
            return getattr(np, name)
        if name == "_frombuffer" and module in (
            "numpy.core.numeric",
            "numpy._core.numeric",
        ):  # pickle protocol 5
            return np.ndarray.__reduce_ex__(np.zeros(1), 5)[0]
        if (module, name) == ("_codecs", "encode"):  # how protocol 2 writes bytes: text → bytes, nothing else
            return codecs.encode
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR-10 batch never contains")


def read_cifar_batch(path: str | Path) -> dict[bytes, object]:
    """One CIFAR-10 python batch ({b"data": uint8 (N, 3072), b"labels": [int], ...}), unpickled without running code.

    The restricted unpickler admits builtin containers and numpy arrays only, so a planted ``__reduce__`` payload is
    refused with a one-line :class:`DataError` instead of being executed.
    """
    try:
        with open(path, "rb") as handle:
            batch = _CifarUnpickler(handle, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataError(f"cannot read CIFAR-10 file {str(path)!r}: {err}") from None
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    if not (
        isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072
    ):
        raise DataError(f"{str(path)!r} is not a CIFAR-10 batch: expected b'data' as uint8 (N, 3072)")
    if not (
        isinstance(labels, list) and len(labels) == len(data) and all(isinstance(v, int) for v in labels)
    ):
        raise DataError(f"{str(path)!r} is not a CIFAR-10 batch: expected b'labels' as {len(data)} ints")
    return batch


def cifar10(
    root: str | Path,
    train: bool = True,
    download_missing: bool = False,
    url: str = CIFAR10_URL,
    md5: str = CIFAR10_MD5,
) -> TensorImages:
    """CIFAR-10 (50,000 train / 10,000 test images, 32×32 RGB, 10 classes) from ``root/cifar-10-python.tar.gz``.

    The archive is verified against ``md5`` before it is unpacked; when it is missing it is downloaded from ``url``
    if ``download_missing`` is set, else a one-line error says where to put it.
    """
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    archive = root / "cifar-10-python.tar.gz"
    if not folder.is_dir():
        if not archive.exists():
            if not download_missing:
                raise DataError(
                    f"CIFAR-10 is not in {str(root)!r}; set data.download=true, or put cifar-10-python.tar.gz "
                    f"(MD5 {md5}, from {url}) there"
                )
            download(url, archive, md5)
        got = file_md5(archive)
        if got != md5:
            raise DataError(
                f"{str(archive)!r} has MD5 {got}, expected {md5}: it is corrupt or incomplete; delete it and download again"
            )
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    arrays, labels = [], []
    for name in names:
        batch = read_cifar_batch(folder / name)
        arrays.append(batch[b"data"].reshape(-1, 3, 32, 32))
        labels += list(batch[b"labels"])
    return TensorImages(torch.from_numpy(np.concatenate(arrays)), torch.tensor(labels), CIFAR10_CLASSES)


def build_dataset(config: DataConfig, seed: int = 0) -> Dataset:
    """The training set a :class:`~jitlib.training.config.DataConfig` describes (it has ``num_classes`` and ``channels``)."""
    if config.name == "digits":
        return digits(config.image_size)
    if config.name == "shapes":
        return Shapes(config.num_images, config.image_size, seed=seed)
    if config.name == "photos":
        return PhotoCrops("train", config.image_size, config.num_images, seed=seed)
    if config.name == "cifar10":
        if config.image_size != 32:
            raise DataError(
                f"data.image_size={config.image_size}: CIFAR-10 images are 32×32; set data.image_size=32"
            )
        return cifar10(config.root, download_missing=config.download)
    return ImageFolder(config.root, config.image_size)


class ResumableSampler(DistributedSampler):
    """torch's DistributedSampler (shuffled by seed + epoch, rank r takes positions r, r+W, …) that can start mid-epoch.

    The union over ranks of the i-th local batches of size b is positions [i·bW, (i+1)·bW) of the epoch's
    permutation — exactly the i-th global batch of one process with batch bW — so W processes see the same data.
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.skip = 0

    def set_position(self, epoch: int, skip: int) -> None:
        """Start epoch ``epoch`` after this rank's first ``skip`` indices (used when resuming mid-epoch)."""
        self.set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return self.num_samples - self.skip


def make_loader(
    dataset: Dataset,
    sampler: ResumableSampler,
    batch_size: int,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader of full local batches of ``batch_size`` drawn in ``sampler`` order."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=True,
        persistent_workers=num_workers > 0,
    )


def random_flip(images: Tensor, flip: Tensor) -> Tensor:
    """Mirror image i left–right where flip[i] is True (images (B, C, H, W), flip (B,) bool)."""
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)


def stack_dataset(dataset: Dataset, limit: int | None = None) -> tuple[Tensor, Tensor]:
    """The first ``limit`` items (all by default) of a data set as tensors (N, C, H, W) and (N,)."""
    if isinstance(dataset, TensorImages) and limit is None and dataset.images.dtype != torch.uint8:
        return dataset.images, dataset.labels
    n = len(dataset) if limit is None else min(limit, len(dataset))
    items = [dataset[i] for i in range(n)]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])
