"""The tier switch and the device doctor."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from jitlib import device


def test_tier_defaults_to_tiny_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(device.TIER_ENV, raising=False)
    expected = "full" if torch.cuda.is_available() else "tiny"
    assert device.tier() == expected


@pytest.mark.parametrize("value", ["tiny", "full", " FULL "])
def test_tier_env_override(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(device.TIER_ENV, value)
    assert device.tier() == value.strip().lower()


def test_bad_tier_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(device.TIER_ENV, "huge")
    with pytest.raises(ValueError, match=r"JITLIB_TIER='huge'.*valid: tiny, full") as err:
        device.tier()
    assert "\n" not in str(err.value)


def test_cpu_uses_fp32() -> None:
    assert device.autocast_dtype("cpu") is None
    assert not device.bf16_is_native(torch.device("cpu"))


def test_doctor_reports_without_side_effects(capsys: pytest.CaptureFixture[str]) -> None:
    report = device.doctor()
    printed = capsys.readouterr().out
    assert report.tier in device.TIERS and f"tier={report.tier}" in printed
    if not torch.cuda.is_available():
        assert report.precision == "fp32" and report.device == "cpu" and report.compute_capability is None


def test_cli_doctor_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jitlib", "doctor"], capture_output=True, text=True, check=True
    )
    assert "jitlib doctor: tier=" in result.stdout


def test_one_device_resolver_names_what_is_valid() -> None:
    assert device.resolve_device("auto") == device.default_device()
    assert device.resolve_device("cpu") == torch.device("cpu")
    for bad in ("tpu", "cuda:x", "gpu", ""):
        with pytest.raises(ValueError, match="is not a device; valid: auto, cpu, cuda, cuda:N, mps"):
            device.resolve_device(bad)
    with pytest.raises(ValueError, match="no such CUDA device; valid here: auto, cpu"):
        device.resolve_device(f"cuda:{torch.cuda.device_count()}")
