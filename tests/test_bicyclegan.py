"""BicycleGAN (Zhu et al. 2017): each loss term by hand (weights, which network gets which
gradient, what is detached) and the multimodal run contract (``--samples``, ``--seed``,
``--grid``, ``--style-from``, bad values). The plugin contract (train, reload, resume, ONNX
parity with the code z as a second graph input) runs in ``tests/test_plugin_contract.py``."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from translate_bicyclegan import BicycleGANConfig, plugin
from translate_bicyclegan.plugin import bicycle_terms
from typer.testing import CliRunner

from translate.config import GANConfig
from translate.losses.objective import GANObjective

runner = CliRunner()


class AddG(nn.Module):
    """G(a, z) = a + w * mean(z): one parameter, so gradients are easy to follow."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))

    def forward(self, a: Tensor, z: Tensor) -> Tensor:
        return a + self.w * z.mean(1)[:, None, None, None]


class MeanE(nn.Module):
    """E(b) = (v * mean(b) in every entry, log-variance 0): one parameter v."""

    def __init__(self, nz: int) -> None:
        super().__init__()
        self.nz = nz
        self.v = nn.Parameter(torch.tensor(1.0))

    def forward(self, b: Tensor) -> tuple[Tensor, Tensor]:
        mu = (self.v * b.mean((1, 2, 3)))[:, None].expand(-1, self.nz)
        return mu, torch.zeros_like(mu)


def test_bicycle_terms_by_hand() -> None:
    # b = 0.5 everywhere -> mu = 0.5, logvar = 0: z_encoded = 0.5 + eps; KL per sample
    # 1/2 * nz * 0.25; G(a, z) = a + mean(z); L1 = |a + mean(z_enc) - b|
    nz = 2
    models = {"G": AddG(), "E": MeanE(nz)}
    a = torch.zeros(1, 3, 2, 2)
    b = torch.full((1, 3, 2, 2), 0.5)
    eps = torch.tensor([[0.2, -0.4]])
    z_random = torch.tensor([[1.0, 3.0]])
    t = bicycle_terms(models, a, b, z_random, eps)
    assert t["kl"].item() == pytest.approx(0.5 * nz * 0.25)
    z_enc_mean = 0.5 + (0.2 - 0.4) / 2
    assert t["l1"].item() == pytest.approx(abs(z_enc_mean - 0.5))
    assert torch.allclose(t["fake_random"], torch.full((1, 3, 2, 2), 2.0))


class Ctx:
    """A StepContext recording each group's loss and its gradient on every model."""

    def __init__(self, models: dict[str, nn.Module]) -> None:
        self.models = models
        self.gan = GANObjective(GANConfig(gan_loss="lsgan"))
        self.update_generator = True
        self.device = torch.device("cpu")
        self.step = 0
        self.losses: dict[str, float] = {}
        self.grads: dict[str, dict[str, float]] = {}

    def autocast(self):
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def frozen(self, *names: str):
        params = [p for n in names for p in self.models[n].parameters()]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    def optimize(self, group: str, loss: Tensor) -> None:
        for m in self.models.values():
            m.zero_grad(set_to_none=True)
        loss.backward()
        self.losses[group] = loss.item()
        self.grads[group] = {
            n: sum(float(p.grad.abs().sum()) for p in m.parameters() if p.grad is not None)
            for n, m in self.models.items()
        }


def tiny(**changes) -> tuple[BicycleGANConfig, dict[str, nn.Module]]:
    cfg = dataclasses.replace(plugin.tiny_config(Path(".")), **changes)
    torch.manual_seed(0)
    return cfg, plugin.build_models(cfg)


def batch(n: int = 2) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"input": torch.rand(n, 3, 32, 32, generator=g) * 2 - 1,
            "target": torch.rand(n, 3, 32, 32, generator=g) * 2 - 1}  # fmt: skip


ONLY = {"lambda_l1": 0.0, "lambda_kl": 0.0, "lambda_z": 0.0, "lambda_gan": 0.0, "lambda_gan2": 0.0}


