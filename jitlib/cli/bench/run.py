"""The whole benchmark (:class:`BenchOptions` → :func:`run_bench`) and its reports (JSON and a Markdown table)."""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from jitlib.cli.bench.measure import (
    PARTS,
    attention_backend,
    bench_config,
    bench_loader,
    bench_sampling,
    bench_training,
    build_trainer,
    largest_batch,
    training_batch,
)
from jitlib.cli.bench.paths import compare_paths
from jitlib.cli.bench.timing import clock, device_name, free_memory, peak_flops
from jitlib.device import resolve_device, tier
from jitlib.nn.flops import count_params, forward_flops
from jitlib.nn.registry import MODEL_REGISTRY, get_config
from jitlib.training.trainer import Trainer

# ---------------------------------------------------------------------------------------------------------------
# The whole benchmark
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class BenchOptions:
    """What ``jitlib bench`` measures; ``batch=None`` searches the largest batch that fits (GPU only)."""

    models: list[str] = field(default_factory=lambda: ["JiT-B/16" if tier() == "full" else "JiT-tiny/4"])
    arch: dict[str, Any] = field(default_factory=dict)
    resolution: int | None = None
    batch: int | None = 32
    precision: str = "auto"
    compile: tuple[bool, ...] = (False, True)
    steps: int = 10
    warmup: int = 3
    sample_batch: int | None = None
    sample_steps: int = 50
    sample_repeats: int = 1
    cfg_scale: float = 3.0
    device: str = "auto"
    parts: tuple[str, ...] = PARTS
    loader_workers: int = 0
    loader_images: int = 256
    peak_tflops: float | None = None
    compare_repeats: int = 10
    profile: bool = False

    def __post_init__(self) -> None:
        for name in self.models:
            if name not in MODEL_REGISTRY:
                raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_REGISTRY)}")
        for name in ("steps", "sample_steps", "sample_repeats", "compare_repeats", "loader_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("batch", "sample_batch", "resolution"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}={value} must be >= 1 (or unset)")
        if self.warmup < 1:
            raise ValueError(f"warmup={self.warmup} must be >= 1 (the first step compiles and allocates)")
        unknown = sorted(set(self.parts) - set(PARTS))
        if unknown:
            raise ValueError(f"unknown bench part(s) {unknown}; valid: {', '.join(PARTS)}")
        if not self.compile:
            raise ValueError("compile must hold at least one of False (eager), True (torch.compile)")


def machine_facts(device: torch.device) -> dict[str, Any]:
    """Device, software and load: what a reader needs to judge the numbers."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "device": str(device),
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "clock": clock(device)[1],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_1_5_15": list(load) if load else None,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def bench_trainer(
    options: BenchOptions, trainer: Trainer, batch: int, peak: float | None, result: dict[str, Any]
) -> None:
    """Add one trainer's rows (compile on or off) to ``result``: training, attention kernel, sampling, pairs."""
    compiled = trainer.config.train.compile
    if "train" in options.parts:
        row = bench_training(trainer, batch, options.steps, options.warmup, peak, options.profile)
        result.setdefault("train", []).append(row)
    if not compiled:
        x, y = training_batch(trainer, min(batch, 8))
        t = torch.rand(x.shape[0], device=x.device)
        with torch.no_grad(), trainer.precision.autocast():
            result["attention_backend"] = attention_backend(lambda: trainer.net(x, t, y))
    sample_batch = options.sample_batch or batch
    if "sample" in options.parts:
        # Static shapes: sampling runs two batch sizes (B unguided, 2B guided), each gets its own specialised graph.
        net = torch.compile(trainer.net, dynamic=False) if compiled else trainer.net
        row = bench_sampling(
            net,
            sample_batch,
            trainer.precision,
            peak,
            options.sample_steps,
            options.cfg_scale,
            repeats=options.sample_repeats,
        )
        result.setdefault("sample", []).append({"compile": compiled, **row})
    if "compare" in options.parts and not compiled:
        result["compare"] = compare_paths(
            trainer, batch, sample_batch, options.compare_repeats, options.cfg_scale
        )


