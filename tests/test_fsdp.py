"""Two CPU processes (gloo): FSDP2 ≡ DDP ≡ one process, and kill -9 + resume is bit-identical, for FSDP2 and DDP.

Tolerance: FSDP2 and DDP average gradients in another order than one process does, so weights and EMAs agree with
one process to a norm-wise relative error ‖a − b‖ / ‖b‖ ≤ 1e-5 per tensor (measured: ~6e-7 after 8 steps), losses to
1e-5 relative. A resumed run repeats exactly what the uninterrupted run of the same strategy computes: checkpoints
(weights, EMAs, optimizer state, step, every rank's RNG state) are compared with ``torch.equal``.

``Trainer.generator`` (sampling mid-run or after it) returns on every rank a plain network with the full weights: the
uninterrupted runs save what it returns, and rank 0 samples from it after the process group is gone.

This file is also the worker that torchrun starts:
``python tests/test_fsdp.py OUT STRATEGY [--resume] [--delay S] [--generator]``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from jitlib.training.checkpoint import load_checkpoint

STEPS = 8
EMAS = ("0.9", "0.99")
SAMPLES = 4  # images sampled from the EMA 0.99 generator (smoke-digits' sampler: 3 Heun steps, CFG 1.5)
OVERRIDES = [  # on top of smoke-digits: a 1-block, 32-wide JiT on 16×16 digits
    f"train.steps={STEPS}",
    "train.ckpt_every=2",
    f"train.ema_decays=[{','.join(EMAS)}]",
    "optim.lr=3e-3",
    "optim.schedule=cosine",
    "data.flip=true",
]
REL_TOL = 1e-5
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def worker(argv: list[str]) -> None:
    """Train smoke-digits with ``train.strategy=STRATEGY`` into OUT (resuming from it with --resume)."""
    from jitlib.training import distributed as dist
    from jitlib.training.config import load_config
    from jitlib.training.trainer import Trainer

    out, strategy = argv[0], argv[1]
    delay = float(argv[argv.index("--delay") + 1]) if "--delay" in argv else 0.0
    torch.set_num_threads(1)
    compiled = (
        ["train.compile=true"] if "--compile" in argv else []
    )  # the blocks' forwards (on a GPU by default)
    config = load_config(
        "smoke-digits", [*OVERRIDES, f"train.strategy={strategy}", f"train.output_dir={out}", *compiled]
    )
    trainer = Trainer(config, resume=out if "--resume" in argv else None)
    trainer.fit(callback=lambda info: time.sleep(delay))  # the delay only gives a test time to kill the run
    if "--generator" not in argv:
        dist.shutdown()
        return
    # Every rank builds the samplers together (gathering FSDP2 shards is collective), then the process group is
    # destroyed: the sample below runs on rank 0 alone, where any collective call or DTensor op would raise.
    pipes = {ema: trainer.generator(ema) for ema in ("model", *EMAS)}
    found = {
        ema: {k: v.detach().clone() for k, v in pipe.net.state_dict().items()} for ema, pipe in pipes.items()
    }
    tensors_of = [t for pipe in pipes.values() for t in (*pipe.net.parameters(), *pipe.net.buffers())]
    found["sharded"] = any(hasattr(t, "device_mesh") for t in tensors_of)
    found["devices"] = sorted({str(t.device) for t in tensors_of})
    dist.shutdown()
    if trainer.dist.is_main:
        from jitlib.evaluation.generate import generate

        found["process_group"] = torch.distributed.is_initialized()
        found["sample"] = generate(pipes[EMAS[-1]], torch.arange(SAMPLES) % 10, seed=0)
    torch.save(found, Path(out) / f"generator-rank{trainer.dist.rank}.pt")


def command(out: Path, strategy: str, processes: int, *extra: str) -> list[str]:
    script = [__file__, str(out), strategy, *extra]
    if processes == 1:
        return [sys.executable, *script]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={processes}",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        *script,
    ]


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]


def tensors(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights and every EMA of a checkpoint, flattened to {name: tensor}."""
    flat = {f"model.{k}": v for k, v in state["model"].items()}
    for decay, shadow in state["ema"].items():
        flat.update({f"ema{decay}.{k}": v for k, v in shadow.items()})
    return flat


