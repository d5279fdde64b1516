"""Data sets: ranges and shapes, the digits' 64-dim subspace, determinism, ADM crop, CIFAR download checks, sampler."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jitlib.training.config import DataConfig
from jitlib.training.data import (
    DataError,
    ImageFolder,
    ResumableSampler,
    Shapes,
    build_dataset,
    center_crop_adm,
    cifar10,
    digits,
    download,
    random_flip,
    uint8_to_unit,
    unit_to_uint8,
)


def test_digits_in_unit_range_and_in_a_64_dim_subspace() -> None:
    d = digits(32)
    assert len(d) == 1797 and d.num_classes == 10 and d.channels == 1
    assert d.images.shape == (1797, 1, 32, 32) and d.images.min() == -1 and d.images.max() == 1
    assert sorted(set(d.labels.tolist())) == list(range(10))
    # Upsampling is linear: the images of the 64 one-hot 8x8 inputs span all upsampled digits.
    basis = torch.nn.functional.interpolate(torch.eye(64).view(64, 1, 8, 8), size=(32, 32), mode="bilinear")
    basis = basis.view(64, -1).double()
    assert torch.linalg.matrix_rank(basis) == 64
    # Shift the −1 offset away (a constant image is in the span too); 300 digits keep the check quick.
    flat = d.images[:300].reshape(300, -1).double() + 1
    coeffs = torch.linalg.lstsq(basis.T, flat.T).solution
    assert torch.allclose(basis.T @ coeffs, flat.T, atol=1e-9)
    assert torch.linalg.matrix_rank(flat) <= 64 < 32 * 32


def test_digits_rejects_bad_sizes_and_modes() -> None:
    with pytest.raises(DataError, match="smaller than the 8"):
        digits(4)
    with pytest.raises(ValueError, match="bilinear, nearest"):
        digits(32, mode="bicubic")


def test_shapes_are_deterministic_labelled_and_in_range() -> None:
    a, b, c = Shapes(12, 32, seed=0), Shapes(12, 32, seed=0), Shapes(12, 32, seed=1)
    x0, y0 = a[7]
    assert torch.equal(x0, b[7][0]) and not torch.equal(x0, c[7][0])
    assert x0.shape == (3, 32, 32) and x0.min() >= -1 and x0.max() <= 1 and y0 == 7 % 6
    assert [a[i][1] for i in range(12)] == [i % 6 for i in range(12)]
    assert Shapes(6, 48)[0][0].shape == (3, 48, 48)
    with pytest.raises(IndexError):
        a[12]
    with pytest.raises(DataError, match="too small"):
        Shapes(10, 8)


def test_uint8_round_trip() -> None:
    pixels = torch.arange(256, dtype=torch.uint8)
    unit = uint8_to_unit(pixels)
    assert unit[0] == -1 and unit[-1] == 1 and torch.equal(unit_to_uint8(unit), pixels)


def test_adm_center_crop() -> None:
    rng = np.random.default_rng(0)
    square = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert np.array_equal(np.asarray(center_crop_adm(square, 64)), np.asarray(square))  # already the size
    big = Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8))
    halved = np.asarray(big).astype(float).reshape(64, 2, 64, 2, 3).mean(axis=(1, 3))
    assert np.abs(np.asarray(center_crop_adm(big, 64)).astype(float) - halved).max() <= 1  # box filter
    wide = np.zeros((100, 200, 3), dtype=np.uint8)
    wide[:, 100:] = 255  # left half black, right half white
    out = np.asarray(center_crop_adm(Image.fromarray(wide), 50))  # halve to 100x50, crop columns 25..75
    assert out.shape == (50, 50, 3) and out[:, :20].max() == 0 and out[:, 30:].min() == 255


def _write_folder(root: Path, classes: dict[str, int], size: tuple[int, int] = (40, 30)) -> None:
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", size, (10 * i, 50, 200)).save(root / name / f"{i}.png")


def test_image_folder(tmp_path: Path) -> None:
    _write_folder(tmp_path, {"dog": 2, "cat": 3})
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    ds = ImageFolder(tmp_path, 16)
    assert ds.classes == ("cat", "dog") and len(ds) == 5 and ds.num_classes == 2
    x, y = ds[4]
    assert x.shape == (3, 16, 16) and y == 1 and -1 <= x.min() <= x.max() <= 1
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"not really a jpeg")
    broken = ImageFolder(tmp_path, 16)
    with pytest.raises(DataError, match=r"cannot read image .*broken\.jpg"):
        broken[len(broken) - 1]


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        ImageFolder(tmp_path / "missing", 16)
    with pytest.raises(DataError, match="no class sub-folders"):
        ImageFolder(tmp_path, 16)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DataError, match="has no images"):
        ImageFolder(tmp_path, 16)


def _fake_cifar_archive(path: Path, per_batch: int = 2) -> str:
    """A tar.gz laid out like CIFAR-10's python archive (tiny batches); returns its MD5."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
            batch = {b"data": np.full((per_batch, 3072), i, dtype=np.uint8), b"labels": [i % 10] * per_batch}
            blob = pickle.dumps(batch)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    path.write_bytes(buffer.getvalue())
    return hashlib.md5(buffer.getvalue()).hexdigest()


