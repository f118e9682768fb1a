"""The truncated normal of the truncation trick (``translate.inference.sampling``): constant
time whatever T (a tiny T used to loop about 1/T rounds, 1e-300 forever), the exact truncated
N(0, 1) checked against its closed form, reproducible from a seed; the bounds of truncation and
seed as one-line errors."""

from __future__ import annotations

import math
import threading

import pytest
import torch

from translate.errors import ConfigError
from translate.inference.sampling import (
    MIN_TRUNCATION,
    SEED_RANGE,
    check_seed,
    check_truncation,
    truncated_normal,
)


def phi(x: float) -> float:
    """The standard normal CDF, by hand."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def pdf(x: float) -> float:
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def draw(shape: tuple[int, ...], truncation: float | None, seed: int = 0) -> torch.Tensor:
    return truncated_normal(shape, truncation, torch.Generator().manual_seed(seed))


def test_a_tiny_truncation_returns_within_seconds() -> None:
    """1e-300 (the GET that hung the server): a worker thread must finish within 5 s."""
    out: list[torch.Tensor] = []
    worker = threading.Thread(target=lambda: out.append(draw((64, 100), 1e-300)), daemon=True)
    worker.start()
    worker.join(5.0)
    assert not worker.is_alive(), "truncated_normal(T=1e-300) did not return within 5 s"
    (z,) = out
    assert z.shape == (64, 100) and z.dtype == torch.float32
    assert bool((z.abs() <= 1e-300).all())


@pytest.mark.parametrize("t", [0.25, 1.0, 2.0])
def test_the_truncated_normal_has_the_closed_form_moments_and_cdf(t: float) -> None:
    """Mean 0, variance 1 - 2 T pdf(T) / (2 Phi(T) - 1), and the CDF
    (Phi(x) - Phi(-T)) / (2 Phi(T) - 1) within the Kolmogorov-Smirnov band."""
    n = 200_000
    z = draw((n,), t).double()
    assert float(z.abs().max()) <= t
    mass = 2 * phi(t) - 1
    variance = 1 - 2 * t * pdf(t) / mass
    # standard errors: mean sqrt(var / n); variance sqrt((E z^4 - var^2) / n), E z^4 measured
    assert abs(float(z.mean())) < 5 * math.sqrt(variance / n)
    fourth = float((z**4).mean())
    assert abs(float(z.var()) - variance) < 5 * math.sqrt((fourth - variance**2) / n)
    # not clipped at the bound (a clip would put mass on +-T)
    assert float((z.abs() > 0.999 * t).double().mean()) < 0.01
    xs = torch.linspace(-t, t, 41).tolist()
    empirical = [float((z <= x).double().mean()) for x in xs]
    exact = [(phi(x) - phi(-t)) / mass for x in xs]
    gap = max(abs(a - b) for a, b in zip(empirical, exact, strict=True))
    assert gap < 1.63 / math.sqrt(n), gap  # KS at the 1% level


def test_a_small_truncation_is_uniform_not_zero() -> None:
    """T = 1e-30 (float32 still normal there): z / T is uniform on [-1, 1] (the density is
    flat on so small an interval); a naive Phi^-1(Phi(-T) + u (2 Phi(T) - 1)) gives 0 or NaN."""
    t = 1e-30
    z = draw((100_000,), t).double() / t
    assert float(z.abs().max()) <= 1.0
    assert abs(float(z.mean())) < 0.01
    assert abs(float(z.abs().mean()) - 0.5) < 0.01  # E|U(-1, 1)| = 1/2
    assert abs(float(z.var()) - 1 / 3) < 0.01


def test_same_seed_same_latents() -> None:
    a, b, c = draw((8, 4), 0.5, 1), draw((8, 4), 0.5, 1), draw((8, 4), 0.5, 2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(
        draw((8,), None, 3), torch.randn(8, generator=torch.Generator().manual_seed(3))
    )


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), MIN_TRUNCATION / 2, 1e-300])
def test_truncation_below_the_bound_is_one_line(bad: float) -> None:
    """What ``Sampler`` (translate sample, the service) refuses before drawing."""
    with pytest.raises(
        ConfigError, match=r"^truncation: must be a finite number of at least 1\.17549e-38"
    ) as err:
        check_truncation(bad)
    assert "\n" not in str(err.value)
    check_truncation(MIN_TRUNCATION)  # the bound itself is taken
    check_truncation(None)
    with pytest.raises(ConfigError, match="truncation: must be > 0"):
        draw((2,), bad if not bad > 0 else -bad)


@pytest.mark.parametrize("bad", [2**64, 2**63, -1, 10**400])
def test_seed_outside_its_range_is_one_line(bad: int) -> None:
    with pytest.raises(ConfigError, match=r"^seed: .* is out of range \(0 to 2\^63-1\)") as err:
        check_seed(bad)
    assert "\n" not in str(err.value)
    for good in SEED_RANGE:
        check_seed(good)
        torch.Generator().manual_seed(good)  # what torch takes
