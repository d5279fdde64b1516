"""scripts/gpu_check.sh in its CPU dry run: every stage runs at tiny sizes and writes what the GPU run will write."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import torch

from jitlib.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["train", "resume", "sample", "bench-JiT-tiny-4", "bench-JiT-tiny-8", "fid"]


@pytest.mark.slow
def test_gpu_check_dry_run_writes_every_result(tmp_path: Path) -> None:
    out, parts = tmp_path / "check", tmp_path / "fid-parts"
    # the FID network travels in two parts, as to a GPU machine without its wheel (scripts/device_fid.sh)
    split = subprocess.run(
        ["bash", str(ROOT / "scripts" / "device_fid.sh"), str(parts)], capture_output=True, text=True
    )
    assert split.returncode == 0, split.stderr
    assert sorted(p.name for p in parts.iterdir()) == ["part-00", "part-01"]
    assert max(p.stat().st_size for p in parts.iterdir()) < 46 * 2**20  # + the ~21 MB tree < 64 MiB per call
    collect = tmp_path / "collect"  # what the device tool would bring back: at most 8 files of 16 MiB
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "JITLIB_FID_PARTS": str(parts),
        "GPU_CHECK_COLLECT": str(collect),
    }
    env.pop("JITLIB_FID_NETWORK", None)
    run = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(out), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=960,
    )
    summary = (out / "summary.md").read_text()
    assert run.returncode == 0, summary + run.stderr[-2000:]
    for stage in STAGES:
        assert f"- {stage}: exit 0 in " in summary, summary
    assert "every stage passed" in summary and "jitlib doctor:" in (out / "doctor.txt").read_text()
    # killed with SIGKILL mid-run, resumed from its last checkpoint to the end
    assert "killed with SIGKILL after" in (out / "train.log").read_text()
    resumed = json.loads((out / "train.jsonl").read_text().splitlines()[-1])
    assert 0 < resumed["from_step"] < resumed["to_step"] == 40
    state = load_checkpoint(out / "train")
    assert state["step"] == 40 and all(torch.isfinite(v).all() for v in state["model"].values())
    sample = json.loads((out / "sample.json").read_text())
    assert sample["finite"] and sample["images"] == 8 and (out / "sample" / "samples.png").stat().st_size > 0
    rows = [line for line in (out / "bench.md").read_text().splitlines() if line.startswith("| JiT-")]
    assert [r.split(" | ")[0] for r in rows] == ["| JiT-tiny/4", "| JiT-tiny/8"]
    assert all(float(r.split(" | ")[5]) > 0 and float(r.split(" | ")[8]) > 0 for r in rows)
    assert all(
        float(r.split(" | ")[9].rstrip(" |")) >= 0 for r in rows
    )  # the first step (compiling included)
    for model in ("JiT-tiny-4", "JiT-tiny-8"):  # in full: on a CPU at these sizes it can round to 0.00 s
        train = json.loads((out / f"bench-{model}.json").read_text())["models"][0]["train"]
        assert all(row["first_step_s"] > 0 for row in train)
    assert f"FID network: joined from 2 parts in {parts}" in (out / "fid.log").read_text()
    scores = json.loads((out / "fid" / "fid.json").read_text())
    assert scores["num_fake"] == scores["num_real"] == 16 and scores["fid"] > 0
    collected = {p.name: p.stat().st_size for p in collect.iterdir()}
    assert set(collected) == {
        "summary.md",
        "bench.md",
        "doctor.txt",
        "train.jsonl",
        "sample.json",
        "samples.png",
        "fid.json",
        "logs.tar.gz",
    }
    assert all(0 < size < 16 * 2**20 for size in collected.values()), collected
    with tarfile.open(collect / "logs.tar.gz") as logs:
        names = {Path(n).name for n in logs.getnames()}
    assert {f"{stage}.log" for stage in STAGES} <= names and "bench-JiT-tiny-4.json" in names


def test_a_failing_stage_is_recorded_and_the_others_still_run(tmp_path: Path) -> None:
    """A broken interpreter fails every Python stage; the script still writes its summary and exits 1."""
    out = tmp_path / "check"
    env = {**os.environ, "JITLIB_PYTHON": "false"}  # `false` exits 1 at once: each stage fails fast
    run = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(out), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = (out / "summary.md").read_text()
    assert run.returncode == 1
    for stage in STAGES:
        assert f"- {stage}: exit 1 in " in summary, summary
    assert "some stage failed" in summary
