"""Training checkpoints: written atomically, found from a file or a folder, refused when they belong to another run.

A checkpoint is one ``torch.save`` dict (loaded with ``weights_only=True``: tensors and plain values only) holding
everything needed to continue bit-for-bit: model, EMAs, optimizer, grad scaler, step, RNG states, data position and
the config that made it. It is written to a temporary file in the same folder, flushed to disk, then renamed over the
old one (``os.replace`` is atomic), so a crash or ``kill -9`` at any moment leaves the previous checkpoint intact.
Unlike the official code, ``--resume`` never silently starts from scratch (JiT issue #66).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch

from jitlib.training.config import RESUMABLE_KEYS, config_diff

LAST = "checkpoint-last.pt"
FORMAT = "jitlib-checkpoint-v1"


def code_version(package: str | Path | None = None) -> dict[str, Any]:
    """The code a model is trained with: the git commit of the source tree that holds ``package`` (default: the
    jitlib package that runs) and whether it differs from that commit.

    A git checkout gives ``{"commit": <git rev-parse HEAD>, "dirty": bool, "changed": [paths]}``, where ``changed``
    lists the package's files that are modified, staged or untracked (``git status --porcelain``), relative to the
    repository, leaving out ``assets/`` (the shipped files a retraining replaces are data, not code); anything
    else (an installed wheel, no git) gives ``{"commit": None, "reason": <why>}``.
    """
    folder = Path(package if package is not None else Path(__file__).parents[1]).resolve()

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        command = ["git", "-C", str(folder), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    try:
        if git("ls-files", "--error-unmatch", "--", "__init__.py").returncode != 0:
            return {
                "commit": None,
                "reason": f"{folder} is not tracked by git (an installed copy, not a checkout)",
            }
        head = git("rev-parse", "--verify", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=all", "--", ".", ":(exclude)assets")
    except (OSError, subprocess.SubprocessError) as err:
        return {"commit": None, "reason": f"git could not be run ({type(err).__name__}: {err})"}
    if head.returncode != 0 or status.returncode != 0:
        reason = (head.stderr or status.stderr).strip().splitlines()
        return {"commit": None, "reason": f"git failed in {folder}: {reason[0] if reason else 'no message'}"}
    changed = sorted(line[3:].split(" -> ")[-1] for line in status.stdout.splitlines() if line.strip())
    return {"commit": head.stdout.strip(), "dirty": bool(changed), "changed": changed}


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove a file can be written there; a one-line ValueError if not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ValueError(f"output folder {str(folder)!r} is not writable: {err.strerror or err}") from None
    return folder


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically: temp file in the same folder → fsync → os.replace."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save({"format": FORMAT, **state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; a checkpoint is an ordinary file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temps(folder: str | Path) -> None:
    """Delete half-written temporary files that a killed run left behind (never a finished checkpoint)."""
    for tmp in Path(folder).glob(".checkpoint-*.tmp"):
        tmp.unlink(missing_ok=True)


def find_checkpoint(path: str | Path) -> Path:
    """``path`` if it is a file, ``path/checkpoint-last.pt`` if it is a folder; a one-line error otherwise."""
    path = Path(path)
    if path.is_dir():
        if not (path / LAST).is_file():
            raise FileNotFoundError(f"no checkpoint in folder {str(path)!r} (expected {LAST} there)")
        return path / LAST
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The dict saved by :func:`save_checkpoint` (file or folder); refuses files that are not jitlib checkpoints."""
    path = find_checkpoint(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise ValueError(f"cannot read checkpoint {str(path)!r}: {str(err).splitlines()[0]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(
            f"{str(path)!r} is not a jitlib training checkpoint (for official JiT weights use weights.load_official)"
        )
    check_weights(state, str(path))
    return state


def check_weights(state: dict[str, Any], source: str) -> None:
    """Refuse (one line) a checkpoint whose stored model name and arguments do not describe its weights."""
    from jitlib.nn.registry import create_model
    from jitlib.nn.weights import check_state_dict

    if not all(key in state for key in ("model_name", "model_kwargs", "model")):
        return  # a partial state without a network (written by a tool or a test): nothing to check
    try:
        net = create_model(state["model_name"], device="meta", **state["model_kwargs"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: its stored model arguments are invalid ({err})") from None
    try:
        check_state_dict(net, state["model"], f"{source} (stored model {state['model_name']})")
    except ValueError as err:
        raise ValueError(f"{err}; the checkpoint's model arguments do not match its weights") from None


def check_output_folder(output_dir: str | Path, resume: str | Path | None) -> None:
    """Refuse to write a run into a folder that holds another run: only the run being resumed may be continued there."""
    output_dir = Path(output_dir)
    if not (output_dir / LAST).exists():
        return
    if resume is None:
        raise ValueError(
            f"{str(output_dir / LAST)!r} exists; pass --resume {output_dir} to continue that run, "
            f"or choose another train.output_dir"
        )
    if find_checkpoint(resume).parent.resolve() != output_dir.resolve():
        raise ValueError(
            f"train.output_dir={str(output_dir)!r} holds another run than --resume {str(resume)!r}; "
            f"drop train.output_dir to continue in the resumed run's folder, or choose an empty one"
        )


def check_same_run(saved: dict[str, Any], current: dict[str, Any], path: str | Path = "checkpoint") -> None:
    """Refuse to resume when the configs differ in anything but :data:`RESUMABLE_KEYS`; the message names each difference."""
    diffs = [(k, a, b) for k, a, b in config_diff(saved, current) if k not in RESUMABLE_KEYS]
    if diffs:
        shown = "; ".join(f"{k}: {a!r} in checkpoint, {b!r} now" for k, a, b in diffs[:4])
        more = f" (+{len(diffs) - 4} more)" if len(diffs) > 4 else ""
        raise ValueError(
            f"cannot resume from {str(path)!r}: it was trained with a different configuration — {shown}{more}"
        )
