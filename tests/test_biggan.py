"""cgan's BigGAN-style networks (``--generator biggan``) and the core's orthogonal
regularisation (``--ortho-reg``): shapes, class conditioning, the regulariser's gradient (alone
and as the engine applies it), config errors, and the plugin contract with the biggan networks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from translate_cgan import CGANConfig, CGANPlugin
from translate_cgan.nets import ConditionalDiscriminator

from tests.test_cgan import assert_uses_the_class
from translate.config import GANConfig
from translate.engine.context import TrainContext
from translate.errors import ConfigError
from translate.losses.objective import GANObjective
from translate.losses.orthogonal import orthogonal_regularization
from translate.nn.biggan import BigGANGenerator, ConditionalBatchNorm2d, ResidualDiscriminator
from translate.nn.blocks import SelfAttention2d
from translate.testing import check_plugin_contract


def latent(z: torch.Tensor, label: int, k: int) -> torch.Tensor:
    onehot = torch.zeros(len(z), k)
    onehot[:, label] = 1
    return torch.cat([z, onehot], 1)[:, :, None, None]


@pytest.mark.parametrize(("size", "attention", "extra"), [(8, 0, 2), (16, 8, 0), (32, 16, 1)])
def test_generator_and_discriminator_shapes(size: int, attention: int, extra: int) -> None:
    torch.manual_seed(0)
    G = BigGANGenerator(
        latent_dim=12, n_classes=3, image_size=size, base_channels=8, extra_blocks=extra,
        shared_dim=16, attention=attention,
    )  # fmt: skip
    x = G(latent(torch.randn(4, 12), 1, 3))
    assert x.shape == (4, 3, size, size) and x.abs().max() <= 1
    assert len(G.blocks) == size.bit_length() - 3 + extra  # one up-block per doubling from 4
    assert sum(isinstance(m, SelfAttention2d) for m in G.modules()) == (1 if attention else 0)
    D = ResidualDiscriminator(
        image_size=size, base_channels=8, extra_blocks=extra, attention=attention // 2
    )
    assert D(x).shape == (4, 1, 1, 1)
    assert D.features(x).shape[-2:] == (4, 4)
    assert sum(isinstance(m, SelfAttention2d) for m in D.modules()) == (1 if attention else 0)
    # spectral norm on every convolution and linear layer of both (but G's shared embedding),
    # the self-attention blocks' query, key and value 1x1 convolutions included (SAGAN, BigGAN)
    weighted = [m for m in [*G.modules(), *D.modules()] if isinstance(m, (torch.nn.Conv2d,
                torch.nn.Linear)) and m is not G.shared]  # fmt: skip
    attention_convs = [a for s in [*G.modules(), *D.modules()] if isinstance(s, SelfAttention2d)
                       for a in (s.query, s.key, s.value)]  # fmt: skip
    assert len(attention_convs) == (6 if attention else 0)
    assert all(any(a is m for m in weighted) for a in attention_convs)
    assert weighted and all(hasattr(m, "parametrizations") for m in weighted)


def test_the_class_changes_the_image_through_the_conditional_batch_norm() -> None:
    torch.manual_seed(0)
    G = BigGANGenerator(latent_dim=8, n_classes=4, image_size=16, base_channels=8, shared_dim=8)
    G.eval()  # batch-norm running statistics: each image depends on its own latent only
    z = torch.randn(3, 8)
    a, b, a2 = G(latent(z, 0, 4)), G(latent(z, 2, 4)), G(latent(z, 0, 4))
    assert torch.equal(a, a2)
    assert (a - b).abs().mean() > 1e-3
    # the class enters through the shared embedding, which every block's norm reads
    G.shared.weight.data.zero_()
    assert torch.allclose(G(latent(z, 0, 4)), G(latent(z, 2, 4)))


def test_conditional_batch_norm_gain_is_one_plus_the_projection() -> None:
    """BigGAN's conditional BN (de Vries et al. 2017): ``BN(x) * (1 + W_g c) + W_b c``, by hand
    on fixed tensors; a zero condition leaves plain batch norm (gain 1, not 0)."""
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(channels=2, cond_dim=3).eval()  # running stats: 0 mean, 1 var
    x = torch.tensor([[[[1.0, -2.0]], [[0.5, 3.0]]]])  # (1, 2, 1, 2)
    c = torch.tensor([[1.0, -1.0, 2.0]])
    with torch.no_grad():
        w_g, w_b = cbn.gain.weight, cbn.bias.weight  # (2, 3), spectrally normalised
        normed = x / (1 + 1e-5) ** 0.5
        expected = normed * (1 + c @ w_g.T)[:, :, None, None] + (c @ w_b.T)[:, :, None, None]
        torch.testing.assert_close(cbn(x, c), expected, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(cbn(x, torch.zeros(1, 3)), normed, rtol=1e-6, atol=1e-6)


def test_hierarchical_latent_reaches_every_block() -> None:
    """z is split in chunks: the first feeds the input layer, each further one a block."""
    torch.manual_seed(0)
    G = BigGANGenerator(latent_dim=9, n_classes=2, image_size=16, base_channels=8, shared_dim=4)
    G.eval()
    assert G.chunks == [3, 3, 3]
    z = torch.randn(2, 9)
    base = G(latent(z, 0, 2))
    for start in (0, 3, 6):  # changing any one chunk changes the image
        other = z.clone()
        other[:, start : start + 3] += 1
        assert (G(latent(other, 0, 2)) - base).abs().mean() > 1e-4


def test_residual_discriminator_conditionings() -> None:
    torch.manual_seed(0)
    for conditioning in ("concat", "projection", "acgan"):
        D = ConditionalDiscriminator(
            image_size=16, n_classes=3, conditioning=conditioning, base_channels=8,
            architecture="biggan", attention=8,
        ).eval()  # fmt: skip
        assert_uses_the_class(D, conditioning)


def test_orthogonal_regularization_gradient_matches_its_formula() -> None:
    """d/dW ||W W^T * (1 - I)||_F^2 = 4 (W W^T * (1 - I)) W (BigGAN, Eq. 3); zero for
    orthogonal rows, whatever their norms."""
    torch.manual_seed(0)
    w = torch.randn(5, 3, 2, 2, requires_grad=True)
    orthogonal_regularization([w]).backward()
    m = w.detach().reshape(5, -1)
    off = (m @ m.T) * (1 - torch.eye(5))
    assert torch.allclose(w.grad.reshape(5, -1), 4 * off @ m, atol=1e-5)
    q, _ = torch.linalg.qr(torch.randn(6, 6))
    scaled = q * torch.tensor([1.0, 2, 3, 4, 5, 6])[:, None]  # orthogonal rows, unequal norms
    assert orthogonal_regularization([scaled]).item() < 1e-8


@pytest.mark.parametrize("amp", ["none", "fp16"])
def test_engine_adds_ortho_reg_to_generator_groups_only(amp: str) -> None:
    """--ortho-reg through the engine: with SGD (lr 1) and a zero loss, G's weight moves by
    exactly beta times the formula's gradient (fp16: through the gradient scaler, which must
    unscale it like the loss's); exempt parameters, biases and D do not move."""
    torch.manual_seed(0)
    G = BigGANGenerator(latent_dim=4, n_classes=2, image_size=8, base_channels=8, shared_dim=4)
    D = torch.nn.Linear(3, 3)
    models = {"G": G, "D": D}
    opts = {k: torch.optim.SGD(m.parameters(), lr=1.0) for k, m in models.items()}
    beta = 1e-2
    ctx = TrainContext(
        models=models, optimizers=opts, device=torch.device("cpu"), amp=amp,
        gan=GANObjective(GANConfig()), seed=0, ortho_reg=beta,
    )  # fmt: skip
    weight = G.out.parametrizations.weight.original  # a spectrally normalised conv's raw weight
    with torch.no_grad():  # not orthogonal (BigGAN initialises orthogonally: no gradient)
        weight.copy_(torch.randn_like(weight))
    before = {n: p.detach().clone() for n, p in [*G.named_parameters(), *D.named_parameters()]}
    m = weight.detach().reshape(weight.shape[0], -1)
    expected = m - beta * 4 * ((m @ m.T) * (1 - torch.eye(len(m)))) @ m
    assert (expected - m).abs().max() > 1e-2  # a step the test can see
    for name in ("G", "D"):
        ctx.optimize(name, sum(p.sum() for p in models[name].parameters()) * 0)
    assert torch.allclose(weight.detach().reshape(len(m), -1), expected, atol=1e-6)
    assert ctx.last_ortho is not None and ctx.last_ortho > 0
    assert torch.equal(G.shared.weight, before["shared.weight"])  # BigGAN's exemption
    assert torch.equal(G.out.bias, before["out.bias"])  # one-dimensional: not regularised
    assert torch.equal(D.weight, before["weight"])  # discriminators are not regularised


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="attention: no biggan network has 8-pixel"):
        CGANConfig(data=tmp_path, image_size=32, attention=8, generator="dcgan")
    with pytest.raises(ConfigError, match="attention: no biggan network has 64-pixel"):
        CGANConfig(data=tmp_path, image_size=32, attention=64, generator="biggan")
    with pytest.raises(ConfigError, match="latent_dim: biggan splits z into 4 chunks"):
        CGANConfig(data=tmp_path, image_size=32, latent_dim=3, generator="biggan")
    narrow = CGANConfig(
        data=tmp_path, image_size=8, latent_dim=8, base_channels=8, generator="biggan",
        attention=8, classes="a,b",
    )  # fmt: skip
    with pytest.raises(ConfigError, match="attention: G has 4 channels at 8-pixel maps"):
        CGANPlugin().build_models(narrow)  # SAGAN needs 8: one line, not a traceback
    with pytest.raises(ConfigError, match="ortho_reg"):
        GANConfig(ortho_reg=-1.0)
    cfg = CGANConfig(data=tmp_path, image_size=32, generator="dcgan", discriminator="biggan")
    assert cfg.d_architecture == "biggan" and cfg.attention_sites == (False, False)


class BigGANCGAN(CGANPlugin):
    """cgan with the biggan networks (self-attention in G and D) and orthogonal regularisation
    for the contract test."""

    gan_defaults: ClassVar[Mapping[str, Any]] = {**CGANPlugin.gan_defaults, "ortho_reg": 1e-4}

    def tiny_config(self, data_root: Path) -> CGANConfig:
        return CGANConfig(
            data=data_root, image_size=16, latent_dim=8, base_channels=8, generator="biggan",
            attention=8, embedding_dim=8,
        )  # fmt: skip


def test_contract_with_the_biggan_networks(tmp_path: Path) -> None:
    report = check_plugin_contract(BigGANCGAN(), tmp_path)
    assert report["losses"]
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert '"G_ortho"' in metrics  # the engine applied and logged --ortho-reg
