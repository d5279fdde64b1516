"""Natural photographs offline: random crops of the colour photos packaged in scikit-image, scikit-learn and mvtb-data.

The paper's argument is about natural images. No ImageNet here, but about sixty colour photographs ship inside three
pip packages (``data/README.md`` lists each with its package, size and licence). :class:`PhotoCrops` turns them into
an endless, seeded stream of natural-image samples: item i picks a photo, a square-ish crop of 25–60 % of its short
side with aspect jitter in [3/4, 4/3], and resizes it (PIL bicubic, antialiased) to 32, 64 or 128 px.

The photos are split by *whole photos* (and whole groups of near-duplicates: stereo pairs, a mosaic's overlapping
tiles, one building seen twice) into ``train`` and ``reference``, so a FID against the reference photos cannot
reward memorising the training photos. Diversity is limited to these scenes: a score here says how close samples
come to *these* photographs' crops, not to natural images at large.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["PHOTOS", "Photo", "PhotoCrops", "load_photo", "photo_list"]

SPLITS = ("train", "reference")
SCALE = (0.25, 0.6)  # crop side as a fraction of the photo's short side
ASPECT = (3 / 4, 4 / 3)  # crop width / height
MAX_SHORT_SIDE = 512  # photos are pre-shrunk to this short side once (crops then stay ≥ 128 px)
LABEL_MODES = ("photo", "category")


@dataclass(frozen=True)
class Photo:
    """One packaged photograph: where it comes from, what it shows, and which split it belongs to."""

    name: str
    package: str  # scikit-image, scikit-learn or mvtb-data
    locator: str  # skimage.data function, sklearn sample name, or path inside mvtbdata/images
    category: str
    split: str
    licence: str


_SKI_PD = "public domain (skimage.data docstring)"
_SKI_CC0 = "CC0 (skimage.data docstring)"
_SKL = "CC-BY 2.0 (sklearn/datasets/images/README.txt)"
_MVTB = "MIT (mvtb-data package metadata; no per-image licence stated)"


def _mvtb(name: str, locator: str, category: str, split: str = "train") -> Photo:
    return Photo(name, "mvtb-data", locator, category, split, _MVTB)


_CAMPUS_TRAIN = (
    491,
    493,
    494,
    495,
    496,
    497,
    498,
    499,
    500,
    501,
    503,
    504,
    505,
    506,
    507,
    509,
    510,
    512,
    514,
    515,
)
_CAMPUS_REFERENCE = (492, 502, 508, 511, 513)  # the package's own campus/holdout folder

PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut", "scikit-image", "astronaut", "people", "train", _SKI_PD),
    Photo("chelsea", "scikit-image", "chelsea", "animals", "train", _SKI_CC0),
    Photo("coffee", "scikit-image", "coffee", "objects", "reference", _SKI_CC0),
    Photo("rocket", "scikit-image", "rocket", "scenes", "train", _SKI_PD),
    Photo(
        "motorcycle",
        "scikit-image",
        "stereo_motorcycle",
        "objects",
        "train",
        "none stated (skimage.data docstring)",
    ),
    Photo("china", "scikit-learn", "china.jpg", "scenes", "train", _SKL),
    Photo("flower", "scikit-learn", "flower.jpg", "flowers", "reference", _SKL),
    *(_mvtb(f"campus-{n}", f"campus/P1070{n}.png", "campus") for n in _CAMPUS_TRAIN),
    *(_mvtb(f"campus-{n}", f"campus/holdout/P1070{n}.png", "campus", "reference") for n in _CAMPUS_REFERENCE),
    *(_mvtb(f"flowers{n}", f"flowers{n}.png", "flowers") for n in (1, 2, 3, 4, 5, 6, 8)),
    *(_mvtb(f"flowers{n}", f"flowers{n}.png", "flowers", "reference") for n in (7, 9)),
    _mvtb("butterfly", "butterfly.jpg", "animals"),
    _mvtb("church", "church.jpg", "buildings"),
    _mvtb("notre-dame", "notre-dame.png", "buildings"),
    _mvtb("eiffel-1", "eiffel-1.png", "buildings", "reference"),
    _mvtb("eiffel-2", "eiffel-2.png", "buildings", "reference"),
    _mvtb("roof", "roof.png", "buildings"),
    _mvtb("walls", "walls-l.png", "buildings"),
    _mvtb("lab-scene", "lab-scene.png", "scenes"),
    _mvtb("road", "road.png", "scenes"),
    _mvtb("parks", "parks.png", "scenes"),
    _mvtb("rocks", "rocks2-l.png", "scenes", "reference"),
    *(_mvtb(f"tomato-{n}", f"tomato_{n}.png", "objects") for n in (14, 35, 124)),
    _mvtb("tomato-54", "tomato_54.png", "objects", "reference"),
    *(_mvtb(f"aerial-{n:02d}", f"mosaic/aerial-{n:02d}.png", "aerial") for n in (8, 9, 10)),
    _mvtb("aerialphoto", "mosaic/aerialphoto.png", "aerial"),
)

INSTALL_HINT = "pip install scikit-image mvtb-data (scripts/setup_env.sh installs both)"


def photo_list(split: str) -> tuple[Photo, ...]:
    """The photos of one split ("train" or "reference"), in catalogue order."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not a photo split; valid: {', '.join(SPLITS)}")
    return tuple(p for p in PHOTOS if p.split == split)


