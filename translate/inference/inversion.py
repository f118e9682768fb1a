"""GAN inversion: the latent (and noise maps) whose image reproduces a given image, by the
StyleGAN2 projector (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN", Sec. 5 and App. D), on any ``translate.inference.editing.Editable``.

Adam (betas 0.9, 0.999) from w_avg on w (one w for every layer) or w+ (``wplus``: one per
layer), and on the per-layer noise maps, reinitialised N(0, I); the official defaults: 1000
steps, initial learning rate 0.1 ramped up over the first 5% (linear) and down over the last
25% (cosine), Gaussian noise added to w with std ``w_std * 0.05 * max(0, 1 - t / 0.75)^2``,
the noise regularisation (sum over every noise map and its 2x average-pooled pyramid down to
8 px of the squared mean autocorrelation at a one-pixel shift in x and in y) weighted 1e5,
noise maps renormalised to zero mean and unit variance after each step.

Distance: LPIPS (our ``translate.metrics.perceptual``, when its weights are given; the
official projector uses the VGG16 LPIPS), else mean squared error plus 1 - SSIM (Wang et
al. 2004; an 11-tap Gaussian window, sigma 1.5). A z-space generator optimises z (no noise
maps).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from translate.errors import ConfigError
from translate.inference.editing import Editable

__all__ = [
    "PROJECTOR",
    "Inversion",
    "invert",
    "learning_rate",
    "noise_regularization",
    "pixel_ssim_loss",
    "ssim_torch",
]

#: The official projector's defaults (stylegan2-ada-pytorch ``projector.py``).
PROJECTOR = dict(
    steps=1000,
    lr=0.1,
    lr_rampup=0.05,
    lr_rampdown=0.25,
    noise_factor=0.05,
    noise_ramp=0.75,
    noise_weight=1e5,
)


@dataclass
class Inversion:
    latent: Tensor  # (1, num_ws, w_dim) for a style generator, else z
    noise: list[Tensor]  # the optimised noise maps (empty for z)
    image: Tensor  # (1, 3, R, R), the reconstruction in [-1, 1]
    loss: float


def learning_rate(
    t: float, base: float = 0.1, rampup: float = 0.05, rampdown: float = 0.25
) -> float:
    """The projector's schedule at progress t in [0, 1): base * cosine ramp-down over the last
    ``rampdown`` * linear ramp-up over the first ``rampup``."""
    down = min(1.0, (1.0 - t) / rampdown)
    return base * (0.5 - 0.5 * math.cos(down * math.pi)) * min(1.0, t / rampup)


def noise_regularization(buffers: list[Tensor]) -> Tensor:
    """sum over maps n and their 2x average-pooled pyramid (down to 8 px) of
    mean(n * roll_x(n))^2 + mean(n * roll_y(n))^2: zero for white noise, large when a map
    carries structure (the image) instead of noise."""
    total = torch.zeros(())
    for buf in buffers:
        noise = buf[None, None]
        while True:
            total = total + (noise * torch.roll(noise, 1, dims=3)).mean() ** 2
            total = total + (noise * torch.roll(noise, 1, dims=2)).mean() ** 2
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, 2)
    return total


def ssim_torch(a: Tensor, b: Tensor, *, data_range: float = 2.0) -> Tensor:
    """Mean SSIM of two batches (B, C, H, W), differentiable: Gaussian window of 11 taps (the
    largest odd size that fits smaller images), sigma 1.5, valid positions only, constants
    (0.01 L)^2 and (0.03 L)^2."""
    size = min(11, a.shape[-1] - (1 - a.shape[-1] % 2), a.shape[-2] - (1 - a.shape[-2] % 2))
    x = torch.arange(size, dtype=a.dtype, device=a.device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * 1.5**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(a.shape[1], 1, size, size)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, window, groups=a.shape[1])

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).mean()


def pixel_ssim_loss(image: Tensor, target: Tensor) -> Tensor:
    """The distance without LPIPS weights: MSE (images in [-1, 1]) + (1 - SSIM)."""
    return F.mse_loss(image, target) + (1.0 - ssim_torch(image, target))


def invert(
    gen: Editable,
    target: Tensor,
    *,
    steps: int = 1000,
    wplus: bool = False,
    lpips: Callable[[Tensor, Tensor], Tensor] | None = None,
    seed: int = 0,
    on_step: Callable[[int, int, float], None] | None = None,
) -> Inversion:
    """Optimise ``gen``'s latent (an ``Editable``) so that its image matches ``target``
    (1, 3, R, R) in [-1, 1]; ``lpips``: a distance ``lpips(x, y)`` of [-1, 1] images (as
    ``LPIPSMetric.distance``; else ``pixel_ssim_loss``). ``on_step(step, steps, loss)`` after
    each step."""
    if steps < 1:
        raise ConfigError(f"steps: must be at least 1, got {steps}")
    R = gen.resolution
    if tuple(target.shape) != (1, 3, R, R):
        raise ConfigError(
            f"image: expected 3 x {R} x {R} (the model's size), got {tuple(target.shape)}"
        )
    torch.manual_seed(seed)
    device = gen.device
    target = target.to(device).float()
    start, std = gen.mean_and_std()
    per_layer = wplus or gen.space != "w"
    latent = (start if per_layer else start[:, :1]).clone().requires_grad_(True)
    noise = [torch.randn_like(b).requires_grad_(True) for b in gen.noise_buffers()]
    gen.set_noise(noise)
    opt = torch.optim.Adam([latent, *noise], betas=(0.9, 0.999), lr=PROJECTOR["lr"])
    distance = lpips if lpips is not None else pixel_ssim_loss

    def full(lat: Tensor) -> Tensor:
        if gen.space == "w" and not per_layer:
            return lat.expand(-1, gen.num_ws, -1)
        return lat

    loss_value = float("nan")
    for step in range(steps):
        t = step / steps
        lr = learning_rate(t, PROJECTOR["lr"], PROJECTOR["lr_rampup"], PROJECTOR["lr_rampdown"])
        for group in opt.param_groups:
            group["lr"] = lr
        scale = std * PROJECTOR["noise_factor"] * max(0.0, 1.0 - t / PROJECTOR["noise_ramp"]) ** 2
        image = gen.synthesize(full(latent + torch.randn_like(latent) * scale))
        dist = distance(image, target).sum()
        loss = dist + PROJECTOR["noise_weight"] * noise_regularization(noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for buf in noise:
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()
        loss_value = float(dist.detach())
        if on_step is not None:
            on_step(step + 1, steps, loss_value)
    with torch.no_grad():
        final = full(latent.detach())
        if gen.space == "w":
            final = final.expand(-1, gen.num_ws, -1).clone()
        image = gen.synthesize(final).clamp(-1, 1)
    return Inversion(final, [b.detach() for b in noise], image, loss_value)
