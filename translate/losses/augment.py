"""DiffAugment: differentiable augmentation of everything the discriminator sees.

Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training": the same family
of random transforms ``T`` is applied to real and generated images, in the discriminator step
(``D(T(x))`` vs ``D(T(G(z)))``) and in the generator step (``D(T(G(z)))``). Because ``T`` is
differentiable, G learns through it, and D cannot tell real from fake by the augmentation alone;
augmenting reals only would teach G to produce augmented images.

The three policies of the paper, with its parameters (images in [-1, 1], no clamping, so every
output pixel passes gradient back):

* ``color``: brightness ``x + U(-0.5, 0.5)`` (``kornia.enhance.adjust_brightness``), saturation
  ``gray + (x - gray) * U(0, 2)`` around the luminance (``kornia.color.rgb_to_grayscale``), and
  contrast ``mean + (x - mean) * U(0.5, 1.5)`` around the image mean. Channel counts that are a
  multiple of 3 are treated as stacked RGB images that share one draw; other counts use the
  channel mean as the gray level.
* ``translation``: integer shifts of up to 1/8 of the height and width, zero fill (mid-gray in
  [-1, 1]), through ``kornia.geometry.transform.translate``.
* ``cutout``: one square of half the image side, at a uniformly random centre (clipped at the
  border), set to zero.

**Images only, never conditions.** A conditional discriminator sees ``cat([condition, image])``
(class one-hot maps, a label map, pix2pix's input photo); ``apply(..., condition_channels=k)``
augments the image channels only. The condition keeps its values: it is never recoloured, cut
out or zero-filled, so one-hot maps stay one-hot and a projection discriminator's class vector
stays the class. It follows the image's geometry alone, so a spatial condition stays aligned with
its image: it is shifted by the same translation with its border values repeated (a constant
class map is thereby unchanged). An augmentation added beside this one (ADA) keeps the rule:
its geometric transforms move the condition with the image, nothing else touches it.

Every draw is per sample, from torch's global generator on the input's device, so runs are
reproducible from the seed and resume exactly (the engine checkpoints the RNG state). A draw can
be reused (``sample`` then ``apply``) to transform two batches identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["POLICIES", "AugmentParams", "DiffAugment"]

POLICIES = ("color", "translation", "cutout")


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the random transform for a batch: per-sample factors, shifts and boxes."""

    brightness: Tensor | None = None  # (B,) additive, U(-0.5, 0.5)
    saturation: Tensor | None = None  # (B,) U(0, 2)
    contrast: Tensor | None = None  # (B,) U(0.5, 1.5)
    shift: Tensor | None = None  # (B, 2) integer (dx, dy) pixels
    cutout: Tensor | None = None  # (B, 2) integer (cx, cy) centre of the square


