"""Tab. 10's pre-conditioners and Tab. 11's auxiliary classification loss, against hand-computed values."""

import math

import pytest
import torch
import torch.nn.functional as F

from jitlib.diffusion.denoiser import Denoiser, precondition_coefficients
from jitlib.diffusion.oracle import GaussianMixture
from jitlib.nn.registry import create_model
from jitlib.training.config import load_config

torch.set_num_threads(1)


def test_linear_coefficients_are_t_and_one_minus_t():
    t = torch.tensor([0.0, 0.25, 0.9, 1.0])
    c_skip, c_out = precondition_coefficients("linear", t)
    assert torch.equal(c_skip, t) and torch.equal(c_out, 1 - t)


@pytest.mark.parametrize("s", [1.0, 2.0])
def test_edm_coefficients_are_edms_written_for_z(s):
    """EDM in its own variables: y = z/t = x + σ·n, σ = (1 − t)s/t, x̂ = c_skip·y + c_out·F (Karras et al. Tab. 1)."""
    sd = 0.5
    for t in (0.1, 0.3, 0.75, 0.95):
        sigma = (1 - t) * s / t
        edm_skip = sd**2 / (sigma**2 + sd**2)
        edm_out = sigma * sd / math.sqrt(sigma**2 + sd**2)
        c_skip, c_out = precondition_coefficients("edm", torch.tensor([t], dtype=torch.float64), s)
        assert c_skip.item() == pytest.approx(edm_skip / t, rel=1e-12)  # c_skip·z = edm_skip·(z/t)
        assert c_out.item() == pytest.approx(edm_out, rel=1e-12)
    c_skip, c_out = precondition_coefficients("edm", torch.tensor([0.3], dtype=torch.float64))
    assert c_skip.item() == pytest.approx(0.3 * 0.25 / 0.5125) and c_out.item() == pytest.approx(
        0.35 / 0.5125**0.5
    )


def test_edm_skip_term_alone_is_the_ideal_denoiser_of_gaussian_data():
    """A network that outputs 0 gives x̂ = c_skip·z = E[x | z] for x ~ N(0, σ_d² I): EDM's design principle."""
    gm = GaussianMixture([[0.0, 0.0, 0.0]], 0.5)
    z = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.rand(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.98 + 0.01
    den = Denoiser(lambda z, t, y=None: torch.zeros_like(z), "x", t_eps=0.0, precond="edm", noise_scale=1.0)
    torch.testing.assert_close(den(z, t).x, gm.ideal(z, t).x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "edm"])
def test_preconditioned_output_and_v_loss_by_hand(kind):
    g = torch.Generator().manual_seed(2)
    x, eps, raw = (torch.randn(4, 1, 2, 2, generator=g, dtype=torch.float64) for _ in range(3))
    t = torch.tensor([0.2, 0.5, 0.9, 0.99], dtype=torch.float64)
    den = Denoiser(lambda z, t, y=None: raw, "x", t_eps=0.05, precond=kind, noise_scale=1.0)
    z = t.view(-1, 1, 1, 1) * x + (1 - t.view(-1, 1, 1, 1)) * eps
    loss = den.loss(x, eps, t)
    for i, ti in enumerate(t.tolist()):
        if kind == "linear":
            a, b = ti, 1 - ti
        else:
            d = math.sqrt(ti**2 * 0.25 + (1 - ti) ** 2)
            a, b = ti * 0.25 / d**2, (1 - ti) * 0.5 / d
        x_hat = a * z[i] + b * raw[i]
        torch.testing.assert_close(den(z, t).x[i], x_hat, rtol=1e-12, atol=1e-12)
        clip = max(1 - ti, 0.05)
        by_hand = (((x_hat - z[i]) / clip - (x[i] - z[i]) / clip) ** 2).mean()
        assert loss[i].item() == pytest.approx(by_hand.item(), rel=1e-10)
    plain = Denoiser(lambda z, t, y=None: raw, "x", t_eps=0.05).loss(x, eps, t)
    assert (plain - loss).abs().max() > 1e-3  # the option changes the loss


