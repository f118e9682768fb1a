"""Adaptive discriminator augmentation (ADA): Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data".

Every image the discriminator sees, real or generated, in D's step and in G's, goes through one
differentiable pipeline of transforms, each applied to each image with probability ``p``; as
long as ``p < 0.8`` or so the transforms are "non-leaking" (G cannot learn to produce augmented
images, Sec. 2.2). Groups (Sec. 2.3, App. B), with the paper's parameters:

* ``blit``: x-flip, rotation by a multiple of 90 degrees, integer translation (up to 1/8 of the
  side);
* ``geom``: isotropic scale (lognormal, std 0.2 in log2), arbitrary rotation (applied before and
  after the anisotropic scale, each with probability ``1 - sqrt(1 - p)``), anisotropic scale (std
  0.2 in log2), fractional translation (std 1/8 of the side); composed into one affine matrix
  per image and applied once with bilinear sampling and reflection padding
  (``torch.nn.functional.grid_sample``, which kornia's warps wrap);
* ``color``: brightness (additive, std 0.2), contrast (std 0.5 in log2), luma flip, hue rotation
  (uniform in [-pi, pi]) and saturation (std 1 in log2) around the luma axis; composed into one
  4x4 colour matrix per image.

The pipelines are the official ones: ``blit``, ``geom``, ``color``, ``bg`` and ``bgc`` (the
default). Integer translations, flips and quarter turns land exactly on pixel centres, so
bilinear sampling reproduces them exactly.

Adaptive ``p`` (Sec. 3): the overfitting heuristic ``r_t = E[sign(D(real))]`` over the real
images D judged in the last ``interval`` (4) steps; ``p`` moves by ``sign(r_t - target) * N /
(kimg * 1000)`` where N is the number of those images, so it can go from 0 to 1 in ``kimg``
(500) thousand images, and stays in [0, 1]. Target 0.6. ``p`` and the running sums are the
state a checkpoint saves (``state_dict``); draws come from torch's global generator, which the
engine checkpoints, so a resumed run continues exactly.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["PIPELINES", "AdaptiveAugment"]

BLIT = ("xflip", "rotate90", "xint")
GEOM = ("scale", "rotate", "aniso", "xfrac")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
PIPELINES: dict[str, tuple[str, ...]] = {
    "blit": BLIT,
    "geom": GEOM,
    "color": COLOR,
    "bg": BLIT + GEOM,
    "bgc": BLIT + GEOM + COLOR,
}
# the paper's parameters (App. B)
XINT_MAX, SCALE_STD, ROTATE_MAX, ANISO_STD, XFRAC_STD = 0.125, 0.2, 1.0, 0.2, 0.125
BRIGHTNESS_STD, CONTRAST_STD, HUE_MAX, SATURATION_STD = 0.2, 0.5, 1.0, 1.0


def _eye(b: int, n: int, like: Tensor) -> Tensor:
    return torch.eye(n, device=like.device, dtype=torch.float32).expand(b, n, n).clone()


def _matrix(rows: list[list[Any]], like: Tensor) -> Tensor:
    """(B, n, n) from rows of per-sample (B,) tensors or numbers."""
    b = like.shape[0]
    cols = [
        torch.stack(
            [torch.as_tensor(v, dtype=torch.float32, device=like.device).expand(b) for v in row], -1
        )
        for row in rows
    ]
    return torch.stack(cols, -2)


def _translate2d(tx: Tensor, ty: Tensor, like: Tensor) -> Tensor:
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], like)


def _scale2d(sx: Tensor, sy: Tensor, like: Tensor) -> Tensor:
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], like)


def _rotate2d(theta: Tensor, like: Tensor) -> Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], like)


class AdaptiveAugment:
    """The ADA pipeline with its probability ``p``.

    Args:
        pipeline: one of ``PIPELINES``.
        p: the starting (or, without ``target``, fixed) probability.
        target: the r_t target (0.6 in the paper); None: ``p`` stays fixed.
        interval: steps between adjustments (4).
        kimg: thousands of images over which ``p`` can go from 0 to 1 (500).
    """

    def __init__(
        self,
        pipeline: str = "bgc",
        *,
        p: float = 0.0,
        target: float | None = None,
        interval: int = 4,
        kimg: float = 500.0,
    ) -> None:
        if pipeline not in PIPELINES:
            raise ValueError(
                f"unknown ADA pipeline {pipeline!r}; choose from {', '.join(PIPELINES)}"
            )
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.pipeline, self.ops = pipeline, PIPELINES[pipeline]
        self.p = float(p)
        self.target = target
        self.interval, self.kimg = int(interval), float(kimg)
        self._sign_sum, self._count = 0.0, 0

    @property
    def adaptive(self) -> bool:
        return self.target is not None

    # ------------------------------------------------------------------ the heuristic
    def observe(self, real_logits: Tensor) -> None:
        """Accumulate ``sign(D(real))``: one mean sign per image (over its logits)."""
        signs = torch.sign(real_logits.detach().float()).reshape(real_logits.shape[0], -1)
        self._sign_sum += float(signs.mean(1).sum())
        self._count += int(real_logits.shape[0])

    def pending(self) -> tuple[float, int]:
        """The accumulated (sum of signs, number of images) since the last adjustment."""
        return self._sign_sum, self._count

    def adjust(self, sign_sum: float | None = None, count: int | None = None) -> float | None:
        """Move ``p`` from the accumulated statistics (or the given ones, summed over the
        processes of a distributed run); returns r_t, or None when nothing was observed."""
        if sign_sum is None or count is None:
            sign_sum, count = self.pending()
        self._sign_sum, self._count = 0.0, 0
        if not self.adaptive or count <= 0:
            return None
        rt = sign_sum / count
        assert self.target is not None
        step = math.copysign(1.0, rt - self.target) if rt != self.target else 0.0
        self.p = min(max(self.p + step * count / (self.kimg * 1000), 0.0), 1.0)
        return rt

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p, "sign_sum": self._sign_sum, "count": self._count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p = float(state["p"])
        self._sign_sum, self._count = float(state["sign_sum"]), int(state["count"])

    # ------------------------------------------------------------------ the pipeline
    def _gate(self, value: Tensor, identity: float, prob: float | None = None) -> Tensor:
        """``value`` where a per-image coin with probability p (or ``prob``) says so."""
        p = self.p if prob is None else prob
        keep = torch.rand(value.shape[0], device=value.device) < p
        return torch.where(keep, value, torch.full_like(value, identity))

    def geometry(self, x: Tensor) -> Tensor:
        """(B, 3, 3) sampling matrices (output -> input, normalised coordinates) of one draw."""
        b, _, h, w = x.shape
        dev = x.device
        m = _eye(b, 3, x)
        ops = self.ops
        if "xflip" in ops:
            flip = self._gate(torch.randint(0, 2, (b,), device=dev).float(), 0.0)
            m = m @ _scale2d(1 - 2 * flip, torch.ones(b, device=dev), x)
        if "rotate90" in ops:
            quarter = self._gate(torch.randint(0, 4, (b,), device=dev).float(), 0.0)
            m = m @ _rotate2d(quarter * (math.pi / 2), x)
        if "xint" in ops:
            t = (torch.rand(b, 2, device=dev) * 2 - 1) * XINT_MAX
            tx = self._gate(torch.round(t[:, 0] * w) * 2 / w, 0.0)
            ty = self._gate(torch.round(t[:, 1] * h) * 2 / h, 0.0)
            m = m @ _translate2d(tx, ty, x)
        if "scale" in ops:
            s = self._gate(torch.exp2(torch.randn(b, device=dev) * SCALE_STD), 1.0)
            m = m @ _scale2d(s, s, x)
        p_rot = 1 - math.sqrt(max(1 - self.p, 0.0))  # both rotations: P(any) = p
        if "rotate" in ops:
            theta = (torch.rand(b, device=dev) * 2 - 1) * math.pi * ROTATE_MAX
            m = m @ _rotate2d(self._gate(theta, 0.0, p_rot), x)
        if "aniso" in ops:
            s = self._gate(torch.exp2(torch.randn(b, device=dev) * ANISO_STD), 1.0)
            m = m @ _scale2d(s, 1 / s, x)
        if "rotate" in ops:
            theta = (torch.rand(b, device=dev) * 2 - 1) * math.pi * ROTATE_MAX
            m = m @ _rotate2d(self._gate(theta, 0.0, p_rot), x)
        if "xfrac" in ops:
            t = torch.randn(b, 2, device=dev) * XFRAC_STD * 2  # a fraction of the side
            m = m @ _translate2d(self._gate(t[:, 0], 0.0), self._gate(t[:, 1], 0.0), x)
        return m

    def colour(self, x: Tensor) -> Tensor:
        """(B, 4, 4) colour matrices acting on homogeneous (r, g, b, 1) of one draw."""
        b = x.shape[0]
        dev = x.device
        c = _eye(b, 4, x)
        v = torch.tensor([1.0, 1.0, 1.0, 0.0], device=dev) / math.sqrt(3)  # the luma axis
        vv = torch.outer(v, v).expand(b, 4, 4)
        eye = _eye(b, 4, x)
        ops = self.ops
        if "brightness" in ops:
            t = self._gate(torch.randn(b, device=dev) * BRIGHTNESS_STD, 0.0)
            shift = eye.clone()
            shift[:, :3, 3] = t.view(b, 1)
            c = shift @ c
        if "contrast" in ops:
            s = self._gate(torch.exp2(torch.randn(b, device=dev) * CONTRAST_STD), 1.0)
            scale = eye.clone()
            scale[:, :3, :3] *= s.view(b, 1, 1)
            c = scale @ c
        if "lumaflip" in ops:
            i = self._gate(torch.randint(0, 2, (b,), device=dev).float(), 0.0)
            c = (eye - 2 * vv * i.view(b, 1, 1)) @ c
        if "hue" in ops:
            theta = self._gate((torch.rand(b, device=dev) * 2 - 1) * math.pi * HUE_MAX, 0.0)
            cos, sin = torch.cos(theta).view(b, 1, 1), torch.sin(theta).view(b, 1, 1)
            cross = torch.zeros(4, 4, device=dev)  # [v]x on the rgb block
            a = v[:3]
            cross[0, 1], cross[0, 2], cross[1, 2] = -a[2], a[1], -a[0]
            cross[1, 0], cross[2, 0], cross[2, 1] = a[2], -a[1], a[0]
            rot = cos * eye + sin * cross + (1 - cos) * vv
            rot[:, 3, 3] = 1.0
            c = rot @ c
        if "saturation" in ops:
            s = self._gate(torch.exp2(torch.randn(b, device=dev) * SATURATION_STD), 1.0)
            c = (vv + (eye - vv) * s.view(b, 1, 1)) @ c
        return c

    def __call__(self, x: Tensor) -> Tensor:
        """Augment images ``x`` (B, C, H, W) in [-1, 1]; colour needs C = 3."""
        if x.ndim != 4:
            raise ValueError(f"ADA needs (B, C, H, W) images, got shape {tuple(x.shape)}")
        b, ch, h, w = x.shape
        if any(op in self.ops for op in BLIT + GEOM):
            m = self.geometry(x)
            if not torch.equal(m, _eye(b, 3, x)):
                grid = F.affine_grid(m[:, :2].to(x.dtype), [b, ch, h, w], align_corners=False)
                x = F.grid_sample(
                    x, grid, mode="bilinear", padding_mode="reflection", align_corners=False
                )
        if any(op in self.ops for op in COLOR):
            if ch != 3:
                raise ValueError(f"ADA's colour transforms need RGB images, got {ch} channels")
            c = self.colour(x).to(x.dtype)
            if not torch.equal(c, _eye(b, 4, x).to(x.dtype)):
                x = torch.einsum("bij,bjhw->bihw", c[:, :3, :3], x) + c[:, :3, 3].view(b, 3, 1, 1)
        return x

    def __repr__(self) -> str:
        mode = f"target={self.target}" if self.adaptive else "fixed"
        return f"AdaptiveAugment({self.pipeline}, p={self.p:.4f}, {mode})"
