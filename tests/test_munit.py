"""MUNIT (Huang et al. 2018): each term of Eq. 5 by hand on stub auto-encoders, the weights and
which networks get which gradient in a step, the networks' shapes (no instance norm in the
style encoder), ``--direction`` and the core's step decay. The plugin contract (train, reload,
resume, ONNX parity with the style as a second graph input) runs in
``tests/test_plugin_contract.py``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from translate_munit import MUNITConfig, MUNITInference, plugin
from translate_munit.plugin import munit_terms

from tests.test_bicyclegan import Ctx


class StubAE(nn.Module):
    """content = x, style = mean(x) (B, 1); decode(c, s) = c + s."""

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x, x.mean((1, 2, 3))[:, None]

    def decode(self, c: Tensor, s: Tensor) -> Tensor:
        return c + s[:, :, None, None]


def test_terms_by_hand() -> None:
    # x_a = 0, x_b = 1, s_a = 2, s_b = 3: x_ba = 1 + 2 = 3, x_ab = 0 + 3 = 3; re-encoded
    # contents and styles are all 3. recon_x = |0 - 0| + |(1 + 1) - 1| = 1; recon_c =
    # |3 - 0| + |3 - 1| = 5; recon_s = |3 - 2| + |3 - 3| = 1; cycle = |3 + 0 - 0| + |3 + 1 - 1| = 6
    x_a, x_b = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    t = munit_terms(StubAE(), StubAE(), x_a, x_b, torch.tensor([[2.0]]), torch.tensor([[3.0]]), 1.0)
    assert t["recon_x"].item() == pytest.approx(1.0)
    assert t["recon_c"].item() == pytest.approx(5.0)
    assert t["recon_s"].item() == pytest.approx(1.0)
    assert t["cyc"].item() == pytest.approx(6.0)
    assert torch.allclose(t["x_ab"], torch.full_like(x_a, 3.0))
    assert "cyc" not in munit_terms(
        StubAE(), StubAE(), x_a, x_b, torch.ones(1, 1), torch.ones(1, 1)
    )


def tiny(**changes) -> tuple[MUNITConfig, dict[str, nn.Module]]:
    cfg = dataclasses.replace(plugin.tiny_config(Path(".")), **changes)
    torch.manual_seed(0)
    return cfg, plugin.build_models(cfg)


def batch() -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"A": torch.rand(1, 3, 32, 32, generator=g) * 2 - 1,
            "B": torch.rand(1, 3, 32, 32, generator=g) * 2 - 1}  # fmt: skip


def test_generator_loss_is_the_weighted_sum() -> None:
    cfg, models = tiny(lambda_x=10.0, lambda_c=2.0, lambda_s=3.0)
    ctx = Ctx(models)
    logs = plugin.train_step(ctx, batch(), cfg)
    want = logs["G_adv"] + 10 * logs["recon_x"] + 2 * logs["recon_c"] + 3 * logs["recon_s"]
    assert ctx.losses["G"] == pytest.approx(want, rel=1e-5)
    assert ctx.grads["G"]["D_A"] == 0 and ctx.grads["G"]["D_B"] == 0
    assert ctx.grads["G"]["G_A"] > 0 and ctx.grads["G"]["G_B"] > 0
    # the D step: both discriminators, no gradient into the generators (fakes detached)
    d = ctx.grads["D"]
    assert d["D_A"] > 0 and d["D_B"] > 0 and d["G_A"] == 0 and d["G_B"] == 0
    assert ctx.losses["D"] == pytest.approx(logs["D_loss_A"] + logs["D_loss_B"], rel=1e-5)


def test_style_reconstruction_reaches_the_style_encoder() -> None:
    cfg, models = tiny(lambda_x=0.0, lambda_c=0.0, lambda_s=1.0)
    ctx = Ctx(models)
    with torch.no_grad():
        for d in ("D_A", "D_B"):  # silence the adversarial term: constant D outputs
            for p in models[d].parameters():
                p.zero_()
    plugin.train_step(ctx, batch(), cfg)
    style_grad = sum(float(p.grad.abs().sum()) for p in models["G_A"].style.parameters())
    assert style_grad > 0


def test_style_encoder_has_no_instance_norm_and_codes_have_style_dim() -> None:
    cfg, models = tiny()
    g = models["G_A"]
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in g.style.modules())
    assert any(isinstance(m, nn.InstanceNorm2d) for m in g.content.modules())
    c, s = g.encode(torch.zeros(2, 3, 32, 32))
    assert s.shape == (2, cfg.style_dim) and c.shape[-1] == 32 // 2**cfg.n_downsample


def test_direction_picks_the_networks() -> None:
    cfg, models = tiny()
    a2b = plugin.inference_module(models, cfg, MUNITInference("a2b"))
    b2a = plugin.inference_module(models, cfg, MUNITInference("b2a"))
    assert a2b.source is models["G_A"] and a2b.target is models["G_B"]
    assert b2a.source is models["G_B"] and b2a.target is models["G_A"]
    assert plugin.code_encoder(models, cfg, MUNITInference("a2b")) is models["G_B"].style
    x, s = torch.zeros(1, 3, 32, 32), torch.randn(2, cfg.style_dim)
    with torch.no_grad():
        out = a2b.eval()(x.expand(2, -1, -1, -1), s)
    assert out.shape == (2, 3, 32, 32) and not torch.allclose(out[0], out[1])


def test_defaults_are_the_papers() -> None:
    cfg = MUNITConfig(domain_a=Path("a"), domain_b=Path("b"))
    assert (cfg.style_dim, cfg.lambda_x, cfg.lambda_c, cfg.lambda_s) == (8, 10.0, 1.0, 1.0)
    assert cfg.disc_scales == 3 and plugin.gan_defaults["gan_loss"] == "lsgan"
    d = plugin.train_defaults
    assert (d["lr"], d["beta1"], d["beta2"]) == (1e-4, 0.5, 0.999)


def test_step_decay_by_hand() -> None:
    cfg = MUNITConfig(domain_a=Path("a"), domain_b=Path("b"))
    assert cfg.lr_step == 100_000
    assert [plugin.lr_multiplier(s, cfg) for s in (0, 99_999, 100_000, 250_000)] == [
        1.0, 1.0, 0.5, 0.25,
    ]  # fmt: skip


def test_instance_normalized_mse_by_hand() -> None:
    from translate.losses.perceptual import instance_normalized_mse

    # channel [1, 3]: mean 2, variance 1 -> [-1, 1] / sqrt(1 + eps); channel [5, 5]: -> [0, 0]
    fake, real = torch.tensor([[[[1.0, 3.0]]]]), torch.tensor([[[[5.0, 5.0]]]])
    assert instance_normalized_mse(fake, real).item() == pytest.approx(1 / (1 + 1e-5))
    # a channel's scale and shift (its style) do not count, its pattern (content) does
    assert instance_normalized_mse(fake, 7 * fake - 4).item() == pytest.approx(0.0, abs=1e-6)
    flipped = fake.flip(-1)
    assert instance_normalized_mse(fake, flipped).item() == pytest.approx(4 / (1 + 1e-5))


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from translate.losses.perceptual import vgg19_features

    torch.manual_seed(0)
    features = vgg19_features(26)
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path


def test_perceptual_term_by_hand(vgg_weights: Path) -> None:
    """App. B's domain-invariant perceptual loss: x_ab against x_a and x_ba against x_b on
    instance-normalised relu4_4 features, computed here from the raw VGG layers."""
    from translate.losses.perceptual import MUNIT_LAYERS, VGGLoss, vgg19_features

    vgg = VGGLoss(vgg_weights, MUNIT_LAYERS, distance="in_mse")
    raw = vgg19_features(26)
    raw.load_state_dict({k[9:]: v for k, v in torch.load(vgg_weights).items()})
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def feats(x: Tensor) -> Tensor:
        f = raw(((x + 1) / 2 - mean) / std)
        mu, var = f.mean((2, 3), keepdim=True), f.var((2, 3), unbiased=False, keepdim=True)
        return (f - mu) / (var + 1e-5).sqrt()

    cfg, models = tiny()
    b = batch()
    s_a, s_b = torch.randn(1, cfg.style_dim), torch.randn(1, cfg.style_dim)
    t = munit_terms(models["G_A"], models["G_B"], b["A"], b["B"], s_a, s_b, 0.0, vgg)
    with torch.no_grad():
        want = ((feats(t["x_ba"]) - feats(b["B"])) ** 2).mean() + (
            (feats(t["x_ab"]) - feats(b["A"])) ** 2
        ).mean()
    assert t["vgg"].item() == pytest.approx(want.item(), rel=1e-4)
    t["vgg"].backward()  # it trains both generators (the translations), never VGG
    for name in ("G_A", "G_B"):
        assert sum(float(p.grad.abs().sum()) for p in models[name].decoder.parameters()) > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_generator_loss_adds_the_weighted_perceptual_term(vgg_weights: Path) -> None:
    cfg, models = tiny(vgg_weights=vgg_weights, lambda_vgg=3.0)
    ctx = Ctx(models)
    logs = plugin.train_step(ctx, batch(), cfg)
    want = logs["G_adv"] + 10 * logs["recon_x"] + logs["recon_c"] + logs["recon_s"]
    assert logs["G_vgg"] > 0
    assert ctx.losses["G"] == pytest.approx(want + 3 * logs["G_vgg"], rel=1e-5)
    assert "G_vgg" not in plugin.train_step(Ctx(models), batch(), tiny()[0])


def test_a_missing_vgg_file_is_one_line(tmp_path: Path) -> None:
    from translate.errors import ConfigError

    cfg = tiny(vgg_weights=tmp_path / "nope.pth")[0]
    with pytest.raises(ConfigError, match=r"^vgg_weights: .*nope.pth: no such file$"):
        plugin.finalize_config(cfg)
