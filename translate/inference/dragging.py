"""DragGAN point dragging (Pan et al. 2023, "Drag Your GAN: Interactive Point-based
Manipulation on the Generative Image Manifold", Sec. 3) on a style generator
(``translate.inference.editing.Editable`` with feature maps).

Each step alternates:

- **Motion supervision** (Eq. 1): with F the feature map of the 6th synthesis block (in the
  paper's 256 px model, the block at half the image's resolution; a model with fewer blocks
  takes its half-resolution block, never its last: at 32 px the last block's features are
  nearly the image itself, and tracking on them slid off a dragged dot, which then ended 3 to
  10 px short of its target, against 1 to 2.6 px on the 16 px block) bilinearly upsampled to
  the image size, for each handle p_i and its
  target t_i, d_i = (t_i - p_i) / ||t_i - p_i||, the L1 distance between F(q + d_i) and
  sg(F(q)) over the pixels q of the disk Omega1(p_i, r1) (features at fractional positions by
  bilinear interpolation); plus lambda ||(F - F0) * (1 - M)||_1 keeping the region outside the
  mask M as it was (F0: the features before editing). The L1 norms are means (per element), as
  the official code's ``l1_loss``. Only the first 6 layers of w+ are optimised (Adam, 2e-3).
- **Point tracking** (Eq. 2): p_i <- the pixel q of the square Omega2(p_i, r2) whose feature
  F(q) is nearest in L1 to f_i = F0(p_i^0), the handle's initial feature.

Radii are the paper's at 256 px scaled with the resolution: r1 = 3, r2 = 12, and the stop
distance d = 1 (a handle within d of its target has arrived; the edit stops when all have);
r1 and r2 are at least 1 px.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from translate.errors import ConfigError
from translate.inference.editing import Editable

__all__ = [
    "DragResult",
    "disk_offsets",
    "drag",
    "drag_radii",
    "feature_block",
    "motion_supervision",
    "sample_features",
    "track_points",
]

#: The paper's block (the 6th), layers optimised, mask weight and step size.
BLOCK, LAYERS, LAMBDA, LR = 5, 6, 10.0, 2e-3


@dataclass
class DragResult:
    latent: Tensor  # (1, num_ws, w_dim)
    image: Tensor  # (1, 3, R, R) in [-1, 1]
    points: Tensor  # (N, 2) final handle positions (x, y)
    steps: int  # steps taken
    arrived: bool  # every handle within d of its target


def drag_radii(resolution: int) -> tuple[float, float, float]:
    """(r1, r2, d): 3, 12 and 1 px at 256 px, scaled with the resolution (r1, r2 >= 1)."""
    s = resolution / 256
    return max(3 * s, 1.0), max(12 * s, 1.0), 1 * s


def feature_block(resolutions: list[int]) -> int:
    """The paper's 6th block, or in a model with fewer the one before the last (half the
    image's resolution, as the 6th is at 256 px)."""
    if not resolutions:
        raise ConfigError("drag: this generator exposes no feature maps (it needs stylegan2)")
    return max(min(BLOCK, len(resolutions) - 2), 0)


def disk_offsets(radius: float) -> Tensor:
    """Integer offsets (dx, dy) with dx^2 + dy^2 <= radius^2: Omega1 around a point."""
    r = int(radius)
    d = torch.arange(-r, r + 1, dtype=torch.float32)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    inside = dx**2 + dy**2 <= radius**2
    return torch.stack([dx[inside], dy[inside]], 1)


def sample_features(feat: Tensor, points: Tensor) -> Tensor:
    """Features of ``feat`` (1, C, H, W) at pixel positions ``points`` (K, 2) as (x, y),
    bilinear between pixel centres (0 .. W-1): (K, C)."""
    _, _, h, w = feat.shape
    scale = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], device=feat.device)
    grid = (points.to(feat.device) * scale - 1).view(1, 1, -1, 2).to(feat.dtype)
    return F.grid_sample(feat, grid, mode="bilinear", align_corners=True)[0, :, 0].t()


