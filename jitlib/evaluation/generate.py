"""Generating images from a trained JiT: load weights (a training checkpoint's EMA, a ``save_pretrained`` folder or
an official checkpoint), integrate the ODE from noise (Heun, CFG with interval), write PNG grids and ``.npz`` files.

Sample i starts from its own noise z₀ = s·n, n ~ N(0, I) seeded by (seed, i), so an image does not depend on the
batch size or on how many images are generated with it.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from jitlib.device import autocast_dtype
from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.sampling import sample
from jitlib.nn.model import JiT
from jitlib.nn.registry import create_model
from jitlib.nn.weights import CONFIG_FILE, from_pretrained, load_official
from jitlib.training.checkpoint import FORMAT, LAST, check_writable, load_checkpoint
from jitlib.training.config import SampleConfig, from_dict
from jitlib.training.data import unit_to_uint8
from jitlib.training.ema import decay_key


@dataclass
class Pipeline:
    """A network ready to sample, with what sampling it needs to know: classes, noise scale, target, default sampler."""

    net: JiT
    noise_scale: float = 1.0
    pred: str = "x"
    t_eps: float = 0.05
    defaults: SampleConfig = field(default_factory=SampleConfig)
    description: str = ""

    @property
    def num_classes(self) -> int:
        return self.net.config.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c = self.net.config
        return (c.in_channels, c.input_size, c.input_size)


def load_generator(
    source: str | Path, ema: str | None = None, device: torch.device | str = "cpu"
) -> Pipeline:
    """The weights at ``source``: a jitlib checkpoint (file or run folder), a save_pretrained folder, or an official .pth.

    ``ema``: a decay such as "0.9999", "model" (raw weights), or None: the recipe's ``sample.ema``, else the slowest
    decay kept (what the official code evaluates). Official files take "ema1" (default) / "ema2" / "model".
    """
    path = Path(source)
    if path.is_dir() and (path / CONFIG_FILE).is_file() and not (path / LAST).exists():
        net = from_pretrained(path, device=device).eval()
        return Pipeline(net, noise_scale=net.config.input_size / 256, description=f"pretrained {path}")
    if path.is_file() and not _is_jitlib_checkpoint(path):
        official = ema or "ema1"
        try:
            net = load_official(path, ema=official, device=device).eval()
        except (ValueError, FileNotFoundError):
            raise
        except Exception as err:  # torch reports unreadable files with assorted exception types
            reason = str(err).splitlines()[0]
            raise ValueError(
                f"cannot read {str(path)!r}: not a jitlib or an official JiT checkpoint ({reason})"
            ) from None
        return Pipeline(
            net, noise_scale=net.config.input_size / 256, description=f"official {path} [{official}]"
        )
    state = load_checkpoint(path)
    config = from_dict(state["config"])
    net = create_model(state["model_name"], device="meta", **state["model_kwargs"])
    net.to_empty(device=device)
    if ema == "model":
        net.load_state_dict(state["model"])
        chosen = "raw weights"
    else:
        keys = sorted(state["ema"], key=float)
        key = _decay(str(ema if ema is not None else config.sample.ema or keys[-1]), keys)
        net.load_state_dict({**state["model"], **state["ema"][key]})
        chosen = f"EMA {key}"
    return Pipeline(
        net.eval(),
        noise_scale=config.diffusion.noise_scale,
        pred=config.diffusion.pred,
        t_eps=config.diffusion.t_eps,
        defaults=config.sample,
        description=f"{chosen} at step {state['step']} of {path}",
    )


def _is_jitlib_checkpoint(path: Path) -> bool:
    try:
        return torch.load(path, map_location="meta", weights_only=True, mmap=True).get("format") == FORMAT
    except Exception:  # not a jitlib file: let the official loader report what it is
        return False


def _decay(ema: str, keys: list[str]) -> str:
    try:
        key = decay_key(float(ema))
    except ValueError:
        key = ema
    if key not in keys:
        raise ValueError(f"--ema {ema!r}: this checkpoint keeps EMA decays {', '.join(keys)} (or 'model')")
    return key


def class_labels(num_classes: int, num: int | None = None, labels: Sequence[int] | None = None) -> Tensor:
    """The class ids to generate: ``labels`` as given (checked to be in 0..K−1), or ``num`` ids cycling 0, 1, …, K−1."""
    if labels is not None:
        out = torch.as_tensor(list(labels), dtype=torch.long)
        if num_classes == 0:
            raise ValueError("this model is unconditional (0 classes); omit the class labels")
        bad = out[(out < 0) | (out >= num_classes)]
        if bad.numel():
            raise ValueError(
                f"class id {int(bad[0])} out of range for a {num_classes}-class model; valid ids 0..{num_classes - 1}"
            )
        return out
    if num is None or num <= 0:
        raise ValueError(f"number of images must be > 0, got {num}")
    return torch.arange(num) % max(num_classes, 1)


def sample_noise(num: int, shape: tuple[int, ...], seed: int, start: int = 0) -> Tensor:
    """Standard normal noise ``(num, *shape)`` where row i comes from a generator seeded by (seed, start + i)."""
    gen = torch.Generator()
    rows = []
    for i in range(start, start + num):
        gen.manual_seed(int(np.random.SeedSequence([seed, i]).generate_state(1, dtype=np.uint64)[0]))
        rows.append(torch.randn(shape, generator=gen))
    return torch.stack(rows)


@torch.no_grad()
def generate(
    gen: Pipeline,
    labels: Tensor,
    *,
    seed: int = 0,
    steps: int | None = None,
    method: str | None = None,
    cfg: float | None = None,
    cfg_interval: tuple[float, float] | None = None,
    last_step: str | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> Tensor:
    """Images x ∈ [−1, 1] of shape (N, C, H, W) for class ids ``labels`` (N,): the ODE dz/dt = v̂ from z₀ = s·n to t = 1.

    Unset sampler arguments take the recipe's defaults (``gen.defaults``; Tab. 9: Heun, 50 steps, CFG interval).
    """
    d = gen.defaults
    device = next(gen.net.parameters()).device
    denoiser = Denoiser(gen.net, target=gen.pred, t_eps=gen.t_eps)
    conditional = gen.num_classes > 0
    dtype = autocast_dtype(device)
    out = []
    batches = range(0, len(labels), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, unit="batch", desc="sampling")
    for start in batches:
        y = labels[start : start + batch_size].to(device)
        noise = sample_noise(len(y), gen.image_shape, seed, start).to(device) * gen.noise_scale
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            x = sample(
                denoiser,
                noise,
                steps=steps or d.steps,
                method=method or d.method,
                labels=y if conditional else None,
                null_label=gen.num_classes if conditional else None,
                cfg=(d.cfg if cfg is None else cfg) if conditional else 1.0,
                cfg_interval=tuple(cfg_interval or d.cfg_interval),
                last_step=last_step or d.last_step,
            )
        out.append(x.float().clamp(-1, 1).cpu())
    return torch.cat(out)


def image_grid(images: Tensor, nrow: int | None = None) -> np.ndarray:
    """Tile images (N, C, H, W) in [−1, 1] into one uint8 array (rows·H, nrow·W[, C]) with 2-px gaps."""
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    pad = 2
    grid = np.zeros((rows * (h + pad) - pad, nrow * (w + pad) - pad, c), dtype=np.uint8)
    pixels = unit_to_uint8(images).permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[r * (h + pad) : r * (h + pad) + h, col * (w + pad) : col * (w + pad) + w] = pixels[i]
    return grid[..., 0] if c == 1 else grid


def save_grid(images: Tensor, path: str | Path, nrow: int | None = None, scale: int = 1) -> Path:
    """Write a PNG grid of ``images`` (upscaled ``scale`` times with nearest neighbours, for tiny images)."""
    picture = Image.fromarray(image_grid(images, nrow))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    picture.save(path)
    return Path(path)


def save_npz(images: Tensor, labels: Tensor, path: str | Path) -> Path:
    """Write ``arr_0`` = uint8 images (N, H, W, C) and ``arr_1`` = labels, the layout of ADM's evaluation suite."""
    np.savez(path, arr_0=unit_to_uint8(images).permute(0, 2, 3, 1).numpy(), arr_1=labels.numpy())
    return Path(path)


