"""Mixed-precision training paths run on the CPU: bf16 autocast, fp16 with a GradScaler (overflow skipping, NaN stop),
and the hardware rule (bf16 where the GPU has it natively, fp16 otherwise) under a faked device capability.

Tolerance: a few steps in bf16 / fp16 autocast follow the fp32 run's losses to 2 % relative (bf16 keeps 8 bits of
mantissa, ≈ 0.4 % per rounding; measured ≤ 0.05 % after 5 steps of this tiny net); weights stay float32.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from jitlib.device import autocast_dtype
from jitlib.training.config import load_config
from jitlib.training.precision import resolve_precision
from jitlib.training.trainer import Trainer, TrainingDiverged

STEPS = 5


def trainer(out: Path, precision: str, *extra: str) -> Trainer:
    overrides = [
        f"train.steps={STEPS}",
        f"train.precision={precision}",
        f"train.output_dir={out}",
        "optim.lr=3e-3",
    ]
    return Trainer(load_config("smoke-digits", [*overrides, *extra]))


@pytest.fixture(scope="module")
def fp32_losses(tmp_path_factory: pytest.TempPathFactory) -> list[float]:
    return trainer(tmp_path_factory.mktemp("fp32"), "fp32").fit().losses


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_training_follows_fp32(tmp_path: Path, precision: str, fp32_losses: list[float]) -> None:
    run = trainer(tmp_path, precision)
    assert run.precision.name == precision and run.scaler.is_enabled() == (precision == "fp16")
    losses = run.fit().losses
    assert len(losses) == STEPS and all(math.isfinite(v) for v in losses)
    assert max(abs(a - b) / b for a, b in zip(losses, fp32_losses, strict=True)) < 0.02, (losses, fp32_losses)
    assert losses != fp32_losses  # autocast really computed in low precision
    assert all(p.dtype == torch.float32 for p in run.net.parameters())


def test_fp16_overflow_skips_the_step_and_halves_the_scale(tmp_path: Path) -> None:
    run = trainer(tmp_path, "fp16")
    run.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)  # loss × 2⁴⁰: fp16 gradients overflow
    x, y = next(iter(run.loader))
    before = [p.detach().clone() for p in run.net.parameters()]
    loss, _, _ = run.train_step(x, y)
    assert math.isfinite(loss) and run.step == 1
    assert all(torch.equal(a, p) for a, p in zip(before, run.net.parameters(), strict=True))  # step skipped
    assert run.scaler.get_scale() == 2.0**39
    run.scaler = torch.amp.GradScaler("cpu")  # the default 2¹⁶ fits: the next step updates the weights
    run.train_step(x, y)
    assert not all(torch.equal(a, p) for a, p in zip(before, run.net.parameters(), strict=True))


def test_fp16_nan_stops_before_the_step(tmp_path: Path) -> None:
    run = trainer(tmp_path, "fp16", "train.ckpt_every=2")

    def poison(info) -> None:
        if info.step == 3:
            with torch.no_grad():
                next(run.net.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match="loss is nan at step 4"):
        run.fit(callback=poison)


@pytest.mark.parametrize(
    ("capability", "auto", "bf16_allowed"),
    [((7, 5), torch.float16, False), ((8, 0), torch.bfloat16, True), ((9, 0), torch.bfloat16, True)],
)
def test_hardware_rule_bf16_where_native_else_fp16(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], auto: torch.dtype, bf16_allowed: bool
) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    cuda = torch.device("cuda")
    assert autocast_dtype(cuda) == auto
    chosen = resolve_precision("auto", cuda)
    assert chosen.dtype == auto and chosen.needs_scaler == (auto == torch.float16)
    if bf16_allowed:
        assert resolve_precision("bf16", cuda).dtype == torch.bfloat16
    else:
        with pytest.raises(ValueError, match="no native bf16; use train.precision=fp16 or auto"):
            resolve_precision("bf16", cuda)
    assert resolve_precision("auto", torch.device("cpu")).dtype is None  # CPU: fp32
    with pytest.raises(ValueError, match="train.precision='fp8' is not a precision; valid: auto, fp32"):
        resolve_precision("fp8", cuda)
