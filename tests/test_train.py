"""The trainer: schedule and per-sample randomness, loss goes down, exact resume (also after kill -9), NaN stop."""

from __future__ import annotations

import copy
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from jitlib.artifact import load
from jitlib.nn.registry import create_model
from jitlib.training.checkpoint import LAST, load_checkpoint
from jitlib.training.compiling import is_compiled, maybe_compile, resolve_compile
from jitlib.training.config import DiffusionConfig, load_config
from jitlib.training.data import TensorImages, digits
from jitlib.training.trainer import Trainer, TrainingDiverged, draw_noise, learning_rate, model_kwargs

# A 1-block, 32-wide JiT on 16×16 digits (4 tokens of 8×8): a training step takes milliseconds.
TINY = [  # on top of the smoke-digits preset (a 1-block, 32-wide JiT on 16×16 digits)
    "train.ema_decays=[0.9,0.99]",
    "optim.warmup_epochs=0.1",
]


def tiny_config(out: Path, *extra: str):
    return load_config("smoke-digits", [*TINY, f"train.output_dir={out}", *extra])


def weights(path: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path)
    flat = {f"model.{k}": v for k, v in state["model"].items()}
    for decay, shadow in state["ema"].items():
        flat.update({f"ema{decay}.{k}": v for k, v in shadow.items()})
    return flat


