"""The paper's toy experiment (§3.3, Fig. 2): a 2-D spiral hidden in D dimensions, learnt by a small MLP.

A 2-D data set x₂ is embedded as x = P x₂ by a fixed random column-orthogonal P ∈ R^{D×2} (PᵀP = I). The model never
sees P; it must find the plane itself. A 5-layer ReLU MLP of width 256 predicts x, ε or v (all trained with the same
loss, v-loss by default) and samples come from jitlib's own Heun sampler. Two honest measures of the result:

- quality in the plane: the sliced Wasserstein-1 distance between Pᵀx̂ (samples) and a large fresh data set, set
  beside the same distance for fresh data in place of the samples (the level a perfect generator reaches with this
  many points);
- distance from the plane: the mean off-manifold error ‖(I − PPᵀ)x̂‖, set beside the floor that the sampler's clip of
  1 − t at ``t_eps`` leaves even for a predictor whose every output lies in the plane.

Conversions, losses and the sampler come from :mod:`jitlib.diffusion.denoiser` and :mod:`jitlib.diffusion.sampling` — this module only adds
the data, the network, the training loop and the measures.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.interpolation import T_EPS, TIME_DISTRIBUTIONS, sample_t
from jitlib.diffusion.sampling import sample
from jitlib.diffusion.targets import TARGETS

PAPER_DIMS: tuple[int, ...] = (2, 8, 16, 512)
SPIRAL_TURNS: float = 2.0
SPIRAL_INNER_RADIUS: float = 0.2
SPIRAL_WIDTH: float = 0.02
DATA_MULTIPLE: int = 16
GRID_FILE = "data/results/spiral_grid.json"
GRID_URL = "https://raw.githubusercontent.com/let-denoisers-denoise/jit-book/main/" + GRID_FILE


# --- data ---------------------------------------------------------------------------------------------------------


def column_orthogonal(dim: int, rank: int = 2, *, generator: torch.Generator | None = None) -> Tensor:
    """P ∈ R^{dim×rank} with PᵀP = I: the Q factor of a Gaussian matrix (signs fixed so P is unique given the draw)."""
    if rank < 1 or dim < rank:
        raise ValueError(f"need 1 ≤ rank ≤ dim, got dim={dim}, rank={rank}")
    q, r = torch.linalg.qr(torch.randn(dim, rank, generator=generator, dtype=torch.float64))
    # QR is unique only up to the sign of each column; making diag(R) > 0 gives the Haar-distributed Q.
    return (q * torch.sign(torch.diagonal(r))).to(torch.float32)


def spiral(n: int, *, generator: torch.Generator | None = None) -> Tensor:
    """n points of a two-turn Archimedean spiral r = θ/θ_max, θ ∈ [2π·0.2·turns, 2π·turns], plus N(0, 0.02²) jitter.

    θ is drawn so the points are roughly uniform along the curve (arc length ∝ θ², so θ² is uniform); radii lie in
    [0.2, 1], so the data are of the same order as images in [−1, 1]. Returns (n, 2).
    """
    if n < 0:
        raise ValueError(f"n={n} must be a non-negative number of points")
    theta_max = 2 * math.pi * SPIRAL_TURNS
    theta_min = SPIRAL_INNER_RADIUS * theta_max
    u = torch.rand(n, generator=generator)
    theta = torch.sqrt(theta_min**2 + u * (theta_max**2 - theta_min**2))
    r = theta / theta_max
    points = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=1)
    return points + SPIRAL_WIDTH * torch.randn(n, 2, generator=generator)


def embed(x2: Tensor, proj: Tensor) -> Tensor:
    """x = P x₂ for each row: (n, 2) points in the plane → (n, D) points in R^D."""
    return x2 @ proj.T


def project(x: Tensor, proj: Tensor) -> Tensor:
    """x₂ = Pᵀ x for each row: (n, D) → (n, 2) coordinates in the plane spanned by P's columns."""
    return x @ proj


# --- measures -----------------------------------------------------------------------------------------------------


