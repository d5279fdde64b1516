"""Auto-checks for chapter 5 (Images with large patches): the token arithmetic of a patch size, and patchify.

Each check calls the reader's function on fixed inputs, compares it with what ``jitlib.nn.model`` does, prints one line
when it agrees and raises an AssertionError naming the likely mistake when it does not.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from einops import rearrange
from torch import Tensor

from jitlib.nn.model import unpatchify

# (image size, channels, patch size): the chapter's digits rows and the paper's JiT-B/4 @ 64, /16 @ 256, /32 @ 512.
TOKEN_CASES = ((32, 1, 8), (32, 1, 16), (32, 1, 32), (64, 3, 4), (256, 3, 16), (512, 3, 32))


def token_shape(image_size: int, channels: int, patch_size: int) -> tuple[int, int]:
    """(number of tokens, numbers per token) = ((H/p)², p²·C) for an H×H image with C channels cut into p×p patches."""
    if image_size % patch_size:
        raise ValueError(f"image size {image_size} is not divisible by patch size {patch_size}")
    return (image_size // patch_size) ** 2, patch_size * patch_size * channels


def check_token_shape(fn: Callable[[int, int, int], tuple[int, int]]) -> None:
    """Check fn(image_size, channels, patch_size) = (tokens, patch dimension) = ((H/p)², p²·C) on six cases."""
    for size, channels, patch in TOKEN_CASES:
        want = token_shape(size, channels, patch)
        got = fn(size, channels, patch)
        try:
            got = tuple(int(v) for v in got)
        except (TypeError, ValueError):
            raise AssertionError(f"return a pair (tokens, patch_dim), got {got!r}") from None
        if got == want:
            continue
        case = f"{size}×{size}, {channels} channel(s), patch {patch}"
        if got == want[::-1] and want[0] != want[1]:
            hint = "the two numbers are swapped: return (tokens, patch_dim)"
        elif got[0] == want[0] and got[1] == patch * patch and channels > 1:
            hint = "each token holds every channel of its patch: multiply p² by C"
        elif got[0] == size // patch:
            hint = "H/p is the number of tokens per side; an image has (H/p)² of them"
        else:
            hint = "tokens = (H/p)², patch_dim = p·p·C"
        raise AssertionError(f"for {case} you returned {got}, expected {want}: {hint}")
    print("✓ check_token_shape: tokens = (H/p)², numbers per token = p²·C")


def check_patchify(fn: Callable[[Tensor, int], Tensor]) -> None:
    """Check fn(images (B, C, H, W), p) → tokens (B, (H/p)², p·p·C) in JiT's layout: ``unpatchify`` must invert it.

    Tokens run row by row over the image; inside a token the layout is (p, p, C) with the channel fastest.
    """
    g = torch.Generator().manual_seed(0)
    for shape, patch in (((2, 3, 8, 8), 4), ((1, 3, 12, 12), 2), ((2, 1, 32, 32), 32), ((1, 2, 6, 6), 3)):
        images = torch.randn(shape, generator=g)
        b, c, h, _ = shape
        want_shape = (b, (h // patch) ** 2, patch * patch * c)
        got = fn(images.clone(), patch)
        if not isinstance(got, Tensor) or tuple(got.shape) != want_shape:
            found = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
            raise AssertionError(
                f"images {shape} with patch {patch}: you returned {found}, expected shape {want_shape}"
            )
        if torch.equal(unpatchify(got, patch, c), images):
            continue
        layouts = {
            "b c (h p) (w q) -> b (h w) (c p q)": "channels come first inside each token; JiT puts them last: "
            "(p, p, C), channel fastest",
            "b c (h p) (w q) -> b (w h) (p q c)": "tokens run column by column; run them row by row (index row·n + col)",
            "b c (h p) (w q) -> b (h w) (q p c)": "inside a patch, columns run before rows; use (row i, column j, channel)",
        }
        for pattern, hint in layouts.items():
            if torch.equal(got, rearrange(images, pattern, p=patch, q=patch)):
                raise AssertionError(f"images {shape} with patch {patch}: {hint}")
        raise AssertionError(
            f"images {shape} with patch {patch}: jitlib.nn.model.unpatchify does not give the images back from your tokens"
        )
    print("✓ check_patchify: jitlib.nn.model.unpatchify turns your tokens back into the images")
