"""Streaming generation keeps memory flat: the peak RSS of 2,000 images written as shards is that of 200 images.

Measured in a fresh Python process (peak RSS: ``VmHWM`` on Linux, ``ru_maxrss`` elsewhere; it only grows), on a 1-block, 32-wide JiT at
64×64 RGB with one Euler step, so sampling costs little and the images dominate memory: 2,000 images hold 98 MB as
float32. The process first streams 200 then 2,000 images to shards (64 per shard), then keeps 200 then 2,000 images
in memory with :func:`~jitlib.evaluation.generate.generate`, the path that cannot reach FID-50K at 512 px.

glibc's malloc raises its mmap threshold each time a large block is freed, so after the first shard a 3 MB batch
comes from the heap, whose high-water mark then creeps up by a few MB (measured: +15 MB from 200 to 2,000 images, then
+0 to 4,000). The child fixes the threshold (``MALLOC_MMAP_THRESHOLD_``) so the peak measures what the code holds,
not that allocator cache; elsewhere the variable is ignored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import json, resource, sys, tempfile
    import torch
    from jitlib.evaluation.generate import Pipeline, class_labels, generate, generate_shards
    from jitlib.nn.registry import create_model
    from jitlib.training.config import DiffusionConfig, SampleConfig

    torch.set_num_threads(1)
    net = create_model("JiT-tiny/16", input_size=64, in_channels=3, num_classes=0, hidden_size=32, depth=1, in_context_len=0,
                       num_heads=2, generator=torch.Generator().manual_seed(0)).eval()
    pipe = Pipeline(net, DiffusionConfig(noise_scale=0.25), SampleConfig(steps=1, method="euler", cfg_scale=1.0))
    scale = 1024 if sys.platform != "darwin" else 1024 * 1024  # ru_maxrss: KiB on Linux, bytes on macOS

    def peak_mb():
        # Linux: VmHWM, the peak of this process's own memory map. ru_maxrss would not do: Linux carries it over
        # exec from the parent, so a child of a large pytest process starts at the parent's peak.
        try:
            with open("/proc/self/status") as status:
                return next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) / 1024
        except (OSError, StopIteration):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (200, 2000):
            paths = generate_shards(pipe, class_labels(0, n), f"{tmp}/{n}", batch_size=100, shard_size=64)
            assert len(paths) == -(-n // 64)
            out[f"shards_{n}"] = peak_mb()
    for n in (200, 2000):
        images = generate(pipe, class_labels(0, n), batch_size=100)
        assert images.shape == (n, 3, 64, 64)
        del images
        out[f"memory_{n}"] = peak_mb()
    print(json.dumps(out))
    """
)


def test_peak_memory_of_a_2000_image_shard_run_does_not_grow_with_n() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    peak = json.loads(done.stdout.strip().splitlines()[-1])
    streamed = peak["shards_2000"] - peak["shards_200"]
    in_memory = peak["memory_2000"] - peak["memory_200"]
    image_mb = 3 * 64 * 64 * 4 / 2**20  # one float32 image
    print(f"peak RSS (MiB): {peak}; growth 200 → 2,000: shards {streamed:.1f}, in memory {in_memory:.1f}")
    # 1,800 more images as float32 are 84 MiB: the in-memory path holds them (once, or twice while concatenating) ...
    assert in_memory > 0.8 * 1800 * image_mb, peak
    # ... the streaming path holds one shard at a time: 1,800 more images add less than a tenth of that
    assert streamed < 0.1 * 1800 * image_mb, peak
