"""Before/after speed of jitlib against an older commit, interleaved in ONE process (CPU, one thread by default).

The older commit is imported as the package ``jitlib_base`` (a copy with its imports renamed), so both run side
by side on identical weights and inputs; calls alternate base, new, base, new … and each row reports the median and
minimum of ``--repeats`` calls. Rows: the per-sample noise of a training batch of 1024 (3×32×32), one training step
and one 50-step guided Heun sample (CFG 3.0 on (0.1, 1]) of 16 images, for JiT-tiny/4 and JiT-tiny/32 at 32 px.

    git worktree add --detach /tmp/base-9dc1351 9dc1351
    OMP_NUM_THREADS=1 python scripts/speed_compare.py --base /tmp/base-9dc1351 --profile JiT-tiny/4 --out data/bench/speed

``--profile MODEL`` adds where the network's time goes, base vs new (torch.profiler, top operators by self time).

The guidance scale is passed under the name each side's ``sample`` takes (``cfg`` before the rename to ``cfg_scale``).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]


def import_renamed(checkout: Path, name: str = "jitlib_base") -> Callable[[str], Any]:
    """Copy ``checkout/jitlib`` to a temporary ``name`` package with its own imports renamed; return its importer."""
    root = Path(tempfile.mkdtemp(prefix="speed-base-"))
    shutil.copytree(checkout / "jitlib", root / name)
    pattern = re.compile(r"\b(from|import) jitlib(?=[. ]|$)", re.MULTILINE)
    for path in (root / name).rglob("*.py"):
        path.write_text(pattern.sub(rf"\1 {name}", path.read_text()))
    sys.path.insert(0, str(root))
    return lambda module: importlib.import_module(module.replace("jitlib", name, 1))


def interleaved(
    calls: dict[str, Callable[[], object]], repeats: int, warmup: int = 2
) -> dict[str, list[float]]:
    """Seconds of each call, alternating between them ``repeats`` times after ``warmup`` untimed rounds."""
    # One torch thread: this process's CPU time, what the call takes on an idle core whatever else shares the machine.
    clock = time.process_time if torch.get_num_threads() == 1 else time.perf_counter
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(warmup + repeats):
        for name, fn in calls.items():
            start = clock()
            fn()
            if round_ >= warmup:
                times[name].append(clock() - start)
    return times


def trainer(mod: Callable[[str], Any], model: str, batch: int, out: Path) -> Any:
    """A fresh Trainer of ``model`` at 32 px (seeded init: identical weights in both packages), fp32, eager."""
    config = mod("jitlib.training.config").from_dict(
        {
            "model": {"name": model},
            "data": {"image_size": 32, "num_workers": 0, "pin_memory": False},
            "train": {
                "batch_size": batch,
                "precision": "fp32",
                "compile": False,
                "device": "cpu",
                "output_dir": str(out),
                "progress": False,
            },
        }
    )
    data = mod("jitlib.training.data")
    images = torch.full((1, 3, 32, 32), 128, dtype=torch.uint8).expand(batch, -1, -1, -1)
    dataset = data.TensorImages(
        images, torch.zeros(batch, dtype=torch.long), tuple(str(i) for i in range(10))
    )
    return mod("jitlib.training.trainer").Trainer(config, dataset=dataset)


def rows_for(
    mods: dict[str, Callable[[str], Any]], model: str, repeats: int, tmp: Path
) -> list[dict[str, Any]]:
    """Training step and guided sampling rows of one model, base vs new."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(16, 3, 32, 32, generator=gen) * 2 - 1, torch.arange(16) % 10
    noise = torch.randn(16, 3, 32, 32, generator=gen)
    trainers = {
        side: trainer(mod, model, 16, tmp / f"{side}-{model.replace('/', '-')}") for side, mod in mods.items()
    }
    state = {
        k: v + 0.02 * torch.randn(v.shape, generator=gen)
        for k, v in trainers["base"].net.state_dict().items()
    }
    rows = []
    times = interleaved({side: lambda t=t: t.train_step(x, y) for side, t in trainers.items()}, repeats)
    rows.append({"what": f"training step, {model}, batch 16", **summary(times)})
    samplers = {}
    for side, mod in mods.items():
        net = mod("jitlib.nn.registry").create_model(model).eval()
        net.load_state_dict(state)  # random non-zero weights: the zero-init head would make x̂ = 0
        denoiser = mod("jitlib.diffusion.denoiser").Denoiser(net)
        run = mod("jitlib.diffusion.sampling").sample
        scale = {"cfg_scale" if "cfg_scale" in inspect.signature(run).parameters else "cfg": 3.0}
        samplers[side] = lambda run=run, d=denoiser, scale=scale: run(
            d, noise, steps=50, method="heun", labels=y, null_label=10, cfg_interval=(0.1, 1.0), **scale
        )
    with torch.no_grad():
        a, b = samplers["base"](), samplers["new"]()
        difference = ((a - b).norm() / b.norm()).item()
        times = interleaved(samplers, repeats, warmup=1)
    rows.append(
        {"what": f"50-step guided Heun sample, {model}, 16 images", **summary(times), "rel_diff": difference}
    )
    return rows


