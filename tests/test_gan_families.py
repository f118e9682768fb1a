"""GAN families and stabilisers: the engine's pieces on their own, then the 2-D ring behaviour.

The ring test trains small MLPs on the classic ring of 8 Gaussians through the same objective,
model transforms, optimisers and step context the plugins use (``translate.engine.ring``), and
checks that the stable families cover the modes with most samples near one.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import Tensor, nn

from translate.config import GANConfig
from translate.engine.context import TrainContext
from translate.engine.ema import ModelEMA
from translate.engine.ring import RingTask, evaluate, mlp, train_ring
from translate.engine.transforms import apply_gan_transforms
from translate.errors import ConfigError
from translate.losses.objective import GANObjective
from translate.nn import MultiscaleDiscriminator, PatchDiscriminator, ResnetGenerator, UnetGenerator
from translate.nn.gradnorm import gradient_normalized
from translate.nn.minibatch_std import MinibatchStdDev, add_minibatch_std
from translate.nn.surgery import add_self_attention, apply_spectral_norm, has_spectral_norm

# ------------------------------------------------------------------ model transforms


def _sigma(weight: Tensor) -> float:
    return torch.linalg.matrix_norm(weight.detach().flatten(1), ord=2).item()


def test_spectral_norm_transform_normalises_every_layer() -> None:
    torch.manual_seed(0)
    d = PatchDiscriminator(in_channels=6, base_channels=8, n_layers=2, norm="none")
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert apply_spectral_norm(d) == len(convs) and apply_spectral_norm(d) == 0  # idempotent
    d.train()
    for _ in range(30):  # power iterations converge during training forwards
        d(torch.randn(2, 6, 32, 32))
    d.eval()
    for conv in convs:
        assert has_spectral_norm(conv)
        assert _sigma(conv.weight) == pytest.approx(1.0, abs=0.05)
    # generators too (SAGAN), transposed convolutions included
    g = UnetGenerator(in_channels=3, out_channels=3, depth=3, base_channels=8, norm="none")
    apply_spectral_norm(g)
    assert all(
        has_spectral_norm(m) for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    )


def test_self_attention_is_inserted_at_one_eighth_and_starts_as_identity() -> None:
    torch.manual_seed(0)
    d = PatchDiscriminator(in_channels=3, base_channels=8, n_layers=3, norm="instance")
    x = torch.randn(2, 3, 64, 64)
    before = d(x)
    assert add_self_attention(d) == 1
    site = d.blocks[2][0]  # the third stride-2 convolution: 1/8 resolution
    assert isinstance(site, nn.Sequential) and type(site[1]).__name__ == "SelfAttention2d"
    assert torch.allclose(d(x), before)  # gamma = 0
    # a ResNet generator never reaches 1/8: the deepest (1/4) level gets it
    g = ResnetGenerator(in_channels=3, out_channels=3, base_channels=8, n_blocks=1)
    add_self_attention(g)
    assert type(g.down[3][1]).__name__ == "SelfAttention2d"
    # one per scale of a multi-scale discriminator
    ms = MultiscaleDiscriminator(in_channels=3, n_scales=2, base_channels=8, n_layers=2)
    assert add_self_attention(ms) == 2


def test_minibatch_std_layer_and_insertion() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5)
    out = MinibatchStdDev(group_size=2)(x)
    assert out.shape == (4, 4, 5, 5) and torch.equal(out[:, :3], x)
    # groups of 2: samples (0, 2) and (1, 3) (StyleGAN2's layout)
    for n, (a, b) in enumerate([(0, 2), (1, 3), (0, 2), (1, 3)]):
        expected = ((x[a] - x[b]).abs() / 2 + 0).pow(2).add(1e-8).sqrt().mean()
        assert out[n, 3, 0, 0].item() == pytest.approx(expected.item(), rel=1e-5)
    assert MinibatchStdDev(group_size=4)(torch.randn(6, 2)).shape == (6, 3)  # group 3
    d = PatchDiscriminator(in_channels=3, base_channels=8, n_layers=2, norm="none")
    y = torch.randn(4, 3, 32, 32)
    before = d(y)
    assert add_minibatch_std(d, group_size=4) == 1
    assert torch.allclose(d(y), before, atol=1e-6)  # the new input channel starts at zero
    assert isinstance(d.blocks[-1][0], MinibatchStdDev) and d.blocks[-1][1].in_channels == 33
    assert add_minibatch_std(MultiscaleDiscriminator(in_channels=3, n_scales=2), group_size=2) == 2


def test_transforms_by_model_name_and_refusals() -> None:
    torch.manual_seed(0)

    def models() -> dict[str, nn.Module]:
        return {
            "G": UnetGenerator(in_channels=3, out_channels=3, depth=4, base_channels=8),
            "D": PatchDiscriminator(in_channels=6, base_channels=8, n_layers=2),
        }

    m = apply_gan_transforms(models(), GANConfig(spectral_norm="d", minibatch_std=2))
    assert any(has_spectral_norm(x) for x in m["D"].modules())
    assert not any(has_spectral_norm(x) for x in m["G"].modules())
    assert any(isinstance(x, MinibatchStdDev) for x in m["D"].modules())
    with pytest.raises(ConfigError, match="self_attention: model D never downsamples"):
        apply_gan_transforms(
            {"D": nn.Sequential(nn.Conv2d(3, 16, 1), nn.Conv2d(16, 1, 1))},
            GANConfig(self_attention="d"),
        )
    with pytest.raises(ConfigError, match="no generator"):
        apply_gan_transforms({"D": models()["D"]}, GANConfig(spectral_norm="both"))


# ------------------------------------------------------------------ gradient normalisation


def test_gradient_normalisation_matches_eq_8_on_a_linear_d() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(4, 1)
    x = torch.randn(5, 4)
    out = gradient_normalized(lin, x)
    f = lin(x)
    w = lin.weight.detach().norm()
    torch.testing.assert_close(out, f / (w + f.abs()))
    assert (out.abs() < 1).all()
    out.sum().backward()  # the graph reaches D's parameters
    assert lin.weight.grad is not None
    with torch.no_grad():
        assert not gradient_normalized(lin, x).requires_grad


def test_gradient_normalisation_per_scale_and_through_the_input() -> None:
    torch.manual_seed(0)
    d = MultiscaleDiscriminator(in_channels=3, n_scales=2, base_channels=8, n_layers=1)
    g_param = torch.tensor(1.0, requires_grad=True)
    x = g_param * torch.randn(2, 3, 16, 16)
    out = gradient_normalized(d, x)
    assert isinstance(out, list) and len(out) == 2
    assert all((o.abs() <= 1).all() for o in out)
    sum(o.mean() for o in out).backward()
    assert g_param.grad is not None and g_param.grad != 0


# ------------------------------------------------------------------ engine: n_critic, clip, EMA


def _ctx(clip: float = 0.0) -> TrainContext:
    torch.manual_seed(0)
    models = {"G": nn.Linear(2, 2), "D": nn.Linear(2, 1)}
    optimizers = {k: torch.optim.SGD(m.parameters(), lr=1.0) for k, m in models.items()}
    return TrainContext(
        models=models,
        optimizers=optimizers,
        device=torch.device("cpu"),
        amp="none",
        gan=GANObjective(),
        seed=0,
        clip_value=clip,
    )


def test_critic_only_steps_ignore_generator_updates() -> None:
    ctx = _ctx()
    g_before = ctx.models["G"].weight.detach().clone()
    d_before = ctx.models["D"].weight.detach().clone()
    ctx.update_generator = False
    ctx.optimize("G", ctx.models["G"](torch.ones(1, 2)).sum())
    ctx.optimize("D", ctx.models["D"](torch.ones(1, 2)).sum())
    assert torch.equal(ctx.models["G"].weight, g_before) and not ctx.generator_stepped
    assert not torch.equal(ctx.models["D"].weight, d_before)
    ctx.update_generator = True
    ctx.optimize("G", ctx.models["G"](torch.ones(1, 2)).sum())
    assert not torch.equal(ctx.models["G"].weight, g_before) and ctx.generator_stepped


def test_weight_clipping_clamps_discriminator_groups_only() -> None:
    ctx = _ctx(clip=0.01)
    ctx.optimize("D", 100 * ctx.models["D"](torch.ones(1, 2)).sum())
    assert all(p.abs().max() <= 0.01 for p in ctx.models["D"].parameters())
    ctx.optimize("G", 100 * ctx.models["G"](torch.ones(1, 2)).sum())
    assert any(p.abs().max() > 0.01 for p in ctx.models["G"].parameters())


def test_ema_update_is_a_lerp_and_copies_buffers() -> None:
    torch.manual_seed(0)
    g = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    ema = ModelEMA({"G": g}, decay=0.75)
    start = [p.detach().clone() for p in g.parameters()]
    with torch.no_grad():
        for p in g.parameters():
            p.add_(1.0)
    g(torch.randn(4, 2))  # moves the running statistics
    ema.update({"G": g})
    for a, s, p in zip(ema.models["G"].parameters(), start, g.parameters(), strict=True):
        torch.testing.assert_close(a, 0.75 * s + 0.25 * p.detach())
        assert not a.requires_grad
    torch.testing.assert_close(ema.models["G"][1].running_mean, g[1].running_mean)


# ------------------------------------------------------------------ the ring of 8 Gaussians


def test_ring_evaluation_counts_modes_and_quality() -> None:
    task = RingTask()
    centres = task.centres()
    perfect = centres.repeat(100, 1)
    assert evaluate(task, perfect) == (8, 1.0)
    collapsed = centres[:2].repeat(400, 1)
    assert evaluate(task, collapsed) == (2, 1.0)
    assert evaluate(task, torch.zeros(800, 2)) == (0, 0.0)
    assert len(mlp(in_features=2, out_features=1, hidden=8, layers=2)) == 5


#: The stable families, each with the ring budget it is held to: 1000 steps of ``RingTask()``
#: (SAGAN's TTUR optimiser settings). WGAN-GP converges more slowly (its critic keeps unit
#: gradients at the modes, Mescheder et al. 2018): 4000 steps, 2 critic steps per G step and a
#: slower G (lr 5e-4, D 4e-3). Seed 0; 45-60 s in all on one thread of a busy 2-core machine.
#: Margins: over seeds 0-5, WGAN-GP covered 8/8 modes with 0.61-0.68 high quality; over seeds
#: 0-2 the others covered 8/8 with 0.68-0.82.
WGAN_GP_TASK = dataclasses.replace(RingTask(), steps=4000, lr=5e-4, family_defaults=False)
STABLE: dict[str, tuple[GANConfig, RingTask]] = {
    "nonsaturating+r1": (GANConfig(gan_loss="nonsaturating", r1_gamma=0.1), RingTask()),
    "wgan-gp": (GANConfig(gan_loss="wgan-gp", n_critic=2), WGAN_GP_TASK),
    "hinge+sn": (GANConfig(gan_loss="hinge", spectral_norm="d"), RingTask()),
    "rpgan+r1+r2": (GANConfig(gan_loss="rpgan", r1_gamma=0.1, r2_gamma=0.1), RingTask()),
    "lsgan": (GANConfig(gan_loss="lsgan"), RingTask()),
}


@pytest.mark.parametrize("family", list(STABLE))
def test_stable_families_cover_the_ring(family: str) -> None:
    gan, task = STABLE[family]
    result = train_ring(gan, task)
    assert result.modes_covered >= 6, result
    assert result.high_quality > 0.5, result
    assert math.isfinite(result.d_loss) and math.isfinite(result.g_loss)
