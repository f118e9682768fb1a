"""ADA (Karras et al. 2020, "Training GANs with Limited Data") by hand: the pipeline at p = 0
is the identity, its exact transforms at p = 1, the adaptive p's direction and speed, the
objective applying it to images only, and the engine logging, adjusting and checkpointing p."""

from __future__ import annotations

import pytest
import torch

from translate.config import GANConfig
from translate.errors import ConfigError
from translate.losses.ada import PIPELINES, AdaptiveAugment
from translate.losses.objective import GANObjective


def _images(b: int = 6, size: int = 8) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(b, 3, size, size) * 2 - 1


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_p_zero_is_the_identity(pipeline: str) -> None:
    x = _images()
    ada = AdaptiveAugment(pipeline, p=0.0)
    assert torch.equal(ada.geometry(x), torch.eye(3).expand(6, 3, 3))
    assert torch.equal(ada.colour(x), torch.eye(4).expand(6, 4, 4))
    assert torch.equal(ada(x), x)


def test_p_one_changes_every_pipeline() -> None:
    x = _images()
    for pipeline in PIPELINES:
        torch.manual_seed(1)
        assert not torch.allclose(AdaptiveAugment(pipeline, p=1.0)(x), x), pipeline


def _one_op(op: str, p: float = 1.0) -> AdaptiveAugment:
    ada = AdaptiveAugment("bgc", p=p)
    ada.ops = (op,)
    return ada


def test_blit_transforms_are_exact_pixel_permutations() -> None:
    x = _images(b=16)
    torch.manual_seed(2)
    flipped = _one_op("xflip")(x)
    for a, b in zip(flipped, x, strict=True):  # each image: itself or its mirror, exactly
        assert torch.allclose(a, b, atol=1e-6) or torch.allclose(a, b.flip(-1), atol=1e-6)
    assert any(not torch.allclose(a, b) for a, b in zip(flipped, x, strict=True))
    torch.manual_seed(3)
    turned = _one_op("rotate90")(x)
    for a, b in zip(turned, x, strict=True):
        assert any(torch.allclose(a, torch.rot90(b, k, (1, 2)), atol=1e-6) for k in range(4))
    torch.manual_seed(4)
    shifted = _one_op("xint")(x)
    for a, b in zip(shifted, x, strict=True):  # integer shifts: only values of the image
        values = b.flatten(1).T  # (H*W, 3) pixels
        dist = torch.cdist(a.flatten(1).T, values, compute_mode="donot_use_mm_for_euclid_dist")
        dist = dist.min(1).values
        assert float(dist.max()) < 1e-5


def test_lumaflip_negates_grey_images_about_the_luma_axis() -> None:
    grey = torch.rand(16, 1, 4, 4).expand(16, 3, 4, 4) * 2 - 1
    torch.manual_seed(5)
    out = _one_op("lumaflip")(grey)
    flips = [bool(torch.allclose(a, -b, atol=1e-6)) for a, b in zip(out, grey, strict=True)]
    keeps = [bool(torch.allclose(a, b, atol=1e-6)) for a, b in zip(out, grey, strict=True)]
    assert all(f or k for f, k in zip(flips, keeps, strict=True)) and any(flips) and any(keeps)


def test_saturation_and_hue_keep_grey_pixels() -> None:
    grey = torch.rand(8, 1, 4, 4).expand(8, 3, 4, 4) * 2 - 1
    for op in ("saturation", "hue"):
        torch.manual_seed(6)
        assert torch.allclose(_one_op(op)(grey), grey, atol=1e-5), op


def test_p_rises_when_d_calls_reals_real_and_falls_otherwise() -> None:
    ada = AdaptiveAugment("bgc", p=0.5, target=0.6, interval=4, kimg=500)
    for _ in range(4):  # 4 steps of 8 reals, all judged real: r_t = 1 > 0.6
        ada.observe(torch.full((8, 1), 3.0))
    rt = ada.adjust()
    assert rt == 1.0
    assert ada.p == pytest.approx(0.5 + 32 / 500_000)
    for _ in range(4):  # r_t = -1 < 0.6
        ada.observe(torch.full((8, 1), -1.0))
    ada.adjust()
    assert ada.p == pytest.approx(0.5)
    for _ in range(4):  # half and half: r_t = 0 < 0.6
        ada.observe(torch.tensor([[1.0], [-1.0]] * 4))
    assert ada.adjust() == 0.0 and ada.p < 0.5
    assert ada.pending() == (0.0, 0)  # the sums restart after each adjustment


def test_p_goes_from_zero_to_one_in_kimg_thousand_images_and_stays_in_range() -> None:
    ada = AdaptiveAugment("bgc", p=0.0, target=0.6, kimg=500)
    images = 0
    for _ in range(20_000):  # bounded: a p that never rises fails below, not hangs
        if ada.p >= 1.0:
            break
        ada.adjust(sign_sum=32.0, count=32)  # 32 reals per adjustment, all positive
        images += 32
    assert images == pytest.approx(500_000, abs=32)
    ada.adjust(sign_sum=32.0, count=32)
    assert ada.p == 1.0  # clamped
    fixed = AdaptiveAugment("bgc", p=0.3)  # no target: p never moves
    assert fixed.adjust(sign_sum=8.0, count=8) is None and fixed.p == 0.3


def test_state_round_trip() -> None:
    ada = AdaptiveAugment("bgc", p=0.25, target=0.6)
    ada.observe(torch.ones(3, 1))
    other = AdaptiveAugment("bgc", target=0.6)
    other.load_state_dict(ada.state_dict())
    assert other.p == 0.25 and other.pending() == (3.0, 3)


def test_objective_augments_images_never_conditions_and_observes_reals() -> None:
    gan = GANObjective(GANConfig(ada_p=1.0))
    assert gan.ada is not None and not gan.ada.adaptive
    seen: list[torch.Tensor] = []

    def D(x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        seen.append(x.detach().clone())
        return x.mean(dim=(1, 2, 3)).view(-1, 1) * 0 + 1.0

    cond = torch.rand(4, 2, 8, 8)
    real = torch.cat([cond, _images(4)], 1)
    fake = torch.cat([cond, _images(4).flip(0)], 1)
    torch.manual_seed(7)
    gan.discriminator_loss(D, real, fake, condition_channels=2)
    for x in seen:
        assert torch.equal(x[:, :2], cond)  # the condition map untouched
    assert not torch.allclose(seen[0][:, 2:], real[:, 2:])  # the image augmented
    assert gan.ada.pending() == (4.0, 4)  # D's logits on the 4 reals, all positive


def test_ada_options_are_validated() -> None:
    assert not GANConfig().ada_enabled
    assert GANConfig(ada_target=0.6).ada_enabled
    with pytest.raises(ConfigError, match="ada_target"):
        GANConfig(ada_target=1.5)
    with pytest.raises(ConfigError, match="ada_p"):
        GANConfig(ada_p=-0.1)
    with pytest.raises(ConfigError, match="ada_pipeline"):
        GANConfig(ada_target=0.6, ada_pipeline="bgcfnc")
    with pytest.raises(ConfigError, match="pick one"):
        GANConfig(ada_target=0.6, diff_augment="color")
    with pytest.raises(ConfigError, match="ema_kimg"):
        GANConfig(ema_kimg=10, ema_decay=0.999)


def test_p_has_its_own_panel_in_the_curves() -> None:
    from translate.engine.curves import family

    assert family("ada_p") == family("ada_rt") == "augment"
    assert family("D_adv") == "discriminator"  # the other families unchanged