def summary(times: dict[str, list[float]]) -> dict[str, float]:
    base, new = times["base"], times["new"]
    return {
        "base_median_ms": 1e3 * statistics.median(base),
        "base_min_ms": 1e3 * min(base),
        "new_median_ms": 1e3 * statistics.median(new),
        "new_min_ms": 1e3 * min(new),
        "speedup_median": statistics.median(base) / statistics.median(new),
        "speedup_min": min(base) / min(new),
    }


def noise_row(mods: dict[str, Callable[[str], Any]], repeats: int) -> dict[str, Any]:
    """The per-sample noise, times and coins of a global batch of 1024 images of 3×32×32."""
    diffusion = mods["new"]("jitlib.training.config").DiffusionConfig(noise_scale=1.0)
    new = mods["new"]("jitlib.training.noise").draw_noise
    cpu = torch.device("cpu")
    try:  # the same function on both sides once it lives in jitlib.training.noise
        base = mods["base"]("jitlib.training.noise").draw_noise
        calls = {"base": lambda: base(0, 1, range(1024), (3, 32, 32), diffusion, cpu, 1024)}
    except ModuleNotFoundError:  # before, a method of the trainer module with another signature
        old = mods["base"]("jitlib.training.trainer").draw_noise
        calls = {"base": lambda: old(0, 1, list(range(1024)), (3, 32, 32), diffusion, cpu)}
    calls["new"] = lambda: new(0, 1, range(1024), (3, 32, 32), diffusion, cpu, 1024)
    return {"what": "per-sample noise of a batch of 1024 (3×32×32)", **summary(interleaved(calls, repeats))}


GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm")
ATTENTION_OPS = (
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
)


