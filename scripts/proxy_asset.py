"""Retrain the proxy classifier that jitlib ships (digits, 32 px) and write it with its SHA256SUMS.

    python scripts/proxy_asset.py   # about 30 CPU-seconds; writes jitlib/assets/proxy/

The stored grid of chapter 5 (``jitlib/assets/patch_grid.json``) was scored with the shipped file; after a change of
the proxy network or its recipe (bump ``metrics.PROXY_VERSION``), rerun this script, then ``scripts/patch_grid.py``.
``tests/test_metrics.py`` checks that the code still trains what is shipped.
"""

from __future__ import annotations

import tempfile

import torch

from jitlib.evaluation.metrics import PROXY_ASSET_DIR, proxy_classifier, proxy_key, save_proxy
from jitlib.integrity import write_sums
from jitlib.training.config import DataConfig


def main() -> None:
    torch.set_num_threads(
        1
    )  # the recipe's reference: one thread, as on the machine that made the shipped file
    data = DataConfig(name="digits", image_size=32)
    with tempfile.TemporaryDirectory() as cache:
        classifier = proxy_classifier(data, cache=cache, shipped=False)
    for old in PROXY_ASSET_DIR.glob("proxy-*.pt"):
        old.unlink()
    path = save_proxy(classifier, PROXY_ASSET_DIR / proxy_key(data))
    write_sums(PROXY_ASSET_DIR, [path.name])
    print(f"{path}: held-out accuracy {classifier.real_accuracy:.4f}")


if __name__ == "__main__":
    main()
