"""``jitlib train PRESET --resume A`` continues in A's folder; the train command lives in jitlib.cli.train."""

from __future__ import annotations

from pathlib import Path

from jitlib.cli import main
from jitlib.training.checkpoint import load_checkpoint


def test_resume_with_a_preset_continues_in_the_resumed_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the preset's own output_dir (runs/smoke-digits) would be created here
    first = tmp_path / "A"
    assert (
        main(["train", "smoke-digits", "train.batch_size=8", "train.steps=2", f"train.output_dir={first}"])
        == 0
    )
    assert main(["train", "smoke-digits", "train.batch_size=8", "train.steps=3", "--resume", str(first)]) == 0
    assert load_checkpoint(first)["step"] == 3
    assert not (tmp_path / "runs").exists()
