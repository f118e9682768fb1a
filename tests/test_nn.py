"""Tests for translate.nn: shapes, reference parameter counts, norms, dropout, spectral norm,
self-attention, weight initialisation and gradient flow. CPU only, tiny sizes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from translate.nn import (
    MultiscaleDiscriminator,
    PatchDiscriminator,
    PixelDiscriminator,
    ResnetBlock,
    ResnetGenerator,
    SelfAttention2d,
    UnetGenerator,
    init_weights,
    norm_layer,
    uses_bias,
)

CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count(module: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


def first_conv(module: nn.Module) -> nn.Module:
    return next(m for m in module.modules() if isinstance(m, CONVS))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --------------------------------------------------------------------------------------- norms


def test_norm_layer_kinds() -> None:
    bn = norm_layer("batch", 8)
    assert isinstance(bn, nn.BatchNorm2d) and bn.affine
    inorm = norm_layer("instance", 8)
    assert isinstance(inorm, nn.InstanceNorm2d)
    assert not inorm.affine and not inorm.track_running_stats
    assert isinstance(norm_layer("none", 8), nn.Identity)
    assert uses_bias("batch") is False
    assert uses_bias("instance") is True
    assert uses_bias("none") is True


def test_norm_layer_unknown_kind_names_choices() -> None:
    with pytest.raises(ValueError, match=r"'group'.*'batch', 'instance', 'none'"):
        norm_layer("group", 8)
    with pytest.raises(ValueError):
        uses_bias("layer")
    with pytest.raises(ValueError, match="norm"):
        UnetGenerator(in_channels=3, out_channels=3, depth=3, norm="group")
    with pytest.raises(ValueError):
        PatchDiscriminator(in_channels=3, norm="Batch")


# ---------------------------------------------------------------------------------------- U-Net


def test_unet_shape_and_range() -> None:
    net = UnetGenerator(in_channels=3, out_channels=2, depth=5, base_channels=8)
    assert net.multiple_of == 32
    y = net(torch.randn(2, 3, 32, 32) * 3)  # (B, 3, 32, 32) -> (B, 2, 32, 32)
    assert y.shape == (2, 2, 32, 32)
    assert y.min() >= -1 and y.max() <= 1


def test_unet_depth_2_and_non_square() -> None:
    net = UnetGenerator(in_channels=1, out_channels=3, depth=2, base_channels=4, norm="instance")
    assert net.multiple_of == 4
    assert net(torch.randn(1, 1, 8, 12)).shape == (1, 3, 8, 12)


def test_unet_reference_param_count() -> None:
    # unet_256 of the pix2pix reference (3 -> 3, batch norm, ngf = 64); verified layer-by-layer
    # against the reference's recursive UnetSkipConnectionBlock construction.
    with torch.device("meta"):
        net = UnetGenerator(in_channels=3, out_channels=3)
    assert n_params(net) == 54_413_955
    assert count(net, nn.Dropout) == 3
    # Only the outermost transposed convolution has a bias under batch norm.
    biased = [m for m in net.modules() if isinstance(m, CONVS) and m.bias is not None]
    assert len(biased) == 1 and biased[0].out_channels == 3


def test_unet_channel_widths() -> None:
    with torch.device("meta"):
        net = UnetGenerator(in_channels=3, out_channels=3, depth=8, base_channels=64)
    widths = [seq[-1].num_features for seq in net.encoder[1:-1]]  # encoder norms, levels 1..6
    assert widths == [128, 256, 512, 512, 512, 512]


@pytest.mark.parametrize(
    ("depth", "dropout", "expected"), [(8, 0.5, 3), (5, 0.5, 0), (6, 0.5, 1), (8, 0.0, 0)]
)
def test_unet_dropout_count(depth: int, dropout: float, expected: int) -> None:
    with torch.device("meta"):
        net = UnetGenerator(in_channels=3, out_channels=3, depth=depth, dropout=dropout)
    assert count(net, nn.Dropout) == expected
    assert all(m.p == dropout for m in net.modules() if isinstance(m, nn.Dropout))


def test_unet_eval_is_deterministic_train_is_not() -> None:
    net = UnetGenerator(in_channels=3, out_channels=3, depth=6, base_channels=4, dropout=0.5)
    assert count(net, nn.Dropout) == 1
    x = torch.randn(2, 3, 64, 64)
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
    net.train()
    with torch.no_grad():
        assert not torch.equal(net(x), net(x))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"depth": 1},
        {"depth": 0},
        {"in_channels": 0},
        {"base_channels": -1},
        {"dropout": 1.0},
        {"dropout": -0.1},
    ],
)
def test_unet_invalid_arguments(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"in_channels": 3, "out_channels": 3, "depth": 4} | kwargs
    with pytest.raises(ValueError):
        UnetGenerator(**args)  # type: ignore[arg-type]


def test_constructors_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        UnetGenerator(3, 3)  # type: ignore[misc]
    with pytest.raises(TypeError):
        ResnetGenerator(3, 3)  # type: ignore[misc]
    with pytest.raises(TypeError):
        PatchDiscriminator(3)  # type: ignore[misc]


# --------------------------------------------------------------------------------------- ResNet


def test_resnet_keeps_size() -> None:
    net = ResnetGenerator(in_channels=3, out_channels=1, base_channels=8, n_blocks=2)
    assert net.multiple_of == 4
    y = net(torch.randn(2, 3, 32, 32) * 3)
    assert y.shape == (2, 1, 32, 32)
    assert y.min() >= -1 and y.max() <= 1


def test_resnet_reference_param_count() -> None:
    with torch.device("meta"):
        net = ResnetGenerator(in_channels=3, out_channels=3)  # resnet_9blocks, instance norm
    assert n_params(net) == 11_378_179
    assert count(net, ResnetBlock) == 9
    assert count(net, nn.Dropout) == 0


def test_resnet_variants() -> None:
    net = ResnetGenerator(
        in_channels=3,
        out_channels=3,
        base_channels=4,
        n_blocks=1,
        n_downsampling=3,
        norm="batch",
        dropout=0.5,
    )
    assert net.multiple_of == 8
    assert count(net, nn.Dropout) == 1
    assert count(net, nn.BatchNorm2d) == 1 + 3 + 2 + 3
    assert net(torch.randn(2, 3, 16, 24)).shape == (2, 3, 16, 24)
    with pytest.raises(ValueError):
        ResnetGenerator(in_channels=3, out_channels=3, n_blocks=-1)


def test_resnet_block_is_residual() -> None:
    block = ResnetBlock(channels=4, norm="none")
    for m in block.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    x = torch.randn(1, 4, 6, 6)
    assert torch.equal(block(x), x)


# ------------------------------------------------------------------------------ discriminators


def test_patchgan_70x70_map_size() -> None:
    d = PatchDiscriminator(in_channels=6, base_channels=4)
    assert d(torch.randn(1, 6, 256, 256)).shape == (1, 1, 30, 30)
    assert d(torch.randn(2, 6, 70, 70)).shape == (2, 1, 6, 6)


def test_patchgan_reference_param_count() -> None:
    with torch.device("meta"):
        d = PatchDiscriminator(in_channels=6)  # 70x70, n_layers = 3, batch norm
    assert n_params(d) == 2_768_705


def test_patchgan_features() -> None:
    d = PatchDiscriminator(in_channels=3, base_channels=4, n_layers=2, norm="instance").eval()
    x = torch.randn(2, 3, 32, 32)
    feats = d.forward_features(x)
    assert len(feats) == 2 + 2
    assert [f.shape[1] for f in feats] == [4, 8, 16, 1]
    assert torch.equal(feats[-1], d(x))


def test_pixel_discriminator() -> None:
    d = PixelDiscriminator(in_channels=3, base_channels=8).eval()
    x = torch.randn(2, 3, 9, 7)
    logits = d(x)
    assert logits.shape == (2, 1, 9, 7)
    feats = d.forward_features(x)
    assert len(feats) == 3 and torch.equal(feats[-1], logits)


def test_multiscale_discriminator() -> None:
    d = MultiscaleDiscriminator(in_channels=3, n_scales=3, base_channels=4, n_layers=2).eval()
    x = torch.randn(2, 3, 64, 64)
    logits = d(x)
    assert len(logits) == 3
    sizes = [t.shape[-1] for t in logits]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 3
    assert all(t.shape[:2] == (2, 1) for t in logits)
    feats = d.forward_features(x)
    assert len(feats) == 3 and all(len(f) == 4 for f in feats)
    for f, t in zip(feats, logits, strict=True):
        assert torch.equal(f[-1], t)
    assert count(d, nn.InstanceNorm2d) == 3 * 2


def test_spectral_norm_applied_to_every_conv() -> None:
    for d in (
        PatchDiscriminator(in_channels=3, base_channels=4, spectral_norm=True),
        PixelDiscriminator(in_channels=3, base_channels=4, spectral_norm=True),
        MultiscaleDiscriminator(in_channels=3, n_scales=2, base_channels=4, spectral_norm=True),
    ):
        convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
        assert convs and all(parametrize.is_parametrized(c, "weight") for c in convs)
    # The norm is kept as asked ...
    d = PatchDiscriminator(in_channels=3, base_channels=4, spectral_norm=True, norm="batch")
    assert count(d, nn.BatchNorm2d) == 3
    # ... and dropped only with norm="none".
    d = PatchDiscriminator(in_channels=3, base_channels=4, spectral_norm=True, norm="none")
    assert count(d, nn.BatchNorm2d) + count(d, nn.InstanceNorm2d) == 0
    assert d(torch.randn(1, 3, 32, 32)).shape == (1, 1, 2, 2)
    plain = PatchDiscriminator(in_channels=3, base_channels=4)
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())


# ------------------------------------------------------------------------------ self-attention


def test_self_attention_identity_at_init_and_gamma_grad() -> None:
    attn = SelfAttention2d(channels=16)
    assert isinstance(attn.gamma, nn.Parameter) and attn.gamma.item() == 0.0
    x = torch.randn(2, 16, 5, 6, requires_grad=True)
    y = attn(x)
    assert y.shape == x.shape and torch.equal(y, x)
    (y * torch.randn_like(y)).sum().backward()
    assert attn.gamma.grad is not None and attn.gamma.grad.abs().item() > 0


def test_self_attention_mixes_positions() -> None:
    attn = SelfAttention2d(channels=8)
    with torch.no_grad():
        attn.gamma.fill_(1.0)
    x = torch.randn(1, 8, 4, 4)
    x2 = x.clone()
    x2[..., 0, 0] += 1.0  # perturb one position: every other output position changes
    delta = (attn(x2) - attn(x)).abs()
    assert delta[..., 3, 3].sum() > 0
    with pytest.raises(ValueError, match="channels"):
        SelfAttention2d(channels=4)


# ------------------------------------------------------------------------------ initialisation


def test_init_weights_normal_statistics() -> None:
    net = nn.Sequential(nn.Conv2d(64, 64, 3), nn.BatchNorm2d(256), nn.ConvTranspose2d(64, 32, 4))
    assert init_weights(net) is net
    conv, bn, deconv = net
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert abs(conv.weight.mean().item()) < 0.002
    assert deconv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.count_nonzero(conv.bias) == 0 and torch.count_nonzero(deconv.bias) == 0
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01)
    assert bn.weight.std().item() == pytest.approx(0.02, rel=0.25)
    assert torch.count_nonzero(bn.bias) == 0


@pytest.mark.parametrize("scheme", ["normal", "xavier", "kaiming", "orthogonal"])
def test_init_weights_schemes(scheme: str) -> None:
    lin = nn.Linear(256, 128)
    init_weights(lin, scheme=scheme, gain=0.5)
    w = lin.weight.detach()
    expected = {
        "normal": 0.5,
        "xavier": 0.5 * (2 / (256 + 128)) ** 0.5,
        "kaiming": (2 / 256) ** 0.5,
        "orthogonal": 0.5 / 256**0.5,  # rows orthonormal * gain: entry variance gain^2 / fan_in
    }[scheme]
    assert w.std().item() == pytest.approx(expected, rel=0.1)
    if scheme == "orthogonal":
        torch.testing.assert_close(w @ w.T, 0.25 * torch.eye(128), atol=1e-4, rtol=0)


def test_init_weights_invalid() -> None:
    with pytest.raises(ValueError, match="'uniform'"):
        init_weights(nn.Conv2d(1, 1, 1), scheme="uniform")
    with pytest.raises(ValueError, match="gain"):
        init_weights(nn.Conv2d(1, 1, 1), gain=0.0)


def test_init_weights_spectral_norm() -> None:
    d = PatchDiscriminator(in_channels=3, base_channels=16, spectral_norm=True, norm="none")
    init_weights(d, gain=0.02)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    big = convs[2]  # 32 -> 64 channels, 4x4: 32768 weights
    original = big.parametrizations.weight.original
    assert original.std().item() == pytest.approx(0.02, rel=0.05)
    d.eval()  # no power iteration in eval: the cached singular vectors must already fit
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, rel=0.05)


# --------------------------------------------------------------------------------- gradient flow


@pytest.mark.parametrize(
    "make",
    [
        lambda: UnetGenerator(in_channels=3, out_channels=3, depth=4, base_channels=4),
        lambda: ResnetGenerator(in_channels=3, out_channels=3, base_channels=4, n_blocks=1),
        lambda: PatchDiscriminator(in_channels=3, base_channels=4, n_layers=2),
        lambda: PixelDiscriminator(in_channels=3, base_channels=4, spectral_norm=True),
    ],
)
def test_gradients_reach_first_conv(make: Callable[[], nn.Module]) -> None:
    net = make()
    out = net(torch.randn(2, 3, 16, 16))
    out.sum().backward()
    conv = first_conv(net)
    weight = (
        conv.parametrizations.weight.original
        if parametrize.is_parametrized(conv, "weight")
        else conv.weight
    )
    assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_multiscale_gradients() -> None:
    d = MultiscaleDiscriminator(in_channels=3, n_scales=2, base_channels=4, n_layers=1)
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    sum(t.sum() for t in d(x)).backward()
    assert x.grad is not None
    for sub in d.discriminators:
        assert first_conv(sub).weight.grad is not None


# ------------------------------------------------------------------------------------- export


def test_torch_export_has_no_data_dependent_control_flow() -> None:
    net = nn.Sequential(
        UnetGenerator(in_channels=3, out_channels=8, depth=3, base_channels=4, norm="instance"),
        SelfAttention2d(channels=8),
        ResnetBlock(channels=8),
    ).eval()
    x = torch.randn(1, 3, 16, 16)
    exported = torch.export.export(net, (x,))
    torch.testing.assert_close(exported.module()(x), net(x))
