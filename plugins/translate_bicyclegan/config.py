"""BicycleGAN's config (defaults: the paper, Sec. 4, and the official code's
``options/train_options.py``; see the README's table)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from translate.config import PairedDataConfig, opt
from translate.errors import ConfigError


@dataclass(frozen=True)
class BicycleGANConfig(PairedDataConfig):
    """BicycleGAN model and loss settings."""

    nz: int = opt(8, "Dimension of the latent code z (paper: 8).")
    where_add: Literal["input", "all"] = opt(
        "input", "Where G takes z: concatenated to the input, or to every encoder level."
    )
    unet_depth: int = opt(8, "U-Net down-sampling levels (8 for 256x256: 'unet_256').")
    base_channels: int = opt(64, "Width of the first generator layer (ngf).")
    encoder_channels: int = opt(64, "Width of the encoder's first layer (nef).")
    encoder_blocks: int = opt(5, "Residual down-sampling blocks of E (resnet_256: 5).")
    norm: Literal["batch", "instance", "none"] = opt("instance", "Normalisation in G, E and D.")
    encoder_norm: Literal["batch", "instance", "none", "same"] = opt(
        "same",
        "Normalisation in E ('same': --norm). Instance norm removes a flat colour's scale; "
        "none needs --init kaiming (a gain-0.02 init leaves E's features near zero).",
    )
    disc_channels: int = opt(64, "Width of the first discriminator layer (ndf).")
    disc_layers: int = opt(3, "PatchGAN layers per scale.")
    disc_scales: int = opt(2, "Scales of each multi-scale PatchGAN (official num_Ds: 2).")
    shared_d: bool = opt(False, "One discriminator for cVAE-GAN and cLR-GAN (use_same_D).")
    lambda_l1: float = opt(10.0, "Weight of |B - G(A, E(B))| (paper: 10).")
    lambda_kl: float = opt(0.01, "Weight of KL(E(B) || N(0, I)) (paper: 0.01).")
    lambda_z: float = opt(0.5, "Weight of the latent regression |z - E(G(A, z))| (paper: 0.5).")
    lambda_gan: float = opt(1.0, "Weight of the cVAE-GAN adversarial term.")
    lambda_gan2: float = opt(1.0, "Weight of the cLR-GAN adversarial term.")
    init: Literal["normal", "xavier", "kaiming", "orthogonal"] = opt(
        "xavier", "Weight initialisation (official code: xavier, gain 0.02)."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.nz < 1:
            raise ConfigError("nz: must be at least 1")
        if self.unet_depth < 2:
            raise ConfigError("unet_depth: must be at least 2")
        if self.crop_size % (2**self.unet_depth):
            raise ConfigError(
                f"crop_size: {self.crop_size} is not a multiple of 2**unet_depth "
                f"({2**self.unet_depth}); lower --unet-depth or change --crop-size"
            )
        for name in ("encoder_blocks", "disc_layers", "disc_scales"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1")
        if 2**self.encoder_blocks * 2 > self.crop_size:
            raise ConfigError(
                f"encoder_blocks: {self.encoder_blocks} halvings (and the stem's) do not fit "
                f"crop_size {self.crop_size}"
            )
        for name in ("lambda_l1", "lambda_kl", "lambda_z", "lambda_gan", "lambda_gan2"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0")
