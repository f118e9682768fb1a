"""The objective on what the papers constrain: the image a (conditional) D judges.

* Gradient normalisation (Wu et al. 2021, Eq. 8) of a patch discriminator is 1-Lipschitz.
* R1 / R2 / GP / GN take the gradient with respect to the image channels of a conditional D's
  ``cat([condition, image])``, not the condition's.
* DiffAugment's colour operations and instance noise leave the condition (e.g. one-hot labels)
  untouched; geometry moves condition and image together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from tests.conftest import TINY_PIX2PIX_OPTIONS
from translate.config import GANConfig
from translate.engine.loop import prepare
from translate.losses.augment import DiffAugment
from translate.losses.objective import GANObjective
from translate.nn import PatchDiscriminator
from translate.nn.gradnorm import gradient_normalized
from translate.testing import make_labels, make_paired

COND = 3  # condition channels of the linear critic below


class LinearCritic(nn.Module):
    """D(x) = <w, x> per sample, so grad_x D = w: known penalties."""

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.w = nn.Parameter(
            torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(0))
        )

    def forward(self, x: Tensor) -> Tensor:
        return (x * self.w).sum(dim=(1, 2, 3)).view(-1, 1)


def test_gradient_normalised_patch_discriminator_is_1_lipschitz() -> None:
    torch.manual_seed(0)
    d = PatchDiscriminator(in_channels=3, base_channels=8, n_layers=2, norm="none")
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    out = gradient_normalized(d, x)
    assert out.shape[0] == 2
    norms = []
    for value in out.reshape(-1):  # every output the loss sees
        (grad,) = torch.autograd.grad(value, x, retain_graph=True)
        norms.append(float(grad.norm()))
    # piecewise-linear D: ||grad D_hat|| = g^2 / (g + |f|)^2 <= 1 (was up to ~9 per patch)
    assert max(norms) <= 1.0 + 1e-4, norms
    assert max(norms) > 0.1  # and not trivially zero


@pytest.mark.parametrize("penalty", ["r1", "r2", "gp", "gn"])
def test_penalties_take_the_image_gradient_of_a_conditional_d(penalty: str) -> None:
    d = LinearCritic(COND + 3, 4)
    w_image = d.w[:, COND:].detach().flatten()
    real, fake = torch.randn(2, COND + 3, 4, 4), torch.randn(2, COND + 3, 4, 4)
    fake[:, :COND] = real[:, :COND]  # the pair shares its condition
    options = {"r1": {"r1_gamma": 1.0}, "r2": {"r2_gamma": 1.0}, "gp": {"gp_weight": 1.0}}
    if penalty == "gn":
        obj = GANObjective(GANConfig(gradient_norm=True))
        out = obj._logits(d, real, COND)
        f = d(real).flatten()
        expected = f / (w_image.norm() + f.abs())
        torch.testing.assert_close(out.flatten(), expected)
        return
    obj = GANObjective(GANConfig(**options[penalty]))
    _, logs = obj.discriminator_loss(d, real, fake, condition_channels=COND)
    g2 = float(w_image.square().sum())
    expected = (g2**0.5 - 1) ** 2 if penalty == "gp" else g2
    assert logs[penalty] == pytest.approx(expected, rel=1e-5)


def test_colour_augmentation_and_noise_leave_the_condition_alone() -> None:
    torch.manual_seed(0)
    labels = torch.zeros(2, 5, 8, 8)
    labels[:, 1] = 1.0  # one-hot
    image = torch.rand(2, 3, 8, 8) * 2 - 1
    x = torch.cat([labels, image], 1)
    aug = DiffAugment(["color"])
    params = aug.sample(x)
    out = aug.apply(x, params, condition_channels=5)
    assert torch.equal(out[:, :5], labels)
    # the image is jittered exactly as it would be on its own (saturation around its luminance)
    torch.testing.assert_close(out[:, 5:], aug.apply(image, params))
    seen: list[Tensor] = []

    def d(v: Tensor) -> Tensor:
        seen.append(v.detach())
        return v.mean(dim=(1, 2, 3)).view(-1, 1)

    obj = GANObjective(GANConfig(diff_augment="color,translation", instance_noise=0.5))
    obj.discriminator_loss(d, x, x.clone(), condition_channels=5)
    for v in seen:  # constant one-hot maps: never recoloured, noised nor moved
        assert torch.equal(v[:, :5], labels)
        assert not torch.equal(v[:, 5:], image)


def test_diff_augment_moves_a_label_map_with_its_image_and_never_alters_a_class() -> None:
    """DiffAugment augments the image only (Zhao et al. 2020 augment what D judges, the image):
    a spatial condition follows the image's translation (border repeated: still one-hot, still
    aligned with the image), is never cut out nor zero-filled; constant class maps, hence a
    projection discriminator's class vector, come out unchanged."""
    torch.manual_seed(1)
    aug = DiffAugment(["color", "translation", "cutout"])
    b, side = 6, 16
    # a label map with a vertical boundary at a random column per sample; the image shows it
    cols = torch.randint(3, side - 3, (b,))
    right = (torch.arange(side).view(1, 1, side) >= cols.view(b, 1, 1)).float()
    right = right.expand(b, side, side)
    labels = torch.stack([1 - right, right], 1)  # (B, 2, H, W) one-hot
    image = (2 * right - 1).unsqueeze(1).expand(b, 3, side, side)  # -1 left, +1 right
    draw = aug.sample(torch.cat([labels, image], 1))
    out = DiffAugment(["translation", "cutout"]).apply(
        torch.cat([labels, image], 1), draw, condition_channels=2
    )
    cond, moved = out[:, :2], out[:, 2:]
    assert torch.equal(cond.sum(1), torch.ones(b, side, side))  # one-hot everywhere
    assert set(cond.unique().tolist()) == {0.0, 1.0}
    shown = moved[:, 0] != 0  # pixels neither cut out nor shifted in from outside
    assert shown.float().mean() > 0.3
    assert torch.equal(moved[:, 0][shown], (2 * cond[:, 1] - 1)[shown])  # aligned
    assert not torch.equal(cond, labels)  # the map did move with the image

    classes = torch.zeros(b, 3, side, side)
    classes[:, 2] = 1.0  # a class as constant one-hot maps (cgan)
    x = torch.cat([classes, torch.rand(b, 3, side, side) * 2 - 1], 1)
    out = aug.apply(x, aug.sample(x), condition_channels=3)
    assert torch.equal(out[:, :3], classes)
    assert torch.equal(out[:, :3].mean((2, 3)), classes.mean((2, 3)))  # projection D's y


