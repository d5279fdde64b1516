"""The JiT training loop (Alg. 1 of the paper, recipe of Tab. 9): one file, read top to bottom.

    for each step:  x, y  ← a global batch of images in [−1, 1] and class ids
                    t ~ logit-normal(μ, σ),  ε ~ N(0, s²I),  y ← null id with prob. label_drop,  x ← flip(x) w.p. ½
                    loss = ‖v̂ − v‖² with v̂ from the network's x̂ (x-prediction, v-loss; any Tab. 1 cell selectable)
                    AdamW step at lr = blr × batch / 256 (linear warmup, then constant or cosine), EMA updates

Every random draw of a training sample — t, ε, label drop, flip — is a function of (seed, step, position of the
sample in the global batch) only (:func:`~jitlib.training.noise.draw_noise`), never of the process that holds it: so N
processes draw exactly the same samples as one process on the same global batch, and their weights agree with the
one-process run to ~6e-8 in float32 (the all-reduce sums gradients in another order; tests/test_ddp.py asserts
1e-6); a resumed run continues
bit-for-bit.
The helpers it calls are small modules: :mod:`jitlib.training.data`, :mod:`jitlib.training.ema`, :mod:`jitlib.training.checkpoint`,
:mod:`jitlib.training.distributed`, :mod:`jitlib.training.precision`.

Python API (used by the book's notebooks)::

    trainer = Trainer(load_config("tiny-digits", ["train.steps=300"]))
    result = trainer.fit(callback=lambda info: print(info.step, info.loss))
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.interpolation import warn_noise_scale
from jitlib.evaluation.generate import Pipeline
from jitlib.nn.model import JiT, JiTConfig
from jitlib.nn.registry import create_model
from jitlib.training import distributed as dist
from jitlib.training.checkpoint import (
    LAST,
    check_output_folder,
    check_same_run,
    check_writable,
    code_version,
    find_checkpoint,
    load_checkpoint,
    remove_stale_temps,
    save_checkpoint,
)
from jitlib.training.compiling import maybe_compile, resolve_compile
from jitlib.training.config import Config, coerce, default_ema, to_yaml
from jitlib.training.data import DataError, ResumableSampler, build_dataset, make_loader, random_flip
from jitlib.training.ema import EMA
from jitlib.training.noise import draw_noise
from jitlib.training.precision import resolve_precision

LOG_FILE = "log.jsonl"
# Model fields that the data set decides; ``model.arch`` may not set them.
DATA_DEFINED = {
    "input_size": "data.image_size",
    "in_channels": "the data set",
    "num_classes": "model.num_classes",
}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; training stopped before the bad step touched weights or checkpoints."""


@dataclass
class StepInfo:
    """What the per-step callback receives: progress, the loss (mean over the global batch) and throughput."""

    step: int  # optimizer steps done so far
    total_steps: int
    epoch: float
    loss: float
    lr: float
    grad_norm: float | None
    images_per_sec: float
    elapsed: float  # seconds since fit() started


@dataclass
class TrainResult:
    """Where a run ended: its last step, the last checkpoint written, the loss history of this fit() call."""

    step: int
    checkpoint: Path
    output_dir: Path
    losses: list[float]
    elapsed: float


# ---------------------------------------------------------------------------------------------------------------
# Pure pieces: model arguments, learning rate, per-sample randomness
# ---------------------------------------------------------------------------------------------------------------


