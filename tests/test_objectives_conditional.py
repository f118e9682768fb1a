"""The class- and domain-conditioned plugins' objectives against a hand computation.

As ``test_objectives_by_hand.py``: one real ``train_step`` with every learning rate at zero,
whose gradients (and logged terms) are compared with ``torch.autograd.grad`` of the paper's
objective written out here term by term. The random draws of the step (AC-GAN's z, StarGAN's
target labels) are reproduced by seeding torch's generator before the step and before the
hand computation. The adversarial family's own loss comes from the shared objective, whose
tests pin it; what is written out here is every classification and reconstruction term, with
its weight, its images (real or generated) and its labels (the source or the target domain).
Weights other than the defaults are used, so a term weighted 1 by mistake shows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import Tensor

from tests.test_objectives_by_hand import (
    assert_same_gradients,
    frozen_trainer,
    hand_gradients,
    step_gradients,
)
from translate.registry import load_plugin
from translate.testing import make_unpaired


def cross_entropy(logits: Tensor, label: Tensor) -> Tensor:
    """-log softmax(logits)[label], averaged over the batch."""
    return -(logits.log_softmax(1).gather(1, label[:, None])).mean()


def binary_cross_entropy_summed(logits: Tensor, target: Tensor) -> Tensor:
    """-sum_k [t_k log sigmoid(l_k) + (1 - t_k) log(1 - sigmoid(l_k))], averaged over images."""
    p = logits.sigmoid()
    return -(target * p.log() + (1 - target) * (1 - p).log()).sum(1).mean()


def assert_term_matters(term, total: Tensor, models: dict, names: list[str]) -> None:
    """``term``'s gradient (zero on parameters it does not reach, e.g. D's other head) is at
    least 1% of the total's: far above the comparison's tolerance."""
    params = [p for n in names for p in models[n].parameters()]
    grads = torch.autograd.grad(term(), params, allow_unused=True)
    flat = torch.cat([(torch.zeros_like(p) if g is None else g).flatten()
                      for p, g in zip(params, grads, strict=True)])  # fmt: skip
    share = float(flat.norm() / total.norm())
    assert share > 0.01, f"the term's gradient is only {share:.1e} of the total"


# ---------------------------------------------------------------------------- AC-GAN
@pytest.fixture
def acgan(tmp_path: Path) -> tuple:
    data = make_unpaired(tmp_path / "classes", n=2, size=16)
    plugin = load_plugin("cgan")
    cfg = dataclasses.replace(plugin.tiny_config(data), conditioning="acgan", lambda_cls=0.7)
    cfg = plugin.finalize_config(cfg)
    trainer = frozen_trainer("cgan", cfg, tmp_path / "run")
    items = [trainer.dataset[(i, i)] for i in (0, 2)]  # one image of each class
    batch = torch.utils.data.default_collate(items)
    assert batch["label"].tolist() == [0, 1]
    return trainer, batch, cfg


def acgan_inputs(trainer, batch, cfg, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """(real D input, fake D input, labels) as the step builds them, z drawn after ``seed``."""
    plugin, G = trainer.plugin, trainer.models["G"]
    label = batch["label"]
    onehot = torch.nn.functional.one_hot(label, 2).float()
    torch.manual_seed(seed)
    z = torch.randn(len(label), cfg.latent_dim, 1, 1)
    fake = G(torch.cat([z, onehot[:, :, None, None]], 1))
    return plugin.with_class(batch["image"], onehot), plugin.with_class(fake, onehot), label


def test_acgan_discriminator_classifies_real_and_generated_images(acgan: tuple) -> None:
    """Odena et al. 2017, Eqs. 2-3: D maximises L_S + L_C, with L_C = log P(C = c | X_real) +
    log P(C = c | X_fake): D's loss is its adversarial loss + lambda_cls * (CE(real) + CE(fake)),
    the fake detached (D's step)."""
    trainer, batch, cfg = acgan
    torch.manual_seed(3)
    actual, logs = step_gradients(trainer, batch, ["D"])
    D, gan = trainer.models["D"], trainer.ctx.gan

    def loss() -> Tensor:
        real_in, fake_in, label = acgan_inputs(trainer, batch, cfg, seed=3)
        adv, _ = gan.discriminator_loss(D, real_in, fake_in, condition_channels=2)
        cls_real = cross_entropy(D.classify(real_in), label)
        cls_fake = cross_entropy(D.classify(fake_in.detach()), label)
        return adv + cfg.lambda_cls * (cls_real + cls_fake)

    def fake_term() -> Tensor:
        _, fake_in, label = acgan_inputs(trainer, batch, cfg, seed=3)
        return cfg.lambda_cls * cross_entropy(D.classify(fake_in.detach()), label)

    expected = hand_gradients(loss, trainer.models, ["D"])
    assert_same_gradients(actual, expected)
    assert_term_matters(fake_term, expected, trainer.models, ["D"])
    with torch.no_grad():
        real_in, fake_in, label = acgan_inputs(trainer, batch, cfg, seed=3)
        assert logs["D_cls"] == pytest.approx(cross_entropy(D.classify(real_in), label).item())
        assert logs["D_cls_fake"] == pytest.approx(
            cross_entropy(D.classify(fake_in), label).item(), rel=1e-5
        )


def test_acgan_generator_maximises_the_class_likelihood_of_its_fakes(acgan: tuple) -> None:
    """G maximises L_C - L_S: its loss is its adversarial loss + lambda_cls * CE(D_cls(G(z, c)),
    c), with the class c it was asked for."""
    trainer, batch, cfg = acgan
    torch.manual_seed(3)
    actual, logs = step_gradients(trainer, batch, ["G"])
    D, gan = trainer.models["D"], trainer.ctx.gan

    def loss() -> Tensor:
        real_in, fake_in, label = acgan_inputs(trainer, batch, cfg, seed=3)
        adv, _ = gan.generator_loss(D, fake_in, real_in, condition_channels=2)
        return adv + cfg.lambda_cls * cross_entropy(D.classify(fake_in), label)

    def cls_term() -> Tensor:
        _, fake_in, label = acgan_inputs(trainer, batch, cfg, seed=3)
        return cfg.lambda_cls * cross_entropy(D.classify(fake_in), label)

    expected = hand_gradients(loss, trainer.models, ["G"])
    assert_same_gradients(actual, expected)
    assert_term_matters(cls_term, expected, trainer.models, ["G"])
    assert logs["G_cls"] == pytest.approx(cls_term().item() / cfg.lambda_cls, rel=1e-5)


# ---------------------------------------------------------------------------- StarGAN
@pytest.fixture
def stargan(tmp_path: Path) -> tuple:
    data = make_unpaired(tmp_path / "domains", n=2, size=32)
    plugin = load_plugin("stargan")
    cfg = dataclasses.replace(plugin.tiny_config(data), lambda_cls=0.5, lambda_rec=3.0)
    cfg = plugin.finalize_config(cfg)
    # a non-critic family: every step updates G (the objective's own tests pin WGAN-GP)
    trainer = frozen_trainer("stargan", cfg, tmp_path / "run", gan_loss="nonsaturating")
    items = [trainer.dataset[(i, i)] for i in (0, 2)]  # one image of each domain
    batch = torch.utils.data.default_collate(items)
    assert batch["label"].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    return trainer, batch, cfg


def stargan_targets(trainer, batch, cfg, seed: int) -> Tensor:
    torch.manual_seed(seed)
    return trainer.plugin.random_targets(batch["label"], cfg)


def test_stargan_discriminator_classifies_real_images_by_their_own_domain(stargan: tuple) -> None:
    """Choi et al. 2018, Eq. 5: L_D = -L_adv + lambda_cls * L_cls^r, with L_cls^r =
    -log D_cls(c' | x) on *real* images and their *source* labels c' (Eq. 2)."""
    trainer, batch, cfg = stargan
    torch.manual_seed(5)
    actual, logs = step_gradients(trainer, batch, ["D"])
    G, D, gan = trainer.models["G"], trainer.models["D"], trainer.ctx.gan
    real, label = batch["image"], batch["label"]

    def cls_real() -> Tensor:
        return cfg.lambda_cls * cross_entropy(D(real, with_class=True)[1], label.argmax(1))

    def loss() -> Tensor:
        fake = G(real, stargan_targets(trainer, batch, cfg, seed=5))
        adv, _ = gan.discriminator_loss(D, real, fake)
        return adv + cls_real()

    expected = hand_gradients(loss, trainer.models, ["D"])
    assert_same_gradients(actual, expected)
    assert_term_matters(cls_real, expected, trainer.models, ["D"])
    assert logs["D_cls"] == pytest.approx(cls_real().item() / cfg.lambda_cls, rel=1e-5)


def test_stargan_generator_classification_and_reconstruction_terms(stargan: tuple) -> None:
    """Eq. 6: L_G = L_adv + lambda_cls * L_cls^f + lambda_rec * L_rec, with L_cls^f =
    -log D_cls(c | G(x, c)) for the *target* label c (Eq. 3) and L_rec = ||x - G(G(x, c),
    c')||_1 back to the *source* label c' (Eq. 4)."""
    trainer, batch, cfg = stargan
    torch.manual_seed(5)
    actual, logs = step_gradients(trainer, batch, ["G"])
    G, D, gan = trainer.models["G"], trainer.models["D"], trainer.ctx.gan
    real, label = batch["image"], batch["label"]
    target = stargan_targets(trainer, batch, cfg, seed=5)
    assert target.tolist() != label.tolist()  # the seed draws a target other than the source

    def terms() -> tuple[Tensor, Tensor, Tensor]:
        fake = G(real, target)
        adv, _ = gan.generator_loss(D, fake, real)
        cls = cross_entropy(D(fake, with_class=True)[1], target.argmax(1))
        rec = (G(fake, label) - real).abs().mean()
        return adv, cls, rec

    def loss() -> Tensor:
        adv, cls, rec = terms()
        return adv + cfg.lambda_cls * cls + cfg.lambda_rec * rec

    expected = hand_gradients(loss, trainer.models, ["G"])
    assert_same_gradients(actual, expected)
    assert_term_matters(lambda: cfg.lambda_cls * terms()[1], expected, trainer.models, ["G"])
    assert_term_matters(lambda: cfg.lambda_rec * terms()[2], expected, trainer.models, ["G"])
    with torch.no_grad():
        _, cls, rec = terms()
    assert logs["G_cls"] == pytest.approx(cls.item(), rel=1e-5)
    assert logs["G_rec"] == pytest.approx(rec.item(), rel=1e-5)


def test_stargan_attribute_classification_is_binary_cross_entropy_summed(tmp_path: Path) -> None:
    """Multi-label data (CelebA): L_cls is the binary cross-entropy summed over the attributes
    and averaged over the images (the authors' code), for the real images' own attributes."""
    plugin = load_plugin("stargan")
    logits = torch.tensor([[0.3, -1.2, 2.0], [-0.5, 0.1, 0.7]])
    label = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    cfg = dataclasses.replace(plugin.tiny_config(tmp_path), attributes=tmp_path / "a.csv")
    expected = binary_cross_entropy_summed(logits, label)
    assert plugin.classification_loss(logits, label, cfg).item() == pytest.approx(expected.item())
    single = plugin.tiny_config(tmp_path)
    assert plugin.classification_loss(logits, label, single).item() == pytest.approx(
        cross_entropy(logits, label.argmax(1)).item()
    )
