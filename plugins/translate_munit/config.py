"""MUNIT's config (defaults: the paper's App. B and the official
``configs/edges2shoes_folder.yaml``; see the README's table)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from translate.config import UnpairedDataConfig, opt
from translate.errors import ConfigError


@dataclass(frozen=True)
class MUNITConfig(UnpairedDataConfig):
    """MUNIT data, model and loss settings."""

    style_dim: int = opt(8, "Dimension of the style code (paper: 8).")
    base_channels: int = opt(64, "Width of the encoders' first layer (dim).")
    n_downsample: int = opt(2, "Stride-2 convolutions of the content encoder (and upsamplings).")
    n_res: int = opt(4, "Residual blocks of the content encoder and of the decoder.")
    mlp_dim: int = opt(256, "Width of the MLP from the style code to the AdaIN parameters.")
    disc_channels: int = opt(64, "Width of each discriminator's first layer.")
    disc_layers: int = opt(4, "Stride-2 layers of each discriminator scale (official n_layer).")
    disc_scales: int = opt(3, "Scales of the multi-scale discriminators (paper: 3).")
    lambda_x: float = opt(10.0, "Weight of the image reconstruction L1 (paper: 10).")
    lambda_c: float = opt(1.0, "Weight of the content reconstruction L1 (paper: 1).")
    lambda_s: float = opt(1.0, "Weight of the style reconstruction L1 (paper: 1).")
    lambda_cyc: float = opt(0.0, "Weight of the explicit style-augmented cycle L1 (0: off).")
    vgg_weights: Path | None = opt(
        None,
        "torchvision VGG-19 ImageNet weights file (vgg19-dcbb9e9d.pth) for the domain-invariant "
        "perceptual loss; none: no perceptual loss.",
    )
    lambda_vgg: float = opt(1.0, "Weight of the domain-invariant perceptual loss (configs: 1).")
    lr_step: int = opt(100_000, "Halve the learning rate every N steps (paper's configs: 100k).")
    mode: Literal["munit", "unit"] = opt(
        "munit", "munit; or unit: UNIT's shared-latent VAE-GAN (Liu et al. 2017), one answer."
    )
    lambda_kl: float = opt(0.01, "UNIT: weight of the KL terms of the latents (configs: 0.01).")
    lambda_unit_cyc: float = opt(10.0, "UNIT: weight of the cycle reconstruction (configs: 10).")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("style_dim", "base_channels", "mlp_dim", "disc_channels", "disc_layers",
                     "disc_scales", "lr_step"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1")
        if self.n_downsample < 0 or self.n_res < 0:
            raise ConfigError("n_downsample/n_res: must be >= 0")
        names = ("lambda_x", "lambda_c", "lambda_s", "lambda_cyc", "lambda_vgg", "lambda_kl",
                 "lambda_unit_cyc")  # fmt: skip
        for name in names:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0")
        if self.mode not in ("munit", "unit"):
            raise ConfigError(f"mode: {self.mode!r} is not munit or unit")
        if self.mode == "unit" and self.n_res < 1:
            raise ConfigError("n_res: --mode unit shares one residual block; needs n_res >= 1")
        if self.crop_size % (2**self.n_downsample):
            raise ConfigError(
                f"crop_size: {self.crop_size} is not a multiple of 2**n_downsample "
                f"({2**self.n_downsample})"
            )


@dataclass(frozen=True)
class MUNITInference:
    """Inference options of MUNIT."""

    direction: Literal["a2b", "b2a"] = opt("a2b", "a2b: A's content in a B style; b2a: reverse.")

    def __post_init__(self) -> None:
        if self.direction not in ("a2b", "b2a"):
            raise ConfigError("direction: must be a2b or b2a")