def model_kwargs(config: Config, channels: int, num_classes: int) -> dict[str, Any]:
    """Arguments of ``create_model(config.model.name, **kwargs)``: the data's size, channels, classes, plus model.arch."""
    hints = typing.get_type_hints(JiTConfig)
    kwargs: dict[str, Any] = {}
    for key, value in config.model.arch.items():
        if key in DATA_DEFINED:
            raise ValueError(f"model.arch.{key} is set by {DATA_DEFINED[key]}; remove it from model.arch")
        if key not in hints:
            valid = sorted(set(hints) - set(DATA_DEFINED))
            raise ValueError(f"unknown config key 'model.arch.{key}'; valid keys: {', '.join(valid)}")
        kwargs[key] = coerce(value, hints[key], f"model.arch.{key}")
    wanted = config.model.num_classes
    if wanted is not None and 0 < wanted < num_classes:
        raise ValueError(
            f"the data set has {num_classes} classes (ids 0..{num_classes - 1}) but model.num_classes={wanted}: "
            f"class id {wanted} is out of range; set model.num_classes >= {num_classes} or null"
        )
    kwargs.update(
        input_size=config.data.image_size,
        in_channels=channels,
        num_classes=num_classes if wanted is None else wanted,
    )
    return kwargs


def base_lr(config: Config) -> float:
    """lr = optim.lr if set, else blr × global batch / 256 (the official scaling rule)."""
    return (
        config.optim.lr if config.optim.lr is not None else config.optim.blr * config.train.batch_size / 256
    )


