"""Tests of the gradient penalties (translate.losses.regularizers): WGAN-GP, R1, R2.

Expected values come from analytic input gradients (a linear D) or explicit per-sample autograd
loops (a convolutional D).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import fmean as mean

import pytest
import torch
from torch import Tensor, nn

from translate.losses import gradient_penalty, r1_penalty, r2_penalty


def _linear_d(seed: int = 0, n: int = 12) -> tuple[nn.Linear, Callable[[Tensor], Tensor]]:
    torch.manual_seed(seed)
    lin = nn.Linear(n, 1)
    with torch.no_grad():
        lin.weight.mul_(3.0)  # keep ||w|| well away from 1 so the one-centred GP is non-trivial
    return lin, lambda x: lin(x.flatten(1))


def conv_d() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 1, 3)
    )  # PatchGAN-style (B, 1, h, w) logits; tanh keeps the input gradient input-dependent


def test_penalties_on_linear_d_match_the_weight_norm() -> None:
    lin, D = _linear_d()
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    w_norm = lin.weight.detach().norm().item()  # d(w.x + b)/dx = w for every sample
    assert gradient_penalty(D, real, fake).item() == pytest.approx((w_norm - 1) ** 2, rel=1e-5)
    assert gradient_penalty(D, real, fake, center=0.0).item() == pytest.approx(w_norm**2, rel=1e-5)
    assert r1_penalty(D, real).item() == pytest.approx(w_norm**2, rel=1e-5)
    assert r2_penalty(D, fake).item() == pytest.approx(w_norm**2, rel=1e-5)


def test_penalties_sum_logits_over_scales() -> None:
    torch.manual_seed(0)
    lin1, lin2 = nn.Linear(12, 1), nn.Linear(12, 1)

    def D(x: Tensor) -> list[Tensor]:  # noqa: N802
        return [lin1(x.flatten(1)), lin2(x.flatten(1))]

    w = (lin1.weight + lin2.weight).detach().norm().item()
    x = torch.randn(3, 3, 2, 2)
    assert r1_penalty(D, x).item() == pytest.approx(w**2, rel=1e-5)
    assert gradient_penalty(D, x, torch.randn_like(x)).item() == pytest.approx(
        (w - 1) ** 2, rel=1e-5
    )


def test_gp_create_graph_reaches_d_parameters() -> None:
    lin, D = _linear_d()
    gp = gradient_penalty(D, torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2))
    gp.backward()
    w = lin.weight.detach()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    expected = 2 * (w.norm() - 1) * w / w.norm()
    torch.testing.assert_close(lin.weight.grad, expected, rtol=1e-5, atol=1e-6)


def test_r1_create_graph_reaches_d_parameters() -> None:
    lin, D = _linear_d()
    r1_penalty(D, torch.randn(4, 3, 2, 2)).backward()
    torch.testing.assert_close(lin.weight.grad, 2 * lin.weight.detach(), rtol=1e-5, atol=1e-6)


def _manual_sq_norms(
    D: nn.Module,  # noqa: N803
    x: Tensor,
) -> list[float]:
    out = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1].detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(D(xi).sum(), xi)
        out.append(g.pow(2).sum().item())
    return out


def test_r1_r2_on_conv_d_match_per_sample_loop() -> None:
    D = conv_d()
    torch.manual_seed(2)
    real, fake = torch.randn(3, 3, 6, 6), torch.randn(3, 3, 6, 6)
    assert r1_penalty(D, real).item() == pytest.approx(mean(_manual_sq_norms(D, real)), rel=1e-5)
    assert r2_penalty(D, fake).item() == pytest.approx(mean(_manual_sq_norms(D, fake)), rel=1e-5)


def test_gp_on_conv_d_matches_per_sample_loop() -> None:
    D = conv_d()
    torch.manual_seed(3)
    real, fake = torch.randn(3, 3, 6, 6), torch.randn(3, 3, 6, 6)
    gp = gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(7))
    eps = torch.rand(3, generator=torch.Generator().manual_seed(7))  # one U[0, 1] per sample
    x_hat = eps.view(-1, 1, 1, 1) * real + (1 - eps.view(-1, 1, 1, 1)) * fake
    expected = mean([(math.sqrt(n) - 1.0) ** 2 for n in _manual_sq_norms(D, x_hat)])
    assert gp.item() == pytest.approx(expected, rel=1e-5)


def test_penalties_do_not_reach_the_generator() -> None:
    _, D = _linear_d()
    g_param = torch.tensor(2.0, requires_grad=True)
    fake = g_param * torch.randn(4, 3, 2, 2)
    (gradient_penalty(D, torch.randn(4, 3, 2, 2), fake) + r2_penalty(D, fake)).backward()
    assert g_param.grad is None


def test_penalties_are_float32_under_bf16_autocast() -> None:
    D = conv_d()
    torch.manual_seed(4)
    # Inputs already representable in bf16, so only the penalty's own precision can differ.
    real = torch.randn(2, 3, 6, 6).bfloat16().float()
    fake = torch.randn(2, 3, 6, 6).bfloat16().float()
    ref = (
        gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(0)),
        r1_penalty(D, real),
        r2_penalty(D, fake),
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert D(real).dtype == torch.bfloat16  # autocast is really active for this D
        got = (
            gradient_penalty(
                D, real.bfloat16(), fake.bfloat16(), generator=torch.Generator().manual_seed(0)
            ),
            r1_penalty(D, real),
            r2_penalty(D, fake.bfloat16()),
        )
    # A bf16 forward/backward would be off by ~1e-2; a float32 one matches the reference.
    for g, r in zip(got, ref, strict=True):
        assert g.dtype == torch.float32
        assert g.item() == pytest.approx(r.item(), rel=1e-6)


def test_penalties_work_inside_no_grad() -> None:
    lin, D = _linear_d()
    with torch.no_grad():
        r1 = r1_penalty(D, torch.randn(2, 3, 2, 2))
    assert r1.item() == pytest.approx(lin.weight.detach().norm().item() ** 2, rel=1e-5)


def test_r1_with_precomputed_logits() -> None:
    D = conv_d()
    x = torch.randn(2, 3, 6, 6)
    leaf = x.clone().requires_grad_(True)
    reused = r1_penalty(D, leaf, logits=D(leaf))
    assert reused.item() == pytest.approx(r1_penalty(D, x).item(), rel=1e-5)
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(D, x, logits=D(x))


def test_gp_rejects_mismatched_shapes() -> None:
    _, D = _linear_d()
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(D, torch.randn(2, 3, 2, 2), torch.randn(3, 3, 2, 2))