class Spy:
    """Wraps a trainer's objective and records the condition_channels each call passed."""

    def __init__(self, objective: GANObjective) -> None:
        self.objective, self.calls = objective, []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.objective, name)
        if name not in ("discriminator_loss", "generator_loss"):
            return method

        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, kwargs.get("condition_channels", 0)))
            return method(*args, **kwargs)

        return record


@pytest.mark.parametrize("plugin", ["pix2pix", "label2image"])
def test_conditional_plugins_name_their_condition(plugin: str, tmp_path: Path) -> None:
    if plugin == "pix2pix":
        options: dict[str, Any] = {
            "data": make_paired(tmp_path / "d", n_train=2, n_val=1),
            **TINY_PIX2PIX_OPTIONS,
        }
        expected = 3
    else:
        options = {
            "data": make_labels(tmp_path / "d", n_train=2, n_val=1),
            "n_up": 2,
            "crop_size": 16,
            "load_size": 16,
            "base_channels": 4,
            "spade_hidden": 4,
            "disc_channels": 4,
            "disc_layers": 1,
        }
    trainer = prepare(plugin, run_dir=tmp_path / "run", device="cpu", progress=False, **options)
    if plugin == "label2image":
        expected = trainer.plugin_cfg.input_channels
    spy = Spy(trainer.ctx.gan)
    trainer.ctx.gan = spy  # type: ignore[assignment]
    trainer.train_step(next(iter(trainer.loader())))
    assert spy.calls == [("discriminator_loss", expected), ("generator_loss", expected)]
