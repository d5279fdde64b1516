"""How long ``torch.compile`` takes before the first training step, whole network vs block by block, by depth.

Each case runs in a fresh process with inductor's caches off (a cold compile, as on a fresh machine): JiT-tiny/8 at
32 px, batch 16, forward + backward of a squared-output loss. It reports the first step (compiling included) and
the fastest of ten steps after it, for eager, the whole network as one graph (``torch.compile(net)``) and the blocks
and final layer compiled in place (:func:`jitlib.training.compiling.compile_regions`, what ``Trainer`` does).

    python scripts/compile_time.py --depths 4,12 --out data/bench/compile-regions
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
MODES = ("eager", "whole", "regions")


def one(depth: int, mode: str) -> dict:
    """The first step and the best later step of one case, in this process."""
    sys.path.insert(0, str(REPO))
    from jitlib.nn.registry import create_model
    from jitlib.training.compiling import compile_regions

    torch.manual_seed(0)
    net = create_model("JiT-tiny/8", depth=depth)
    gen = torch.Generator().manual_seed(0)
    x, t = torch.randn(16, 3, 32, 32, generator=gen), torch.rand(16, generator=gen)
    y = torch.arange(16) % 10
    if mode == "whole":
        run = torch.compile(net, dynamic=False)
    else:
        run = compile_regions(net) if mode == "regions" else net

    def step() -> None:
        run(x, t, y).square().mean().backward()

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    later = []
    for _ in range(10):
        start = time.perf_counter()
        step()
        later.append(time.perf_counter() - start)
    return {"depth": depth, "mode": mode, "first_step_s": first, "best_step_ms": 1e3 * min(later)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--depths", default="4,12")
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    parser.add_argument("--one", nargs=2, metavar=("DEPTH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1])))
        return
    rows = []
    for depth in (int(d) for d in args.depths.split(",")):
        for mode in MODES:
            with tempfile.TemporaryDirectory() as cache:
                env = {
                    **os.environ,
                    "TORCHINDUCTOR_CACHE_DIR": cache,
                    "TORCHINDUCTOR_FX_GRAPH_CACHE": "0",
                    "TORCHINDUCTOR_AUTOGRAD_CACHE": "0",
                }
                command = [sys.executable, __file__, "--one", str(depth), mode]
                out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    meta = {
        "command": " ".join(["python", *sys.argv]),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    lines = [
        "Cold `torch.compile` (inductor caches off) of JiT-tiny/8 at 32 px, batch 16, forward + backward, each case "
        f"in a fresh process; torch {meta['torch']}, {meta['cpus']} CPUs, load average {meta['load_after']} at "
        "the end (shared machine).\n",
        f"Command: `{meta['command']}`\n",
        "| depth | compiled | first step (s) | best of 10 later steps (ms) |",
        "|---|---|---|---|",
    ]
    names = {"eager": "nothing (eager)", "whole": "whole network", "regions": "blocks + final layer"}
    lines += [
        f"| {r['depth']} | {names[r['mode']]} | {r['first_step_s']:.1f} | {r['best_step_ms']:.1f} |"
        for r in rows
    ]
    table = "\n".join(lines) + "\n"
    print(table, end="")
    if args.out is not None:
        args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        args.out.with_suffix(".md").write_text(table)


if __name__ == "__main__":
    main()
