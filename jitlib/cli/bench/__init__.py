"""How fast jitlib trains and samples a JiT on this machine, and where the speed comes from.

``jitlib bench`` measures, for a model / resolution / batch / precision:

- the trainer's own training step (``Trainer.train_step`` of :mod:`jitlib.training.trainer`: noise draws, forward, backward,
  AdamW, EMA) in images/s with its peak memory, eager and with ``torch.compile``;
- which scaled-dot-product-attention kernel the network runs on;
- sampling images/s for 50-step Heun with CFG through :func:`jitlib.diffusion.sampling.sample`;
- model FLOPs utilisation MFU = achieved model FLOP/s ÷ the GPU's peak dense bf16 FLOP/s (from
  :data:`jitlib.training.budget.DEVICES`; n/a on a CPU). Model FLOPs are 2 × the multiply-accumulates of
  :func:`jitlib.nn.flops.forward_flops`: three forwards' worth per trained image (the backward pass costs about two
  forwards) and one per image per network evaluation when sampling;
- before/after pairs for each speed path — fused vs for-each AdamW, for-each vs per-tensor EMA, SDPA vs the official
  explicit fp32-logit attention, patch embedding as matmuls vs convolutions, one batched CFG call vs two — each pair
  timed in alternation (A B A B …) in one process, so that load from other programs hits both sides alike;
- how fast the trainer's data loader decodes JPEGs, i.e. how many loader workers keep the training step fed.

Results are written as JSON and as a Markdown table (:func:`write_results`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jitlib.cli.bench.measure import (
    PARTS,
    bench_config,
    bench_loader,
    bench_sampling,
    bench_training,
    build_trainer,
    guided_evaluations,
    largest_batch,
    training_batch,
)
from jitlib.cli.bench.paths import (
    compare_paths,
    conv_patch_embed,
    explicit_fp32_attention,
    one_guided_step,
    per_tensor_ema,
    sdpa_fp32,
    two_pass_cfg,
)
from jitlib.cli.bench.run import BenchOptions, run_bench, to_markdown, write_results
from jitlib.cli.bench.timing import clock, mfu, peak_flops, time_best, time_calls
from jitlib.cli.options import (
    Command,
    add_cfg_scale,
    add_device,
    add_threads,
    apply_threads,
    from_args,
    positive_int,
)

__all__ = [
    "PARTS",
    "BenchOptions",
    "COMMAND",
    "bench_config",
    "bench_loader",
    "bench_sampling",
    "bench_training",
    "build_trainer",
    "clock",
    "compare_paths",
    "conv_patch_embed",
    "explicit_fp32_attention",
    "guided_evaluations",
    "largest_batch",
    "mfu",
    "one_guided_step",
    "peak_flops",
    "per_tensor_ema",
    "run_bench",
    "sdpa_fp32",
    "time_best",
    "time_calls",
    "to_markdown",
    "training_batch",
    "two_pass_cfg",
    "write_results",
]


# ---------------------------------------------------------------------------------------------------------------
# Command line: jitlib bench
# ---------------------------------------------------------------------------------------------------------------

BENCH_HELP = """\
Measure training and sampling speed, memory and MFU of a JiT on this machine; write JSON and Markdown.

examples:
  jitlib bench                                          # tiny preset on a CPU, JiT-B/16 on a GPU
  jitlib bench --model JiT-B/16 --batch max --precision bf16   # largest batch that fits, eager and compiled
  jitlib bench --model JiT-tiny/4 --model JiT-tiny/8 --compile off --parts train,sample
"""


def parse_arch(items: list[str]) -> dict[str, Any]:
    """["depth=2", "hidden_size=64"] → {"depth": 2, "hidden_size": 64} (values read as YAML scalars)."""
    import yaml

    arch: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--arch {item!r} must look like key=value, e.g. depth=2")
        arch[key] = yaml.safe_load(raw)
    return arch


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    """The :class:`BenchOptions` of a parsed ``jitlib bench`` command line (options named as fields pass as they are)."""
    compile_modes = {"off": (False,), "on": (True,), "both": (False, True)}
    defaults = BenchOptions.__dataclass_fields__
    return from_args(
        BenchOptions,
        args,
        models=args.model or defaults["models"].default_factory(),
        arch=parse_arch(args.arch),
        batch=None if args.batch == "max" else int(args.batch),
        compile=compile_modes[args.compile],
        device=str(args.device),
        parts=tuple(p.strip() for p in args.parts.split(",") if p.strip()),
        compare_repeats=args.repeats,
    )


def run_bench_command(args: argparse.Namespace) -> int:
    """``jitlib bench``: run, print the Markdown table, write JSON + Markdown."""
    apply_threads(args)
    if args.batch != "max" and not str(args.batch).isdigit():
        raise ValueError(f"--batch {args.batch!r} must be a positive integer or 'max'")
    results = run_bench(options_from_args(args))
    stem = args.name or f"bench-{results['machine']['device'].split(':')[0]}"
    json_path, md_path = write_results(results, args.out, stem)
    print(to_markdown(results), end="")
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``jitlib bench``: what to measure (:class:`BenchOptions`) and where to write it."""
    parser.add_argument("--model", action="append", metavar="NAME", help="registry name (repeatable)")
    parser.add_argument("--arch", action="append", default=[], metavar="KEY=VALUE", help="JiTConfig override")
    parser.add_argument(
        "--resolution", type=positive_int, help="image size (default: the model's native size)"
    )
    parser.add_argument(
        "--batch", default="32", help="training batch, or 'max' to search GPU memory (default 32)"
    )
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument(
        "--compile", default="both", choices=["off", "on", "both"], help="torch.compile (default both)"
    )
    parser.add_argument("--steps", type=positive_int, default=10, help="timed training steps (default 10)")
    parser.add_argument("--warmup", type=positive_int, default=3, help="untimed steps first (default 3)")
    parser.add_argument(
        "--sample-batch", type=positive_int, help="sampling batch (default: the training batch)"
    )
    parser.add_argument(
        "--sample-steps", type=positive_int, default=50, help="Heun steps (default 50, the paper's)"
    )
    add_cfg_scale(parser, 3.0)
    add_device(parser)
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    parser.add_argument(
        "--repeats", type=positive_int, default=10, help="timed rounds per before/after pair (default 10)"
    )
    parser.add_argument(
        "--loader-workers", type=int, default=0, help="DataLoader workers to measure (default 0)"
    )
    parser.add_argument(
        "--loader-images", type=positive_int, default=256, help="JPEGs to decode (default 256)"
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="peak dense bf16 TFLOP/s of a GPU not in jitlib.training.budget.DEVICES",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also list each step's most expensive operators"
    )
    add_threads(parser)
    parser.add_argument(
        "--out", default="data/bench", help="folder for the JSON and Markdown (default data/bench)"
    )
    parser.add_argument("--name", help="file stem (default bench-<device>)")


COMMAND = Command(
    "bench",
    "measure training/sampling images/s, memory and MFU; before/after of each speed path",
    BENCH_HELP,
    add_options,
    run_bench_command,
)