class DiffAugment:
    """The DiffAugment transform for a policy such as ``("color", "translation", "cutout")``.

    Args:
        policy: operations, applied in the given order.
        translation_ratio: largest shift as a fraction of the side (paper: 1/8).
        cutout_ratio: side of the cut-out square as a fraction of the image side (paper: 1/2).
    """

    def __init__(
        self,
        policy: Sequence[str],
        *,
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
    ) -> None:
        unknown = [p for p in policy if p not in POLICIES]
        if unknown:
            raise ValueError(f"unknown DiffAugment policy {unknown[0]!r}; choose from {POLICIES}")
        if not policy:
            raise ValueError("empty DiffAugment policy")
        self.policy = tuple(policy)
        self.translation_ratio = float(translation_ratio)
        self.cutout_ratio = float(cutout_ratio)

    # ------------------------------------------------------------------ draws
    def sample(self, x: Tensor) -> AugmentParams:
        """Draw the transform for the batch ``x`` of shape (B, C, H, W)."""
        if x.ndim != 4:
            raise ValueError(f"DiffAugment needs (B, C, H, W) images, got shape {tuple(x.shape)}")
        b, _, h, w = x.shape
        dev = x.device
        draws: dict[str, Tensor] = {}
        if "color" in self.policy:
            draws["brightness"] = torch.rand(b, device=dev) - 0.5
            draws["saturation"] = torch.rand(b, device=dev) * 2.0
            draws["contrast"] = torch.rand(b, device=dev) + 0.5
        if "translation" in self.policy:
            sx, sy = int(w * self.translation_ratio + 0.5), int(h * self.translation_ratio + 0.5)
            dx = torch.randint(-sx, sx + 1, (b,), device=dev)
            dy = torch.randint(-sy, sy + 1, (b,), device=dev)
            draws["shift"] = torch.stack([dx, dy], 1)
        if "cutout" in self.policy:
            cx = torch.randint(0, w, (b,), device=dev)
            cy = torch.randint(0, h, (b,), device=dev)
            draws["cutout"] = torch.stack([cx, cy], 1)
        return AugmentParams(**draws)

    # ------------------------------------------------------------------ transforms
    def apply(self, x: Tensor, params: AugmentParams, *, condition_channels: int = 0) -> Tensor:
        """Transform ``x`` (B, C, H, W) with a draw from ``sample`` (of the same batch size).
        The first ``condition_channels`` channels are a conditional discriminator's condition:
        they only follow the image's geometry (``align``); the rest is augmented."""
        k = condition_channels
        if k:
            return torch.cat([self.align(x[:, :k], params), self.apply(x[:, k:], params)], 1)
        for op in self.policy:
            if op == "color":
                x = self._color(x, params)
            elif op == "translation":
                x = self._translate(x, params)
            else:
                x = self._cutout(x, params)
        return x

    def align(self, condition: Tensor, params: AugmentParams) -> Tensor:
        """The condition moved with its image: the draw's translation, border values repeated
        (one-hot maps stay one-hot, constant maps unchanged); no colour, no cutout."""
        if "translation" not in self.policy:
            return condition
        return self._translate(condition, params, padding="border")

    def __call__(self, x: Tensor) -> Tensor:
        return self.apply(x, self.sample(x))

    @staticmethod
    def _color(x: Tensor, p: AugmentParams) -> Tensor:
        from kornia.color import rgb_to_grayscale
        from kornia.enhance import adjust_brightness

        assert p.brightness is not None and p.saturation is not None and p.contrast is not None
        b, c, h, w = x.shape
        groups = c // 3 if c % 3 == 0 else 1
        per_group = c // groups
        # (B * groups, per_group, H, W): the images of one sample share its draw
        y = x.reshape(b * groups, per_group, h, w)

        def expand(v: Tensor) -> Tensor:
            return v.to(x.dtype).repeat_interleave(groups).view(-1, 1, 1, 1)

        y = adjust_brightness(y, expand(p.brightness).flatten(), clip_output=False)
        gray = rgb_to_grayscale(y) if per_group == 3 else y.mean(1, keepdim=True)
        y = gray + (y - gray) * expand(p.saturation)
        mean = y.mean(dim=(1, 2, 3), keepdim=True)
        y = mean + (y - mean) * expand(p.contrast)
        return y.reshape(b, c, h, w)

    @staticmethod
    def _translate(x: Tensor, p: AugmentParams, padding: str = "zeros") -> Tensor:
        from kornia.geometry.transform import translate

        assert p.shift is not None
        # integer shifts: nearest sampling is exact; zeros (images) or the border (conditions)
        # fill what moves in from outside
        return translate(x, p.shift.to(x.dtype), mode="nearest", padding_mode=padding)

    def _cutout(self, x: Tensor, p: AugmentParams) -> Tensor:
        assert p.cutout is not None
        _, _, h, w = x.shape
        size_w, size_h = int(w * self.cutout_ratio + 0.5), int(h * self.cutout_ratio + 0.5)
        # the square covers [c - size // 2, c - size // 2 + size) on each axis, as in the paper
        x0 = (p.cutout[:, 0] - size_w // 2).view(-1, 1, 1)
        y0 = (p.cutout[:, 1] - size_h // 2).view(-1, 1, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        inside = (xs >= x0) & (xs < x0 + size_w) & (ys >= y0) & (ys < y0 + size_h)
        keep = (~inside).to(x.dtype).unsqueeze(1)  # (B, 1, H, W)
        return x * keep

    def __repr__(self) -> str:
        return f"DiffAugment({','.join(self.policy)})"
