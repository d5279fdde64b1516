"""bf16 SDPA attention logits vs the official fp32 logits, on a JiT-B/16 forward under bf16 autocast on the CPU.

The default attention (``attn_fp32_logits=False``) runs ``F.scaled_dot_product_attention`` in the autocast dtype,
so under bf16 autocast q·kᵀ and the softmax see bf16 inputs; the official code computes q·kᵀ in float32 with
autocast off (``attn_fp32_logits=True``). Both networks share the same weights: the official initialisation with its
zero-initialised layers (adaLN, final linear) drawn from N(0, 0.02²) instead, so that every block contributes
(no trained JiT-B/16 is available offline; a trained network's figures will differ). Measured:

- one forward of ``--images`` images at t ∈ {0.1, 0.5, 0.9}: max and mean |x̂_bf16-SDPA − x̂_fp32-logits|, and each
  against a float32 forward without autocast;
- a ``--steps``-step Heun sample from the same noise with each attention (CFG off): max and mean difference.

One thread. Writes data/results/attention_numerics.json. Regenerate:
``OMP_NUM_THREADS=1 python scripts/attention_numerics.py`` (the 50-step sample of JiT-B/16 takes ~99 forwards per
attention — see ``--steps``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.sampling import sample
from jitlib.nn.model import JiT
from jitlib.nn.registry import get_config

OUT = Path(__file__).parents[1] / "data" / "results" / "attention_numerics.json"


def awake_network(name: str, seed: int) -> JiT:
    """The official initialisation of ``name`` with the zero-initialised layers drawn from N(0, 0.02²)."""
    net = JiT(get_config(name), generator=torch.Generator().manual_seed(seed))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        layers = [block.adaLN_modulation[-1] for block in net.blocks]
        layers += [net.final_layer.adaLN_modulation[-1], net.final_layer.linear]
        for layer in layers:
            layer.weight.normal_(0, 0.02, generator=gen)
            layer.bias.normal_(0, 0.02, generator=gen)
    return net.eval()


def diff(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """max and mean |a − b| in float64."""
    d = (a.double() - b.double()).abs()
    return {"max": d.max().item(), "mean": d.mean().item()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="JiT-B/16")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50, help="Heun steps of the sample comparison")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    sdpa = awake_network(args.model, args.seed)
    fp32_logits = JiT(replace(sdpa.config, attn_fp32_logits=True))
    fp32_logits.load_state_dict(sdpa.state_dict())
    fp32_logits.eval()
    c = sdpa.config
    gen = torch.Generator().manual_seed(args.seed + 2)
    noise = torch.randn(args.images, c.in_channels, c.input_size, c.input_size, generator=gen)
    labels = torch.randint(0, c.num_classes, (args.images,), generator=gen)
    image = torch.rand(args.images, c.in_channels, c.input_size, c.input_size, generator=gen) * 2 - 1

    forward = {}
    with torch.no_grad():
        for t in (0.1, 0.5, 0.9):
            tt = torch.full((args.images,), t)
            z = t * image + (1 - t) * noise
            reference = sdpa(z, tt, labels)  # float32, no autocast
            with torch.autocast("cpu", dtype=torch.bfloat16):
                a, b = sdpa(z, tt, labels).float(), fp32_logits(z, tt, labels).float()
            forward[str(t)] = {
                "bf16_sdpa_vs_fp32_logits": diff(a, b),
                "bf16_sdpa_vs_fp32": diff(a, reference),
                "fp32_logits_vs_fp32": diff(b, reference),
                "output_abs_mean": reference.abs().mean().item(),
            }
            print(t, forward[str(t)], f"{time.perf_counter() - start:.0f} s", flush=True)
    forward_s = time.perf_counter() - start

    samples = {}
    for name, net in (("bf16_sdpa", sdpa), ("fp32_logits", fp32_logits)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            samples[name] = sample(Denoiser(net, "x"), noise, steps=args.steps, labels=labels).float()
        print(name, f"sampled in {time.perf_counter() - start:.0f} s", flush=True)
    record = {
        "what": __doc__.splitlines()[0],
        "command": f"OMP_NUM_THREADS=1 python scripts/attention_numerics.py --steps {args.steps}",
        "model": args.model,
        "images": args.images,
        "weights": "official init, zero-initialised layers ~ N(0, 0.02^2), seed " + str(args.seed),
        "forward": forward,
        "sample_steps": args.steps,
        "sample": diff(samples["bf16_sdpa"], samples["fp32_logits"]),
        "sample_abs_mean": samples["fp32_logits"].abs().mean().item(),
        "forward_s": forward_s,
        "wall_s": time.perf_counter() - start,
        "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("sample", "wall_s")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