def test_precond_bad_input_is_one_line():
    with pytest.raises(
        ValueError, match="precond='linear' pre-conditions x-prediction only; got target='eps'"
    ):
        Denoiser(lambda z, t, y=None: z, "eps", precond="linear")
    with pytest.raises(ValueError, match="precond='linear' pre-conditions x-prediction only; got target='v'"):
        Denoiser(lambda z, t, y=None: z, "v", precond="linear")
    with pytest.raises(
        ValueError, match="precond='karras' is not a pre-conditioner; valid: none, linear, edm"
    ):
        Denoiser(lambda z, t, y=None: z, "x", precond="karras")
    with pytest.raises(ValueError, match="diffusion.precond=edm pre-conditions x-prediction only"):
        load_config("tiny-digits", ["diffusion.precond=edm", "diffusion.pred=v"])


def _aux_net():
    net = create_model(
        "JiT-tiny/8", aux_cls_block=1, in_context_start=1, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():  # wake the zero-initialised adaLN and head, so every path carries signal
        for p in net.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return net


def test_aux_head_sees_no_class_and_its_gradient_never_reaches_the_class_embedding():
    net = _aux_net()
    z, t = torch.randn(4, 3, 32, 32), torch.rand(4)
    y_a, y_b = torch.tensor([0, 1, 2, 3]), torch.tensor([9, 8, 7, 10])
    out_a, logits_a = net(z, t, y_a, return_aux=True)
    out_b, logits_b = net(z, t, y_b, return_aux=True)
    assert torch.equal(logits_a, logits_b)  # conditioning disabled before the head
    assert (out_a - out_b).abs().max() > 1e-4  # ... but the blocks after it are class-conditional
    F.cross_entropy(logits_a, y_a).backward()
    table = net.y_embedder.embedding_table.weight
    assert table.grad is None or not table.grad.any()
    assert net.aux_head.weight.grad.abs().sum() > 0 and net.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert net.blocks[1].attn.qkv.weight.grad is None  # blocks after the head get nothing from CE


def test_aux_loss_is_lambda_times_cross_entropy():
    net = _aux_net()
    den = Denoiser(net, "x")
    g = torch.Generator().manual_seed(3)
    x, eps = torch.randn(4, 3, 32, 32, generator=g), torch.randn(4, 3, 32, 32, generator=g)
    t, y = torch.rand(4, generator=g), torch.tensor([1, 2, 10, 4])  # y: the label-dropped input (10 = null)
    truth = torch.tensor([1, 2, 3, 4])
    with torch.no_grad():
        base = den.loss(x, eps, t, y)
        total = den.loss(x, eps, t, y, cls_labels=truth, cls_weight=100.0)
        _, logits = net(t.view(-1, 1, 1, 1) * x + (1 - t.view(-1, 1, 1, 1)) * eps, t, y, return_aux=True)
    torch.testing.assert_close(total - base, 100.0 * F.cross_entropy(logits, truth, reduction="none"))
    with pytest.raises(ValueError, match="cls_weight=1.0 needs cls_labels"):
        den.loss(x, eps, t, y, cls_weight=1.0)
    with pytest.raises(ValueError, match="return_aux=True needs a classification head"):
        Denoiser(create_model("JiT-tiny/8"), "x").loss(x, eps, t, y, cls_labels=truth, cls_weight=1.0)


def test_aux_head_configuration_errors():
    with pytest.raises(
        ValueError, match="aux_cls_block 4 needs a conditional network and 0 < aux_cls_block < depth=4"
    ):
        create_model("JiT-tiny/8", aux_cls_block=4, device="meta")
    with pytest.raises(ValueError, match="in_context_start 0 < aux_cls_block 2"):
        create_model("JiT-tiny/8", aux_cls_block=2, in_context_start=0, device="meta")


def test_trainer_trains_with_both_options(tmp_path):
    """The run-config keys reach the training step: a few steps with EDM pre-conditioning and the aux loss."""
    from jitlib.training.trainer import Trainer

    losses = {}
    for name, extra in [("plain", []), ("both", ["diffusion.precond=edm", "diffusion.aux_cls_weight=1.0"])]:
        config = load_config(
            "tiny-digits",
            [
                "model.arch.aux_cls_block=1",
                "train.steps=2",
                f"train.output_dir={tmp_path / name}",
                "train.progress=false",
            ]
            + extra,
        )
        trainer = Trainer(config)
        assert trainer.denoiser.precond == ("edm" if extra else "none")
        losses[name] = trainer.fit().losses
    assert losses["both"][0] > losses["plain"][0] + 0.5  # + λ·CE ≈ ln 10 at the start