def _package_dir(module: str, package: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the photo data set needs the {package} package, which is not installed: {INSTALL_HINT}"
        )
    return Path(spec.submodule_search_locations[0])


def _read(photo: Photo) -> Image.Image:
    if photo.package == "scikit-image":
        try:
            import skimage.data
        except ImportError:
            raise ImportError(f"the photo data set needs scikit-image: {INSTALL_HINT}") from None
        array = getattr(skimage.data, photo.locator)()
        array = array[0] if isinstance(array, tuple) else array  # stereo_motorcycle: (left, right, disparity)
        return Image.fromarray(np.asarray(array, dtype=np.uint8))
    if photo.package == "scikit-learn":
        return Image.open(_package_dir("sklearn", "scikit-learn") / "datasets" / "images" / photo.locator)
    return Image.open(_package_dir("mvtbdata", "mvtb-data") / "images" / photo.locator)


@functools.cache
def load_photo(name: str) -> Image.Image:
    """The named photo as an RGB PIL image, shrunk (Lanczos) so its short side is at most 512 px; cached per process."""
    photo = next((p for p in PHOTOS if p.name == name), None)
    if photo is None:
        raise ValueError(f"no packaged photo named {name!r}; valid: {', '.join(p.name for p in PHOTOS)}")
    with _read(photo) as image:
        rgb = image.convert("RGB")
    short = min(rgb.size)
    if short > MAX_SHORT_SIDE:
        size = tuple(round(s * MAX_SHORT_SIDE / short) for s in rgb.size)
        rgb = rgb.resize(size, Image.LANCZOS)
    return rgb


def crop_box(rng: np.random.Generator, width: int, height: int) -> tuple[float, float, float, float]:
    """A random box (left, top, right, bottom): side ≈ U(0.25, 0.6)·short side, aspect w/h ∈ [3/4, 4/3] (log-uniform)."""
    side = rng.uniform(*SCALE) * min(width, height)
    aspect = np.exp(rng.uniform(np.log(ASPECT[0]), np.log(ASPECT[1])))
    w, h = min(width, side * np.sqrt(aspect)), min(height, side / np.sqrt(aspect))
    left, top = rng.uniform(0, width - w), rng.uniform(0, height - h)
    return (float(left), float(top), float(left + w), float(top + h))


class PhotoCrops(Dataset):
    """``num_images`` random crops of one split's photos, ``image_size`` px square, item i a function of (seed, split, i).

    Labels are the source photo's index in the split (``labels="photo"``) or its category (``"category"``); a
    class-conditional run learns per-photo or per-category generation, an unconditional one ignores them. ``flip``
    mirrors half the items (seeded); for training leave it off, the trainer flips from its own per-sample seeds.
    """

    channels = 3

    def __init__(
        self,
        split: str = "train",
        image_size: int = 64,
        num_images: int = 10000,
        seed: int = 0,
        labels: str = "photo",
        flip: bool = False,
    ) -> None:
        self.photos = photo_list(split)
        if image_size < 8 or image_size > 256:
            raise ValueError(f"image_size={image_size}: photo crops come in 8..256 px (e.g. 32, 64, 128)")
        if num_images <= 0:
            raise ValueError(f"num_images={num_images} must be > 0")
        if labels not in LABEL_MODES:
            raise ValueError(f"labels={labels!r} is not a label mode; valid: {', '.join(LABEL_MODES)}")
        self.split, self.image_size, self.num_images, self.seed, self.flip = (
            split,
            image_size,
            num_images,
            seed,
            flip,
        )
        if labels == "photo":
            self.classes = tuple(p.name for p in self.photos)
            self._label = list(range(len(self.photos)))
        else:
            self.classes = tuple(sorted({p.category for p in self.photos}))
            self._label = [self.classes.index(p.category) for p in self.photos]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return self.num_images

    def render(self, index: int) -> tuple[np.ndarray, int]:
        """The uint8 (H, W, 3) crop of item ``index`` and the index of its photo in the split."""
        rng = np.random.default_rng([self.seed, SPLITS.index(self.split), index])
        which = int(rng.integers(len(self.photos)))
        image = load_photo(self.photos[which].name)
        box = crop_box(rng, *image.size)
        crop = image.resize((self.image_size, self.image_size), Image.BICUBIC, box=box)
        array = np.asarray(crop)
        if self.flip and rng.random() < 0.5:
            array = array[:, ::-1]
        return array, which

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} photo crops")
        array, which = self.render(index)
        image = torch.from_numpy(np.array(array)).permute(2, 0, 1).float().div(127.5).sub(1.0)
        return image, self._label[which]

    def uint8(self, count: int | None = None, start: int = 0) -> Tensor:
        """Items [start, start + count) as one uint8 tensor (N, 3, H, W), e.g. the real images for FID."""
        stop = self.num_images if count is None else min(self.num_images, start + count)
        arrays = [np.ascontiguousarray(self.render(i)[0]) for i in range(start, stop)]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
