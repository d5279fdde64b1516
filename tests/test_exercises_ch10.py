"""Chapter 10 exercise checks: correct solutions pass, and each typical mistake fails with a message that names it."""

import pytest

from jitlib.book.exercises import ch10


def batch_and_lr(nodes, gpus, per_gpu, blr):
    batch = nodes * gpus * per_gpu
    return batch, blr * batch / 256


def state_bytes(params, num_ema):
    return (4 + 4 + 8 + 4 * num_ema) * params


def test_correct_solutions_pass(capsys) -> None:
    ch10.check_global_batch_and_lr(batch_and_lr)
    ch10.check_training_state_bytes(state_bytes)
    assert capsys.readouterr().out.count("✓") == 2


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda n, g, b, blr: (g * b, blr * g * b / 256), "count the GPUs of every node"),
        (lambda n, g, b, blr: (b, blr * b / 256), "one GPU's batch"),
        (lambda n, g, b, blr: (n * g * b, blr * b / 256), "scaled blr by one GPU's batch"),
        (lambda n, g, b, blr: (n * g * b, blr * n * g * b), "divide by 256"),
        (lambda n, g, b, blr: (n * g * b, blr), "scale it by batch / 256"),
        (lambda n, g, b, blr: (n * g * b, 2e-4), "the trainer uses"),
        (lambda n, g, b, blr: n * g * b, "return a pair"),
    ],
)
def test_batch_and_lr_mistakes_are_named(wrong, message) -> None:
    with pytest.raises(AssertionError, match=message):
        ch10.check_global_batch_and_lr(wrong)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda p, k: (4 + 8 + 4 * k) * p, "4 bytes per parameter short"),
        (lambda p, k: (4 + 4 + 4 + 4 * k) * p, "both AdamW moments"),
        (lambda p, k: 16 * p, "left out the EMA copies"),
        (lambda p, k: 20 * p, "multiply by num_ema"),
        (lambda p, k: (16 + 4 * k) * p / 2, "stay fp32"),
        (lambda p, k: (16 + 4 * k) * p / 1e9, "not GB"),
        (lambda p, k: "lots", "return a number"),
        (lambda p, k: (16 + 4 * k) * p + 1e6, "jitlib.training.budget counts"),
    ],
)
def test_state_memory_mistakes_are_named(wrong, message) -> None:
    with pytest.raises(AssertionError, match=message):
        ch10.check_training_state_bytes(wrong)
