"""Chapter 6 exercise checks: correct solutions pass, and each typical mistake fails with a message that names it."""

import pytest
import torch

from jitlib.book.exercises import ch06


def rms_norm(x, w, eps):
    xf = x.float()
    return (w * xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def swiglu_width(d, ratio):
    return int(int(d * ratio) * 2 / 3)


def block_params(d, heads, ratio, width=swiglu_width):
    head_dim, hidden = d // heads, width(d, ratio)
    attention = (d * 3 * d + 3 * d) + (d * d + d) + 2 * head_dim
    mlp = (d * 2 * hidden + 2 * hidden) + (hidden * d + d)
    return attention + mlp + 2 * d + (d * 6 * d + 6 * d)


def test_correct_solutions_pass(capsys) -> None:
    ch06.check_rms_norm(rms_norm)
    ch06.check_block_params(block_params)
    assert capsys.readouterr().out.count("✓") == 2


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda x, w, eps: rms_norm(x - x.mean(-1, keepdim=True), w, eps), "subtracted the mean"),
        (lambda x, w, eps: rms_norm(x, torch.ones_like(w), eps), "left out the learnable gain"),
        (lambda x, w, eps: rms_norm(x, 1 / w, eps), "divided by the gain"),
        (lambda x, w, eps: w * x / x.norm(dim=-1, keepdim=True), "divided by the norm"),
        (lambda x, w, eps: w * x / x.pow(2).mean(-1, keepdim=True).sqrt(), "without eps"),
        (lambda x, w, eps: w * x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps), "eps belongs inside"),
        (lambda x, w, eps: w * x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + eps), "differs from jitlib"),
        (lambda x, w, eps: rms_norm(x, w, eps).float(), "return bfloat16"),
        (lambda x, w, eps: rms_norm(x, w, eps)[..., 1:], "expected shape"),
    ],
)
def test_rms_norm_mistakes_are_named(wrong, message) -> None:
    with pytest.raises(AssertionError, match=message):
        ch06.check_rms_norm(wrong)


def _without(part: str):
    def count(d, heads, ratio):
        head_dim, hidden = d // heads, swiglu_width(d, ratio)
        missing = {
            "qk": 2 * head_dim,
            "norms": 2 * d,
            "adaln": d * 6 * d + 6 * d,
            "biases": 3 * d + d + 2 * hidden + d + 6 * d,
        }[part]
        return block_params(d, heads, ratio) - missing

    return count


def _with_hidden(width):
    return lambda d, heads, ratio: block_params(d, heads, ratio, width)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (_without("qk"), "qk-norm"),
        (_without("norms"), "pre-norm RMSNorms"),
        (_without("adaln"), "adaLN-Zero"),
        (_without("biases"), "biases"),
        (
            lambda d, h, r: block_params(d, h, r) + 2 * d,
            "counted the gains of the two pre-norm RMSNorms",
        ),
        (_with_hidden(lambda d, r: round(d * r * 2 / 3)), "rounded the SwiGLU width"),
        (_with_hidden(lambda d, r: int(d * r)), "narrower than a GELU MLP"),
        (lambda d, h, r: float(block_params(d, h, r)), "expected an int"),
        (lambda d, h, r: block_params(d, h, r) + 1, "you counted"),
    ],
)
def test_block_count_mistakes_are_named(wrong, message) -> None:
    with pytest.raises(AssertionError, match=message):
        ch06.check_block_params(wrong)
