"""The core pieces of the multimodal families (MUNIT, BicycleGAN): AdaIN, layer norm, the KL
term of a diagonal Gaussian, the reparameterised draw and the latent regression term.

Expected values are computed by hand with ``math`` on tiny tensors.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from translate.losses.latent import kl_normal, latent_l1, reparameterize
from translate.nn.adain import (
    AdaptiveInstanceNorm2d,
    LayerNorm2d,
    StyleMLP,
    adain,
    adain_param_count,
    assign_adain_params,
)


def test_adain_output_has_the_given_mean_and_std() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 4) * 7 + 3
    gamma = torch.tensor([[0.5, 2.0, 1.0], [3.0, 0.25, 1.5]])
    beta = torch.tensor([[1.0, -2.0, 0.0], [0.5, 4.0, -1.0]])
    y = adain(x, gamma, beta, eps=0.0)
    assert torch.allclose(y.mean((2, 3)), beta, atol=1e-5)
    assert torch.allclose(y.std((2, 3), unbiased=False), gamma, atol=1e-5)


def test_adain_by_hand_on_two_pixels() -> None:
    # one channel with values (1, 3): mean 2, std 1 -> normalised (-1, 1) -> *2 + 5 = (3, 7)
    x = torch.tensor([[[[1.0, 3.0]]]])
    y = adain(x, torch.tensor([[2.0]]), torch.tensor([[5.0]]), eps=0.0)
    assert y.flatten().tolist() == pytest.approx([3.0, 7.0])


def test_adain_refuses_a_wrong_gamma_shape() -> None:
    with pytest.raises(ValueError, match="gamma must be"):
        adain(torch.zeros(2, 3, 4, 4), torch.ones(2, 4), torch.zeros(2, 3))


def test_assign_adain_params_gives_each_layer_its_mean_then_std() -> None:
    net = nn.Sequential(AdaptiveInstanceNorm2d(2, eps=0.0), AdaptiveInstanceNorm2d(1, eps=0.0))
    assert adain_param_count(net) == 6
    params = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    assign_adain_params(params, net)
    first, second = net[0], net[1]
    assert first.beta.tolist() == [[1.0, 2.0]] and first.gamma.tolist() == [[3.0, 4.0]]
    assert second.beta.tolist() == [[5.0]] and second.gamma.tolist() == [[6.0]]
    with pytest.raises(ValueError, match=r"expected \(B, 6\)"):
        assign_adain_params(torch.zeros(1, 5), net)


def test_adain_layer_refuses_forward_without_params() -> None:
    with pytest.raises(RuntimeError, match="assign gamma and beta"):
        AdaptiveInstanceNorm2d(2)(torch.zeros(1, 2, 2, 2))


def test_style_mlp_shapes() -> None:
    mlp = StyleMLP(8, 12, hidden=16, layers=3)
    assert mlp(torch.zeros(5, 8)).shape == (5, 12)
    assert sum(isinstance(m, nn.Linear) for m in mlp) == 3


def test_layer_norm_by_hand() -> None:
    # values (0, 2, 4, 6) over C=2, H=1, W=2: mean 3, var 5 -> (x - 3) / sqrt(5)
    ln = LayerNorm2d(2, eps=0.0)
    with torch.no_grad():
        ln.weight.copy_(torch.tensor([1.0, 2.0]))
        ln.bias.copy_(torch.tensor([0.0, 1.0]))
    y = ln(torch.tensor([[[[0.0, 2.0]], [[4.0, 6.0]]]]))
    s = math.sqrt(5.0)
    want = [-3 / s, -1 / s, 2 * 1 / s + 1, 2 * 3 / s + 1]
    assert y.flatten().tolist() == pytest.approx(want, rel=1e-5)


def test_kl_normal_against_the_closed_form() -> None:
    mu = torch.tensor([[0.5, -1.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [math.log(0.5), 0.0]])
    # per sample: 1/2 * sum(mu^2 + var - 1 - log var)
    s0 = 0.5 * ((0.25 + 1 - 1 - 0) + (1 + 2 - 1 - math.log(2.0)))
    s1 = 0.5 * ((0 + 0.5 - 1 - math.log(0.5)) + (4 + 1 - 1 - 0))
    assert kl_normal(mu, logvar).item() == pytest.approx((s0 + s1) / 2, rel=1e-6)
    assert kl_normal(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0


def test_kl_normal_gradient_reaches_mu_and_logvar() -> None:
    mu = torch.tensor([[1.0]], requires_grad=True)
    logvar = torch.tensor([[0.0]], requires_grad=True)
    kl_normal(mu, logvar).backward()
    # d/dmu = mu = 1; d/dlogvar = (exp(logvar) - 1) / 2 = 0
    assert mu.grad.item() == pytest.approx(1.0) and logvar.grad.item() == pytest.approx(0.0)


def test_reparameterize_uses_mu_and_std() -> None:
    g = torch.Generator().manual_seed(3)
    eps = torch.randn((2, 3), generator=torch.Generator().manual_seed(3))
    mu, logvar = torch.ones(2, 3), torch.full((2, 3), math.log(4.0))
    z = reparameterize(mu, logvar, generator=g)
    assert torch.allclose(z, 1 + 2 * eps)


def test_latent_l1_by_hand_and_shape_check() -> None:
    assert latent_l1(torch.tensor([[1.0, -1.0]]), torch.tensor([[0.0, 1.0]])).item() == 1.5
    with pytest.raises(ValueError, match="shapes differ"):
        latent_l1(torch.zeros(2, 8), torch.zeros(2, 4))


def test_latent_regression_recovers_z_on_a_linear_toy() -> None:
    # a fixed linear "generator" output = W z; an encoder trained on latent_l1 alone learns to
    # invert it, so E(G(z)) recovers fresh codes
    torch.manual_seed(0)
    w = torch.randn(6, 3)
    encoder = nn.Linear(6, 3)
    opt = torch.optim.Adam(encoder.parameters(), lr=0.1)
    for _ in range(150):
        z = torch.randn(32, 3)
        loss = latent_l1(encoder(z @ w.T), z)
        opt.zero_grad()
        loss.backward()
        opt.step()
    z = torch.randn(64, 3)
    assert latent_l1(encoder(z @ w.T), z).item() < 0.05
