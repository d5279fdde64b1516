"""Shared test set-up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread() -> Iterator[None]:
    """One intra-op thread for every test: on a 2-core CI machine more threads only spin, and results stay reproducible."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``smoke_run(*overrides)`` trains the smoke-digits preset with those overrides into a fresh folder, returns it."""
    from jitlib.training.config import load_config
    from jitlib.training.trainer import Trainer

    def train(*overrides: str) -> Path:
        out = tmp_path_factory.mktemp("run")
        Trainer(load_config("smoke-digits", [*overrides, f"train.output_dir={out}"])).fit()
        return out

    return train
