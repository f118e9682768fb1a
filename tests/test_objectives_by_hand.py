"""The plugins' training objectives against a hand computation of the papers' equations.

Each test runs one real ``train_step`` of a tiny model with every learning rate at zero (so
nothing moves), reads the gradients the step left on the parameters, and compares them with
``torch.autograd.grad`` of the paper's objective written out here term by term. A wrong weight
(pix2pix's lambda = 1 instead of 100, CycleGAN's identity weight without its lambda_cycle
factor), a term left out of the backward pass (an identity or cycle loss that is only logged),
one cycle direction only, or the two generators swapped, all change the gradients by far more
than float rounding. The tests read gradients and loss values only, so they hold however the
step batches its generator calls. Precision is fp32 (``amp="none"``) so the numbers compare.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.config import GANConfig, TrainConfig, config_from_dict
from translate.engine.loop import Trainer
from translate.inference.translator import Translator
from translate.losses.perceptual import (
    PIX2PIXHD_LAYERS,
    vgg19_features,
    vgg_loss,
)
from translate.registry import load_plugin
from translate.testing import make_labels, make_paired, make_single, make_unpaired


def frozen_trainer(plugin_name: str, cfg: object, run_dir: Path, **gan: object) -> Trainer:
    """A Trainer (fp32, CPU, the plugin's default GAN family updated with ``gan``) whose
    optimisers have LR 0: a step computes and keeps the gradients but changes no weight."""
    plugin = load_plugin(plugin_name)
    train_cfg = config_from_dict(
        TrainConfig,
        {"max_steps": 1, "batch_size": 2, "amp": "none", "device": "cpu", "progress": False},
    )
    gan_cfg = config_from_dict(GANConfig, {**plugin.gan_defaults, **gan})
    trainer = Trainer(plugin, cfg, train_cfg, gan_cfg, run_dir=run_dir)
    for optimizer in trainer.ctx.optimizers.values():
        for group in optimizer.param_groups:
            group["lr"] = 0.0
    return trainer


def step_gradients(trainer: Trainer, batch: dict, names: Iterable[str]) -> tuple[Tensor, dict]:
    """Run the plugin's step on ``batch``; the gradients it left on ``names``' parameters
    (flattened, in parameter order) and its logged losses."""
    trainer.ctx.begin_step(0, max_steps=1)
    logs = trainer.plugin.train_step(trainer.ctx, batch, trainer.plugin_cfg)
    grads = [p.grad.flatten() for n in names for p in trainer.models[n].parameters()]
    return torch.cat(grads), logs


def hand_gradients(
    loss_fn: Callable[[], Tensor], models: dict[str, nn.Module], names: Iterable[str]
) -> Tensor:
    params = [p for n in names for p in models[n].parameters()]
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss_fn(), params)])


def assert_same_gradients(actual: Tensor, expected: Tensor) -> None:
    """Equal up to float rounding (a relative error of ~1e-7 here; the planted bugs give
    relative errors of 1e-2 and more)."""
    assert expected.norm() > 0
    error = float((actual - expected).norm() / expected.norm())
    assert error < 1e-4, f"relative gradient error {error:.2e}"


def l1(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).abs().mean()


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A VGG-19 weights file (torchvision's key names) with random weights up to conv5_4, He
    initialised so that deep features keep their scale (with PyTorch's default init they fade
    out by conv5_4 and the perceptual term would vanish from the gradients)."""
    torch.manual_seed(0)
    features = vgg19_features(34)
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path


def assert_term_matters(
    term: Callable[[], Tensor], total: Tensor, models: dict[str, nn.Module], names: list[str]
) -> None:
    """The test can see ``term`` (a weighted part of the loss): its gradient is at least 1% of
    the total's, far above the comparison's tolerance."""
    share = float(hand_gradients(term, models, names).norm() / total.norm())
    assert share > 0.01, f"the term's gradient is only {share:.1e} of the total"


# ---------------------------------------------------------------------------- CycleGAN
@pytest.fixture
def cyclegan(tmp_path: Path) -> tuple[Trainer, dict]:
    data = make_unpaired(tmp_path / "discs", n=4)
    plugin = load_plugin("cyclegan")
    trainer = frozen_trainer("cyclegan", plugin.tiny_config(data), tmp_path / "run")
    batch = torch.utils.data.default_collate([trainer.dataset[(i, i)] for i in range(2)])
    return trainer, batch


def cyclegan_generator_loss(
    models: dict[str, nn.Module], a: Tensor, b: Tensor, lambda_cycle: float, lambda_idt: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """Zhu et al. 2017, Eq. 3 with the LSGAN objective (Sec. 4) and the identity loss (Sec.
    5.2): G_A maps A to B and is judged by D_A, which knows real B images; G_B maps B to A."""
    G_A, G_B, D_A, D_B = (models[k] for k in ("G_A", "G_B", "D_A", "D_B"))
    fake_b, fake_a = G_A(a), G_B(b)
    terms = {
        "G_adv_A": (D_A(fake_b) - 1).square().mean(),
        "G_adv_B": (D_B(fake_a) - 1).square().mean(),
        "cycle_A": l1(G_B(fake_b), a),  # A -> B -> A
        "cycle_B": l1(G_A(fake_a), b),  # B -> A -> B
        "idt_A": l1(G_A(b), b),  # G_A leaves B images alone
        "idt_B": l1(G_B(a), a),
    }
    total = (
        terms["G_adv_A"]
        + terms["G_adv_B"]
        + lambda_cycle * (terms["cycle_A"] + terms["cycle_B"])
        + lambda_cycle * lambda_idt * (terms["idt_A"] + terms["idt_B"])
    )
    return total, terms


@pytest.mark.parametrize(("lambda_cycle", "lambda_identity"), [(10.0, 0.5), (3.0, 0.7), (4.0, 0)])
def test_cyclegan_generator_gradients_match_the_paper(
    cyclegan: tuple[Trainer, dict], lambda_cycle: float, lambda_identity: float
) -> None:
    """Both cycles and both identity terms reach the generators, with weights lambda_cycle and
    lambda_identity * lambda_cycle (the identity weight is a fraction of the cycle weight)."""
    trainer, batch = cyclegan
    cfg = dataclasses.replace(
        trainer.plugin_cfg, lambda_cycle=lambda_cycle, lambda_identity=lambda_identity
    )
    trainer.plugin_cfg = cfg
    actual, logs = step_gradients(trainer, batch, ("G_A", "G_B"))
    a, b = batch["A"], batch["B"]
    expected = hand_gradients(
        lambda: cyclegan_generator_loss(trainer.models, a, b, lambda_cycle, lambda_identity)[0],
        trainer.models,
        ("G_A", "G_B"),
    )
    assert_same_gradients(actual, expected)
    # the logged terms are the unweighted losses of the named generator
    with torch.no_grad():
        _, terms = cyclegan_generator_loss(trainer.models, a, b, lambda_cycle, lambda_identity)
    for name, value in terms.items():
        if name.startswith("idt") and lambda_identity == 0:
            assert logs[name] == 0.0
        else:
            assert logs[name] == pytest.approx(value.item(), rel=1e-5), name


def test_cyclegan_discriminators_judge_the_right_domains(cyclegan: tuple[Trainer, dict]) -> None:
    """D_A tells real B from G_A(A), D_B real A from G_B(B), each objective halved (Sec. 4);
    on the first step the history pools hand back the fresh fakes."""
    trainer, batch = cyclegan
    actual, logs = step_gradients(trainer, batch, ("D_A", "D_B"))
    m, a, b = trainer.models, batch["A"], batch["B"]

    def lsgan_d(D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:  # noqa: N803
        return 0.5 * (D(real) - 1).square().mean() + 0.5 * D(fake).square().mean()

    with torch.no_grad():
        fake_b, fake_a = m["G_A"](a), m["G_B"](b)

    def loss() -> Tensor:
        return 0.5 * lsgan_d(m["D_A"], b, fake_b) + 0.5 * lsgan_d(m["D_B"], a, fake_a)

    assert_same_gradients(actual, hand_gradients(loss, m, ("D_A", "D_B")))
    with torch.no_grad():
        assert logs["D_A"] == pytest.approx(0.5 * lsgan_d(m["D_A"], b, fake_b).item(), rel=1e-5)


def test_cyclegan_a2b_runs_the_generator_that_maps_a_to_b(
    cyclegan: tuple[Trainer, dict], tmp_path: Path
) -> None:
    """``--direction a2b`` runs G_A, the generator the step trains to turn A images into B
    images (the gradient tests above pin that), and b2a runs G_B; checked through a saved
    checkpoint, as ``translate run`` loads it. Each output must be far closer to its
    generator's than to the other one's (a margin that holds at any inference precision;
    numerical parity is export's and the backends' tests' concern)."""
    trainer, _ = cyclegan
    folder = trainer.save()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        by_name = {"a2b": trainer.models["G_A"].eval()(x), "b2a": trainer.models["G_B"].eval()(x)}
    apart = float((by_name["a2b"] - by_name["b2a"]).abs().mean())
    assert apart > 1e-3  # the two generators are told apart
    for direction, want in by_name.items():
        translator = Translator.from_checkpoint(
            folder, device="cpu", options={"direction": direction}
        )
        error = float((translator.translate_tensor(x) - want).abs().mean())
        assert error < 0.05 * apart, f"{direction}: {error:.1e} from its generator's output"


# ---------------------------------------------------------------------------- pix2pix
@pytest.fixture
def pix2pix(tmp_path: Path) -> tuple[Trainer, dict]:
    data = make_paired(tmp_path / "facades", n_train=4, n_val=1)
    plugin = load_plugin("pix2pix")
    # instance norm: every sample is normalised alone, whatever batches the step forms
    cfg = dataclasses.replace(plugin.tiny_config(data), norm="instance", dropout=0.0)
    trainer = frozen_trainer("pix2pix", cfg, tmp_path / "run")
    batch = torch.utils.data.default_collate([trainer.dataset[(i, i)] for i in range(2)])
    return trainer, batch


@pytest.mark.parametrize("lambda_l1", [100.0, 7.0])
def test_pix2pix_gradients_match_the_paper(pix2pix: tuple[Trainer, dict], lambda_l1: float) -> None:
    """G: non-saturating cGAN loss + lambda * L1 (Isola et al. 2017, Eq. 4); D sees the input
    concatenated with the real or generated output and its objective is halved (Sec. 3.3)."""
    trainer, batch = pix2pix
    trainer.plugin_cfg = dataclasses.replace(trainer.plugin_cfg, lambda_l1=lambda_l1)
    a, b = batch["input"], batch["target"]
    names = ("G", "D")
    actual, logs = step_gradients(trainer, batch, names)
    G, D = trainer.models["G"], trainer.models["D"]

    def g_loss() -> Tensor:
        fake = G(a)
        return F.softplus(-D(torch.cat([a, fake], 1))).mean() + lambda_l1 * l1(fake, b)

    def d_loss() -> Tensor:
        real_logits = D(torch.cat([a, b], 1))
        fake_logits = D(torch.cat([a, G(a).detach()], 1))
        return 0.5 * (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())

    g_params = sum(p.numel() for p in G.parameters())
    assert_same_gradients(actual[:g_params], hand_gradients(g_loss, trainer.models, ["G"]))
    assert_same_gradients(actual[g_params:], hand_gradients(d_loss, trainer.models, ["D"]))
    with torch.no_grad():
        assert logs["G_L1"] == pytest.approx(l1(G(a), b).item(), rel=1e-5)


# ---------------------------------------------------------------------------- superres
@pytest.mark.parametrize(
    ("lambda_pixel", "lambda_adv", "lambda_perceptual"), [(0.01, 5e-3, 1.0), (0.3, 0.2, 2.0)]
)
def test_superres_gan_phase_weights(
    tmp_path: Path, vgg_file: Path, lambda_pixel: float, lambda_adv: float, lambda_perceptual: float
) -> None:
    """ESRGAN's generator objective (Wang et al. 2018, Eq. 3): lambda_pixel * L1 +
    lambda_adv * adversarial + lambda_perceptual * VGG; the family's loss (RaGAN) comes from the
    shared objective, whose own tests pin it."""
    plugin = load_plugin("superres")
    cfg = dataclasses.replace(
        plugin.tiny_config(make_single(tmp_path / "hr", n=2, size=48)),
        phase="gan",
        patch_size=16,  # HR 32: conv5_4 of VGG still sees 2x2
        disc_channels=8,
        lambda_pixel=lambda_pixel,
        lambda_adv=lambda_adv,
        lambda_perceptual=lambda_perceptual,
        vgg_weights=vgg_file,
    )
    trainer = frozen_trainer("superres", cfg, tmp_path / "run")
    batch = torch.utils.data.default_collate([trainer.dataset[(i, i)] for i in range(2)])
    actual, logs = step_gradients(trainer, batch, ["G"])
    G, D = trainer.models["G"], trainer.models["D"]
    lr, hr = batch["input"], batch["target"]

    # ESRGAN's ranges: L1 on [0, 1] images; VGG-19 features (conv5_4, before its ReLU) of [0, 1]
    # images normalised by the ImageNet mean and std, written out from the weights file
    features = vgg19_features(34)
    state = torch.load(vgg_file, weights_only=True)
    features.load_state_dict({k[len("features.") :]: v for k, v in state.items()})
    features.requires_grad_(False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def unit(x: Tensor) -> Tensor:
        return (x + 1) / 2

    def perceptual(sr: Tensor) -> Tensor:
        return l1(features((unit(sr) - mean) / std), features((unit(hr) - mean) / std))

    def loss() -> Tensor:
        sr = G(lr)
        adv, _ = trainer.ctx.gan.generator_loss(D, sr, hr, paired=True)
        pixel = l1(unit(sr), unit(hr))
        return lambda_pixel * pixel + lambda_adv * adv + lambda_perceptual * perceptual(sr)

    expected = hand_gradients(loss, trainer.models, ["G"])
    assert_same_gradients(actual, expected)
    assert_term_matters(
        lambda: lambda_perceptual * perceptual(G(lr)), expected, trainer.models, ["G"]
    )
    # the pixel term (1e-2) is a small share, still 10x above the comparison's tolerance: a
    # pixel L1 on [-1, 1] (twice as large) fails the gradient comparison
    pixel_grad = hand_gradients(
        lambda: lambda_pixel * l1(unit(G(lr)), unit(hr)), trainer.models, ["G"]
    )
    assert float(pixel_grad.norm() / expected.norm()) > 1e-3
    with torch.no_grad():
        sr = G(lr)
        assert logs["G_perceptual"] == pytest.approx(perceptual(sr).item(), rel=1e-5)
        assert logs["G_pixel"] == pytest.approx(l1(unit(sr), unit(hr)).item(), rel=1e-5)


# ---------------------------------------------------------------------------- label2image
@pytest.mark.parametrize(("lambda_vgg", "lambda_l1"), [(10.0, 0.0), (3.0, 5.0)])
def test_label2image_generator_weights(
    tmp_path: Path, vgg_file: Path, lambda_vgg: float, lambda_l1: float
) -> None:
    """SPADE's generator objective (Park et al. 2019, Sec. 4 and Appendix A): the family's
    loss with feature matching (the shared objective) + lambda_vgg * VGG (+ lambda_l1 * L1).
    Spectral norm is off here: its power iteration moves on every forward pass, so a second
    pass would not see the step's weights."""
    plugin = load_plugin("label2image")
    cfg = dataclasses.replace(
        plugin.tiny_config(make_labels(tmp_path / "labels")),
        lambda_vgg=lambda_vgg,
        lambda_l1=lambda_l1,
        vgg_weights=vgg_file,
    )
    trainer = frozen_trainer("label2image", cfg, tmp_path / "run", spectral_norm="none")
    batch = torch.utils.data.default_collate([trainer.dataset[(i, i)] for i in range(2)])
    actual, logs = step_gradients(trainer, batch, ["G"])
    G, D = trainer.models["G"], trainer.models["D"]
    seg, real = batch["input"], batch["target"]
    vgg = vgg_loss(cfg.vgg_weights, layers=PIX2PIXHD_LAYERS, device="cpu")

    def loss() -> Tensor:
        fake = G(seg)
        adv, _ = trainer.ctx.gan.generator_loss(
            D, torch.cat([seg, fake], 1), torch.cat([seg, real], 1), paired=True
        )
        return adv + lambda_vgg * vgg(fake, real) + lambda_l1 * l1(fake, real)

    expected = hand_gradients(loss, trainer.models, ["G"])
    assert_same_gradients(actual, expected)
    assert_term_matters(lambda: lambda_vgg * vgg(G(seg), real), expected, trainer.models, ["G"])
    assert ("G_L1" in logs) == (lambda_l1 > 0) and "G_fm" in logs