def learning_rate(
    step: int, lr: float, warmup_steps: int, total_steps: int, schedule: str, min_lr: float = 0.0
) -> float:
    """lr·(step+1)/warmup during warmup; then lr (constant) or min_lr + (lr − min_lr)·½(1 + cos(π·progress)) (cosine)."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# ---------------------------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------------------------


class Trainer:
    """Builds data, model, optimizer, EMAs and precision from a :class:`~jitlib.training.config.Config`; ``fit()`` trains.

    ``resume`` (a checkpoint file or a run folder) continues a run exactly; it is refused when the checkpoint was
    made with a different configuration. ``dataset`` replaces the one ``config.data`` describes (notebooks).
    """

    def __init__(self, config: Config, *, resume: str | Path | None = None, dataset: Any = None) -> None:
        self.config = config
        cfg = config.train
        self.dist = dist.init_distributed(cfg.device)
        self.device = self.dist.device
        self.output_dir = Path(cfg.output_dir)
        resume_path = find_checkpoint(resume) if resume is not None else None
        check_output_folder(
            self.output_dir, resume_path
        )  # only the run being resumed may continue in its folder
        if self.dist.is_main:
            check_writable(self.output_dir)

        # Data: each process loads its share (1/world) of every global batch.
        self.dataset = dataset if dataset is not None else build_dataset(config.data, seed=cfg.seed)
        if cfg.batch_size % self.dist.world_size:
            raise ValueError(
                f"train.batch_size={cfg.batch_size} is not divisible by the {self.dist.world_size} processes"
            )
        self.local_batch = cfg.batch_size // self.dist.world_size
        self.steps_per_epoch = len(self.dataset) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the data set has {len(self.dataset)} images, fewer than train.batch_size={cfg.batch_size}"
            )
        self.total_steps = (
            cfg.steps if cfg.steps is not None else max(1, round(cfg.epochs * self.steps_per_epoch))
        )
        self.warmup_steps = round(config.optim.warmup_epochs * self.steps_per_epoch)
        self.sampler = ResumableSampler(self.dataset, self.dist.world_size, self.dist.rank, seed=cfg.seed)
        self.loader = make_loader(
            self.dataset,
            self.sampler,
            self.local_batch,
            config.data.num_workers,
            config.data.pin_memory and self.device.type == "cuda",
        )

        # Model: the same initial weights on every process (seeded generator on the CPU), then moved and wrapped.
        self.model_kwargs = model_kwargs(config, self.dataset.channels, self.dataset.num_classes)
        self.num_classes = self.model_kwargs["num_classes"]
        # The data set's class names (ids beyond them by number), stored in checkpoints as artifacts store them.
        named = [str(name) for name in getattr(self.dataset, "classes", ())][: self.num_classes]
        self.class_names = named + [str(i) for i in range(len(named), self.num_classes)]
        init = torch.Generator().manual_seed(cfg.seed)
        self.net: JiT = create_model(config.model.name, device="cpu", generator=init, **self.model_kwargs).to(
            self.device
        )
        torch.manual_seed(cfg.seed + self.dist.rank)  # only dropout (JiT-H/G) draws from the global RNG
        self.compiled = resolve_compile(cfg.compile, self.device)
        maybe_compile(self.net, cfg.compile, self.device)  # block by block, in place, before DDP / FSDP2
        wrapped = dist.wrap(self.net, cfg.strategy, self.dist)
        d = config.diffusion
        self.denoiser = Denoiser(
            wrapped, target=d.pred, t_eps=d.t_eps, precond=d.precond, noise_scale=d.noise_scale
        )
        warn_noise_scale(d.noise_scale, config.data.image_size, where="train")

        # Optimizer: AdamW (0.9, 0.95); no weight decay on biases and norm gains (1-D parameters).
        params = [p for p in self.net.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.ndim > 1], "weight_decay": config.optim.weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]
        # Fused: the whole update in one kernel per step on a GPU instead of several for-each passes (jitlib bench).
        self.optimizer = torch.optim.AdamW(
            groups,
            lr=base_lr(config),
            betas=tuple(config.optim.betas),
            fused=self.device.type in ("cuda", "cpu"),
        )
        self.precision = resolve_precision(cfg.precision, self.device)
        self.scaler = self.precision.scaler()
        self.ema = EMA(self.net, cfg.ema_decays)

        self.step = 0
        self.code = code_version()  # the code this attempt runs (checkpoints and exports record it)
        self.checkpoint_path = self.output_dir / LAST
        if resume_path is not None:
            self._restore(resume_path)

    # -- checkpoints ------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds (gathering shards and RNG states is collective: call it on every rank)."""
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "config": self.config.to_dict(),
            "model_name": self.config.model.name,
            "model_kwargs": self.model_kwargs,
            "model": dist.model_state(self.net),
            "ema": self.ema.state_dict(),
            "optimizer": dist.optimizer_state(self.net, self.optimizer),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "data": {  # where the next batch comes from: epoch (sampler shuffle) and batch within it
                "num_images": len(self.dataset),
                "steps_per_epoch": self.steps_per_epoch,
                "epoch": self.step // self.steps_per_epoch,
                "batch_in_epoch": self.step % self.steps_per_epoch,
            },
            "rng": dist.all_gather(rng),
            "world_size": self.dist.world_size,
            "class_names": self.class_names,
            "code": self.code,
        }

    def save(self) -> Path:
        """Write checkpoint-last.pt atomically (rank 0), plus a numbered copy every train.keep_every steps."""
        state = self.state_dict()
        if self.dist.is_main:
            save_checkpoint(state, self.checkpoint_path)
            keep = self.config.train.keep_every
            if keep and self.step % keep == 0:
                save_checkpoint(state, self.output_dir / f"checkpoint-{self.step:07d}.pt")
        return self.checkpoint_path

    def _restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        check_same_run(state["config"], self.config.to_dict(), path)
        if state["data"]["num_images"] != len(self.dataset):
            raise ValueError(
                f"cannot resume from {str(path)!r}: its data set had {state['data']['num_images']} images, "
                f"this one has {len(self.dataset)}"
            )
        dist.load_model_state(self.net, state["model"])
        self.ema.load_state_dict(state["ema"])
        dist.load_optimizer_state(self.net, self.optimizer, state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        if state["world_size"] == self.dist.world_size:
            rng = state["rng"][self.dist.rank]
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)

    def generator(self, ema: float | str | None = None, device: torch.device | str | None = None) -> Pipeline:
        """A plain copy of the network with the current raw weights (``"model"``) or an EMA, ready for
        :func:`~jitlib.evaluation.generate.generate`.

        ``ema=None`` takes :func:`~jitlib.training.config.default_ema` (as :func:`jitlib.load` does). The copy is a
        fresh network of the run's model (built on the meta device, materialised on ``device``, default the
        training device) holding the full weights: under ``train.strategy=fsdp`` they are gathered from the shards
        one tensor at a time, so every rank must call this together and every rank gets the same unsharded
        network, which then samples on its own (no collective calls). In one process or under DDP the weights are
        copied as they are (bit-for-bit). The trainer's own network and RNG states are left untouched.
        """
        if ema != "model":
            ema = ema if ema is not None else default_ema(self.config)
            self.ema.key(ema)  # an EMA this run does not keep: one line, before any copying
        name = self.config.model.name
        net = create_model(name, device="meta", **self.model_kwargs).to_empty(device=device or self.device)
        dist.copy_full_weights(self.net, net)  # raw weights and buffers
        if ema != "model":
            self.ema.copy_full_to(net, ema)
        chosen = "raw weights" if ema == "model" else f"EMA {ema}"
        return Pipeline(
            net.eval(), self.config.diffusion, self.config.sample, f"{chosen} at step {self.step}"
        )

    # -- logging ----------------------------------------------------------------------------------------------

    def _open_logs(self) -> tuple[Any, Any]:
        """The JSONL log (records past the resumed step dropped: they belong to the interrupted attempt) and TensorBoard."""
        log_path = self.output_dir / LOG_FILE
        if log_path.exists():
            kept = [
                line
                for line in log_path.read_text().splitlines()
                if line and json.loads(line)["step"] <= self.step
            ]
            log_path.write_text("".join(line + "\n" for line in kept))
        (self.output_dir / "config.yaml").write_text(to_yaml(self.config))
        from torch.utils.tensorboard import SummaryWriter

        return open(log_path, "a"), SummaryWriter(str(self.output_dir / "tb"), purge_step=self.step + 1)

    def describe(self) -> str:
        """One line a newcomer can check before a long run: batch split, lr, length, precision, model size."""
        cfg, world = self.config.train, self.dist.world_size
        params = sum(p.numel() for p in self.net.parameters() if p.requires_grad)
        lr = (
            f"lr {base_lr(self.config):.3g} (blr {self.config.optim.blr:g} × {cfg.batch_size}/256)"
            if self.config.optim.lr is None
            else f"lr {self.config.optim.lr:g}"
        )
        return (
            f"{self.config.model.name} ({params / 1e6:.2f}M params) on {len(self.dataset)} images | global batch "
            f"{cfg.batch_size} = {self.local_batch} × {world} process{'es' if world > 1 else ''} | {lr} | "
            f"{self.total_steps} steps ({self.steps_per_epoch}/epoch, warmup {self.warmup_steps}) | "
            f"{self.precision.name}{', compiled' if self.compiled else ''} on {self.device} | "
            f"{self.config.diffusion.pred}-pred, {self.config.diffusion.loss}-loss"
        )

    # -- training ---------------------------------------------------------------------------------------------

    def fit(self, callback: Callable[[StepInfo], bool | None] | None = None) -> TrainResult:
        """Train until ``total_steps``; ``callback(info)`` runs after every step and may return True to stop early.

        A checkpoint is written every train.ckpt_every steps and at the end. A NaN/inf loss raises
        :class:`TrainingDiverged` before the bad step is applied, leaving the last checkpoint as it was.
        """
        cfg, main = self.config.train, self.dist.is_main
        log, writer = self._open_logs() if main else (None, None)
        if main:
            remove_stale_temps(self.output_dir)
            print(self.describe(), file=sys.stderr)
        bar = tqdm(
            total=self.total_steps, initial=self.step, disable=not (main and cfg.progress), unit="step"
        )
        start = window_start = time.perf_counter()
        window_steps, window_losses, losses, batches = 0, [], [], None
        try:
            while self.step < self.total_steps:
                epoch, index = divmod(self.step, self.steps_per_epoch)
                if batches is None or index == 0:
                    self.sampler.set_position(epoch, index * self.local_batch)
                    # A new loader iterator draws a seed; it must not come from (and advance) the run's RNG.
                    with torch.random.fork_rng(devices=[]):
                        batches = iter(self.loader)
                x, y = _next_batch(batches)
                loss, grad_norm, lr = self.train_step(x, y)
                losses.append(loss)
                window_losses.append(loss)
                window_steps += 1
                now = time.perf_counter()
                speed = window_steps * cfg.batch_size / max(now - window_start, 1e-9)
                info = StepInfo(
                    self.step,
                    self.total_steps,
                    self.step / self.steps_per_epoch,
                    loss,
                    lr,
                    grad_norm,
                    speed,
                    now - start,
                )
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{speed:.0f}", refresh=False)
                if main and (self.step % cfg.log_every == 0 or self.step == self.total_steps):
                    record = {**dataclasses.asdict(info), "loss": float(np.mean(window_losses))}
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    for key in ("loss", "lr", "images_per_sec") + (
                        ("grad_norm",) if grad_norm is not None else ()
                    ):
                        writer.add_scalar(f"train/{key}", record[key], self.step)
                    window_start, window_steps, window_losses = now, 0, []
                stop = callback is not None and bool(dist.broadcast(bool(callback(info))))
                if stop or self.step % cfg.ckpt_every == 0 or self.step == self.total_steps:
                    self.save()
                if stop:
                    break
        finally:
            bar.close()
            if main:
                log.close()
                writer.close()
        return TrainResult(
            self.step, self.checkpoint_path, self.output_dir, losses, time.perf_counter() - start
        )

    def train_step(self, x: Tensor, y: Tensor) -> tuple[float, float | None, float]:
        """One optimizer step on this process's share ``(x, y)`` of the global batch; returns (global mean loss, grad
        norm or None without clipping, lr).

        Advances ``self.step`` and the weight averages; writes nothing (:meth:`fit` logs and checkpoints around it).
        The noise, times and masks depend only on ``(train.seed, step, position in the global batch)``.
        """
        cfg, diffusion = self.config, self.config.diffusion
        world, rank = self.dist.world_size, self.dist.rank
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        # Local sample j of rank r sits at position r + W·j of the global batch (ResumableSampler's interleaving).
        positions = range(rank, world * x.shape[0], world)
        t, eps, drop, flip = draw_noise(
            cfg.train.seed,
            self.step,
            positions,
            tuple(x.shape[1:]),
            diffusion,
            self.device,
            cfg.train.batch_size,
        )
        if cfg.data.flip:
            x = random_flip(x, flip)
        labels = torch.where(drop, torch.full_like(y, self.num_classes), y) if self.num_classes > 0 else None
        lr = learning_rate(
            self.step, base_lr(cfg), self.warmup_steps, self.total_steps, cfg.optim.schedule, cfg.optim.min_lr
        )
        for group in self.optimizer.param_groups:
            group["lr"] = lr

        with self.precision.autocast():
            loss = self.denoiser.loss(
                x, eps, t, labels, diffusion.loss, cls_labels=y, cls_weight=diffusion.aux_cls_weight
            )
            loss = loss.float().mean()
        global_loss = dist.mean_over_ranks(loss.detach()).item()
        if not math.isfinite(global_loss):
            kept = (
                f"the last good checkpoint {str(self.checkpoint_path)!r} is untouched"
                if self.checkpoint_path.exists()
                else "no checkpoint had been written yet"
            )
            raise TrainingDiverged(
                f"loss is {global_loss} at step {self.step + 1}; training stopped and {kept} — "
                f"try a lower optim.blr, optim.grad_clip=1.0 or train.precision=fp32"
            )
        self.scaler.scale(loss).backward()
        grad_norm = None
        if cfg.optim.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(nn.utils.clip_grad_norm_(self.net.parameters(), cfg.optim.grad_clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.net)
        self.step += 1
        return global_loss, grad_norm, lr


def _next_batch(batches: Any) -> tuple[Tensor, Tensor]:
    """The next batch; a data error raised inside a loader worker is re-raised as its own one-line message."""
    try:
        return next(batches)
    except DataError as err:
        raise DataError(
            str(err).strip().splitlines()[-1].removeprefix("jitlib.training.data.DataError: ")
        ) from None