def assert_bit_identical(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_learning_rate_schedule() -> None:
    lr = [learning_rate(s, 1.0, 4, 20, "cosine", 0.1) for s in range(20)]
    assert lr[:4] == [0.25, 0.5, 0.75, 1.0]  # linear warmup reaching lr at the end of it
    assert all(a >= b for a, b in zip(lr[4:], lr[5:], strict=False)) and lr[-1] > 0.1
    assert learning_rate(20, 1.0, 4, 20, "cosine", 0.1) == pytest.approx(0.1)
    assert learning_rate(10, 2.0, 4, 20, "constant") == 2.0


def test_per_sample_randomness_does_not_depend_on_the_batch_it_is_in() -> None:
    cfg = DiffusionConfig(noise_scale=2.0, label_drop=0.1)
    cpu = torch.device("cpu")
    full = draw_noise(7, 3, list(range(8)), (1, 2, 2), cfg, cpu)
    part = draw_noise(7, 3, [5, 2], (1, 2, 2), cfg, cpu, global_batch=8)
    for a, b in zip(full, part, strict=True):
        assert torch.equal(a[[5, 2]], b)
    for rank in range(2):  # the rows a rank of 2 processes holds (ResumableSampler's interleaving r + 2j)
        mine = draw_noise(7, 3, range(rank, 8, 2), (1, 2, 2), cfg, cpu, global_batch=8)
        assert all(torch.equal(a[rank::2], b) for a, b in zip(full, mine, strict=True))
    assert not torch.equal(draw_noise(7, 4, range(8), (1, 2, 2), cfg, cpu)[1], full[1])  # the step matters
    assert not torch.equal(draw_noise(8, 3, range(8), (1, 2, 2), cfg, cpu)[1], full[1])  # the seed matters
    with pytest.raises(ValueError, match=r"positions must lie in \[0, 8\)"):
        draw_noise(7, 3, [8], (1,), cfg, cpu, global_batch=8)


def test_training_draws_follow_the_recipe() -> None:
    t, eps, drop, flip = draw_noise(
        0, 0, list(range(4000)), (1, 1, 4), DiffusionConfig(noise_scale=2.0), torch.device("cpu")
    )
    assert t.median().item() == pytest.approx(
        1 / (1 + math.exp(0.8)), abs=0.02
    )  # logit-normal, median sigmoid(−0.8)
    assert eps.std().item() == pytest.approx(2.0, rel=0.03)  # ε ~ N(0, s²I)
    assert drop.float().mean().item() == pytest.approx(0.1, abs=0.015)
    assert flip.float().mean().item() == pytest.approx(0.5, abs=0.03)


def test_model_kwargs_come_from_data_and_are_checked(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    kwargs = model_kwargs(config, channels=1, num_classes=10)
    assert kwargs["input_size"] == 16 and kwargs["in_channels"] == 1 and kwargs["num_classes"] == 10
    assert kwargs["depth"] == 1
    with pytest.raises(ValueError, match="unknown config key 'model.arch.dpth'"):
        model_kwargs(tiny_config(tmp_path, "model.arch.dpth=2"), 1, 10)
    with pytest.raises(ValueError, match="model.arch.input_size is set by data.image_size"):
        model_kwargs(tiny_config(tmp_path, "model.arch.input_size=32"), 1, 10)
    with pytest.raises(ValueError, match="model.arch.depth: expected an integer"):
        model_kwargs(tiny_config(tmp_path, "model.arch.depth=two"), 1, 10)
    with pytest.raises(ValueError, match="class id 5 is out of range"):
        model_kwargs(tiny_config(tmp_path, "model.num_classes=5"), 1, 10)
    assert model_kwargs(tiny_config(tmp_path, "model.num_classes=0"), 1, 10)["num_classes"] == 0


def test_loss_goes_down_and_logs(tmp_path: Path) -> None:
    seen = []
    trainer = Trainer(tiny_config(tmp_path, "train.steps=60", "optim.lr=3e-3"))
    result = trainer.fit(callback=lambda info: seen.append(info.step))
    assert seen == list(range(1, 61)) and result.step == 60
    first, last = sum(result.losses[:10]) / 10, sum(result.losses[-10:]) / 10
    assert last < 0.7 * first, (first, last)
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(lines) == 60 and (tmp_path / "config.yaml").exists() and any((tmp_path / "tb").iterdir())
    state = load_checkpoint(tmp_path)
    assert state["step"] == 60 and set(state["ema"]) == {"0.9", "0.99"}
    for ema in (
        "0.9",
        "model",
    ):  # the notebook path (trainer.generator) holds the same weights as the checkpoint
        live, saved = trainer.generator(ema).net.state_dict(), load(tmp_path).pipeline(ema).net.state_dict()
        assert all(torch.equal(live[k], saved[k]) for k in saved)
    slowest, fast = (
        trainer.generator().net.final_layer.linear.weight,
        trainer.generator(0.9).net.final_layer.linear.weight,
    )
    assert torch.equal(slowest, load(tmp_path).pipeline("0.99").net.final_layer.linear.weight)
    assert not torch.equal(slowest, fast)


def test_generator_is_a_fresh_plain_copy(tmp_path: Path) -> None:
    """In one process, generator(ema) holds exactly what a deep copy of the network with the EMA copied in held
    (its former implementation), shares no storage with the trainer's network and draws no random numbers."""
    trainer = Trainer(tiny_config(tmp_path, "train.steps=3"))
    trainer.fit()
    for ema in ("model", "0.9", 0.99):
        old = copy.deepcopy(trainer.net)
        if ema != "model":
            trainer.ema.copy_to(old, ema)
        rng = torch.get_rng_state()
        pipe = trainer.generator(ema)
        assert torch.equal(rng, torch.get_rng_state()) and not pipe.net.training
        new, want = pipe.net.state_dict(), old.state_dict()
        assert new.keys() == want.keys() and all(torch.equal(new[k], want[k]) for k in want), ema
        mine = {t.data_ptr() for t in (*pipe.net.parameters(), *pipe.net.buffers())}
        assert not mine & {t.data_ptr() for t in (*trainer.net.parameters(), *trainer.net.buffers())}
    with pytest.raises(ValueError, match="no EMA with decay 0.5; this run keeps 0.9, 0.99"):
        trainer.generator(0.5)


@pytest.mark.parametrize(("pred", "loss"), [("eps", "x"), ("v", "eps")])
def test_other_cells_of_the_grid_train(tmp_path: Path, pred: str, loss: str) -> None:
    result = Trainer(
        tiny_config(tmp_path, "train.steps=3", f"diffusion.pred={pred}", f"diffusion.loss={loss}")
    ).fit()
    assert all(math.isfinite(v) for v in result.losses)


def test_stop_and_resume_equals_uninterrupted(tmp_path: Path) -> None:
    extra = ("train.steps=12", "train.ckpt_every=100", "optim.schedule=cosine")
    Trainer(tiny_config(tmp_path / "a", *extra)).fit()
    stopped = Trainer(tiny_config(tmp_path / "b", *extra)).fit(callback=lambda info: info.step == 5)
    assert stopped.step == 5 and load_checkpoint(tmp_path / "b")["step"] == 5  # a stop writes a checkpoint
    Trainer(tiny_config(tmp_path / "b", *extra), resume=tmp_path / "b").fit()
    assert_bit_identical(tmp_path / "a", tmp_path / "b")
    rng_a, rng_b = load_checkpoint(tmp_path / "a")["rng"], load_checkpoint(tmp_path / "b")["rng"]
    assert torch.equal(rng_a[0]["torch"], rng_b[0]["torch"])  # the saved RNG state too, not only the weights
    steps = [line.split(",")[0] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert len(steps) == 12 == len(set(steps))  # the log has each step once


def test_resume_is_refused_for_another_configuration(tmp_path: Path) -> None:
    Trainer(tiny_config(tmp_path, "train.steps=2")).fit()
    with pytest.raises(
        ValueError, match=r"different configuration — model\.arch\.depth: 1 in checkpoint, 2 now"
    ):
        Trainer(tiny_config(tmp_path, "train.steps=4", "model.arch.depth=2"), resume=tmp_path)
    with pytest.raises(ValueError, match="pass --resume"):
        Trainer(tiny_config(tmp_path, "train.steps=4"))  # a fresh run must not overwrite it


def test_trainer_refuses_to_write_over_another_run(tmp_path: Path) -> None:
    """The Python API refuses exactly what ``jitlib train`` refuses: a folder holding another run stays untouched."""
    Trainer(tiny_config(tmp_path / "a", "train.steps=2")).fit()
    Trainer(tiny_config(tmp_path / "b", "train.steps=2")).fit()
    before = {p: p.read_bytes() for p in (tmp_path / "b").rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="holds another run than --resume") as err:
        Trainer(tiny_config(tmp_path / "b", "train.steps=4"), resume=tmp_path / "a")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="pass --resume"):
        Trainer(tiny_config(tmp_path / "b", "train.steps=4"))
    assert {p: p.read_bytes() for p in (tmp_path / "b").rglob("*") if p.is_file()} == before
    Trainer(
        tiny_config(tmp_path / "b", "train.steps=3"), resume=tmp_path / "b"
    ).fit()  # its own run continues
    assert load_checkpoint(tmp_path / "b")["step"] == 3


def test_checkpoints_store_the_class_names(tmp_path: Path) -> None:
    """A run's class names reach ``jitlib.load(run)`` from the checkpoint (not guessed), and survive an export."""
    data = digits(16)
    names = tuple(f"digit {i}" for i in range(10))
    Trainer(
        tiny_config(tmp_path / "run", "train.steps=2"), dataset=TensorImages(data.images, data.labels, names)
    ).fit()
    assert load_checkpoint(tmp_path / "run")["class_names"] == list(names)
    model = load(tmp_path / "run")
    assert model.card.class_names == names and model.pipeline().class_names == names
    assert load(model.save_pretrained(tmp_path / "exported")).card.class_names == names


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(tmp_path, "train.steps=10", "train.ckpt_every=2"))

    def poison(info) -> None:
        if info.step == 3:
            with torch.no_grad():
                next(trainer.net.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 4; .*checkpoint-last\.pt' is untouched"):
        trainer.fit(callback=poison)
    state = load_checkpoint(tmp_path)
    assert state["step"] == 2 and all(torch.isfinite(v).all() for v in state["model"].values())


@pytest.mark.slow
def test_kill_9_three_times_then_resume_is_bit_identical(tmp_path: Path) -> None:
    """SIGKILL a CLI run at 3 random moments (possibly mid-checkpoint), resume each time; compare with no kills."""
    args = [*TINY, "train.steps=40", "train.ckpt_every=3", "optim.schedule=cosine"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def command(out: Path, resume: bool) -> list[str]:
        cmd = [sys.executable, "-m", "jitlib", "train"]
        return (
            cmd
            + (["--resume", str(out)] if resume else ["smoke-digits"])
            + [*args, f"train.output_dir={out}"]
        )

    def logged_steps(out: Path) -> int:
        try:
            lines = (out / "log.jsonl").read_text().splitlines()
        except FileNotFoundError:
            return 0
        return len(lines)

    reference = tmp_path / "reference"
    subprocess.run(command(reference, False), env=env, check=True, capture_output=True, timeout=600)
    out, rng = tmp_path / "killed", random.Random(2024)
    for kill in range(3):
        proc = subprocess.Popen(
            command(out, kill > 0), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        target = logged_steps(out) + rng.randint(
            2, 6
        )  # let it make some progress, then kill at a random moment
        deadline = time.time() + 300
        while logged_steps(out) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
        assert (out / LAST).exists()
    subprocess.run(command(out, True), env=env, check=True, capture_output=True, timeout=600)
    assert load_checkpoint(out)["step"] == 40
    assert_bit_identical(reference, out)


def test_compile_is_on_by_default_on_cuda_only(tmp_path: Path) -> None:
    assert resolve_compile("auto", "cuda") and not resolve_compile("auto", "cpu")
    assert resolve_compile(True, "cpu") and not resolve_compile(False, "cuda")
    net = create_model("JiT-tiny/8")
    names = list(net.state_dict())
    assert maybe_compile(net, "auto", "cpu") is net and maybe_compile(net, False, "cuda") is net
    assert not any(is_compiled(m) for m in net.modules())
    # on CUDA: the blocks' and final layer's forwards, in place (they compile on first call), as the official code
    assert maybe_compile(net, "auto", torch.device("cuda")) is net
    assert [m for m in net.modules() if is_compiled(m)] == [*net.blocks, net.final_layer]
    assert list(net.state_dict()) == names  # no "_orig_mod." in checkpoint names
    with pytest.raises(ValueError, match="compile='sometimes' is not a compile setting; valid: auto, true"):
        resolve_compile("sometimes", "cpu")
    trainer = Trainer(tiny_config(tmp_path, "train.steps=1"))  # the default on this CPU: eager
    assert trainer.config.train.compile == "auto" and not trainer.compiled
    assert trainer.denoiser.net is trainer.net


@pytest.mark.slow
@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-5), ("bf16", 2.0**-7)])
def test_compiled_training_equals_eager(tmp_path: Path, precision: str, tolerance: float) -> None:
    """torch.compile by region (the GPU default) on the CPU: eight steps' losses equal eager ones, to 1e-5 in fp32 and
    to a bf16 ulp (2⁻⁷) under bf16 autocast. The network starts as the identity (zero-initialised head and gates), so
    the first steps hardly see the blocks; by the end their gates have moved and the compiled blocks' numbers count."""
    extra = ("train.steps=8", "optim.lr=3e-3", f"train.precision={precision}")
    eager = Trainer(tiny_config(tmp_path / "eager", *extra)).fit().losses
    compiled = Trainer(tiny_config(tmp_path / "compiled", *extra, "train.compile=true"))
    assert compiled.compiled and all(is_compiled(block) for block in compiled.net.blocks)
    losses = compiled.fit().losses
    assert max(abs(a - b) / b for a, b in zip(losses, eager, strict=True)) <= tolerance, (losses, eager)
    assert compiled.net.blocks[0].adaLN_modulation[-1].weight.abs().sum() > 0  # the blocks take part
