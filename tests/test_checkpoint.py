"""Checkpoints are atomic, found from a file or a folder, refuse foreign files; EMA keeps several decays exactly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from jitlib.training import checkpoint as ckpt
from jitlib.training.ema import EMA


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / ckpt.LAST
    ckpt.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    ckpt.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    state = ckpt.load_checkpoint(tmp_path)  # a folder resolves to checkpoint-last.pt
    assert state["step"] == 2 and torch.equal(state["w"], torch.zeros(3))
    assert [p.name for p in tmp_path.iterdir()] == [ckpt.LAST]


def test_failed_save_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / ckpt.LAST
    ckpt.save_checkpoint({"step": 1}, path)
    before = path.read_bytes()

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        ckpt.save_checkpoint({"step": 2, "bad": Unsaveable()}, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [ckpt.LAST]


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    ckpt.save_checkpoint({"step": 1}, tmp_path / ckpt.LAST)
    (tmp_path / f".{ckpt.LAST}.abc123.tmp").write_bytes(b"half written")
    ckpt.remove_stale_temps(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [ckpt.LAST]


def test_find_and_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint in folder"):
        ckpt.find_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ckpt.find_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a zip")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        ckpt.load_checkpoint(tmp_path / "garbage.pt")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a jitlib training checkpoint"):
        ckpt.load_checkpoint(tmp_path / "foreign.pt")


def test_check_writable(tmp_path: Path) -> None:
    assert ckpt.check_writable(tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not writable"):
        ckpt.check_writable(tmp_path / "file" / "sub")


def test_ema_tracks_several_decays_exactly() -> None:
    net = nn.Linear(3, 2)
    start = [p.detach().clone() for p in net.parameters()]
    ema = EMA(net, [0.5, 0.9])
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)
    ema.update(net)
    for decay in (0.5, 0.9):
        expected = [s + 1.0 - decay**2 for s in start]  # two lerps towards s + 1: s + 1 − d²
        got = ema.state_dict()[repr(decay)]
        for e, (name, g) in zip(expected, got.items(), strict=True):
            assert torch.allclose(g, e, atol=1e-6), name
    current = [p.detach().clone() for p in net.parameters()]
    with ema.applied(net, 0.5):
        assert torch.allclose(net.weight, start[0] + 0.75)
    assert all(torch.equal(p, c) for p, c in zip(net.parameters(), current, strict=True))
    restored = EMA(nn.Linear(3, 2), [0.5, 0.9])
    restored.load_state_dict(ema.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(restored.shadows["0.9"], ema.shadows["0.9"], strict=True))
    with pytest.raises(ValueError, match="no EMA with decay 0.99"):
        ema.copy_to(net, 0.99)
    with pytest.raises(ValueError, match="EMA decays differ"):
        EMA(net, [0.5]).load_state_dict(ema.state_dict())


def test_checkpoint_permissions_follow_the_umask(tmp_path: Path) -> None:
    path = ckpt.save_checkpoint({"step": 3}, tmp_path / ckpt.LAST)
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0600
