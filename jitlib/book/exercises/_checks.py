"""What every chapter's checks share: turning the reader's return value into a tensor, or saying what went wrong."""

from __future__ import annotations

from torch import Tensor


def as_expected(got: object, like: Tensor, what: str) -> Tensor:
    """The reader's result as a tensor of ``like``'s shape, or an AssertionError saying what came back instead."""
    if not isinstance(got, Tensor):
        raise AssertionError(
            f"{what} returned {type(got).__name__}; expected a tensor of shape {tuple(like.shape)}"
        )
    if got.shape != like.shape:
        raise AssertionError(f"{what} returned shape {tuple(got.shape)}; expected {tuple(like.shape)}")
    return got.to(like.dtype)
