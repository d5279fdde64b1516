"""Configs: presets load and validate, overrides are typed and checked, resume compatibility names differences."""

from __future__ import annotations

import pytest

from jitlib.training.checkpoint import check_same_run
from jitlib.training.config import (
    Config,
    apply_overrides,
    coerce,
    config_diff,
    from_dict,
    list_presets,
    load_config,
    parse_override,
    read_yaml,
)

PAPER = {
    # preset: (model, image size, noise scale, proj dropout expected from the registry, cfg)
    "jit-b16-256": ("JiT-B/16", 256, 1.0, 3.0),
    "jit-l16-256": ("JiT-L/16", 256, 1.0, 2.4),
    "jit-h16-256": ("JiT-H/16", 256, 1.0, 2.2),
    "jit-g16-256": ("JiT-G/16", 256, 1.0, 2.2),
    "jit-b32-512": ("JiT-B/32", 512, 2.0, 3.0),
    "jit-l32-512": ("JiT-L/32", 512, 2.0, 2.5),
    "jit-h32-512": ("JiT-H/32", 512, 2.0, 2.3),
    "jit-g32-512": ("JiT-G/32", 512, 2.0, 2.2),
}


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_loads_and_round_trips(preset: str) -> None:
    config = load_config(preset)
    assert from_dict(config.to_dict()) == config


@pytest.mark.parametrize("preset", sorted(PAPER))
def test_paper_presets_follow_table_9(preset: str) -> None:
    name, size, noise, cfg = PAPER[preset]
    c = load_config(preset)
    assert (c.model.name, c.data.image_size, c.diffusion.noise_scale) == (name, size, noise)
    assert c.diffusion.noise_scale == size / 256  # App. A: s = image_size / 256
    assert (c.diffusion.pred, c.diffusion.loss, c.diffusion.t_mu, c.diffusion.t_sigma) == (
        "x",
        "v",
        -0.8,
        0.8,
    )
    assert c.diffusion.t_eps == 0.05 and c.diffusion.label_drop == 0.1
    assert c.train.batch_size == 1024 and c.optim.blr * c.train.batch_size / 256 == pytest.approx(2e-4)
    assert (
        tuple(c.optim.betas) == (0.9, 0.95) and c.optim.weight_decay == 0 and c.optim.schedule == "constant"
    )
    assert c.optim.warmup_epochs == 5 and sorted(c.train.ema_decays) == [0.9996, 0.9998, 0.9999]
    assert (c.sample.method, c.sample.steps, tuple(c.sample.cfg_interval), c.sample.cfg_scale) == (
        "heun",
        50,
        (0.1, 1.0),
        cfg,
    )
    assert c.data.name == "folder" and c.data.flip
    assert c.train.strategy == ("fsdp" if "-g" in preset else "ddp")


def test_overrides_are_typed() -> None:
    c = load_config(
        "tiny-digits",
        [
            "train.batch_size=32",
            "optim.lr=1e-4",
            "optim.betas=[0.9,0.99]",
            "train.steps=null",
            "model.arch.depth=2",
        ],
    )
    assert c.train.batch_size == 32 and isinstance(c.train.batch_size, int)
    assert c.optim.lr == 1e-4  # YAML reads "1e-4" as a string; the float field converts it
    assert c.optim.betas == (0.9, 0.99) and c.train.steps is None and c.model.arch == {"depth": 2}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.batchsize=3", "did you mean train.batch_size"),
        ("trian.steps=3", "unknown config key 'trian'"),
        ("train.batch_size=abc", "train.batch_size: expected an integer, got 'abc'"),
        ("train.batch_size=1.5", "expected an integer"),
        ("train.compile=maybe", "expected true or false"),
        ("diffusion.pred=y", "one of 'x', 'eps', 'v'"),
        ("optim.betas=[0.9]", "length 2"),
        ("train.ema_decays=[1.5]", "in (0, 1)"),
        ("diffusion.label_drop=1.0", "diffusion.label_drop=1.0 must lie in [0, 1)"),
        ("sample.ema=0.5", "sample.ema=0.5 is not one of train.ema_decays"),
        ("data.image_size=48", "not divisible by the patch size 32"),
        ("train", "must look like section.key=value"),
        ("train.epochs.x=1", "is a value, not a section"),
        ("train.steps.x=1", "train.steps: expected an integer or null"),
        ("train=3", "expected a section"),
    ],
)
def test_bad_overrides_give_one_line_errors(override: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        load_config("tiny-digits", [override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_preset_lists_the_valid_ones(tmp_path) -> None:
    with pytest.raises(ValueError, match="tiny-digits"):
        load_config("no-such-preset")
    with pytest.raises(FileNotFoundError):
        read_yaml(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(str(bad))


def test_yaml_file_preset_and_defaults(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("train:\n  batch_size: 8\n")
    c = load_config(str(path), ["train.seed=3"])
    assert c.train.batch_size == 8 and c.train.seed == 3 and c.model == Config().model


def test_coerce_and_parse_helpers() -> None:
    assert coerce(3, float, "k") == 3.0 and isinstance(coerce(3, float, "k"), float)
    assert coerce(None, int | None, "k") is None and coerce(2.0, int, "k") == 2
    with pytest.raises(ValueError, match="k: expected an integer"):
        coerce(True, int, "k")  # a bool is not an int here
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert apply_overrides({"a": {"b": 1}}, ["a.c=x"]) == {"a": {"b": 1, "c": "x"}}


def test_resume_compatibility_names_the_difference() -> None:
    saved = load_config("tiny-digits").to_dict()
    ok = load_config(
        "tiny-digits", ["train.steps=5000", "train.output_dir=elsewhere", "sample.cfg_scale=4"]
    ).to_dict()
    check_same_run(saved, ok)  # length, folder and sampler may change
    other = load_config("tiny-digits", ["model.arch.depth=2", "optim.lr=0.1"]).to_dict()
    with pytest.raises(ValueError, match=r"model\.arch\.depth: None in checkpoint, 2 now; optim\.lr: 0\.001"):
        check_same_run(saved, other)
    assert [k for k, _, _ in config_diff(saved, other)] == ["model.arch.depth", "optim.lr"]


def test_yaml_that_is_not_a_mapping_is_one_line(tmp_path) -> None:
    for text, kind in (("- a\n- b\n", "holds list"), ("plain words\n", "holds str"), ("3\n", "holds int")):
        path = tmp_path / "c.yaml"
        path.write_text(text)
        with pytest.raises(ValueError, match=kind) as err:
            load_config(str(path))
        assert "\n" not in str(err.value) and "not a mapping of sections" in str(err.value)
    with pytest.raises(ValueError, match="train.device='tpu' is not a device"):
        load_config("smoke-digits", ["train.device=tpu"])


def test_runs_the_same_fills_new_fields_and_resolves_compile_but_sees_real_changes() -> None:
    from jitlib.training.config import runs_the_same

    current = load_config("tiny-digits")
    stored = current.to_dict()
    del stored["diffusion"]["precond"]  # a field added later: its default keeps the old behaviour
    stored["train"]["compile"] = False  # what "auto" resolves to on a CPU
    assert runs_the_same(stored, current, "cpu")
    assert not runs_the_same(stored, current, "cuda")  # "auto" compiles there
    stored["optim"]["lr"] = 2 * current.optim.lr
    assert not runs_the_same(stored, current, "cpu")
