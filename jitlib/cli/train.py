"""``jitlib train``: a preset (or YAML file) plus ``section.key=value`` overrides, or ``--resume`` a run where it is."""

from __future__ import annotations

import argparse
import sys

from jitlib.cli.options import Command
from jitlib.training import distributed as dist
from jitlib.training.checkpoint import find_checkpoint, load_checkpoint
from jitlib.training.config import Config, apply_overrides, from_dict, list_presets, load_config, to_yaml
from jitlib.training.trainer import Trainer, TrainingDiverged

HELP = """\
Train a JiT model from a preset, overriding any key with section.key=value.

examples:
  jitlib train tiny-digits                              # 10-class digits on a CPU, a few minutes
  jitlib train tiny-digits train.steps=500 sample.cfg_scale=2  # override any key
  jitlib train jit-b16-256 data.root=/data/imagenet/train   # the paper's JiT-B/16 recipe
  torchrun --nproc_per_node 8 -m jitlib train jit-b16-256 data.root=...
  jitlib train --resume runs/tiny-digits                # continue exactly where it stopped, in that folder
  jitlib train tiny-digits --print-config               # show every key and exit

presets: {presets}
sections and keys: model.(name, arch, num_classes) data.(name, root, image_size, flip, ...) diffusion.(pred, loss,
t_dist, t_mu, t_sigma, noise_scale, t_eps, label_drop) optim.(blr, lr, betas, warmup_epochs, schedule, grad_clip, ...)
train.(batch_size, epochs, steps, ema_decays, precision, compile, strategy, device, seed, output_dir, ckpt_every, ...)
sample.(method, steps, cfg_scale, cfg_interval, last_step, ema) — see --print-config for all of them.
"""


def resolve_config(items: list[str], resume: str | None) -> Config:
    """The config of ``jitlib train [PRESET] [KEY=VALUE …] [--resume PATH]``.

    With ``--resume`` the run continues in the resumed checkpoint's folder (a preset only checks that the recipe is
    the same); an explicit ``train.output_dir`` must be that folder or hold no other run.
    """
    presets = [item for item in items if "=" not in item]
    overrides = [item for item in items if "=" in item]
    if len(presets) > 1:
        raise ValueError(f"give one preset, got {presets}; overrides look like section.key=value")
    if not presets and resume is None:
        raise ValueError(
            f"give a preset ({', '.join(list_presets())}) or a YAML file, or --resume a run folder"
        )
    if resume is None:
        return load_config(presets[0], overrides)
    folder = str(find_checkpoint(resume).parent)
    explicit = any(item.partition("=")[0].strip() == "train.output_dir" for item in overrides)
    where = [] if explicit else [f"train.output_dir={folder}"]
    if presets:
        return load_config(presets[0], [*overrides, *where])
    return from_dict(apply_overrides(load_checkpoint(resume)["config"], [*where, *overrides]))


def run(args: argparse.Namespace) -> int:
    """Resolve the config, refuse to write over another run, train, print where the checkpoint is."""
    if args.list_presets:
        print("\n".join(list_presets()))
        return 0
    config = resolve_config(args.items, args.resume)
    if args.print_config:
        print(to_yaml(config), end="")
        return 0
    try:
        trainer = Trainer(config, resume=args.resume)  # refuses a folder that holds another run
        result = trainer.fit()
        if trainer.dist.is_main:
            print(
                f"done: {result.step} steps in {result.elapsed:.0f} s; checkpoint {result.checkpoint}",
                file=sys.stderr,
            )
    except TrainingDiverged as err:
        raise ValueError(str(err)) from None
    finally:
        dist.shutdown()
    return 0


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``jitlib train``: preset and overrides, ``--resume``, and the listing flags."""
    parser.add_argument(
        "items",
        nargs="*",
        metavar="PRESET|KEY=VALUE",
        help="a preset name or YAML file, then any number of section.key=value overrides",
    )
    parser.add_argument(
        "--resume", metavar="PATH", help="checkpoint file or run folder to continue, in its folder"
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config as YAML and exit"
    )
    parser.add_argument("--list-presets", action="store_true", help="list the preset names and exit")


COMMAND = Command(
    "train",
    "train a model from a preset (paper recipes or tiny CPU runs); resume exactly",
    HELP.format(presets=", ".join(list_presets())),
    add_options,
    run,
)
# Registers ``jitlib train`` on an argparse sub-parsers object (chapter 10 shows its help).
add_parser = COMMAND.register
