"""Bad input to `jitlib train | sample | eval`: one line on stderr, exit status 2, existing checkpoints untouched."""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from jitlib.cli import build_parser, main, options
from jitlib.training.checkpoint import load_checkpoint

TINY = [  # on top of the smoke-digits preset (a 1-block, 32-wide JiT on 16×16 digits)
    "train.batch_size=8",
    "train.steps=2",
]


@pytest.fixture(scope="module")
def run(smoke_run) -> Path:
    """A finished 2-step run whose folder every bad command must leave exactly as it was."""
    return smoke_run(*TINY)


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def images(root: Path, corrupt: bool = False) -> Path:
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (20, 16), (40 * i, 0, 90)).save(root / name / f"{i}.png")
    if corrupt:
        (root / "b" / "zz.jpg").write_bytes(b"\xff\xd8 truncated")
    return root


def bad_inputs(run: Path, tmp: Path) -> list[tuple[list[str], str]]:
    """(argv, a phrase the one-line error must contain)."""
    train = ["train", "smoke-digits", *TINY]
    folder = ["data.name=folder", "data.num_workers=0"]
    (tmp / "a_file").write_text("x")
    (tmp / "garbage.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    (tmp / "no_classes").mkdir()
    return [
        ([*train, *folder, f"data.root={tmp}/missing", f"train.output_dir={tmp}/o1"], "does not exist"),
        (
            [*train, *folder, f"data.root={tmp}/no_classes", f"train.output_dir={tmp}/o2"],
            "no class sub-folders",
        ),
        (
            [
                *train,
                *folder,
                f"data.root={images(tmp / 'bad_img', True)}",
                "train.batch_size=12",
                f"train.output_dir={tmp}/o3",
            ],
            "cannot read image",
        ),
        ([*train, "data.image_size=30", f"train.output_dir={tmp}/o4"], "not divisible by the patch size 8"),
        ([*train, "train.batchsize=8"], "did you mean train.batch_size"),
        ([*train, "train.batch_size=abc"], "train.batch_size: expected an integer, got 'abc'"),
        ([*train, "diffusion.label_drop=1.5"], "diffusion.label_drop=1.5 must lie in [0, 1)"),
        (
            [*train, "model.arch.heads=2", f"train.output_dir={tmp}/o5"],
            "unknown config key 'model.arch.heads'",
        ),
        (["train", "--resume", str(run), "model.arch.depth=2"], "model.arch.depth: 1 in checkpoint, 2 now"),
        (["train", "--resume", str(run), "model.name=JiT-tiny/4"], "model.name: 'JiT-tiny/8' in checkpoint"),
        (["train", "--resume", str(tmp / "nothing_here")], "does not exist"),
        (["train", "--resume", str(tmp / "garbage.pt")], "cannot read checkpoint"),
        ([*train, f"train.output_dir={run}"], "pass --resume"),
        ([*train, f"train.output_dir={tmp}/a_file/sub"], "is not writable"),
        ([*train, "train.batch_size=5000", f"train.output_dir={tmp}/o6"], "fewer than train.batch_size=5000"),
        ([*train, "model.num_classes=5", f"train.output_dir={tmp}/o7"], "class id 5 is out of range"),
        (
            [
                *train,
                "data.name=cifar10",
                "data.image_size=32",
                f"data.root={tmp}/c10",
                f"train.output_dir={tmp}/o8",
            ],
            "set data.download=true",
        ),
        (["train", "no-such-preset"], "unknown preset 'no-such-preset'"),
        (["train", "smoke-digits", "tiny-shapes"], "give one preset"),
        (["train"], "give a preset"),
        (
            ["sample", str(run), "--labels", "3", "12", "--grid", str(tmp / "g.png")],
            "class id 12 out of range",
        ),
        (["sample", str(run), "--ema", "0.5", "--grid", str(tmp / "g.png")], "keeps model, 0.9"),
        (["sample", str(run), "--steps", "0"], "argument --steps: expected a positive integer, got 0"),
        (["sample", str(run), "--grid", str(tmp / "a_file" / "g.png")], "is not writable"),
        (["sample", str(tmp / "garbage.pt"), "--npz", str(tmp / "s.npz")], "official"),
        (["eval", "sweep", str(run), "--metric", "fid"], "needs reference statistics"),
        (
            ["eval", "fid", str(tmp / "missing_samples"), "--ref", str(tmp / "none.npz")],
            "is neither 'photos'",
        ),
    ]


def test_bad_inputs_fail_with_one_line_and_leave_checkpoints_alone(run: Path, tmp_path: Path, capsys) -> None:
    before = fingerprint(run)
    cases = bad_inputs(run, tmp_path)
    assert len(cases) >= 15
    for argv, phrase in cases:
        capsys.readouterr()
        code = main(argv)
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2, (argv, lines)
        # Progress lines may come first; the error itself is the last line and the only one.
        errors = [line for line in lines if line.startswith(f"jitlib {argv[0]}: error:")]
        assert errors == lines[-1:] and not any("Traceback" in line for line in lines), (argv, lines)
        assert phrase in errors[0], (argv, errors)
        assert fingerprint(run) == before, argv


def test_corrupt_image_read_by_a_loader_worker_is_one_line(tmp_path: Path, capsys) -> None:
    argv = [
        "train",
        "smoke-digits",
        *TINY,
        "data.name=folder",
        "data.num_workers=1",
        "train.batch_size=12",
        f"data.root={images(tmp_path / 'imgs', True)}",
        f"train.output_dir={tmp_path / 'out'}",
    ]
    assert main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("jitlib train: error: cannot read image") and last.endswith("zz.jpg'")


def test_nan_loss_is_one_line_and_keeps_the_last_checkpoint(tmp_path: Path, capsys) -> None:
    out = tmp_path / "nan"
    argv = [
        "train",
        "smoke-digits",
        *TINY,
        "train.steps=6",
        "train.ckpt_every=1",
        "optim.lr=1e30",
        "optim.warmup_epochs=0",
        f"train.output_dir={out}",
    ]
    assert main(argv) == 2  # a 1e30 learning rate overflows the weights within a step or two
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.match(r"jitlib train: error: loss is (nan|inf) at step \d+; .* is untouched", last), last
    state = load_checkpoint(out)
    assert 1 <= state["step"] < 6 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_the_real_command_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jitlib", "train", "--resume", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "does not exist" in done.stderr


def all_commands(parser=None, prefix: str = "jitlib") -> dict[str, object]:
    """{"jitlib sample": its parser, "jitlib eval fid": …} for every command and sub-command."""
    parser = parser or build_parser()
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[f"{prefix} {name}"] = sub
                found |= all_commands(sub, f"{prefix} {name}")
    return found


def test_shared_options_have_one_check_and_one_help_everywhere() -> None:
    """Every command spells a shared option with the same check (jitlib.cli.options) and, where it means the same, help."""
    checks = {
        "--device": options.device,
        "--threads": options.positive_int,
        "--cfg-scale": options.guidance_scale,
    }
    checks |= dict.fromkeys(
        ("--steps", "--num", "--batch-size", "--sample-steps", "--image-size"), options.positive_int
    )
    seen: dict[str, set[str]] = {}
    for command, parser in all_commands().items():
        for action in parser._actions:
            for option in set(action.option_strings) & set(checks):
                assert action.type is checks[option], (
                    f"{command} {option} is not checked by {checks[option].__name__}"
                )
                seen.setdefault(option, set()).add(command)
                if option in ("--device", "--threads"):
                    seen.setdefault(f"{option} help", set()).add(action.help)
    assert seen["--device"] == {f"jitlib {c}" for c in ("sample", "eval fid", "eval sweep", "toy", "bench")}
    assert len(seen["--device help"]) == 1 and len(seen["--threads help"]) == 1
    assert seen["--cfg-scale"] == {f"jitlib {c}" for c in ("sample", "eval fid", "eval sweep", "bench")}