def save_pngs(images: Tensor, folder: str | Path, start: int = 0) -> Path:
    """One PNG per image, ``folder/000000.png`` … (the input torch-fidelity reads)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(unit_to_uint8(images).permute(0, 2, 3, 1).numpy()):
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
            folder / f"{start + i:06d}.png"
        )
    return folder


# ---------------------------------------------------------------------------------------------------------------
# Command line: jitlib sample
# ---------------------------------------------------------------------------------------------------------------

SAMPLE_HELP = """\
Generate images from a trained model and write a PNG grid, an .npz and/or one PNG per image.

examples:
  jitlib sample runs/tiny-digits                          # grid of 100 images with the recipe's EMA and CFG
  jitlib sample runs/tiny-digits --labels 3 3 3 7 7 7 --cfg 3 --grid threes.png
  jitlib sample runs/jit-b16 --num 50000 --png-dir samples/ --ema 0.9996 --cfg 2.9
  jitlib sample weights/jit-b16/ --labels 207 360 387 --steps 50     # a save_pretrained folder
"""


def run_sample(args: argparse.Namespace) -> int:
    """``jitlib sample``: load, check the outputs are writable, generate, write."""
    for name in ("num", "steps", "batch_size", "nrow"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')}={value} must be > 0")
    if args.cfg is not None and args.cfg < 0:
        raise ValueError(f"--cfg={args.cfg} must be >= 0 (1 = no guidance)")
    outputs = [p for p in (args.grid, args.npz) if p] + ([args.png_dir] if args.png_dir else [])
    if not outputs:
        args.grid = str(
            Path(args.source) / "samples.png"
            if Path(args.source).is_dir()
            else Path(args.source).with_suffix(".png")
        )
        outputs = [args.grid]
    for out in (args.grid, args.npz):
        if out:
            check_writable(Path(out).parent)
    if args.png_dir:
        check_writable(args.png_dir)
    device = (
        torch.device(args.device)
        if args.device != "auto"
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    gen = load_generator(args.source, args.ema, device)
    labels = class_labels(gen.num_classes, args.num, args.labels)
    interval = tuple(args.interval) if args.interval else None
    images = generate(
        gen,
        labels,
        seed=args.seed,
        steps=args.steps,
        method=args.method,
        cfg=args.cfg,
        cfg_interval=interval,
        last_step=args.last_step,
        batch_size=args.batch_size,
        progress=True,
    )
    if args.grid:
        save_grid(
            images,
            args.grid,
            nrow=args.nrow or (gen.num_classes if 0 < gen.num_classes <= 20 else None),
            scale=max(1, 128 // gen.image_shape[-1]),
        )
    if args.npz:
        save_npz(images, labels, args.npz)
    if args.png_dir:
        save_pngs(images, args.png_dir)
    print(f"{len(images)} images from {gen.description} → {', '.join(map(str, outputs))}", file=sys.stderr)
    return 0


def add_sample_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``jitlib sample`` on a sub-parser set (``func`` runs it)."""
    p = subparsers.add_parser(
        "sample",
        help="generate images from a checkpoint or pretrained weights",
        description=SAMPLE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", help="run folder / checkpoint file, save_pretrained folder, or official .pth")
    p.add_argument(
        "--ema", help="EMA decay (e.g. 0.9999) or 'model'; default: the recipe's sample.ema, else the slowest"
    )
    p.add_argument("--labels", type=int, nargs="+", metavar="ID", help="class ids, one image each")
    p.add_argument(
        "--num", type=int, default=100, help="number of images when --labels is not given (classes cycle)"
    )
    p.add_argument("--method", choices=("heun", "euler"), help="ODE solver (default: the recipe's, heun)")
    p.add_argument("--steps", type=int, help="solver steps (default: the recipe's, 50)")
    p.add_argument(
        "--cfg", type=float, help="classifier-free guidance scale; 1 = none (default: the recipe's)"
    )
    p.add_argument(
        "--interval", type=float, nargs=2, metavar=("LOW", "HIGH"), help="guide only for LOW < t <= HIGH"
    )
    p.add_argument("--last-step", choices=("euler", "x"), help="final step: euler (official) or x (return x̂)")
    p.add_argument("--seed", type=int, default=0, help="noise seed; image i uses (seed, i)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--grid", help="PNG grid to write (default: samples.png next to the checkpoint)")
    p.add_argument("--nrow", type=int, help="images per grid row")
    p.add_argument("--npz", help=".npz to write (arr_0 uint8 NHWC images, arr_1 labels)")
    p.add_argument("--png-dir", help="folder to write one PNG per image (for FID)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, … (default: GPU if any)")
    p.set_defaults(func=run_sample)
    return p
