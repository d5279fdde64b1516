"""File integrity: SHA-256 digests listed in a ``SHA256SUMS`` file, in the format of ``sha256sum -c``.

Shipped assets (the small pretrained checkpoint, the proxy classifier) are verified before they are loaded, so a
corrupt or edited file is refused with a one-line error that names it instead of being read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = [
    "SUMS_FILE",
    "file_digest",
    "is_complete",
    "read_sums",
    "sha256",
    "verify",
    "verify_file",
    "write_sums",
]

SUMS_FILE = "SHA256SUMS"


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes with a ``hashlib`` algorithm, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256(path: str | Path) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    return file_digest(path, "sha256")


def write_sums(folder: str | Path, names: list[str]) -> Path:
    """Write ``folder/SHA256SUMS`` listing "<sha256>  <name>" for each file (``sha256sum -c`` reads it)."""
    folder = Path(folder)
    lines = [f"{sha256(folder / name)}  {name}\n" for name in sorted(names)]
    (folder / SUMS_FILE).write_text("".join(lines))
    return folder / SUMS_FILE


def read_sums(folder: str | Path) -> dict[str, str]:
    """{file name: expected hex digest} from ``folder/SHA256SUMS``; FileNotFoundError when it is missing."""
    path = Path(folder) / SUMS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the folder is incomplete")
    sums = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            raise ValueError(f"{path}, line {number}: expected '<64 hex digits>  <file name>', got {line!r}")
        sums[name.lstrip("*")] = digest.lower()
    return sums


def verify(folder: str | Path) -> list[Path]:
    """Check every file listed in ``folder/SHA256SUMS``; return their paths, or raise naming the first bad one.

    A missing file raises FileNotFoundError; a file whose SHA-256 differs raises a one-line ValueError.
    """
    folder = Path(folder)
    return [_check(folder / name, expected) for name, expected in read_sums(folder).items()]


def verify_file(path: str | Path) -> Path:
    """Check one file against the ``SHA256SUMS`` beside it; return its path, or raise naming it."""
    path = Path(path)
    expected = read_sums(path.parent).get(path.name)
    if expected is None:
        raise ValueError(f"{path.name} is not listed in {path.parent / SUMS_FILE}: it cannot be verified")
    return _check(path, expected)


def _check(path: Path, expected: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the folder is incomplete")
    actual = sha256(path)
    if actual != expected:
        raise ValueError(
            f"{path} is corrupt: SHA-256 {actual[:16]}… differs from {expected[:16]}… in {SUMS_FILE}; "
            f"reinstall jitlib or regenerate the file"
        )
    return path


def is_complete(folder: str | Path) -> bool:
    """True when ``folder`` has its SHA256SUMS and every file it lists (contents are checked by :func:`verify`)."""
    try:
        return all((Path(folder) / name).is_file() for name in read_sums(folder))
    except (FileNotFoundError, ValueError):
        return False