def test_cifar10_verifies_the_checksum_before_unpacking(tmp_path: Path) -> None:
    md5 = _fake_cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(DataError, match="has MD5 .* expected 0123"):
        cifar10(tmp_path, md5="0123" + md5[4:])
    assert not (tmp_path / "cifar-10-batches-py").exists()  # nothing unpacked from an unverified file
    train = cifar10(tmp_path, md5=md5)
    assert train.images.shape == (10, 3, 32, 32) and train.images.dtype == torch.uint8
    x, y = train[9]
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32) and y == 4
    assert len(cifar10(tmp_path, train=False, md5=md5)) == 2


def test_cifar10_offline_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="set data.download=true"):
        cifar10(tmp_path)
    with pytest.raises(DataError, match=r"could not download http://127\.0\.0\.1:9/.*copy it to"):
        cifar10(tmp_path, download_missing=True, url="http://127.0.0.1:9/cifar-10-python.tar.gz")
    assert list(tmp_path.iterdir()) == []  # no partial download left behind


def test_download_checks_md5(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"hello jit")
    good = hashlib.md5(b"hello jit").hexdigest()
    assert download(source.as_uri(), tmp_path / "out" / "a.bin", good).read_bytes() == b"hello jit"
    with pytest.raises(DataError, match="transfer was corrupted"):
        download(source.as_uri(), tmp_path / "out" / "b.bin", "0" * 32)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.bin"]


def test_build_dataset_checks_sizes(tmp_path: Path) -> None:
    assert len(build_dataset(DataConfig(name="shapes", num_images=7, image_size=32))) == 7
    with pytest.raises(DataError, match="CIFAR-10 images are 32"):
        build_dataset(DataConfig(name="cifar10", image_size=64, root=str(tmp_path)))


def test_two_ranks_see_exactly_the_global_batches_of_one() -> None:
    data = list(range(103))
    batch, world = 8, 2
    one = ResumableSampler(data, 1, 0, seed=5)
    one.set_position(epoch=3, skip=0)
    order = list(one)
    ranks = []
    for r in range(world):
        s = ResumableSampler(data, world, r, seed=5)
        s.set_position(epoch=3, skip=0)
        ranks.append(list(s))
    for i in range(len(data) // batch):
        union = sorted(
            sum((ranks[r][i * batch // world : (i + 1) * batch // world] for r in range(world)), [])
        )
        assert union == sorted(order[i * batch : (i + 1) * batch])
    resumed = ResumableSampler(data, world, 1, seed=5)
    resumed.set_position(epoch=3, skip=12)
    assert list(resumed) == ranks[1][12:] and len(resumed) == len(ranks[1]) - 12


def test_random_flip_mirrors_only_the_chosen_images() -> None:
    x = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).view(2, 1, 2, 3)
    out = random_flip(x, torch.tensor([True, False]))
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1])


class _Payload:
    """What a malicious CIFAR file could hold: unpickling it with pickle.load would create a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_cifar10_batches_are_unpickled_without_running_code(tmp_path: Path) -> None:
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "pwned"
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        (folder / name).write_bytes(pickle.dumps({b"data": _Payload(marker), b"labels": []}))
    assert pickle.loads((folder / "data_batch_1").read_bytes()) and marker.exists()  # the payload is live...
    marker.unlink()
    with pytest.raises(DataError, match=r"data_batch_1': it refers to io\.open, which") as err:
        cifar10(tmp_path)
    assert not marker.exists()  # ...but jitlib never runs it
    assert "\n" not in str(err.value)
    blob = {b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [3, 4], b"batch_label": b"x"}
    for protocol in (
        2,
        5,
    ):  # the real files are protocol 2 (Python 2); arrays in protocol 5 are rebuilt differently
        (folder / "test_batch").write_bytes(pickle.dumps(blob, protocol=protocol))
        test = cifar10(tmp_path, train=False)
        assert test.images.shape == (2, 3, 32, 32) and test.labels.tolist() == [3, 4]
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": [1, 2], b"labels": [0]}))
    with pytest.raises(DataError, match=r"not a CIFAR-10 batch: expected b'data'"):
        cifar10(tmp_path, train=False)
