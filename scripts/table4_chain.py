"""The paper's Tab. 4 chain in miniature: baseline → + bottleneck → + RoPE, qk-norm → + in-context class tokens.

Each network of the chain is a ``PAPER_ROWS``-style switch setting of JiT-tiny/8 narrowed to width 64 (4 blocks,
2 heads; 4×4 tokens of 8×8 one-channel patches = 64 dims, so patch dimension = width, as JiT-B/16's 768 = 768)
trained on the 32-px digits at equal compute (the same steps, batch and recipe, ``tiny-digits``), for several seeds
each. Scored on the raw weights (at 250 steps every EMA of the recipe still remembers the early network and scores
worse) by

- the held-out v-loss: the training loss on a fixed set of (image, t, ε) — the same for every run, low variance;
- the proxy metric (``jitlib.evaluation.metrics``): Fréchet distance of the classifier features of generated vs. real
  digits and the class accuracy of the samples (Heun, CFG without interval, as Tab. 4's main column).

One thread, a hard wall-clock budget (the run stops with an error rather than exceed it). Writes
data/results/table4_chain.json. Regenerate: ``OMP_NUM_THREADS=1 python scripts/table4_chain.py`` (~6 min of CPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from jitlib.diffusion.denoiser import Denoiser
from jitlib.evaluation.generate import class_labels, generate
from jitlib.evaluation.metrics import proxy_classifier
from jitlib.training.config import load_config
from jitlib.training.data import stack_dataset
from jitlib.training.trainer import Trainer

OUT = Path(__file__).parents[1] / "data" / "results" / "table4_chain.json"
MODEL = "JiT-tiny/8"
WIDTH = dict(
    hidden_size=64, num_heads=2
)  # patch dim 64 = width, the paper's regime; and cheap enough for one thread
BOTTLENECK = 16  # 64-dim patches → 16: the paper's 768 → 128 ratio (1/6) rounded to a power of two
# (label, paper row, JiTConfig overrides): each step adds one group of components, as Tab. 4 (and Fig. 4 before it).
CHAIN = [
    (
        "baseline",
        "Tab. 2(a) / Fig. 4 'none': 8.62",
        dict(bottleneck_dim=None, rope=False, qk_norm=False, in_context_len=0),
    ),
    (
        "+ bottleneck",
        "Tab. 4 row 1: 7.48",
        dict(bottleneck_dim=BOTTLENECK, rope=False, qk_norm=False, in_context_len=0),
    ),
    ("+ RoPE, qk-norm", "Tab. 4 row 2: 6.69", dict(bottleneck_dim=BOTTLENECK, in_context_len=0)),
    ("+ in-context tokens", "Tab. 4 row 3: 5.49", dict(bottleneck_dim=BOTTLENECK)),
]


def arch_overrides(arch: dict) -> list[str]:
    """JiTConfig overrides as run-config items ``model.arch.KEY=VALUE``."""
    return [
        f"model.arch.{k}={'null' if v is None else str(v).lower() if isinstance(v, bool) else v}"
        for k, v in arch.items()
    ]


@torch.no_grad()
def held_out_loss(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean v-loss of the raw network on fixed (x, t, ε): t on the training law, ε ~ N(0, s²I), seed 1234."""
    pipe = trainer.generator("model")
    gen = torch.Generator().manual_seed(1234)
    d = trainer.config.diffusion
    t = torch.sigmoid(d.t_mu + d.t_sigma * torch.randn(len(images), generator=gen))
    eps = torch.randn(images.shape, generator=gen) * d.noise_scale
    denoiser = Denoiser(pipe.net, target=d.pred, t_eps=d.t_eps)
    return float(
        torch.cat(
            [
                denoiser.loss(x, e, tt, y, d.loss)
                for x, e, tt, y in zip(
                    images.split(256), eps.split(256), t.split(256), labels.split(256), strict=True
                )
            ]
        ).mean()
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="training steps per run (batch 64)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=200, help="generated images per run (20 per class)")
    parser.add_argument("--sample-steps", type=int, default=10, help="Heun steps when sampling")
    parser.add_argument(
        "--budget-s", type=float, default=1800.0, help="hard wall-clock budget of the whole run"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()

    base = load_config("tiny-digits", [f"model.name={MODEL}"])
    proxy = proxy_classifier(base.data)
    runs = []
    for seed in range(args.seeds):
        for label, paper, arch in CHAIN:
            with tempfile.TemporaryDirectory() as tmp:
                config = load_config(
                    "tiny-digits",
                    [
                        f"model.name={MODEL}",
                        *arch_overrides(WIDTH),
                        f"train.steps={args.steps}",
                        f"train.seed={seed}",
                        f"train.output_dir={tmp}",
                        "train.progress=false",
                        f"train.ckpt_every={args.steps}",
                        f"train.log_every={args.steps}",
                    ]
                    + arch_overrides(arch),
                )
                t0 = time.perf_counter()
                trainer = Trainer(config)
                result = trainer.fit()
                t1 = time.perf_counter()
                images, labels = stack_dataset(trainer.dataset)
                loss = held_out_loss(trainer, images, labels)
                pipe = trainer.generator("model")
                y = class_labels(pipe.num_classes, args.samples)
                samples = generate(
                    pipe, y, seed=0, steps=args.sample_steps, cfg_interval=(0.0, 1.0), batch_size=args.samples
                )
                score = proxy.score(samples, y)
                params = sum(p.numel() for p in trainer.net.parameters() if p.requires_grad)
            runs.append(
                {
                    "variant": label,
                    "paper": paper,
                    "arch": {k: v for k, v in arch.items()},
                    "seed": seed,
                    "params": params,
                    "train_loss_last50": statistics.fmean(result.losses[-50:]),
                    "held_out_loss": loss,
                    "proxy_fd": score.fd,
                    "class_accuracy": score.accuracy,
                    "train_s": t1 - t0,
                    "eval_s": time.perf_counter() - t1,
                }
            )
            elapsed = time.perf_counter() - start
            print(
                f"[{elapsed:6.0f} s] seed {seed} {label:<20} loss {loss:.4f} FD {score.fd:.3f} acc {score.accuracy:.3f}"
            )
            per_run = elapsed / len(runs)
            remaining = args.seeds * len(CHAIN) - len(runs)
            if elapsed + per_run * remaining > args.budget_s:
                raise SystemExit(
                    f"budget: {elapsed:.0f} s spent, {remaining} runs left at ~{per_run:.0f} s each would exceed "
                    f"--budget-s {args.budget_s:.0f}; rerun with fewer --steps"
                )
    summary = {}
    for label, paper, _ in CHAIN:
        rows = [r for r in runs if r["variant"] == label]
        summary[label] = {"paper": paper, "params": rows[0]["params"]} | {
            key: {
                "mean": statistics.fmean(r[key] for r in rows),
                "std": statistics.stdev(r[key] for r in rows),
                "values": [r[key] for r in rows],
            }
            for key in ("held_out_loss", "proxy_fd", "class_accuracy", "train_loss_last50")
        }
    record = {
        "what": "Tab. 4 chain in miniature: JiT-tiny/8 on 32-px digits, equal compute per run",
        "command": "OMP_NUM_THREADS=1 python scripts/table4_chain.py",
        "model": MODEL,
        "width": WIDTH,
        "bottleneck_dim": BOTTLENECK,
        "steps": args.steps,
        "batch_size": base.train.batch_size,
        "seeds": args.seeds,
        "samples": args.samples,
        "sample_steps": args.sample_steps,
        "cfg_scale": base.sample.cfg_scale,
        "cfg_interval": [0.0, 1.0],
        "weights": "raw (no EMA)",
        "real_fd": proxy.real_fd(args.samples),
        "real_accuracy": proxy.real_accuracy,
        "threads": torch.get_num_threads(),
        "wall_s": time.perf_counter() - start,
        "summary": summary,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out} in {record['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