def network_workloads(
    mod: Callable[[str], Any], model: str
) -> tuple[torch.nn.Module, dict[str, Callable[[], None]]]:
    """A ``model`` network with seeded random weights (the same on every side) and its two workloads.

    Forward + backward of 16 images (a training step's network part) and a no-grad forward of 32 images (one
    guided sampling evaluation, conditional ⊕ unconditional).
    """
    gen = torch.Generator().manual_seed(0)
    net = mod("jitlib.nn.registry").create_model(model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    x, t, y = torch.randn(32, 3, 32, 32, generator=gen), torch.rand(32, generator=gen), torch.arange(32) % 11

    def train() -> None:
        net(x[:16], t[:16], y[:16]).square().mean().backward()

    @torch.no_grad()
    def evaluate() -> None:
        net(x, t, y)

    return net, {"forward + backward, batch 16": train, "no-grad forward, batch 32": evaluate}


def profile_tables(
    mods: dict[str, Callable[[str], Any]], model: str, top: int = 12, rounds: int = 3, iterations: int = 3
) -> dict[str, Any]:
    """Where a network's time goes, base vs new: self CPU time per operator (torch.profiler), ms per iteration.

    Profiled in ``rounds`` alternating rounds of ``iterations`` per side, summed: both sides see the same machine
    load. Operators are also grouped: matrix multiplies, attention, everything else (elementwise, copies, …).
    """
    from torch.profiler import ProfilerActivity, profile

    sides = {side: network_workloads(mod, model)[1] for side, mod in mods.items()}
    tables = {}
    for name in next(iter(sides.values())):
        totals: dict[str, dict[str, list[float]]] = {side: {} for side in sides}
        for works in sides.values():
            works[name]()  # warm-up
        for _ in range(rounds):
            for side, works in sides.items():
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    for _ in range(iterations):
                        works[name]()
                for e in prof.key_averages():
                    calls_ms = totals[side].setdefault(e.key, [0.0, 0.0])
                    calls_ms[0] += e.count
                    calls_ms[1] += e.self_cpu_time_total / 1e3
        n = rounds * iterations
        for side, ops in totals.items():
            total = sum(ms for _, ms in ops.values()) / n
            groups = {"matrix multiplies": GEMM_OPS, "attention": ATTENTION_OPS}
            grouped = {g: sum(ops.get(op, [0, 0])[1] for op in members) / n for g, members in groups.items()}
            grouped["everything else"] = total - sum(grouped.values())
            ranked = sorted(ops.items(), key=lambda kv: -kv[1][1])[:top]
            tables[f"{name}, {side}"] = {
                "total_ms": total,
                "groups_ms": grouped,
                "ops": [
                    {"op": op, "calls": calls / n, "ms": ms / n, "share": ms / n / total}
                    for op, (calls, ms) in ranked
                ],
            }
    return tables


def profile_markdown(tables: dict[str, Any], model: str) -> str:
    lines = [
        f"\nWhere the time goes in {model}'s network (torch.profiler, self CPU time per iteration; base and new "
        "profiled in alternating rounds):\n",
        "| workload, side | total ms | matrix multiplies | attention | everything else |",
        "|---|---|---|---|---|",
    ]
    for name, table in tables.items():
        g = table["groups_ms"]
        lines.append(
            f"| {name} | {table['total_ms']:.1f} | {g['matrix multiplies']:.1f} | {g['attention']:.1f} "
            f"| {g['everything else']:.1f} |"
        )
    for name, table in tables.items():
        lines += [f"\nTop operators, {name}:\n", "| operator | calls | ms | share |", "|---|---|---|---|"]
        lines += [
            f"| {o['op']} | {o['calls']:.0f} | {o['ms']:.2f} | {100 * o['share']:.1f} % |"
            for o in table["ops"]
        ]
    return "\n".join(lines) + "\n"


def solo(side: str, base: Path, model: str, repeats: int) -> dict[str, Any]:
    """One side alone in this process: median user and system CPU ms and minor page faults per workload call."""
    mod = import_renamed(base) if side == "base" else importlib.import_module
    _, works = network_workloads(mod, model)
    result = {}
    for name, work in works.items():
        work()
        samples = []
        for _ in range(repeats):
            before = resource.getrusage(resource.RUSAGE_SELF)
            work()
            after = resource.getrusage(resource.RUSAGE_SELF)
            samples.append(
                (
                    1e3 * (after.ru_utime - before.ru_utime),
                    1e3 * (after.ru_stime - before.ru_stime),
                    after.ru_minflt - before.ru_minflt,
                )
            )
        user, system, faults = (statistics.median(column) for column in zip(*samples, strict=True))
        result[name] = {"user_ms": user, "sys_ms": system, "faults": faults}
    return result


def separate_processes(base: Path, model: str, processes: int, repeats: int) -> list[dict[str, Any]]:
    """``solo`` for base and new in alternating fresh processes (no shared allocator state), ``processes`` each."""
    runs: list[dict[str, Any]] = []
    for _ in range(processes):
        for side in ("base", "new"):
            command = [sys.executable, __file__, "--base", str(base), "--solo", side, "--models", model]
            command += ["--repeats", str(repeats)]
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            out = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
            runs.append({"side": side, **json.loads(out.strip().splitlines()[-1])})
    return runs


def separate_markdown(runs: list[dict[str, Any]], model: str) -> str:
    lines = [
        f"\nThe same two workloads of {model}'s network, each side alone in a fresh process (processes alternate "
        "base, new, …; median per call within a process, then median over processes). User time is the "
        "computation; system time is mostly the kernel mapping fresh pages (minor page faults) for tensors the "
        "allocator returned to the OS:\n",
        "| workload | base user ms | new user ms | user speed-up | base sys ms | new sys ms | base faults | new faults |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in runs[0]:
        if name == "side":
            continue

        def med(side: str, key: str, name: str = name) -> float:
            return statistics.median(r[name][key] for r in runs if r["side"] == side)

        lines.append(
            f"| {name} | {med('base', 'user_ms'):.1f} | {med('new', 'user_ms'):.1f} | "
            f"{med('base', 'user_ms') / med('new', 'user_ms'):.2f}× | {med('base', 'sys_ms'):.1f} | "
            f"{med('new', 'sys_ms'):.1f} | {med('base', 'faults'):.0f} | {med('new', 'faults'):.0f} |"
        )
    return "\n".join(lines) + "\n"


def commit_of(checkout: Path) -> str:
    """The checked-out commit of ``checkout`` (with "+changes" when its tree differs), or "unknown"."""
    try:
        head = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(checkout), "status", "--porcelain", "--", "jitlib"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def to_markdown(
    rows: list[dict[str, Any]], threads: int, repeats: int, meta: dict[str, Any] | None = None
) -> str:
    lines = [
        f"Interleaved in one process, {threads} thread(s), {repeats} calls each (after warm-up); ms per call "
        f"({'process CPU time' if threads == 1 else 'wall time'}).",
        "",
    ]
    if meta:
        lines += [
            f"base = jitlib at {meta['base']}, new = jitlib at {meta['new']}; torch {meta['torch']}; load average "
            f"{meta['load_before']} before, {meta['load_after']} after (shared machine). The noise row runs the same "
            f"function on both sides when the base has `jitlib.training.noise`: a control for the timer.",
            "",
            f"Command: `{meta['command']}`",
            "",
        ]
    lines += [
        "| measurement | base median | base min | new median | new min | speed-up (median) | speed-up (min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['what']} | {r['base_median_ms']:.2f} | {r['base_min_ms']:.2f} | {r['new_median_ms']:.2f} "
            f"| {r['new_min_ms']:.2f} | {r['speedup_median']:.2f}× | {r['speedup_min']:.2f}× |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--base", type=Path, required=True, help="a checkout of the older commit (its jitlib/)"
    )
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="JiT-tiny/4,JiT-tiny/32")
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    parser.add_argument(
        "--profile", metavar="MODEL", help="also tabulate where MODEL's network time goes (top operators)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="also time the --profile model's network with each side alone in N fresh processes",
    )
    parser.add_argument("--solo", choices=("base", "new"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.solo:  # a child of --processes: one side alone, one JSON line
        sys.path.insert(0, str(REPO))
        print(json.dumps(solo(args.solo, args.base, args.models.split(",")[0], args.repeats)))
        return
    sys.path.insert(
        0, str(REPO)
    )  # the new package is this checkout's, whatever the environment has installed
    import jitlib

    if Path(jitlib.__file__).resolve().parent != REPO / "jitlib":
        raise SystemExit(f"imported jitlib from {jitlib.__file__}, not from {REPO}")

    mods = {"base": import_renamed(args.base), "new": importlib.import_module}
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    commits = {"base": commit_of(args.base), "new": commit_of(REPO)}  # before the runs: what was imported
    rows = [noise_row(mods, args.repeats)]
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            rows += rows_for(mods, model, args.repeats, Path(tmp))
    meta = {
        "command": shlex.join(
            [
                f"{k}={v}"
                for k, v in sorted(os.environ.items())
                if k == "OMP_NUM_THREADS" or k.startswith("MALLOC_")
            ]
            + ["python", *sys.argv]
        ),
        **commits,
        "torch": torch.__version__,
        "threads": args.threads,
        "repeats": args.repeats,
        "load_before": load_before,
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    table = to_markdown(rows, args.threads, args.repeats, meta)
    profiles = processes = None
    if args.profile:
        profiles = profile_tables(mods, args.profile)
        table += profile_markdown(profiles, args.profile)
        if args.processes:
            processes = separate_processes(args.base, args.profile, args.processes, args.repeats)
            table += separate_markdown(processes, args.profile)
    print(table, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(
            json.dumps({"meta": meta, "rows": rows, "profiles": profiles, "processes": processes}, indent=1)
        )
        args.out.with_suffix(".md").write_text(table)


if __name__ == "__main__":
    main()
