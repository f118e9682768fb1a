"""munit's ``--mode unit`` (UNIT, Liu et al. 2017): the terms of Eq. 3 and 5 by hand on stub
networks, their weights in a real step, the shared layers (one model ``S`` trained by both
domains), and a deterministic translation with no code (one answer per input)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn
from translate_munit import plugin
from translate_munit.unit import kl_unit_variance, unit_terms

from tests.test_bicyclegan import Ctx
from tests.test_munit import batch
from tests.test_munit import tiny as munit_tiny


class Affine(nn.Module):
    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = shift

    def forward(self, x: Tensor) -> Tensor:
        return x + self.shift


class Stub(nn.Module):
    """encoder x -> x + enc, decoder z -> z + dec."""

    def __init__(self, enc: float, dec: float) -> None:
        super().__init__()
        self.encoder, self.decoder = Affine(enc), Affine(dec)


def test_kl_with_unit_variance_by_hand() -> None:
    # the official code's KL(N(mu, I) || N(0, I)): mean(mu^2) = (1 + 4 + 9 + 0) / 4
    assert kl_unit_variance(torch.tensor([[1.0, 2.0], [3.0, 0.0]])).item() == pytest.approx(3.5)


def test_terms_by_hand() -> None:
    # E_a(x) = x, G_a(z) = z; E_b(x) = x - 1, G_b(z) = z + 2; shared layers the identity.
    # x_a = 0, x_b = 3: h_a = 0, h_b = 2; noises 0.5, -0.5 -> z_a = 0.5, z_b = 1.5;
    # x_ab = G_b(0.5) = 2.5, x_ba = G_a(1.5) = 1.5; recon = |0.5 - 0| + |3.5 - 3| = 1;
    # kl = 0 + 4; h_ab = E_b(2.5) = 1.5, h_ba = E_a(1.5) = 1.5; with noises 0.25, 1:
    # cyc = |G_a(1.75) - 0| + |G_b(2.5) - 3| = 1.75 + 1.5; kl_cyc = 2.25 + 2.25
    x_a, x_b = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 3.0)
    eps = tuple(torch.full_like(x_a, v) for v in (0.5, -0.5, 0.25, 1.0))
    shared = Stub(0.0, 0.0)
    t = unit_terms(Stub(0.0, 0.0), Stub(-1.0, 2.0), shared, x_a, x_b, eps)
    assert torch.allclose(t["x_ab"], torch.full_like(x_a, 2.5))
    assert torch.allclose(t["x_ba"], torch.full_like(x_a, 1.5))
    for name, want in (("recon_x", 1.0), ("kl", 4.0), ("cyc", 3.25), ("kl_cyc", 4.5)):
        assert t[name].item() == pytest.approx(want), name


def tiny(**changes):
    return munit_tiny(mode="unit", **changes)


def test_generator_loss_is_the_weighted_sum_and_the_shared_layers_learn() -> None:
    cfg, models = tiny(lambda_x=10.0, lambda_kl=0.5, lambda_unit_cyc=3.0)
    assert set(models) == {"G_A", "G_B", "S", "D_A", "D_B"}
    ctx = Ctx(models)
    logs = plugin.train_step(ctx, batch(), cfg)
    want = (
        logs["G_adv"] + 10 * logs["recon_x"] + 0.5 * logs["kl"] + 3 * logs["cyc"]
        + 0.5 * logs["kl_cyc"]
    )  # fmt: skip
    assert ctx.losses["G"] == pytest.approx(want, rel=1e-5)
    assert "recon_s" not in logs and "recon_c" not in logs
    g = ctx.grads["G"]
    assert g["G_A"] > 0 and g["G_B"] > 0 and g["S"] > 0 and g["D_A"] == 0
    group = plugin.param_groups(models)["G"]
    assert len(group) == len({id(p) for p in group})  # the shared layers once
    assert sum(p.numel() for p in group) == sum(
        p.numel() for n in ("G_A", "G_B", "S") for p in models[n].parameters()
    )


def test_translation_goes_through_the_shared_layers_and_takes_no_code() -> None:
    cfg, models = tiny()
    assert plugin.condition_inputs(cfg) == ()
    assert plugin.code_encoder(models, cfg, None) is None
    a2b = plugin.inference_module(models, cfg, None).eval()
    assert a2b.source is models["G_A"] and a2b.target is models["G_B"]
    assert a2b.shared is models["S"]
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        before = a2b(x)
        for p in models["S"].decoder.parameters():
            p.add_(0.1)
        assert not torch.allclose(a2b(x), before)  # the shared decoder block is on the path


def test_unit_needs_a_residual_block_to_share() -> None:
    from translate.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^n_res: --mode unit shares one residual block"):
        tiny(n_res=0)


def test_a_unit_run_translates_once_and_refuses_samples(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from translate.cli.main import app
    from translate.engine.loop import prepare
    from translate.testing import make_unpaired

    data = make_unpaired(tmp_path / "data", n=2)
    prepare(
        "munit", domain_a=data / "A", domain_b=data / "B", load_size=36, crop_size=32,
        base_channels=4, n_res=1, disc_channels=4, disc_layers=2, disc_scales=2, mode="unit",
        max_steps=1, progress=False, run_dir=tmp_path / "run", device="cpu",
    ).run()  # fmt: skip
    image = tmp_path / "in.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    runner = CliRunner()
    r = runner.invoke(
        app, ["run", str(image), "-c", str(tmp_path / "run"), "-o", str(tmp_path / "o")]
    )
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "o" / "in.png").size == (32, 32)
    args = ["run", str(image), "-c", str(tmp_path / "run"), "--samples", "2"]
    r = runner.invoke(app, [*args, "-o", str(tmp_path / "s")])
    assert r.exit_code == 2 and "takes no code" in r.output, r.output
