"""Where JiT-tiny/4 could still get faster on this CPU in eager mode — each probe an alternative, timed side by side.

Every row is interleaved in one process (one thread by default; process CPU time; median and minimum of
``--repeats`` calls after warm-up), and every alternative is checked to give the same result first:

- matrix multiplies of the network's shapes (batch 32 at inference, batch 16 in training): MKL (``torch.addmm``,
  what ``nn.Linear`` runs), oneDNN with a prepacked weight (what inductor's frozen CPU graphs call) and MKL with a
  packed weight, in GFLOP/s, beside a 1024³ multiply for reference;
- attention forward + backward at training shapes: SDPA (flash kernel for CPU), SDPA's math backend, and an
  explicit ``softmax(q·kᵀ/√d)·v`` with batched matrix multiplies;
- the no-grad forward at batch 32 (one guided sampling step): the SwiGLU MLP computed in row tiles small enough to
  stay in cache, and the whole batch split into chunks;
- the weight average update: ``torch._foreach_lerp_`` over the parameter tensors against one lerp over a single
  flat copy of them.

    OMP_NUM_THREADS=1 python scripts/speed_probes.py --out data/bench/probes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from speed_compare import interleaved  # noqa: E402  (this script's folder is on sys.path)

from jitlib.nn import layers  # noqa: E402
from jitlib.nn.registry import create_model  # noqa: E402


def rows(probe: str, times: dict[str, list[float]], flops: float | None = None) -> list[dict]:
    """One row per variant: median and minimum milliseconds (and GFLOP/s at the minimum for ``flops``)."""
    out = []
    for name, seconds in times.items():
        ms = [1e3 * s for s in seconds]
        row = {"probe": probe, "variant": name, "median_ms": statistics.median(ms), "min_ms": min(ms)}
        if flops is not None:
            row["gflops_at_min"] = flops / min(ms) / 1e6
        out.append(row)
    return out


def matmul_probes(repeats: int) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    shapes = [(1024, 1024, 1024), (2176, 128, 688), (2176, 344, 128), (2176, 128, 384), (1088, 128, 682)]
    out = []
    for m, k, n in shapes:
        x, w, b = (torch.randn(*s, generator=gen) for s in ((m, k), (n, k), (n,)))
        calls: dict[str, Callable[[], object]] = {"MKL addmm": lambda x=x, w=w, b=b: torch.addmm(b, x, w.t())}
        packed = torch.ops.mkldnn._reorder_linear_weight(w, m)
        calls["oneDNN, prepacked weight"] = lambda x=x, p=packed, b=b: torch.ops.mkldnn._linear_pointwise(
            x, p, b, "none", [], ""
        )
        mkl_packed = torch.ops.mkl._mkl_reorder_linear_weight(w, m)
        calls["MKL, packed weight"] = lambda x=x, p=mkl_packed, w=w, b=b, m=m: torch.ops.mkl._mkl_linear(
            x, p, w, b, m
        )
        reference = torch.addmm(b, x, w.t())
        for name, fn in calls.items():
            torch.testing.assert_close(fn(), reference, rtol=1e-4, atol=1e-3, msg=name)
        out += rows(f"matmul ({m}×{k}) · ({k}×{n})", interleaved(calls, repeats), 2 * m * k * n)
    return out


def attention_probes(repeats: int) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    b, h, n, d = 16, 4, 68, 32  # JiT-tiny/4 in training: batch 16, 64 patches + 4 class tokens
    q, k, v = (torch.randn(b, h, n, d, generator=gen, requires_grad=True) for _ in range(3))
    grad = torch.randn(b, h, n, d, generator=gen)

    def explicit() -> torch.Tensor:
        return ((q * d**-0.5) @ k.transpose(-1, -2)).softmax(-1) @ v

    def math_backend() -> torch.Tensor:
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v)

    forwards = {
        "SDPA (flash for CPU)": lambda: F.scaled_dot_product_attention(q, k, v),
        "SDPA math backend": math_backend,
        "explicit bmm + softmax": explicit,
    }
    reference = forwards["SDPA (flash for CPU)"]()
    for name, fn in forwards.items():
        torch.testing.assert_close(fn(), reference, rtol=1e-5, atol=1e-5, msg=name)
    calls = {name: lambda fn=fn: fn().backward(grad) for name, fn in forwards.items()}
    return rows(f"attention forward + backward, q, k, v of ({b}, {h}, {n}, {d})", interleaved(calls, repeats))


def tiled_swiglu(rows_per_tile: int) -> Callable:
    """SwiGLUFFN.padded_forward computed ``rows_per_tile`` token rows at a time (the hidden tile stays in cache)."""

    def forward(self: layers.SwiGLUFFN, x: torch.Tensor) -> torch.Tensor:
        dim, hidden = self.w3.out_features, self.w3.in_features
        w12 = F.pad(self.w12.weight.view(2, hidden, dim), (0, 0, 0, self.pad)).flatten(0, 1)
        b12 = F.pad(self.w12.bias.view(2, hidden), (0, self.pad)).flatten()
        w3 = F.pad(self.w3.weight, (0, self.pad))
        flat = x.reshape(-1, dim)
        out = torch.empty(flat.shape[0], dim)
        for i in range(0, flat.shape[0], rows_per_tile):
            gate, value = F.linear(flat[i : i + rows_per_tile], w12, b12).chunk(2, dim=-1)
            torch.addmm(
                self.w3.bias, F.silu(gate, inplace=True).mul_(value), w3.t(), out=out[i : i + rows_per_tile]
            )
        return out.view(*x.shape[:-1], dim)

    return forward


def inference_probes(repeats: int) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    net = create_model("JiT-tiny/4").eval()
    net.load_state_dict(
        {k: v + 0.02 * torch.randn(v.shape, generator=gen) for k, v in net.state_dict().items()}
    )
    x, t = torch.randn(32, 3, 32, 32, generator=gen), torch.rand(32, generator=gen)
    y = torch.arange(32) % 11
    plain = layers.SwiGLUFFN.padded_forward
    variants: dict[str, tuple[Callable, int]] = {"as shipped (one batch of 32)": (plain, 32)}
    variants |= {f"MLP in tiles of {r} rows": (tiled_swiglu(r), 32) for r in (544, 272, 136)}
    variants |= {f"batch in chunks of {c}": (plain, c) for c in (16, 8, 4)}

    def call(mlp: Callable, chunk: int) -> torch.Tensor:
        layers.SwiGLUFFN.padded_forward = mlp
        try:
            return torch.cat(
                [net(x[i : i + chunk], t[i : i + chunk], y[i : i + chunk]) for i in range(0, 32, chunk)]
            )
        finally:
            layers.SwiGLUFFN.padded_forward = plain

    with torch.no_grad():
        reference = call(plain, 32)
        for name, (mlp, chunk) in variants.items():
            torch.testing.assert_close(call(mlp, chunk), reference, rtol=1e-5, atol=1e-5, msg=name)
        times = interleaved({name: lambda v=v: call(*v) for name, v in variants.items()}, repeats)
    return rows("no-grad forward of JiT-tiny/4, batch 32", times)


def ema_probes(repeats: int) -> list[dict]:
    params = [p.detach() for p in create_model("JiT-tiny/4").parameters()]
    flat = torch.cat([p.flatten() for p in params])
    shadows = [[p.clone() for p in params] for _ in range(2)]
    flat_shadows = [flat.clone() for _ in range(2)]
    decays = (0.995, 0.998)

    def per_tensor() -> None:
        for shadow, decay in zip(shadows, decays, strict=True):
            torch._foreach_lerp_(shadow, params, 1 - decay)

    def one_flat() -> None:
        for shadow, decay in zip(flat_shadows, decays, strict=True):
            shadow.lerp_(flat, 1 - decay)

    calls = {f"_foreach_lerp_ over {len(params)} tensors": per_tensor, "one lerp over a flat copy": one_flat}
    return rows(
        f"two weight averages of JiT-tiny/4 ({flat.numel():,} parameters)", interleaved(calls, repeats)
    )


def markdown(result: dict) -> str:
    lines = [
        "Alternatives for JiT-tiny/4's remaining time on this CPU, each interleaved in one process "
        f"({result['threads']} thread(s), {result['repeats']} calls each after warm-up, process CPU time; "
        f"torch {result['torch']}; load average {result['load_before']} before, {result['load_after']} after).\n",
        f"Command: `{result['command']}`\n",
        "| probe | variant | median ms | min ms | GFLOP/s at min |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        gflops = f"{row['gflops_at_min']:.0f}" if "gflops_at_min" in row else ""
        lines.append(
            f"| {row['probe']} | {row['variant']} | {row['median_ms']:.3f} | {row['min_ms']:.3f} | {gflops} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {
        "command": " ".join(
            [f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"] * ("OMP_NUM_THREADS" in os.environ)
            + ["python", *sys.argv]
        ),
        "torch": torch.__version__,
        "threads": args.threads,
        "repeats": args.repeats,
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    found = matmul_probes(args.repeats) + attention_probes(args.repeats)
    found += inference_probes(args.repeats) + ema_probes(args.repeats)
    result |= {"load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()), "rows": found}
    table = markdown(result)
    print(table, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
        args.out.with_suffix(".md").write_text(table)


if __name__ == "__main__":
    main()
