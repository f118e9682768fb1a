"""Tests of translate.losses: adversarial families, reconstruction, the objective (the gradient
penalties are in test_penalties.py).

Expected values are computed independently, by hand with ``math``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from tests.test_penalties import conv_d
from translate.config import GAN_LOSSES, GANConfig
from translate.losses import (
    ADVERSARIAL_LOSSES,
    GANObjective,
    adversarial_loss,
    charbonnier_loss,
    cycle_loss,
    identity_loss,
    l1_loss,
    r1_penalty,
    r2_penalty,
)
from translate.losses.adversarial import AdversarialLoss

REAL = [2.0, -1.0]
FAKE = [0.5, -3.0]
RELATIVISTIC = ("rpgan", "ragan")


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def neg_log_sig(x: float) -> float:
    """-log(sigmoid(x)): BCE against target 1."""
    return -math.log(sigmoid(x))


def neg_log_one_minus_sig(x: float) -> float:
    """-log(1 - sigmoid(x)): BCE against target 0."""
    return -math.log(1.0 - sigmoid(x))


def _expected_d(name: str, r: list[float], f: list[float]) -> float:
    mr, mf = mean(r), mean(f)
    if name in ("minimax", "nonsaturating"):
        return mean([neg_log_sig(x) for x in r]) + mean([neg_log_one_minus_sig(x) for x in f])
    if name == "lsgan":
        return 0.5 * mean([(x - 1) ** 2 for x in r]) + 0.5 * mean([x**2 for x in f])
    if name == "hinge":
        return mean([max(0.0, 1 - x) for x in r]) + mean([max(0.0, 1 + x) for x in f])
    if name in ("wgan", "wgan-gp"):
        return mf - mr
    if name == "rpgan":
        return mean([neg_log_sig(a - b) for a, b in zip(r, f, strict=True)])
    if name == "ragan":  # ESRGAN's / BasicSR's code: the mean of the two terms
        return 0.5 * (
            mean([neg_log_sig(x - mf) for x in r])
            + mean([neg_log_one_minus_sig(x - mr) for x in f])
        )
    raise KeyError(name)


def _expected_g(name: str, r: list[float], f: list[float]) -> float:
    mr, mf = mean(r), mean(f)
    if name == "minimax":
        return mean([math.log(1.0 - sigmoid(x)) for x in f])
    if name == "nonsaturating":
        return mean([neg_log_sig(x) for x in f])
    if name == "lsgan":
        return mean([(x - 1) ** 2 for x in f])
    if name in ("hinge", "wgan", "wgan-gp"):
        return -mf
    if name == "rpgan":
        return mean([neg_log_sig(b - a) for a, b in zip(r, f, strict=True)])
    if name == "ragan":
        return 0.5 * (
            mean([neg_log_sig(x - mr) for x in f])
            + mean([neg_log_one_minus_sig(x - mf) for x in r])
        )
    raise KeyError(name)


def _t(xs: list[float], requires_grad: bool = False) -> Tensor:
    return torch.tensor(xs, dtype=torch.float64, requires_grad=requires_grad)


# ------------------------------------------------------------------ adversarial families


def test_registry_matches_config_choices() -> None:
    assert set(ADVERSARIAL_LOSSES) == set(GAN_LOSSES)
    for name in GAN_LOSSES:
        loss = adversarial_loss(name)
        assert isinstance(loss, AdversarialLoss)
        assert loss.name == name
        assert loss.relativistic == (name in RELATIVISTIC)


@pytest.mark.parametrize("name", GAN_LOSSES)
def test_hand_computed_values(name: str) -> None:
    loss = adversarial_loss(name)
    d = loss.d_loss(_t(REAL), _t(FAKE))
    g = loss.g_loss(_t(FAKE), _t(REAL))
    assert d.item() == pytest.approx(_expected_d(name, REAL, FAKE), rel=1e-12)
    assert g.item() == pytest.approx(_expected_g(name, REAL, FAKE), rel=1e-12)


def test_a_few_literal_values() -> None:
    # Anchors independent of the helper formulas above.
    assert adversarial_loss("wgan-gp").d_loss(_t(REAL), _t(FAKE)).item() == pytest.approx(-1.75)
    assert adversarial_loss("wgan").d_loss(_t(REAL), _t(FAKE)).item() == pytest.approx(-1.75)
    assert adversarial_loss("wgan").g_loss(_t(FAKE)).item() == pytest.approx(1.25)
    assert adversarial_loss("hinge").d_loss(_t(REAL), _t(FAKE)).item() == pytest.approx(1.75)
    assert adversarial_loss("lsgan").g_loss(_t(FAKE)).item() == pytest.approx(8.125)
    assert adversarial_loss("lsgan").d_loss(_t(REAL), _t(FAKE)).item() == pytest.approx(3.5625)


@pytest.mark.parametrize("name", GAN_LOSSES)
def test_gradient_signs(name: str) -> None:
    loss = adversarial_loss(name)
    # LSGAN regresses logits onto its targets (real -> 1, fake -> 0), so the signs below only
    # hold between the targets; elsewhere every family is checked on the shared logits.
    r0, f0 = ([0.7, 0.2], [0.5, 0.1]) if name == "lsgan" else (REAL, FAKE)
    real, fake = _t(r0, True), _t(f0, True)
    loss.d_loss(real, fake).backward()
    # D wants higher real logits and lower fake logits.
    assert (real.grad <= 0).all() and real.grad.sum() < 0, real.grad
    assert (fake.grad >= 0).all() and fake.grad.sum() > 0, fake.grad

    real, fake = _t(r0, True), _t(f0, True)
    loss.g_loss(fake, real if loss.relativistic else None).backward()
    # G wants higher fake logits.
    assert (fake.grad <= 0).all() and fake.grad.sum() < 0, fake.grad


def test_lsgan_pulls_logits_back_to_targets() -> None:
    real, fake = _t([2.0], True), _t([-3.0], True)
    adversarial_loss("lsgan").d_loss(real, fake).backward()
    assert real.grad.item() == pytest.approx(0.5 * 2 * (2.0 - 1.0))  # beyond target 1: pushed down
    assert fake.grad.item() == pytest.approx(0.5 * 2 * -3.0)  # below target 0: pushed up


@pytest.mark.parametrize("name", GAN_LOSSES)
def test_patch_logits_are_a_mean_over_all_elements(name: str) -> None:
    torch.manual_seed(0)
    loss = adversarial_loss(name)
    real, fake = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    for shape in ((3, 1, 4, 4), (48, 1), (48,)):
        assert loss.d_loss(real.reshape(shape), fake.reshape(shape)).item() == pytest.approx(
            _expected_d(name, real.flatten().tolist(), fake.flatten().tolist()), rel=1e-5
        )
        assert loss.g_loss(fake.reshape(shape), real.reshape(shape)).item() == pytest.approx(
            _expected_g(name, real.flatten().tolist(), fake.flatten().tolist()), rel=1e-5
        )


@pytest.mark.parametrize("name", GAN_LOSSES)
def test_multiscale_is_mean_over_scales(name: str) -> None:
    torch.manual_seed(1)
    loss = adversarial_loss(name)
    real = [torch.randn(2, 1, 4, 4), torch.randn(2, 1, 2, 2)]
    fake = [torch.randn(2, 1, 4, 4), torch.randn(2, 1, 2, 2)]
    want_d = mean(
        [
            _expected_d(name, r.flatten().tolist(), f.flatten().tolist())
            for r, f in zip(real, fake, strict=True)
        ]
    )
    want_g = mean(
        [
            _expected_g(name, r.flatten().tolist(), f.flatten().tolist())
            for r, f in zip(real, fake, strict=True)
        ]
    )
    assert loss.d_loss(real, fake).item() == pytest.approx(want_d, rel=1e-5)
    assert loss.g_loss(fake, real).item() == pytest.approx(want_g, rel=1e-5)
    # Tuples work like lists.
    assert loss.d_loss(tuple(real), tuple(fake)).item() == pytest.approx(
        loss.d_loss(real, fake).item()
    )


@pytest.mark.parametrize("name", GAN_LOSSES)
def test_mismatched_scale_counts_raise(name: str) -> None:
    loss = adversarial_loss(name)
    with pytest.raises(ValueError, match="scales"):
        loss.d_loss([torch.zeros(2), torch.zeros(2)], [torch.zeros(2)])
    with pytest.raises(ValueError, match="empty"):
        loss.d_loss([], [])


def test_rpgan_requires_paired_shapes() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        adversarial_loss("rpgan").d_loss(torch.zeros(2), torch.zeros(3))


@pytest.mark.parametrize("name", RELATIVISTIC)
def test_relativistic_g_loss_needs_real_logits(name: str) -> None:
    with pytest.raises(ValueError, match="real"):
        adversarial_loss(name).g_loss(_t(FAKE))


def test_half_precision_logits_are_computed_in_float32() -> None:
    loss = adversarial_loss("nonsaturating")
    out = loss.d_loss(_t(REAL).bfloat16(), _t(FAKE).bfloat16())
    assert out.dtype == torch.float32


def test_label_smoothing_nonsaturating() -> None:
    s = 0.1
    loss = adversarial_loss("nonsaturating", label_smoothing=s)
    t = 1.0 - s
    expected = mean(
        [-(t * math.log(sigmoid(x)) + (1 - t) * math.log(1 - sigmoid(x))) for x in REAL]
    ) + mean([neg_log_one_minus_sig(x) for x in FAKE])
    assert loss.d_loss(_t(REAL), _t(FAKE)).item() == pytest.approx(expected, rel=1e-12)
    assert loss.d_loss(_t(REAL), _t(FAKE)).item() != pytest.approx(
        adversarial_loss("nonsaturating").d_loss(_t(REAL), _t(FAKE)).item()
    )
    # One-sided: the generator loss is unchanged.
    assert loss.g_loss(_t(FAKE)).item() == pytest.approx(_expected_g("nonsaturating", REAL, FAKE))


def test_label_smoothing_lsgan() -> None:
    loss = adversarial_loss("lsgan", label_smoothing=0.2)
    expected = 0.5 * mean([(x - 0.8) ** 2 for x in REAL]) + 0.5 * mean([x**2 for x in FAKE])
    assert loss.d_loss(_t(REAL), _t(FAKE)).item() == pytest.approx(expected, rel=1e-12)


def test_label_smoothing_rejected_where_undefined() -> None:
    with pytest.raises(ValueError, match="label_smoothing"):
        adversarial_loss("hinge", label_smoothing=0.1)
    with pytest.raises(ValueError, match="label_smoothing"):
        adversarial_loss("minimax", label_smoothing=1.0)


@pytest.mark.parametrize(
    ("typo", "closest"),
    [("nonsaturing", "nonsaturating"), ("hingee", "hinge"), ("wgan_gp", "wgan-gp")],
)
def test_unknown_family_suggests_closest(typo: str, closest: str) -> None:
    with pytest.raises(ValueError, match=f"did you mean '{closest}'") as info:
        adversarial_loss(typo)
    for name in GAN_LOSSES:
        assert name in str(info.value)


def test_unknown_family_without_close_match_lists_choices() -> None:
    with pytest.raises(ValueError, match="choose one of") as info:
        adversarial_loss("xyz")
    assert "did you mean" not in str(info.value)


# ------------------------------------------------------------------ reconstruction


def test_reconstruction_losses() -> None:
    a = torch.tensor([[0.0, 1.0], [-2.0, 0.5]])
    b = torch.tensor([[0.0, 0.0], [1.0, 0.5]])
    assert l1_loss(a, b).item() == pytest.approx((0 + 1 + 3 + 0) / 4)
    eps = 1e-3
    expected = mean([math.sqrt(d * d + eps * eps) for d in (0.0, 1.0, 3.0, 0.0)])
    assert charbonnier_loss(a, b).item() == pytest.approx(expected, rel=1e-6)
    assert charbonnier_loss(a, b, eps=0.5).item() == pytest.approx(
        mean([math.sqrt(d * d + 0.25) for d in (0.0, 1.0, 3.0, 0.0)]), rel=1e-6
    )
    with pytest.raises(ValueError, match="shapes differ"):
        l1_loss(a, b[0])
    with pytest.raises(ValueError, match="eps"):
        charbonnier_loss(a, b, eps=0.0)


def test_cycle_and_identity_terms_by_hand() -> None:
    """CycleGAN Eq. 2 and Sec. 5.2: mean |reconstruction - real| and mean |G(y) - y|, with a
    half-precision generator output compared in float32."""
    real = torch.tensor([[0.5, -1.0], [0.25, 1.0]])
    rec = torch.tensor([[0.0, -1.0], [1.0, 0.5]], dtype=torch.float16)
    by_hand = (0.5 + 0.0 + 0.75 + 0.5) / 4
    assert cycle_loss(rec, real).dtype == torch.float32
    assert cycle_loss(rec, real).item() == pytest.approx(by_hand)
    assert identity_loss(rec, real).item() == pytest.approx(by_hand)
    assert cycle_loss(real, real).item() == 0.0


# ------------------------------------------------------------------ objective


class _ToyGD:
    """A linear 'generator' parameter and a small conv discriminator."""

    def __init__(self) -> None:
        torch.manual_seed(5)
        self.D = conv_d()
        self.g_scale = torch.tensor(1.5, requires_grad=True)
        self.real = torch.randn(2, 3, 6, 6)
        self.fake = self.g_scale * torch.randn(2, 3, 6, 6)


def test_objective_default_logs_and_detaches_fake() -> None:
    toy = _ToyGD()
    obj = GANObjective(GANConfig())
    loss, logs = obj.discriminator_loss(toy.D, toy.real, toy.fake)
    assert set(logs) == {"D_loss", "D_adv", "D_real", "D_fake"}
    assert all(isinstance(v, float) for v in logs.values())
    expected = adversarial_loss("nonsaturating").d_loss(toy.D(toy.real), toy.D(toy.fake))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert logs["D_loss"] == pytest.approx(logs["D_adv"])
    assert logs["D_real"] == pytest.approx(toy.D(toy.real).mean().item(), rel=1e-6)
    loss.backward()
    assert toy.g_scale.grad is None
    assert all(p.grad is not None for p in toy.D.parameters())


def test_objective_wgan_gp_adds_penalty() -> None:
    toy = _ToyGD()
    obj = GANObjective(GANConfig(gan_loss="wgan-gp"))
    loss, logs = obj.discriminator_loss(toy.D, toy.real, toy.fake)
    assert "gp" in logs and "r1" not in logs
    assert logs["D_loss"] == pytest.approx(logs["D_adv"] + 10.0 * logs["gp"], rel=1e-5)
    assert loss.item() == pytest.approx(logs["D_loss"])
    _, logs = GANObjective(GANConfig(gan_loss="wgan-gp", gp_weight=5.0)).discriminator_loss(
        toy.D, toy.real, toy.fake
    )
    assert logs["D_loss"] == pytest.approx(logs["D_adv"] + 5.0 * logs["gp"], rel=1e-5)
    # the weight-clipping family adds no penalty (its constraint is the engine's clamp)
    _, logs = GANObjective(GANConfig(gan_loss="wgan")).discriminator_loss(toy.D, toy.real, toy.fake)
    assert "gp" not in logs and logs["D_loss"] == pytest.approx(logs["D_adv"])


def test_objective_r1_r2() -> None:
    toy = _ToyGD()
    obj = GANObjective(GANConfig(gan_loss="rpgan", r1_gamma=2.0, r2_gamma=4.0))
    _, logs = obj.discriminator_loss(toy.D, toy.real, toy.fake)
    assert logs["r1"] == pytest.approx(r1_penalty(toy.D, toy.real).item(), rel=1e-5)
    assert logs["r2"] == pytest.approx(r2_penalty(toy.D, toy.fake).item(), rel=1e-5)
    assert "gp" not in logs
    assert logs["D_loss"] == pytest.approx(
        logs["D_adv"] + 1.0 * logs["r1"] + 2.0 * logs["r2"], rel=1e-5
    )


@pytest.mark.parametrize("name", RELATIVISTIC)
def test_objective_relativistic_generator_needs_real(name: str) -> None:
    toy = _ToyGD()
    obj = GANObjective(GANConfig(gan_loss=name))
    assert obj.relativistic
    with pytest.raises(ValueError, match="real"):
        obj.generator_loss(toy.D, toy.fake)
    loss, logs = obj.generator_loss(toy.D, toy.fake, toy.real)
    expected = adversarial_loss(name).g_loss(toy.D(toy.fake), toy.D(toy.real))
    assert logs == {"G_adv": pytest.approx(expected.item(), rel=1e-6)}
    loss.backward()
    assert toy.g_scale.grad is not None and toy.g_scale.grad != 0


def test_objective_generator_loss_reaches_generator() -> None:
    toy = _ToyGD()
    loss, logs = GANObjective().generator_loss(toy.D, toy.fake)
    assert set(logs) == {"G_adv"}
    loss.backward()
    assert toy.g_scale.grad is not None and toy.g_scale.grad != 0


def test_objective_multiscale_d_and_label_smoothing() -> None:
    toy = _ToyGD()

    def D(x: Tensor) -> list[Tensor]:  # noqa: N802
        return [toy.D(x), toy.D(nn.functional.avg_pool2d(x, 2, ceil_mode=True))]

    obj = GANObjective(GANConfig(gan_loss="lsgan", label_smoothing=0.1, r1_gamma=1.0))
    loss, logs = obj.discriminator_loss(D, toy.real, toy.fake)
    assert torch.isfinite(loss) and {"r1", "D_adv"} <= set(logs)
    expected = adversarial_loss("lsgan", label_smoothing=0.1).d_loss(D(toy.real), D(toy.fake))
    assert logs["D_adv"] == pytest.approx(expected.item(), rel=1e-6)