def sliced_wasserstein(a: Tensor, b: Tensor, n_directions: int = 128) -> float:
    """SW₁(a, b) = mean over directions u of W₁(uᵀa, uᵀb), u at n_directions evenly spaced angles in [0, π).

    a: (n, 2), b: (m, 2) with one of n, m a multiple of the other. In 1-D, W₁ between empirical distributions is
    the mean absolute difference of the sorted values once the smaller set repeats each value m/n times. Evenly spaced
    directions make the value deterministic (no random directions to seed).
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != 2 or b.shape[1] != 2:
        raise ValueError(f"a and b must be (n, 2) point sets, got {tuple(a.shape)} and {tuple(b.shape)}")
    small, large = sorted((a.shape[0], b.shape[0]))
    if small == 0 or large % small:
        raise ValueError(
            f"set sizes {a.shape[0]} and {b.shape[0]} must be non-zero with one a multiple of the other"
        )
    if n_directions < 1:
        raise ValueError(f"n_directions={n_directions} must be ≥ 1")
    angles = np.arange(n_directions) * (math.pi / n_directions)
    dirs = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (K, 2)
    # numpy's sort of contiguous rows is several times faster than torch.sort on the CPU.
    pa, pb = (np.sort(dirs @ s.detach().double().cpu().numpy().T, axis=1) for s in (a, b))
    pa = np.repeat(pa, large // a.shape[0], axis=1)
    pb = np.repeat(pb, large // b.shape[0], axis=1)
    return float(np.abs(pa - pb).mean())


def distance_to_data(x2: Tensor, *, seed: int = 0, n_directions: int = 128) -> float:
    """SW₁ between n points x2 (n, 2) and DATA_MULTIPLE·n fresh spiral points drawn with ``seed``.

    The large data set stands in for the data distribution itself, so the only sampling noise left is that of x2.
    """
    data = spiral(DATA_MULTIPLE * x2.shape[0], generator=torch.Generator().manual_seed(seed))
    return sliced_wasserstein(x2, data, n_directions)


def reference_distance(
    n: int, *, repeats: int = 10, seed: int = 0, data_seed: int = 0
) -> tuple[float, float]:
    """Mean and std over ``repeats`` sets of n *fresh spiral points* of :func:`distance_to_data`: a perfect generator's score.

    Even perfect samples are some way from the data: n random points never match the distribution exactly, and the
    spread across sets is large (±40% at any n), so a single set's score means little on its own.
    """
    g = torch.Generator().manual_seed(seed)
    scores = torch.tensor([distance_to_data(spiral(n, generator=g), seed=data_seed) for _ in range(repeats)])
    return float(scores.mean()), float(scores.std()) if repeats > 1 else 0.0


def off_manifold_error(x: Tensor, proj: Tensor) -> float:
    """Mean over rows of ‖(I − PPᵀ)x‖: how far samples lie from the plane spanned by P's orthonormal columns."""
    if x.dim() != 2 or x.shape[1] != proj.shape[0]:
        raise ValueError(f"x must be (n, D) with D = {proj.shape[0]} (rows of P), got {tuple(x.shape)}")
    residual = x.double() - embed(project(x.double(), proj.double()), proj.double())
    return float(residual.norm(dim=1).mean())


# --- network ------------------------------------------------------------------------------------------------------


