"""Tests of the stabilisers in translate.losses' objective: feature matching, instance noise,
lazy penalties, DiffAugment and gradient normalisation (moved from test_losses.py, which keeps
the adversarial families, reconstruction and the objective; expected values by hand)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from tests.test_losses import _ToyGD, mean
from translate.config import GANConfig
from translate.losses import (
    GANObjective,
    adversarial_loss,
)

# ------------------------------------------------------------------ stabilisers in the objective


def test_feature_matching_loss_paired_and_unpaired() -> None:
    from translate.losses.objective import feature_matching_loss

    f1, r1 = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.0, 2.0], [3.0, 0.0]])
    f2, r2 = torch.tensor([[1.0], [1.0]]), torch.tensor([[2.0], [0.0]])
    logits = torch.zeros(2, 1)
    fake, real = [f1, f2, logits], [r1, r2, logits + 5]  # the logits are left out
    # pix2pixHD: L1 per pair, averaged over the layers
    paired = mean([mean([1.0, 0.0, 0.0, 4.0]), mean([1.0, 1.0])])
    assert feature_matching_loss(fake, real, paired=True).item() == pytest.approx(paired)
    # Salimans et al.: squared distance of the batch means
    unpaired = mean([mean([(2.0 - 1.5) ** 2, (3.0 - 1.0) ** 2]), (1.0 - 1.0) ** 2])
    assert feature_matching_loss(fake, real, paired=False).item() == pytest.approx(unpaired)
    # multi-scale: the mean over scales
    two = feature_matching_loss([fake, fake], [real, fake], paired=True)
    assert two.item() == pytest.approx(paired / 2)
    with pytest.raises(ValueError, match="only the logits"):
        feature_matching_loss([logits], [logits], paired=True)


def test_objective_feature_matching_single_and_multiscale() -> None:
    from translate.nn import MultiscaleDiscriminator, PatchDiscriminator

    torch.manual_seed(0)
    g_scale = torch.tensor(1.0, requires_grad=True)
    real, noise = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    for D in (
        PatchDiscriminator(in_channels=3, base_channels=8, n_layers=2, norm="none"),
        MultiscaleDiscriminator(in_channels=3, n_scales=2, base_channels=8, n_layers=1),
    ):
        fake = g_scale * noise
        obj = GANObjective(GANConfig(feature_matching=10.0))
        loss, logs = obj.generator_loss(D, fake, real, paired=True)
        adv = adversarial_loss("nonsaturating").g_loss(D(fake))
        assert logs["G_adv"] == pytest.approx(adv.item(), rel=1e-5)
        fm = obj.feature_matching(D, fake, real, paired=True)
        assert logs["G_fm"] == pytest.approx(fm.item(), rel=1e-5)
        assert loss.item() == pytest.approx(adv.item() + 10.0 * fm.item(), rel=1e-5)
        g_scale.grad = None
        loss.backward()
        assert g_scale.grad is not None and g_scale.grad != 0
    with pytest.raises(ValueError, match="feature matching"):
        GANObjective(GANConfig(feature_matching=1.0)).generator_loss(D, fake)


def test_instance_noise_anneals_linearly_to_zero() -> None:
    obj = GANObjective(GANConfig(instance_noise=0.2))
    obj.begin_step(0, 100)
    assert obj.noise_std == pytest.approx(0.2)
    obj.begin_step(50, 100)
    assert obj.noise_std == pytest.approx(0.1)
    obj.begin_step(100, 100)
    assert obj.noise_std == 0.0
    short = GANObjective(GANConfig(instance_noise=0.2, instance_noise_steps=10))
    short.begin_step(5, 100)
    assert short.noise_std == pytest.approx(0.1)
    short.begin_step(20, 100)
    assert short.noise_std == 0.0


def test_instance_noise_reaches_real_and_fake_alike() -> None:
    seen: list[Tensor] = []

    def D(x: Tensor) -> Tensor:  # noqa: N802
        seen.append(x.detach().clone())
        return x.flatten(1).mean(1)

    obj = GANObjective(GANConfig(instance_noise=0.5))
    obj.begin_step(0, 10)
    real, fake = torch.zeros(256, 4), torch.ones(256, 4)
    obj.discriminator_loss(D, real, fake)
    assert seen[0].std().item() == pytest.approx(0.5, rel=0.1)
    assert (seen[1] - 1).std().item() == pytest.approx(0.5, rel=0.1)
    obj.begin_step(10, 10)
    seen.clear()
    obj.discriminator_loss(D, real, fake)
    assert torch.equal(seen[0], real) and torch.equal(seen[1], fake)


def test_lazy_penalties_run_every_n_steps_weighted_by_n() -> None:
    toy = _ToyGD()
    obj = GANObjective(GANConfig(gan_loss="nonsaturating", r1_gamma=2.0, penalty_interval=4))
    obj.begin_step(8, 100)
    _, logs = obj.discriminator_loss(toy.D, toy.real, toy.fake)
    assert logs["D_loss"] == pytest.approx(logs["D_adv"] + 4 * 1.0 * logs["r1"], rel=1e-5)
    obj.begin_step(9, 100)
    _, logs = obj.discriminator_loss(toy.D, toy.real, toy.fake)
    assert "r1" not in logs and logs["D_loss"] == pytest.approx(logs["D_adv"])


def test_diff_augment_applies_to_real_and_fake_in_both_steps() -> None:
    seen: list[Tensor] = []

    def D(x: Tensor) -> Tensor:  # noqa: N802
        seen.append(x.detach().clone())
        return x.flatten(1).mean(1)

    torch.manual_seed(0)
    obj = GANObjective(GANConfig(diff_augment="translation,cutout"))
    real = torch.rand(4, 6, 16, 16) + 1.0  # no zeros: cut-out / shifted-in pixels show
    fake = (torch.rand(4, 6, 16, 16) + 1.0).requires_grad_(True)
    obj.discriminator_loss(D, real, fake)
    assert all((x == 0).any() for x in seen)  # both augmented
    seen.clear()
    loss, _ = GANObjective(GANConfig(gan_loss="rpgan", diff_augment="cutout")).generator_loss(
        D, fake, real
    )
    # one draw for fake and real in the G step: the same pixels are cut out of both
    assert torch.equal(seen[0] == 0, seen[1] == 0) and (seen[0] == 0).any()
    loss.backward()
    assert fake.grad is not None and (fake.grad != 0).any()


def test_diff_augment_color_is_per_sample_and_shared_by_stacked_images() -> None:
    from translate.losses.augment import DiffAugment

    torch.manual_seed(0)
    aug = DiffAugment(("color",))
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    stacked = torch.cat([x, x], 1)  # a conditional D's (condition, image) pair
    params = aug.sample(stacked)
    out = aug.apply(stacked, params)
    torch.testing.assert_close(out[:, :3], out[:, 3:])  # same transform for both halves
    torch.testing.assert_close(out[:, :3], aug.apply(x, params))
    b = params.brightness.view(-1, 1, 1, 1)
    s, c = params.saturation.view(-1, 1, 1, 1), params.contrast.view(-1, 1, 1, 1)
    y = x + b
    gray = (0.299 * y[:, 0] + 0.587 * y[:, 1] + 0.114 * y[:, 2]).unsqueeze(1)
    y = gray + (y - gray) * s
    m = y.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(out[:, :3], m + (y - m) * c, rtol=1e-5, atol=1e-5)


def test_gradient_normalised_objective_bounds_logits() -> None:
    toy = _ToyGD()
    obj = GANObjective(GANConfig(gan_loss="hinge", gradient_norm=True))
    loss, logs = obj.discriminator_loss(toy.D, toy.real, toy.fake)
    assert abs(logs["D_real"]) < 1 and abs(logs["D_fake"]) < 1
    loss.backward()
    assert all(p.grad is not None for p in toy.D.parameters())
    g_loss, _ = obj.generator_loss(toy.D, toy.fake)
    g_loss.backward()
    assert toy.g_scale.grad is not None and toy.g_scale.grad != 0


@pytest.mark.parametrize(("max_norm", "scale"), [(5.0, 5.0 / 20.0), (50.0, 1.0)])
def test_clip_grad_norm_scales_each_groups_gradient_to_the_bound(
    max_norm: float, scale: float
) -> None:
    """--clip-grad-norm (TransGAN's authors clip D and G at 5): loss = 10 * sum(w) over 4
    weights gives a gradient of 10 each, norm 20; SGD with lr 1 then moves each weight by
    10 * min(1, max_norm / 20): by 2.5 under a bound of 5, by the whole 10 under 50. The D
    group is clipped too, separately from G."""
    from translate.engine.context import TrainContext
    from translate.losses.objective import GANObjective

    models = {"G": torch.nn.Linear(4, 1, bias=False), "D": torch.nn.Linear(2, 1, bias=False)}
    for m in models.values():
        torch.nn.init.zeros_(m.weight)
    ctx = TrainContext(
        models=models,
        optimizers={k: torch.optim.SGD(m.parameters(), lr=1.0) for k, m in models.items()},
        device=torch.device("cpu"),
        amp="none",
        gan=GANObjective(),
        seed=0,
        clip_grad_norm=max_norm,
    )
    ctx.optimize("G", 10 * models["G"].weight.sum())
    torch.testing.assert_close(models["G"].weight, torch.full((1, 4), -10.0 * scale))
    ctx.optimize("D", 10 * models["D"].weight.sum())  # norm 10 sqrt(2) = 14.1
    d_scale = min(1.0, max_norm / (10 * 2**0.5))
    torch.testing.assert_close(models["D"].weight, torch.full((1, 2), -10.0 * d_scale))
