"""StyleGAN2's inference module: a latent (z, or w) -> an image, with the truncation trick in W.

``StyleSampler`` wraps the (EMA) generator with per-layer noise fixed (``noise_mode="const"``,
as the official ``generate.py``), so the same latent always gives the same image and the ONNX
export is deterministic. It implements the style-generator protocol the core's latent walks use
(``translate.inference.sampling``): ``map(z) -> w`` and ``synthesize(w) -> image``.
"""

from __future__ import annotations

from torch import Tensor, nn

from translate.nn.stylegan2 import Generator

__all__ = ["LATENT_SPACES", "StyleSampler"]

LATENT_SPACES = ("z", "w")


class StyleSampler(nn.Module):
    """``forward(latent)``: z (B, z_dim) ~ N(0, I) through the mapping network, or w (B, w_dim)
    given directly (``space="w"``); ``w <- w_avg + psi * (w - w_avg)`` (StyleGAN Sec. 5.2,
    every layer); the same w for every layer, then the synthesis network."""

    def __init__(self, G: Generator, *, psi: float = 1.0, space: str = "z") -> None:  # noqa: N803
        super().__init__()
        if space not in LATENT_SPACES:
            raise ValueError(f"space must be one of {LATENT_SPACES}, got {space!r}")
        self.G, self.psi, self.space = G, float(psi), space
        self.train(G.training)  # a wrapper of an evaluating G evaluates (export, sampling)

    def map(self, z: Tensor) -> Tensor:
        """z (B, z_dim) -> the truncated w (B, w_dim)."""
        return self.G.mapping(z, self.psi)[:, 0]

    def truncate(self, w: Tensor) -> Tensor:
        if self.psi == 1.0:
            return w
        return self.G.mapping.w_avg.to(w.dtype).lerp(w, self.psi)

    def synthesize(self, w: Tensor) -> Tensor:
        """w (B, w_dim), used for every layer -> image (B, 3, R, R) clamped to [-1, 1] (as the
        official ``generate.py`` clamps when it writes 8-bit images)."""
        ws = w.unsqueeze(1).expand(-1, self.G.num_ws, -1)
        return self.G.synthesis(ws, "const").clamp(-1, 1)  # type: ignore[union-attr]

    def forward(self, latent: Tensor) -> Tensor:
        w = self.map(latent) if self.space == "z" else self.truncate(latent)
        return self.synthesize(w)
