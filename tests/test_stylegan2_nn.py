"""StyleGAN2's pieces by hand: equalised learning rate, (de)modulation, the mapping network's
truncation and w_avg, style mixing, path-length regularisation and the lazy (periodic) rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from translate.losses.lazy import due, lazy_adam, lazy_scale
from translate.losses.path_length import path_length_penalty
from translate.nn.equalized import LRELU_GAIN, EqualizedConv2d, EqualizedLinear
from translate.nn.stylegan2 import (
    Discriminator,
    Generator,
    MappingNetwork,
    mix_styles,
    modulated_conv2d,
)


def test_equalized_linear_scales_weights_at_run_time_by_lr_mul_over_sqrt_fan_in() -> None:
    torch.manual_seed(0)
    layer = EqualizedLinear(16, 4, lr_mul=0.01, bias_init=1.0)
    assert layer.weight_gain == pytest.approx(0.01 / 4.0)  # lr_mul / sqrt(16)
    # stored N(0, 1) / lr_mul: std about 100
    assert 60 < float(layer.weight.detach().std()) < 140
    assert torch.allclose(layer.bias * 0.01, torch.ones(4))  # bias_init, used times lr_mul
    x = torch.randn(3, 16)
    want = x @ (layer.weight.detach() * 0.01 / 4).T + 1.0
    assert torch.allclose(layer(x), want, atol=1e-5)
    # a gradient step of size lr moves the effective weight by lr_mul * lr / sqrt(fan_in) ...
    # i.e. the gradient of the stored weight carries the runtime gain
    layer(x).sum().backward()
    assert torch.allclose(layer.weight.grad, (0.01 / 4) * x.sum(0).expand(4, 16), atol=1e-5)


def test_equalized_conv_gain_and_lrelu() -> None:
    torch.manual_seed(0)
    conv = EqualizedConv2d(8, 4, 3, activation="lrelu")
    assert conv.weight_gain == pytest.approx(1 / math.sqrt(8 * 9))
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        conv.bias.fill_(0.3)
    ref = F.conv2d(x, conv.weight.detach() / math.sqrt(72), padding=1) + 0.3
    ref = F.leaky_relu(ref, 0.2) * math.sqrt(2)
    assert torch.allclose(conv(x), ref, atol=1e-5)
    assert pytest.approx(math.sqrt(2)) == LRELU_GAIN


def test_demodulation_gives_unit_variance_outputs_for_unit_variance_inputs() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 64, 24, 24)
    weight = torch.randn(32, 64, 3, 3) * 3.0  # any scale
    styles = torch.rand(4, 64) * 4 + 0.1  # any positive per-channel styles
    out = modulated_conv2d(x, weight, styles, demodulate=True)
    inner = out[:, :, 1:-1, 1:-1]  # away from the zero padding
    assert float(inner.var()) == pytest.approx(1.0, abs=0.05)
    per_sample = inner.var(dim=(1, 2, 3))
    assert torch.allclose(per_sample, torch.ones(4), atol=0.08)
    # without demodulation the variance is sum(w'^2), far from 1 here
    raw = modulated_conv2d(x, weight, styles, demodulate=False)
    assert float(raw[:, :, 1:-1, 1:-1].var()) > 10


def test_modulated_conv_equals_a_per_sample_convolution() -> None:
    torch.manual_seed(1)
    x, weight, styles = torch.randn(3, 5, 6, 6), torch.randn(2, 5, 3, 3), torch.randn(3, 5)
    out = modulated_conv2d(x, weight, styles, demodulate=True)
    for b in range(3):
        wb = weight * styles[b].view(1, 5, 1, 1)
        wb = wb / (wb.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()
        assert torch.allclose(out[b : b + 1], F.conv2d(x[b : b + 1], wb, padding=1), atol=1e-5)


def test_mapping_truncation_and_w_avg() -> None:
    torch.manual_seed(0)
    mapping = MappingNetwork(8, 8, num_ws=4, num_layers=2)
    assert all(layer.weight_gain == pytest.approx(0.01 / math.sqrt(8)) for layer in mapping.layers)
    z = torch.randn(5, 8)
    mapping.train()
    ws = mapping(z)
    # w_avg moved from 0 by (1 - 0.995) of the batch mean of w
    assert torch.allclose(mapping.w_avg, 0.005 * ws[:, 0].mean(0), atol=1e-6)
    mapping.eval()
    before = mapping.w_avg.clone()
    ws = mapping(z)
    assert torch.equal(mapping.w_avg, before)  # not in eval mode
    assert torch.allclose(mapping(z, psi=0.0), before.expand(5, 4, 8))
    half = mapping(z, psi=0.5, cutoff=2)
    assert torch.allclose(half[:, :2], before + 0.5 * (ws[:, :2] - before), atol=1e-6)
    assert torch.allclose(half[:, 2:], ws[:, 2:])


def test_style_mixing_crosses_over_once() -> None:
    torch.manual_seed(0)
    G = Generator(8, 8, 16, mapping_layers=2, channel_base=64, channel_max=8)
    z = torch.randn(3, 8)
    ws = G.mapping(z)
    assert torch.equal(mix_styles(G, z, ws, 0.0), ws)
    mixed = mix_styles(G, z, ws, 1.0)
    same = [bool(torch.equal(mixed[:, i], ws[:, i])) for i in range(G.num_ws)]
    cut = same.index(False)
    assert cut >= 1 and not any(same[cut:]) and all(same[:cut]), same


def test_generator_and_discriminator_shapes_and_features() -> None:
    torch.manual_seed(0)
    G = Generator(16, 16, 16, mapping_layers=2, channel_base=128, channel_max=16)
    assert G.num_ws == 2 * 4 - 2  # 2 log2(16) - 2
    ws = G.mapping(torch.randn(2, 16))
    img, features = G.synthesis(ws, "const", return_features=True)
    assert img.shape == (2, 3, 16, 16)
    assert [f.shape[-1] for f in features] == [4, 8, 16]
    # const noise: the same image twice
    assert torch.equal(G.synthesis(ws, "const"), img)
    D = Discriminator(16, channel_base=128, channel_max=16)
    assert D(img).shape == (2, 1)


def test_path_length_penalty_and_its_running_mean_by_hand() -> None:
    torch.manual_seed(0)
    b, layers, dim, c, h, w = 3, 2, 4, 1, 2, 2
    m = torch.randn(dim, c * h * w, requires_grad=True)  # the generator's weights
    ws = torch.randn(b, layers, dim, requires_grad=True)
    images = (ws.sum(1) @ m).view(b, c, h, w)  # a linear generator: J known
    noise = torch.randn(b, c, h, w)
    pl_mean = torch.zeros([])
    penalty = path_length_penalty(images, ws, pl_mean, decay=0.01, noise=noise)
    # by hand: d/dw_l sum(img * y) = m @ y / sqrt(HW) for every layer l
    y = noise.view(b, -1).numpy() / math.sqrt(h * w)
    grads = y @ m.detach().numpy().T  # (B, dim), the same for both layers
    lengths = np.sqrt((grads**2).sum(1))
    a = 0.01 * lengths.mean()
    assert float(pl_mean) == pytest.approx(a, rel=1e-5)
    assert float(penalty) == pytest.approx(((lengths - a) ** 2).mean(), rel=1e-4)
    # the target follows its EMA: a second call moves it by 1% of the remaining gap
    penalty2 = path_length_penalty(images, ws, pl_mean, decay=0.01, noise=noise)
    a2 = a + 0.01 * (lengths.mean() - a)
    assert float(pl_mean) == pytest.approx(a2, rel=1e-5)
    assert float(penalty2) == pytest.approx(((lengths - a2) ** 2).mean(), rel=1e-4)
    # the penalty trains the generator: it has a gradient with respect to its weights
    (g,) = torch.autograd.grad(penalty2, m)
    assert float(g.abs().sum()) > 0


def test_lazy_rule_every_k_steps_scaled_by_k() -> None:
    scales = [lazy_scale(s, 16) for s in range(48)]
    assert [s for s, v in enumerate(scales) if v] == [0, 16, 32]
    assert set(scales) == {0.0, 16.0}
    assert sum(scales[:16]) == 16  # mean weight 1 over a period
    assert [s for s in range(10) if due(s, 4)] == [0, 4, 8]
    assert lazy_scale(5, 1) == 1.0
    lr, betas = lazy_adam(0.002, (0.0, 0.99), 16)
    assert lr == pytest.approx(0.002 * 16 / 17)
    assert betas == pytest.approx((0.0, 0.99 ** (16 / 17)))
    assert lazy_adam(0.002, (0.0, 0.99), 1) == (0.002, (0.0, 0.99))
    with pytest.raises(ValueError, match="interval"):
        lazy_scale(0, 0)