def motion_supervision(
    feat: Tensor,
    handles: Tensor,
    targets: Tensor,
    r1: float,
    *,
    feat0: Tensor | None = None,
    mask: Tensor | None = None,
    lam: float = LAMBDA,
    arrived: float = 0.0,
) -> Tensor:
    """Eq. 1 on ``feat`` (1, C, H, W) at image size: mean |F(q + d_i) - sg(F(q))| over q in
    Omega1(p_i, r1), summed over handles not yet within ``arrived`` of their targets; with
    ``mask`` (H, W, 1 = may change), + lam * mean |(F - F0) * (1 - M)|."""
    loss = feat.new_zeros(())
    offsets = disk_offsets(r1).to(feat.device)
    for p, t in zip(handles.float(), targets.float(), strict=True):
        gap = (t - p).to(feat.device)
        dist = float(gap.norm())
        if dist <= arrived or dist == 0:
            continue
        q = p.to(feat.device) + offsets
        reference = sample_features(feat, q).detach()
        loss = loss + (sample_features(feat, q + gap / dist) - reference).abs().mean()
    if mask is not None:
        if feat0 is None:
            raise ValueError("a mask needs the initial features feat0")
        keep = (1 - mask.to(feat.device, feat.dtype))[None, None]
        loss = loss + lam * ((feat - feat0) * keep).abs().mean()
    return loss


def track_points(feat: Tensor, f0: Tensor, handles: Tensor, r2: float) -> Tensor:
    """Eq. 2: each handle (N, 2) as (x, y) moves to the pixel of the square |dx|, |dy| <= r2
    around it (inside the image) whose feature in ``feat`` (1, C, H, W) is nearest in L1 to its
    initial feature ``f0`` (N, C). Returns (N, 2) integer positions."""
    _, _, h, w = feat.shape
    r = int(r2)
    out = []
    for p, f in zip(handles.round().long().tolist(), f0, strict=True):
        x0, x1 = max(p[0] - r, 0), min(p[0] + r, w - 1)
        y0, y1 = max(p[1] - r, 0), min(p[1] + r, h - 1)
        patch = feat[0, :, y0 : y1 + 1, x0 : x1 + 1]
        dist = (patch - f.to(patch)[:, None, None]).abs().sum(0)
        k = int(dist.flatten().argmin())
        out.append([x0 + k % (x1 - x0 + 1), y0 + k // (x1 - x0 + 1)])
    return torch.tensor(out, dtype=torch.float32)


def _upsampled(gen: Editable, latent: Tensor, block: int) -> tuple[Tensor, Tensor]:
    image, feat = gen.features(latent, block)
    size = image.shape[-2:]
    return image, F.interpolate(feat.float(), size=size, mode="bilinear", align_corners=False)


def drag(
    gen: Editable,
    latent: Tensor,
    handles: Tensor,
    targets: Tensor,
    *,
    mask: Tensor | None = None,
    steps: int = 300,
    lr: float = LR,
    on_step: Callable[[int, Tensor, Tensor], None] | None = None,
) -> DragResult:
    """Drag ``handles`` (N, 2) towards ``targets`` (N, 2), pixel (x, y), by optimising the
    first 6 layers of ``latent`` ws (1, num_ws, w_dim); ``mask`` (R, R), 1 where the image may
    change. ``on_step(step, image, points)`` after each step."""
    if steps < 1:
        raise ConfigError(f"steps: must be at least 1, got {steps}")
    R = gen.resolution
    r1, r2, d = drag_radii(R)
    block = feature_block(gen.feature_blocks())
    latent = latent.to(gen.device).float()
    n = min(LAYERS, gen.num_ws)
    head = latent[:, :n].clone().requires_grad_(True)
    tail = latent[:, n:].detach()
    opt = torch.optim.Adam([head], lr=lr)
    points = handles.float().clone()
    targets = targets.float()
    with torch.no_grad():
        image, feat0 = _upsampled(gen, latent, block)
        f0 = sample_features(feat0, points)
    done = 0
    for step in range(steps + 1):
        ws = torch.cat([head, tail], 1)
        image, feat = _upsampled(gen, ws, block)
        if step > 0:  # tracking on the features of the latest update (Sec. 3.3)
            with torch.no_grad():
                points = track_points(feat, f0, points, r2)
            if on_step is not None:
                on_step(step, image.detach().clamp(-1, 1), points.clone())
        if step == steps or bool(((points - targets).norm(dim=1) <= d).all()):
            break
        loss = motion_supervision(feat, points, targets, r1, feat0=feat0, mask=mask, arrived=d)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
    final = torch.cat([head, tail], 1).detach()
    with torch.no_grad():
        image = gen.synthesize(final).clamp(-1, 1)
    arrived = bool(((points - targets).norm(dim=1) <= d).all())
    return DragResult(final, image, points, done, arrived)
