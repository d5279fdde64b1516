"""Auto-checks for chapter 10 (Training JiT for real): the batch and learning rate of a torchrun layout, and the
memory of the training state.

Each check calls the reader's function on several cases, compares it with jitlib itself (the trainer's
``train.base_lr`` on a config with that global batch; ``budget.training_memory``), prints one line when it agrees and
raises an AssertionError naming the likely mistake when it does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from jitlib.nn.registry import get_config
from jitlib.training.budget import training_memory
from jitlib.training.config import load_config
from jitlib.training.trainer import base_lr

# (nodes, GPUs per node, images per GPU, blr): one GPU, the paper's 8 GPUs, four nodes, and two odd layouts.
LAYOUTS = (
    (1, 1, 128, 5e-5),
    (1, 8, 128, 5e-5),
    (4, 8, 32, 5e-5),
    (2, 8, 64, 1e-4),
    (1, 4, 96, 5e-5),
    (3, 2, 40, 2e-5),
)
STATE_MODELS = ("JiT-B/16", "JiT-L/16", "JiT-H/16", "JiT-tiny/4")


def _lr_for(global_batch: int, blr: float) -> float:
    """The trainer's learning rate for a run of this global batch and blr (``optim.lr`` unset)."""
    return base_lr(load_config(None, [f"train.batch_size={global_batch}", f"optim.blr={blr}"]))


def check_global_batch_and_lr(fn: Callable[[int, int, int, float], tuple[int, float]]) -> None:
    """Check fn(nodes, gpus_per_node, images_per_gpu, blr) = (global batch, lr = blr × global batch / 256)."""
    for nodes, gpus, per_gpu, blr in LAYOUTS:
        want_batch = nodes * gpus * per_gpu
        want_lr = _lr_for(want_batch, blr)
        got = fn(nodes, gpus, per_gpu, blr)
        layout = f"{nodes} node(s) × {gpus} GPU(s) × {per_gpu} images, blr {blr:g}"
        if not (isinstance(got, tuple) and len(got) == 2):
            raise AssertionError(f"return a pair (global_batch, lr); got {got!r} for {layout}")
        batch, lr = got
        if batch != want_batch:
            hint = ""
            if batch == gpus * per_gpu and nodes > 1:
                hint = ": count the GPUs of every node, nodes × GPUs per node × images per GPU"
            elif batch == per_gpu:
                hint = ": that is one GPU's batch; the global batch adds up every process"
            raise AssertionError(f"for {layout} your global batch is {batch}, expected {want_batch}{hint}")
        if math.isclose(lr, want_lr, rel_tol=1e-9):
            continue
        hint = ""
        if math.isclose(lr, blr * per_gpu / 256, rel_tol=1e-9):
            hint = ": you scaled blr by one GPU's batch; the rule uses the global batch"
        elif math.isclose(lr, blr * want_batch, rel_tol=1e-9):
            hint = ": divide by 256, lr = blr × batch / 256"
        elif math.isclose(lr, blr, rel_tol=1e-9):
            hint = ": blr is the rate for a batch of 256; scale it by batch / 256"
        raise AssertionError(f"for {layout} your lr is {lr:.4g}, the trainer uses {want_lr:.4g}{hint}")
    print("✓ check_global_batch_and_lr: your batch and learning rate match jitlib's trainer for six layouts")


def _state_bytes(name: str, num_ema: int) -> tuple[int, int]:
    """(trainable parameters, bytes of their fp32 weights, gradients, AdamW moments and EMAs) from jitlib.training.budget."""
    estimate = training_memory(get_config(name), 0, precision="fp32", num_ema=num_ema)
    trainable = estimate.grads // 4
    return trainable, 4 * trainable + estimate.grads + estimate.adam + estimate.ema


def _state_hint(per_param: dict[int, float], value: float) -> str:
    """Name the mistake that explains the bytes per parameter the reader gave for each number of EMAs, if one does."""

    def every(rule: Callable[[int, float], bool]) -> bool:
        return all(rule(k, q) for k, q in per_param.items())

    first = next(iter(per_param.values()))
    if every(lambda k, q: math.isclose(q, 16, rel_tol=1e-6)):
        return ": you left out the EMA copies, 4 bytes per parameter for each decay kept"
    if every(lambda k, q: math.isclose(q, first, rel_tol=1e-6)):
        return ": your count does not change with num_ema; each EMA is a full fp32 copy, multiply by num_ema"
    if every(lambda k, q: math.isclose(q, 12 + 4 * k, rel_tol=1e-6)):
        return ": 4 bytes per parameter short — count fp32 weights, gradients and both AdamW moments"
    if every(lambda k, q: math.isclose(q, (16 + 4 * k) / 2, rel_tol=1e-6)):
        return ": that is 2 bytes per value; weights, gradients, moments and EMAs stay fp32 (4 bytes)"
    return ": return bytes, not GB" if value < 1e6 else ""


def check_training_state_bytes(fn: Callable[[int, int], int]) -> None:
    """Check fn(trainable_params, num_ema) = bytes of fp32 weights, gradients, both AdamW moments and num_ema EMAs."""
    for name in STATE_MODELS:
        wants = {num_ema: _state_bytes(name, num_ema) for num_ema in (1, 2, 3)}
        params = wants[1][0]
        got = {num_ema: fn(params, num_ema) for num_ema in wants}
        for num_ema, value in got.items():
            if not isinstance(value, (int, float)):
                raise AssertionError(
                    f"return a number of bytes; got {type(value).__name__} for {name} with {num_ema} EMA(s)"
                )
        wrong = [k for k, value in got.items() if not math.isclose(value, wants[k][1], rel_tol=1e-9)]
        if not wrong:
            continue
        num_ema, value, want = wrong[0], got[wrong[0]], wants[wrong[0]][1]
        hint = _state_hint({k: v / params for k, v in got.items()}, value)
        raise AssertionError(
            f"for {name} ({params:,} trainable parameters) with {num_ema} EMA(s) you counted {value:,.0f} bytes "
            f"({value / params:.1f}/parameter), jitlib.training.budget counts {want:,} ({want / params:.0f}/parameter){hint}"
        )
    print(
        "✓ check_training_state_bytes: your count matches jitlib.training.budget for JiT-B, L, H and tiny with 1–3 EMAs"
    )
