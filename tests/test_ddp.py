"""torchrun with 2 CPU processes (gloo, DDP) computes what 1 process computes on the same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jitlib.training.checkpoint import load_checkpoint

TINY = [  # on top of the smoke-digits preset (a 1-block, 32-wide JiT on 16×16 digits)
    "data.flip=true",  # exercise the per-sample flip too
    "optim.lr=3e-3",
    "optim.warmup_epochs=0.1",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    train = ["-m", "jitlib", "train", "smoke-digits", *TINY]
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(
        [sys.executable, *train, f"train.output_dir={one}"],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(free_port()),
            *train,
            f"train.output_dir={two}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "16 = 8 × 2 processes" in run.stderr  # the effective batch is printed, once (rank 0)
    assert run.stderr.count("global batch") == 1
    a, b = losses(one), losses(two)
    assert len(a) == len(b) == 8
    assert max(abs(x - y) / abs(x) for x, y in zip(a, b, strict=True)) < 1e-4, (a, b)
    wa, wb = load_checkpoint(one)["model"], load_checkpoint(two)["model"]
    assert (
        wa["final_layer.linear.weight"].abs().sum() > 0
    )  # the zero-initialised head moved: training happened
    for key in wa:
        assert torch.allclose(wa[key], wb[key], rtol=1e-4, atol=1e-6), key