def optimizer_tensors(state: dict[str, Any]) -> list[torch.Tensor]:
    return [
        t for s in state["optimizer"]["state"].values() for t in s.values() if isinstance(t, torch.Tensor)
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Uninterrupted runs: one process, DDP and FSDP2 on 2 processes, and FSDP2 with compiled blocks (as on a GPU by
    default), all started together (they wait on imports)."""
    root = tmp_path_factory.mktemp("strategies")
    jobs = {"one": ("ddp", 1), "ddp": ("ddp", 2), "fsdp": ("fsdp", 2), "fsdp-compiled": ("fsdp", 2)}
    procs = {
        name: subprocess.Popen(
            command(root / name, strategy, n, "--generator", *(["--compile"] * name.endswith("compiled"))),
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, (strategy, n) in jobs.items()
    }
    for name, proc in procs.items():
        output = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, f"{name}: {output[-3000:]}"
    return {name: root / name for name in jobs}


@pytest.mark.slow
def test_fsdp_equals_ddp_equals_one_process(runs: dict[str, Path]) -> None:
    one = load_checkpoint(runs["one"])
    assert (
        one["step"] == STEPS and tensors(one)["model.final_layer.linear.weight"].abs().sum() > 0
    )  # it trained
    assert "  compile: true" in (runs["fsdp-compiled"] / "config.yaml").read_text().splitlines()
    for name in ("ddp", "fsdp", "fsdp-compiled"):
        a, b = losses(runs[name]), losses(runs["one"])
        assert len(a) == len(b) == STEPS
        assert max(abs(x - y) / abs(y) for x, y in zip(a, b, strict=True)) <= REL_TOL, (name, a, b)
        ta, tb = tensors(load_checkpoint(runs[name])), tensors(one)
        assert ta.keys() == tb.keys()
        for key in tb:
            error = ((ta[key] - tb[key]).norm() / tb[key].norm().clamp_min(1e-12)).item()
            assert error <= REL_TOL, f"{name} {key}: relative error {error:.3g}"


@pytest.mark.slow
def test_generator_is_a_plain_full_network_on_every_rank(runs: dict[str, Path]) -> None:
    """``Trainer.generator(ema)`` after the run, on every rank: no DTensor, the full weights of the run's checkpoint
    bit for bit (raw weights, each EMA), and rank 0 samples alone with no process group left; the FSDP2 and DDP
    samples equal the one-process sample to REL_TOL (their weights do, to REL_TOL)."""
    reference = torch.load(runs["one"] / "generator-rank0.pt", weights_only=True)["sample"]
    assert reference.shape == (SAMPLES, 1, 16, 16) and reference.std() > 0
    for name, ranks in (("one", 1), ("ddp", 2), ("fsdp", 2)):
        checkpoint = load_checkpoint(runs[name])
        for rank in range(ranks):
            found = torch.load(runs[name] / f"generator-rank{rank}.pt", weights_only=True)
            assert found["sharded"] is False and found["devices"] == ["cpu"], (name, rank)
            for ema in ("model", *EMAS):
                want = {k: checkpoint["ema"].get(ema, {}).get(k, v) for k, v in checkpoint["model"].items()}
                got = found[ema]
                assert got.keys() == want.keys(), (name, rank, ema)
                assert all(type(got[k]) is torch.Tensor and torch.equal(got[k], want[k]) for k in want), (
                    f"{name} rank {rank} {ema}: not the checkpoint's full weights"
                )
            assert ("sample" in found) == (rank == 0)
        found = torch.load(runs[name] / "generator-rank0.pt", weights_only=True)
        assert found["process_group"] is False
        error = ((found["sample"] - reference).norm() / reference.norm()).item()
        assert error <= REL_TOL, f"{name}: sample differs from one process by {error:.3g}"
    assert not torch.equal(  # the EMAs really differ from the raw weights, so the test can tell them apart
        checkpoint["ema"]["0.9"]["final_layer.linear.weight"],
        checkpoint["model"]["final_layer.linear.weight"],
    )


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["fsdp", "ddp"])
def test_kill_9_then_resume_is_bit_identical(runs: dict[str, Path], tmp_path: Path, strategy: str) -> None:
    """SIGKILL the whole 2-process job after step 3 (checkpoints every 2 steps), resume, compare checkpoints exactly."""
    out = tmp_path / strategy
    proc = subprocess.Popen(
        command(out, strategy, 2, "--delay", "0.4"),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # torchrun and its workers form one process group, killed together
    )
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if (out / "log.jsonl").exists() and len((out / "log.jsonl").read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert 2 <= load_checkpoint(out)["step"] < STEPS
    subprocess.run(
        command(out, strategy, 2, "--resume"), env=ENV, check=True, capture_output=True, timeout=600
    )
    resumed, reference = load_checkpoint(out), load_checkpoint(runs[strategy])
    assert resumed["step"] == reference["step"] == STEPS
    ta, tb = tensors(resumed), tensors(reference)
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in tb)
    oa, ob = optimizer_tensors(resumed), optimizer_tensors(reference)
    assert len(oa) == len(ob) > 0 and all(torch.equal(a, b) for a, b in zip(oa, ob, strict=True))
    assert len(resumed["rng"]) == 2
    for ra, rb in zip(resumed["rng"], reference["rng"], strict=True):
        assert torch.equal(ra["torch"], rb["torch"])
    assert losses(out) == losses(runs[strategy])


if __name__ == "__main__":
    worker(sys.argv[1:])


def test_fsdp_on_a_torch_without_fsdp2_is_one_clear_line(monkeypatch) -> None:
    """torch < 2.6 has no public fully_shard: the strategy says which torch it needs instead of an ImportError."""
    import torch.distributed.fsdp

    from jitlib.training.distributed import DistInfo, wrap

    monkeypatch.delattr(torch.distributed.fsdp, "fully_shard")
    with pytest.raises(RuntimeError, match=r"needs torch >= 2\.6") as err:
        wrap(torch.nn.Linear(2, 2), "fsdp", DistInfo(rank=1, world_size=2))
    assert "train.strategy=ddp" in str(err.value) and "\n" not in str(err.value)
