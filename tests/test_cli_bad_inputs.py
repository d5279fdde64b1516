"""Bad input to the real ``python -m jitlib``: one error line naming the bad value, exit status 2, no file touched.

Every case runs as its own subprocess in one working folder that holds a finished run, an exported artifact, config
files and outputs of earlier commands; after all cases every file in it must be byte-identical and no file new.
Cases run three at a time, forked from one interpreter that has imported jitlib (see SERVER). With ``JITLIB_BADINPUT_TABLE=path``
the table of (case, exit code, message) is written there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jitlib.artifact import load
from jitlib.training.checkpoint import LAST, load_checkpoint, save_checkpoint

SMOKE = ["smoke-digits", "train.steps=2", "train.batch_size=8"]


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def work(smoke_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working folder: a run, a second run, an artifact and broken copies of both, files of every kind."""
    w = tmp_path_factory.mktemp("work")
    shutil.copytree(smoke_run(*SMOKE[1:]), w / "run")
    shutil.copytree(w / "run", w / "run2")
    load(w / "run").save_pretrained(w / "art")
    for name in ("badver", "corrupt"):
        shutil.copytree(w / "art", w / name)
    card = json.loads((w / "badver" / "config.json").read_text())
    (w / "badver" / "config.json").write_text(json.dumps({**card, "format_version": 99}))
    weights = w / "corrupt" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-9] ^= 0xFF
    weights.write_bytes(bytes(data))
    (w / "flat").mkdir()
    (w / "flat" / "config.json").write_text(json.dumps({"input_size": 16, "patch_size": 8}))
    state = load_checkpoint(w / "run")
    state["model_kwargs"]["hidden_size"] = 48
    (w / "mismatch").mkdir()
    save_checkpoint(state, w / "mismatch" / LAST)
    (w / "a_file").write_text("x")
    (w / "garbage.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    (w / "list.yaml").write_text("- model\n- data\n")
    (w / "text.yaml").write_text("just a sentence\n")
    (w / "broken.yaml").write_text("model: [1, 2\n")
    (w / "binary.yaml").write_bytes(bytes(range(256)))
    (w / "existing.png").write_bytes(b"\x89PNG not really")
    (w / "full").mkdir()
    (w / "full" / "keep.txt").write_text("mine")
    return w


def cases(w: Path) -> list[tuple[str, list[str], str]]:
    """(case, argv after ``jitlib``, a phrase the error line must contain)."""
    run, art = str(w / "run"), str(w / "art")
    out = ["--npz", str(w / "new.npz")]
    train = ["train", *SMOKE]
    return [
        ("train: no preset", ["train"], "give a preset"),
        ("train: unknown preset", ["train", "no-such-preset"], "unknown preset 'no-such-preset'; valid:"),
        ("train: two presets", ["train", "smoke-digits", "tiny-shapes"], "give one preset"),
        ("train: misspelt key", [*train, "train.batchsize=8"], "did you mean train.batch_size"),
        (
            "train: wrong type",
            [*train, "train.batch_size=abc"],
            "train.batch_size: expected an integer, got 'abc'",
        ),
        (
            "train: out of range",
            [*train, "diffusion.label_drop=1.5"],
            "diffusion.label_drop=1.5 must lie in [0, 1)",
        ),
        ("train: unknown arch key", [*train, "model.arch.heads=2"], "unknown config key 'model.arch.heads'"),
        (
            "train: unknown device",
            [*train, "train.device=tpu"],
            "train.device='tpu' is not a device; valid: auto",
        ),
        (
            "train: unknown target",
            [*train, "diffusion.pred=z"],
            "diffusion.pred: expected one of 'x', 'eps', 'v'",
        ),
        ("train: negative CFG", [*train, "sample.cfg_scale=-1"], "sample.cfg_scale=-1.0 must be >= 0"),
        (
            "train: betas length",
            [*train, "optim.betas=[0.9]"],
            "optim.betas: expected a list of a number (length 2)",
        ),
        (
            "train: EMA decay > 1",
            [*train, "train.ema_decays=[1.5]"],
            "must be a non-empty list of numbers in (0, 1)",
        ),
        (
            "train: sample.ema not kept",
            [*train, "sample.ema=0.5"],
            "sample.ema=0.5 is not one of train.ema_decays",
        ),
        ("train: empty override key", [*train, "train.=3"], "must look like section.key=value"),
        ("train: patch size", [*train, "data.image_size=30"], "not divisible by the patch size 8"),
        ("train: YAML list", ["train", str(w / "list.yaml")], "holds list"),
        ("train: YAML text", ["train", str(w / "text.yaml")], "holds str 'just a sentence'"),
        ("train: broken YAML", ["train", str(w / "broken.yaml")], "not valid YAML"),
        ("train: binary YAML", ["train", str(w / "binary.yaml")], "not"),
        ("train: missing YAML", ["train", str(w / "missing.yaml")], "does not exist"),
        ("train: over a finished run", [*train, f"train.output_dir={run}"], "pass --resume"),
        ("train: resume nothing", ["train", "--resume", str(w / "nothing")], "does not exist"),
        ("train: resume garbage", ["train", "--resume", str(w / "garbage.pt")], "cannot read checkpoint"),
        (
            "train: resume changed arch",
            ["train", "--resume", run, "model.arch.depth=2"],
            "model.arch.depth: 1 in checkpoint, 2 now",
        ),
        (
            "train: resume into another run",
            [*train, f"train.output_dir={w / 'run2'}", "--resume", run],
            "holds another run than --resume",
        ),
        (
            "train: resume mismatched weights",
            ["train", "--resume", str(w / "mismatch")],
            "do not match its weights",
        ),
        (
            "train: resume unknown device",
            ["train", "--resume", run, "train.device=tpu"],
            "train.device='tpu'",
        ),
        (
            "train: batch > data",
            [*train, "train.batch_size=5000", f"train.output_dir={w / 'o1'}"],
            "fewer than train.batch_size=5000",
        ),
        ("sample: missing source", ["sample", str(w / "nothing"), *out], "does not exist; give a run folder"),
        (
            "sample: unknown shipped name",
            ["sample", "digits-huge", *out],
            "'digits-huge' does not exist; give a run folder, a checkpoint file, an artifact folder, an official .pth, "
            "or a shipped model (digits-small",
        ),
        (
            "sample: garbage file",
            ["sample", str(w / "garbage.pt"), *out],
            "not a jitlib or an official JiT checkpoint",
        ),
        ("sample: no output", ["sample", run], "give at least one output"),
        ("sample: wrong suffix", ["sample", run, "--npz", str(w / "x.png")], "must end in .npz"),
        (
            "sample: existing output",
            ["sample", run, "--grid", str(w / "existing.png")],
            "exists; choose a new file name",
        ),
        (
            "sample: zero steps",
            ["sample", run, *out, "--steps", "0"],
            "argument --steps: expected a positive integer, got 0",
        ),
        (
            "sample: negative num",
            ["sample", run, *out, "--num", "-3"],
            "argument --num: expected a positive integer, got -3",
        ),
        (
            "sample: negative CFG",
            ["sample", run, *out, "--cfg-scale", "-1"],
            "argument --cfg-scale/--cfg: expected a number >= 0 (1 = no guidance), got -1.0",
        ),
        (
            "sample: reversed interval",
            ["sample", run, *out, "--interval", "0.5", "0.2"],
            "--interval 0.5 0.2",
        ),
        (
            "sample: class out of range",
            ["sample", run, *out, "--labels", "3", "12"],
            "class id 12 out of range",
        ),
        ("sample: EMA not kept", ["sample", run, *out, "--ema", "0.5"], "--ema '0.5': "),
        ("sample: EMA not a number", ["sample", art, *out, "--ema", "slow"], "--ema 'slow': "),
        (
            "sample: unknown device",
            ["sample", run, *out, "--device", "tpu"],
            "argument --device: 'tpu' is not a device; valid: auto, cpu, cuda, cuda:N, mps",
        ),
        (
            "sample: absent GPU",
            ["sample", run, *out, "--device", "cuda:9"],
            "argument --device: 'cuda:9': this machine has no such CUDA device; valid here: auto, cpu",
        ),
        ("sample: unknown solver", ["sample", run, *out, "--method", "rk4"], "invalid choice: 'rk4'"),
        (
            "sample: steps not a number",
            ["sample", run, *out, "--steps", "many"],
            "argument --steps: expected a positive integer, got 'many'",
        ),
        ("sample: unknown format_version", ["sample", str(w / "badver"), *out], "format_version 99"),
        ("sample: network-only folder", ["sample", str(w / "flat"), *out], "no format_version"),
        ("sample: corrupt weights", ["sample", str(w / "corrupt"), *out], "is corrupt: SHA-256"),
        ("sample: mismatched checkpoint", ["sample", str(w / "mismatch"), *out], "do not match its weights"),
        ("sample: non-empty PNG folder", ["sample", run, "--png-dir", str(w / "full")], "is not empty"),
        (
            "sample: shards into a used folder",
            ["sample", run, "--shards", str(w / "full")],
            "holds no generation.json",
        ),
        (
            "sample: unwritable output",
            ["sample", run, "--grid", str(w / "a_file" / "g.png")],
            "is not writable",
        ),
        ("export: over an artifact", ["export", run, art], "already exists"),
        (
            "export: unknown dtype",
            ["export", run, str(w / "e1"), "--dtype", "float8"],
            "invalid choice: 'float8'",
        ),
        ("export: EMA not kept", ["export", run, str(w / "e2"), "--ema", "0.3"], "--ema '0.3'"),
        ("export: missing source", ["export", str(w / "nothing"), str(w / "e3")], "does not exist"),
        # Shared options (jitlib.cli.options): every command spells and checks them the same way.
        (
            "eval fid: unknown device",
            ["eval", "fid", run, "--ref", "photos", "--device", "tpu"],
            "argument --device: 'tpu' is not a device; valid: auto",
        ),
        (
            "eval fid: zero images",
            ["eval", "fid", run, "--ref", "photos", "--num", "0"],
            "argument --num: expected a positive integer, got 0",
        ),
        (
            "eval sweep: negative CFG",
            ["eval", "sweep", run, "--cfg-scale", "1", "-2"],
            "argument --cfg-scale/--cfg: expected a number >= 0 (1 = no guidance), got -2.0",
        ),
        (
            "eval sweep: EMA not kept",
            ["eval", "sweep", run, "--ema", "0.5", "--num", "2", "--steps", "1"],
            "--ema '0.5': ",
        ),
        (
            "eval sweep: zero batch",
            ["eval", "sweep", art, "--batch-size", "0"],
            "argument --batch-size: expected a positive integer, got 0",
        ),
        ("toy: unknown device", ["toy", "--device", "gpu"], "argument --device: 'gpu' is not a device"),
        ("toy: zero steps", ["toy", "--steps", "0"], "argument --steps: expected a positive integer, got 0"),
        (
            "bench: zero threads",
            ["bench", "--threads", "0"],
            "argument --threads: expected a positive integer",
        ),
        (
            "bench: absent GPU",
            ["bench", "--device", "cuda:7"],
            "argument --device: 'cuda:7': this machine has",
        ),
        ("unknown command", ["trian"], "invalid choice: 'trian'"),
    ]


# A fork server: one fresh interpreter imports jitlib (no tensor maths, so no OpenMP state to inherit), then each case
# is a child process forked from it that runs ``jitlib/__main__.py`` exactly as ``python -m jitlib ARGS`` does —
# sys.argv set, run as __main__, an uncaught exception printed as a traceback with exit status 1. Only the
# interpreter start-up (~2 s of imports) is shared; ``test_fork_server_matches_a_fresh_interpreter`` checks that.
SERVER = r"""
import json, os, runpy, sys, traceback
import jitlib.cli, sklearn.datasets  # the imports every case needs, done once
cases, cwd, folder, parallel = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
running, codes = {}, {}
for index, argv in enumerate(cases):
    if len(running) >= parallel:
        pid, status = os.wait()
        codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)
    pid = os.fork()
    if pid == 0:
        os.chdir(cwd)
        for fd, name in ((1, "out"), (2, "err")):
            os.dup2(os.open(f"{folder}/{index}.{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        sys.argv = ["jitlib", *argv]
        try:
            runpy.run_module("jitlib", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
    running[pid] = index
while running:
    pid, status = os.wait()
    codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)
print(json.dumps([codes[i] for i in range(len(cases))]))
"""


def run_cases(argvs: list[list[str]], cwd: Path, logs: Path, parallel: int = 3) -> list[tuple[int, str]]:
    """(exit status, stderr) of ``python -m jitlib ARGV`` for each argv, run in ``cwd`` by the fork server."""
    logs.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", SERVER, json.dumps(argvs), str(cwd), str(logs), str(parallel)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, check=True)
    codes = json.loads(done.stdout.strip().splitlines()[-1])
    return [(code, (logs / f"{i}.err").read_text()) for i, code in enumerate(codes)]


def test_fork_server_matches_a_fresh_interpreter(work: Path, tmp_path: Path) -> None:
    argvs = [
        ["sample", str(work / "badver"), "--npz", str(tmp_path / "n.npz")],
        ["train", "smoke-digits", "x.=1"],
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    fresh = [
        subprocess.run(
            [sys.executable, "-m", "jitlib", *a], capture_output=True, text=True, env=env, timeout=300
        )
        for a in argvs
    ]
    assert run_cases(argvs, work, tmp_path / "logs") == [(f.returncode, f.stderr) for f in fresh]


def test_bad_inputs_fail_with_one_line_and_touch_no_file(work: Path, tmp_path: Path) -> None:
    table = cases(work)
    assert len(table) >= 45
    before = fingerprint(work)
    results = run_cases([argv for _, argv, _ in table], work, tmp_path / "logs")
    rows, failures = [], []
    for (name, _, phrase), (code, stderr) in zip(table, results, strict=True):
        lines = stderr.strip().splitlines()
        last = lines[-1] if lines else ""
        rows.append((name, code, last))
        ok = (
            code != 0
            and "Traceback" not in stderr
            and last.startswith("jitlib")
            and ": error: " in last
            and phrase in last
        )
        if not ok:
            failures.append(f"{name}: exit {code}, stderr {stderr[-600:]!r}")
    if os.environ.get("JITLIB_BADINPUT_TABLE"):
        text = "| case | exit code | message |\n|---|---|---|\n"
        text += "".join(f"| {n} | {c} | `{m.replace('|', '/')}` |\n" for n, c, m in rows)
        Path(os.environ["JITLIB_BADINPUT_TABLE"]).write_text(text)
    assert not failures, "\n".join(failures)
    after = fingerprint(work)
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    assert not changed and after.keys() == before.keys(), (changed, sorted(after.keys() ^ before.keys()))