def time_embedding(t: Tensor, dim: int) -> Tensor:
    """[sin(ω_k t), cos(ω_k t)]_k with dim/2 frequencies ω_k geometric in [1, 100]: (B,) → (B, dim)."""
    freqs = torch.exp(torch.linspace(0.0, math.log(100.0), dim // 2, device=t.device, dtype=t.dtype))
    angles = t[:, None] * freqs
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class ToyMLP(nn.Module):
    """net(z, t) = MLP([z, emb(t)]): ``depth`` linear layers with ReLU between, hidden width ``width`` (paper: 5, 256).

    With width < D the last layer's output has rank ≤ width: the net cannot output a generic D-dimensional vector
    such as ε — the under-complete case of the paper. x, by contrast, lies in a 2-D plane.
    """

    def __init__(
        self,
        dim: int,
        width: int = 256,
        depth: int = 5,
        time_dim: int = 32,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if dim < 1 or width < 1 or depth < 2 or time_dim < 2 or time_dim % 2:
            raise ValueError(
                f"need dim ≥ 1, width ≥ 1, depth ≥ 2 and an even time_dim ≥ 2; got {dim=}, {width=}, {depth=}, {time_dim=}"
            )
        self.dim, self.time_dim = dim, time_dim
        sizes = [dim + time_dim] + [width] * (depth - 1) + [dim]
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(n_in, n_out))
            if i < depth - 1:
                layers.append(nn.ReLU())
        self.layers = nn.Sequential(*layers)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """PyTorch's default Linear init, U(±1/√fan_in) for weights and biases, drawn from ``generator``."""
        for layer in self.layers:
            if isinstance(layer, nn.Linear):
                bound = 1.0 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)

    def forward(self, z: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """The raw prediction (x, ε or v, as the Denoiser wrapping it declares) for z: (B, D), t: (B,); y is unused."""
        return self.layers(torch.cat([z, time_embedding(t, self.time_dim)], dim=1))


# --- experiment ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToyConfig:
    """One training + evaluation recipe, shared by every cell of the grid (only D and the target vary)."""

    # Many small steps at a high rate: at D ≤ 16 the inner arm of the spiral is learnt only with this; 2,000 steps
    # of 1,024 at lr 1e-3 (the same number of samples) leave it a blur.
    steps: int = 8000
    batch_size: int = 256
    lr: float = 3e-3
    width: int = 256
    depth: int = 5
    loss_target: str = "v"
    t_dist: str = "uniform"
    t_eps: float = T_EPS
    sample_steps: int = 50
    n_samples: int = 4000
    n_sample_sets: int = 3
    n_keep: int = 1000
    n_curve: int = 100
    seed: int = 0

    @property
    def data_seed(self) -> int:
        """Seed of the large data set every cell is measured against (shared, so cells compare like with like)."""
        return self.seed + 1

    @property
    def sample_seed(self) -> int:
        """Seed of the first noise draw z₀ for sampling; set i uses sample_seed + i."""
        return self.seed + 100

    def __post_init__(self) -> None:
        if self.loss_target not in TARGETS:
            raise ValueError(f"loss_target={self.loss_target!r} is not a target; valid: {', '.join(TARGETS)}")
        if self.t_dist not in TIME_DISTRIBUTIONS:
            raise ValueError(
                f"t_dist={self.t_dist!r} is not a time distribution; valid: {', '.join(TIME_DISTRIBUTIONS)}"
            )
        for name in (
            "steps",
            "batch_size",
            "width",
            "depth",
            "sample_steps",
            "n_samples",
            "n_sample_sets",
            "n_curve",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be ≥ 1")
        if self.n_samples < 2:  # a distance between point sets needs at least two points to be meaningful
            raise ValueError(f"n_samples={self.n_samples} must be ≥ 2")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        if not 0 < self.t_eps < 0.5:
            raise ValueError(f"t_eps={self.t_eps} must be in (0, 0.5)")


@dataclass
class ToyResult:
    """A trained cell: the denoiser, the embedding P and the (step, mean loss) learning curve."""

    dim: int
    target: str
    denoiser: Denoiser
    proj: Tensor
    curve_steps: list[int] = field(default_factory=list)
    curve_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_toy(
    dim: int, target: str, config: ToyConfig = ToyConfig(), *, device: torch.device | str | None = None
) -> ToyResult:
    """Fit ToyMLP to the spiral embedded in R^dim by minimising E_t‖v̂ − v‖² (or config.loss_target) with Adam.

    One CPU generator seeded with config.seed draws P, then the initial weights, then every batch (x, ε, t) — so
    all targets at a given D see the same P, the same initial weights and the same data stream, on any ``device``
    (default: the CPU).
    """
    if target not in TARGETS:
        raise ValueError(f"target={target!r} is not a prediction target; valid: {', '.join(TARGETS)}")
    if dim < 2:
        raise ValueError(f"dim={dim} must be ≥ 2 (the spiral is 2-D)")
    g = torch.Generator().manual_seed(config.seed)
    proj = column_orthogonal(dim, generator=g)
    net = ToyMLP(dim, config.width, config.depth, generator=g).to(device)
    denoiser = Denoiser(net, target=target, t_eps=config.t_eps)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    # Cosine decay to 0 lets the last steps settle on the thin arms instead of hopping around them.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / config.steps)))
    every = max(1, config.steps // config.n_curve)
    result = ToyResult(dim, target, denoiser, proj)
    running, count = 0.0, 0
    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        x = embed(spiral(config.batch_size, generator=g), proj)
        eps = torch.randn(x.shape, generator=g)
        t = sample_t(config.batch_size, config.t_dist, generator=g)
        x, eps, t = x.to(device), eps.to(device), t.to(device)
        loss = denoiser.loss(x, eps, t, loss_target=config.loss_target).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running, count = running + loss.item(), count + 1
        if step % every == 0 or step == config.steps:
            result.curve_steps.append(step)
            result.curve_loss.append(running / count)
            running, count = 0.0, 0
    result.seconds = time.perf_counter() - start
    return result


@torch.no_grad()
def draw_samples(
    denoiser: Callable, dim: int, n: int, *, steps: int = 50, last_step: str = "euler", seed: int = 0
) -> Tensor:
    """x̂ = jitlib.diffusion.sampling.sample (50-step Heun, the paper's sampler) from z₀ ~ N(0, I_D) drawn with ``seed``: (n, dim).

    The noise is drawn on the CPU and moved to the denoiser's device; the samples come back on the CPU.
    """
    params = list(denoiser.parameters()) if isinstance(denoiser, nn.Module) else []
    device = params[0].device if params else torch.device("cpu")
    noise = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)).to(device)
    return sample(denoiser, noise, steps=steps, method="heun", last_step=last_step).cpu()


def _in_plane_denoiser(t_eps: float) -> Denoiser:
    """A Denoiser whose x̂ is always 0 — in the plane — so any off-manifold error left is the sampler's alone."""
    return Denoiser(_ZeroNet(), target="x", t_eps=t_eps)


class _ZeroNet(nn.Module):
    """x̂(z, t) = 0."""

    def forward(self, z: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        return torch.zeros_like(z)


def off_manifold_floor(
    dim: int,
    proj: Tensor,
    n: int,
    *,
    steps: int = 50,
    last_step: str = "euler",
    t_eps: float = T_EPS,
    seed: int = 0,
) -> float:
    """Mean ‖(I − PPᵀ)x̂‖ that the sampler leaves for a *perfect* in-plane x-predictor (same noise as the samples).

    The off-plane part of z obeys dz⊥/dt = (x̂⊥ − z⊥)/max(1 − t, t_eps) with x̂⊥ = 0 whatever x̂ in the plane is, so
    predicting x̂ = 0 everywhere leaves exactly the same z⊥ as any perfect predictor. With the clip, z⊥ only decays
    like e^{−(t − 0.95)/0.05} over the last 5% of time instead of reaching 0.
    """
    x = draw_samples(_in_plane_denoiser(t_eps), dim, n, steps=steps, last_step=last_step, seed=seed)
    return off_manifold_error(x, proj)


def evaluate_toy(result: ToyResult, config: ToyConfig = ToyConfig()) -> dict[str, Any]:
    """Both measures for both samplers (paper: Heun with an Euler last step; ``last_step="x"``: return x̂ at the end).

    The paper's sampler is run on ``n_sample_sets`` independent noise draws of n_samples each: sw1 and off_manifold
    are their means (sw1_std the spread of sw1), because one set's SW₁ varies by ±40%. ``last_step="x"`` is run on the
    first draw only (sw1_last_x, off_manifold_last_x), as is the floor. Also returns ``samples``: the first n_keep
    projected samples of the first draw.
    """
    n, dim, steps = config.n_samples, result.dim, config.sample_steps
    sw1, off = [], []
    out: dict[str, Any] = {}
    for i in range(config.n_sample_sets):
        x = draw_samples(result.denoiser, dim, n, steps=steps, seed=config.sample_seed + i)
        x2 = project(x, result.proj)
        sw1.append(distance_to_data(x2, seed=config.data_seed))
        off.append(off_manifold_error(x, result.proj))
        if i == 0:
            out["samples"] = x2[: config.n_keep]
    out["sw1"] = sum(sw1) / len(sw1)
    out["sw1_std"] = float(torch.tensor(sw1).std()) if len(sw1) > 1 else 0.0
    out["off_manifold"] = sum(off) / len(off)
    x = draw_samples(result.denoiser, dim, n, steps=steps, last_step="x", seed=config.sample_seed)
    out["sw1_last_x"] = distance_to_data(project(x, result.proj), seed=config.data_seed)
    out["off_manifold_last_x"] = off_manifold_error(x, result.proj)
    out["off_manifold_floor"] = off_manifold_floor(
        dim, result.proj, n, steps=steps, t_eps=config.t_eps, seed=config.sample_seed
    )
    return out


def run_grid(
    dims: Sequence[int] = PAPER_DIMS,
    targets: Sequence[str] = TARGETS,
    config: ToyConfig = ToyConfig(),
    *,
    device: torch.device | str | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Train and evaluate every (D, target) cell; returns a JSON-ready dict (config, reference level, cells).

    Samples are stored projected to the plane and rounded to 3 decimals so the full grid stays small.
    """
    cells = []
    for dim in dims:
        for target in targets:
            result = train_toy(dim, target, config, device=device)
            metrics = evaluate_toy(result, config)
            samples = metrics.pop("samples")
            cell = {
                "dim": dim,
                "target": target,
                "train_seconds": round(result.seconds, 1),
                **{k: float(f"{v:.5g}") for k, v in metrics.items()},
                "curve_steps": result.curve_steps,
                "curve_loss": [float(f"{v:.4g}") for v in result.curve_loss],
                "samples": [[round(float(a), 3), round(float(b), 3)] for a, b in samples.tolist()],
            }
            cells.append(cell)
            if log:
                log(
                    f"D={dim:4d} {target:>3}: SW1 {cell['sw1']:.4g} ± {cell['sw1_std']:.2g}, off-plane "
                    f"{cell['off_manifold']:.4g} (floor {cell['off_manifold_floor']:.3g}), {result.seconds:.0f} s\n"
                    f"{'':10}with last_step='x': SW1 {cell['sw1_last_x']:.4g}, off-plane "
                    f"{cell['off_manifold_last_x']:.3g}"
                )
    ref_mean, ref_std = reference_distance(
        config.n_samples, seed=config.seed + 200, data_seed=config.data_seed
    )
    return {
        "config": asdict(config),
        "reference_sw1": ref_mean,
        "reference_sw1_std": ref_std,
        "data_multiple": DATA_MULTIPLE,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "cells": cells,
    }


def grid_cell(grid: dict[str, Any], dim: int, target: str) -> dict[str, Any]:
    """The stored cell of ``grid`` (a :func:`run_grid` result) for (dim, target)."""
    for cell in grid["cells"]:
        if cell["dim"] == dim and cell["target"] == target:
            return cell
    have = sorted({(c["dim"], c["target"]) for c in grid["cells"]})
    raise ValueError(f"no cell (D={dim}, target={target!r}) in the grid; it has {have}")


def claim_ratios(grid: dict[str, Any], low: int = 2, high: int = 512) -> dict[str, dict[str, float]]:
    """The chapter's two ratios: SW₁(D=high)/SW₁(D=low) per target, and off-manifold error at D=high relative to x.

    Returns {"sw1_growth": {target: ratio}, "off_manifold_vs_x": {target: ratio}} over the grid's targets (the
    paper's sampler, Euler last step, for both).
    """
    targets = sorted({c["target"] for c in grid["cells"]}, key=TARGETS.index)
    x_off = grid_cell(grid, high, "x")["off_manifold"]
    return {
        "sw1_growth": {t: grid_cell(grid, high, t)["sw1"] / grid_cell(grid, low, t)["sw1"] for t in targets},
        "off_manifold_vs_x": {t: grid_cell(grid, high, t)["off_manifold"] / x_off for t in targets},
    }


def load_grid(path: str | Path) -> dict[str, Any]:
    """Read a grid saved by :func:`save_grid` (e.g. data/results/spiral_grid.json)."""
    return json.loads(Path(path).read_text())


def stored_grid() -> dict[str, Any]:
    """The committed full grid: data/results/spiral_grid.json from the source tree (found from the working folder or
    the package), else downloaded from the book's repository (e.g. on Colab, where only the package is installed)."""
    relative = Path(GRID_FILE)
    for root in (Path.cwd(), Path.cwd().parent, Path(__file__).resolve().parents[2]):
        if (root / relative).is_file():
            return load_grid(root / relative)
    with urllib.request.urlopen(GRID_URL, timeout=60) as response:
        return json.loads(response.read())


def save_grid(grid: dict[str, Any], path: str | Path) -> None:
    """Write a :func:`run_grid` result as compact JSON, creating the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(grid, separators=(",", ":")))