def bench_model(
    options: BenchOptions, model: str, device: torch.device, peak: float | None
) -> dict[str, Any]:
    """Every measurement for one model: a fresh trainer per compile mode (eager first), then its rows."""
    native = get_config(model, **options.arch)
    resolution = options.resolution or native.input_size
    result: dict[str, Any] = {"model": model, "arch": dict(options.arch), "resolution": resolution}
    batch = options.batch
    with tempfile.TemporaryDirectory(prefix="jitlib-bench-") as tmp:
        for compiled in sorted(
            options.compile
        ):  # eager first: it searches the batch, compiling would re-trace
            config = bench_config(
                model,
                resolution,
                batch or 16,
                options.precision,
                compiled,
                str(device),
                Path(tmp) / f"compile-{compiled}",
                options.arch,
                native.num_classes,
            )
            trainer = build_trainer(config, batch or 16)
            if batch is None:
                batch = largest_batch(trainer)
                result["batch_search"] = "largest multiple of 8 whose eager training step fits"
            result.update(
                params=count_params(trainer.net),
                gmacs_per_forward=forward_flops(trainer.net).gmacs,
                precision=trainer.precision.name,
            )
            bench_trainer(options, trainer, batch, peak, result)
            del trainer
            free_memory()
    return result


def run_bench(options: BenchOptions) -> dict[str, Any]:
    """Run the benchmark described by ``options``; returns the nested results that :func:`write_results` stores."""
    device = resolve_device(options.device, "device")
    facts = machine_facts(device)
    peak, source = peak_flops(facts["device_name"], device.type)
    if options.peak_tflops is not None:
        peak, source = options.peak_tflops * 1e12, "given with --peak-tflops"
    results: dict[str, Any] = {
        "machine": facts,
        "peak_flops": peak,
        "peak_source": source,
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()},
        "models": [bench_model(options, model, device, peak) for model in options.models],
    }
    if "loader" in options.parts:
        first = results["models"][0]
        loader = results["loader"] = bench_loader(
            first["resolution"],
            min(options.batch or 64, options.loader_images // 2),
            options.loader_workers,
            options.loader_images,
        )
        fastest = max((row["images_per_s"] for row in first.get("train", [])), default=None)
        loader["workers_needed"] = (
            None if fastest is None else math.ceil(fastest / loader["images_per_s_per_worker"])
        )
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    results["machine"]["load_average_after"] = list(load) if load else None
    return results


# ---------------------------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1, scale: float = 1.0, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value * scale:.{digits}f}{suffix}"


def to_markdown(results: dict[str, Any]) -> str:
    """The results as Markdown: machine line, training / sampling table, before/after table, loader line."""
    m = results["machine"]
    load = m.get("load_average_1_5_15")
    lines = [
        f"**Device**: {m['device_name']} ({m['device']}), torch {m['torch']}, {m['torch_threads']} threads of "
        f"{m['cpu_count']} CPUs; load average {', '.join(f'{v:.1f}' for v in load) if load else 'n/a'} before, "
        f"{', '.join(f'{v:.1f}' for v in m['load_average_after']) if m.get('load_average_after') else 'n/a'} after. "
        f"Peak: {_fmt(results['peak_flops'], 0, 1e-12, ' TFLOP/s')} ({results['peak_source']}). "
        f"Timer: {m.get('clock', 'wall time')}.",
        "",
        "| model | res | precision | attention | compile | batch | train img/s | best img/s | step ms | train TFLOP/s | train MFU "
        "| peak mem GiB | syncs/step | sample img/s | sample MFU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["models"]:
        samples = {row["compile"]: row for row in r.get("sample", [])}
        for row in r.get("train", []) or [{"compile": c} for c in samples]:
            s = samples.get(row["compile"], {})
            lines.append(
                f"| {r['model']} | {r['resolution']} | {r['precision']} | {r.get('attention_backend', 'n/a')} "
                f"| {'on' if row['compile'] else 'off'} | {row.get('batch', s.get('batch', 'n/a'))} "
                f"| {_fmt(row.get('images_per_s'))} | {_fmt(row.get('images_per_s_best'))} | {_fmt(row.get('step_ms'))} | {_fmt(row.get('tflops_per_s'), 3)} "
                f"| {_fmt(row.get('mfu'), 1, 100, '%')} | {_fmt(row.get('peak_memory_gib'), 2)} "
                f"| {row.get('syncs_per_step') if row.get('syncs_per_step') is not None else 'n/a'} "
                f"| {_fmt(s.get('images_per_s'), 2)} | {_fmt(s.get('mfu'), 1, 100, '%')} |"
            )
    sample_rows = [s for r in results["models"] for s in r.get("sample", [])]
    if sample_rows:
        s = sample_rows[0]
        lines += [
            "",
            f"Sampling: {s['steps']}-step Heun, CFG {s['cfg_scale']} on (0.1, 1]: {s['forwards_per_image']:.0f} forward "
            f"passes per image (the official sampler runs {s['official_forwards_per_image']}: both CFG passes at "
            "every evaluation). Training FLOPs = 3 × forward; FLOPs = 2 × multiply-accumulates of matrix products.",
        ]
    for r in results["models"]:
        if r.get("compare"):
            lines += [
                "",
                f"Before/after, {r['model']}: fastest of {results['options']['compare_repeats']} calls each, "
                "the two sides called in alternation in one process:",
                "",
                "| path | before | after | before ms | after ms | speed-up |",
                "|---|---|---|---|---|---|",
            ]
            for c in r["compare"]:
                lines.append(
                    f"| {c['path']} | {c['before']} | {c['after']} | {c['before_ms']:.2f} | {c['after_ms']:.2f} "
                    f"| {c['speedup']:.2f}× |"
                )
                if "fp32_sdpa_ms" in c:
                    lines.append(
                        f"| attention fwd+bwd | explicit fp32 logits (official) | SDPA fp32 "
                        f"(attn_fp32_logits=True: {c['fp32_sdpa_backend']}) | {c['before_ms']:.2f} "
                        f"| {c['fp32_sdpa_ms']:.2f} | {c['before_ms'] / c['fp32_sdpa_ms']:.2f}× |"
                    )
    for r in results["models"]:
        for row in r.get("train", []):
            if row.get("top_ops"):
                lines += [
                    "",
                    f"Most expensive operators of one training step, {r['model']}, compile "
                    f"{'on' if row['compile'] else 'off'} (profiler self time, wall clock):",
                    "",
                    "| operator | ms | share | calls |",
                    "|---|---|---|---|",
                ]
                lines += [
                    f"| `{op['op']}` | {op['ms']:.2f} | {100 * op['share']:.1f}% | {op['calls']} |"
                    for op in row["top_ops"]
                ]
    if "loader" in results:
        ld = results["loader"]
        lines += [
            "",
            f"Data loader (trainer's DataLoader, ImageFolder with ADM crop to {ld['image_size']}, {ld['source_size']}): "
            f"{ld['images_per_s']:.0f} img/s with {ld['workers']} worker(s) "
            f"({ld['images_per_s_per_worker']:.0f} img/s per worker)"
            + (
                f": the fastest training step above needs at least {ld['workers_needed']} worker(s) per process."
                if ld.get("workers_needed")
                else "."
            ),
        ]
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], out_dir: str | Path, stem: str) -> tuple[Path, Path]:
    """Write ``stem.json`` and ``stem.md`` into ``out_dir``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path.write_text(to_markdown(results))
    return json_path, md_path