def test_latent_term_trains_g_not_e() -> None:
    # the paper's detach rule (Sec. 3.4): |z - E(G(A, z))| updates G only
    cfg, models = tiny(**{**ONLY, "lambda_z": 0.5})
    ctx = Ctx(models)
    logs = plugin.train_step(ctx, batch(), cfg)
    assert ctx.losses["G"] == pytest.approx(0.5 * logs["z_L1"], rel=1e-5)
    assert ctx.grads["G"]["G"] > 0 and ctx.grads["G"]["E"] == 0


def test_kl_term_trains_e_only_with_its_weight() -> None:
    cfg, models = tiny(**{**ONLY, "lambda_kl": 0.01})
    ctx = Ctx(models)
    logs = plugin.train_step(ctx, batch(), cfg)
    assert ctx.losses["G"] == pytest.approx(0.01 * logs["KL"], rel=1e-5)
    assert ctx.grads["G"]["E"] > 0 and ctx.grads["G"]["G"] == 0


def test_reconstruction_trains_g_and_e() -> None:
    cfg, models = tiny(**{**ONLY, "lambda_l1": 10.0})
    ctx = Ctx(models)
    logs = plugin.train_step(ctx, batch(), cfg)
    assert ctx.losses["G"] == pytest.approx(10.0 * logs["G_L1"], rel=1e-5)
    assert ctx.grads["G"]["G"] > 0 and ctx.grads["G"]["E"] > 0
    assert ctx.grads["G"]["D"] == 0 and ctx.grads["G"]["D2"] == 0


def test_two_discriminators_each_see_their_own_fakes() -> None:
    # cVAE-GAN's D judges G(A, E(B)) against B (first half), cLR-GAN's D2 G(A, z) against the
    # second half's B; the D steps never reach G or E (fakes detached)
    cfg, models = tiny(**{**ONLY, "lambda_gan": 1.0, "lambda_gan2": 2.0})
    ctx = Ctx(models)
    logs = plugin.train_step(ctx, batch(), cfg)
    assert ctx.losses["D"] == pytest.approx(logs["D_loss"], rel=1e-5)
    assert ctx.losses["D2"] == pytest.approx(2.0 * logs["D2_loss"], rel=1e-5)
    for group, trained in (("D", "D"), ("D2", "D2")):
        g = ctx.grads[group]
        assert g[trained] > 0 and g["G"] == 0 and g["E"] == 0
        assert all(v == 0 for n, v in g.items() if n != trained)
    assert ctx.losses["G"] == pytest.approx(logs["G_adv"] + 2.0 * logs["G_adv2"], rel=1e-5)
    assert ctx.grads["G"]["D"] == 0 and ctx.grads["G"]["D2"] == 0


def test_shared_discriminator() -> None:
    cfg, models = tiny(**{**ONLY, "lambda_gan": 1.0, "lambda_gan2": 1.0}, shared_d=True)
    assert "D2" not in models
    ctx = Ctx(models)
    logs = plugin.train_step(ctx, batch(), cfg)
    assert ctx.losses["D"] == pytest.approx(logs["D_loss"] + logs["D2_loss"], rel=1e-5)
    assert "D2" not in ctx.losses


def test_where_add_all_takes_z_at_every_level() -> None:
    cfg, models = tiny(where_add="all")
    g = models["G"].eval()
    x = torch.zeros(1, 3, 32, 32)
    z = torch.zeros(1, cfg.nz)
    for level in g.unet.encoder[1:]:
        assert level[1].in_channels > g.unet.encoder[0][0].out_channels // 2
    with torch.no_grad():
        assert not torch.allclose(g(x, z), g(x, z + 1))


def test_defaults_are_the_papers() -> None:
    cfg = BicycleGANConfig(data=Path("."))
    assert (cfg.nz, cfg.lambda_l1, cfg.lambda_kl, cfg.lambda_z) == (8, 10.0, 0.01, 0.5)
    assert plugin.gan_defaults["gan_loss"] == "lsgan"
    assert math.isclose(cfg.lambda_gan, 1.0) and cfg.disc_scales == 2 and not cfg.shared_d
