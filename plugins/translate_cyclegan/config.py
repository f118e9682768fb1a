"""CycleGAN's settings (``CycleGANConfig``): the data, the networks and the objective's weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from translate.config import UnpairedDataConfig, opt
from translate.errors import ConfigError


@dataclass(frozen=True)
class CycleGANConfig(UnpairedDataConfig):
    """CycleGAN data, model and loss settings (defaults: the paper's 256x256 setup)."""

    generator: Literal["resnet", "unet"] = opt("resnet", "Generators: ResNet (paper) or U-Net.")
    resnet_blocks: int = opt(9, "Residual blocks of the ResNet generators (paper: 9 at 256x256).")
    unet_depth: int = opt(8, "U-Net down-sampling levels (8 for 256x256).")
    base_channels: int = opt(64, "Width of the first generator layer (ngf).")
    disc_channels: int = opt(64, "Width of the first discriminator layer (ndf).")
    disc_layers: int = opt(3, "PatchGAN layers (3: 70x70 receptive field, as in the paper).")
    norm: Literal["instance", "batch", "none"] = opt("instance", "Normalisation in G and D.")
    dropout: float = opt(0.0, "Dropout in the generators (the reference trains without).")
    lambda_cycle: float = opt(10.0, "Weight of each cycle-consistency L1 loss (paper: 10).")
    lambda_identity: float = opt(
        0.5, "Identity-loss weight as a fraction of --lambda-cycle (paper: 0.5; 0 disables it)."
    )
    pool_size: int = opt(50, "Generated images kept per discriminator's history pool (0: none).")
    init: Literal["normal", "xavier", "kaiming", "orthogonal"] = opt(
        "normal", "Weight initialisation (paper: normal, std 0.02)."
    )
    distill_from: Path | None = opt(
        None,
        "Dense parent checkpoint (set by 'translate compress'): G_A and G_B start as its "
        "channel-pruned generators, D_A and D_B as its discriminators, and each G also learns "
        "its dense counterpart's outputs.",
    )
    lambda_distill: float = opt(
        10.0, "Weight of each L1 loss to the dense parent's outputs (with --distill-from)."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.generator not in ("resnet", "unet"):
            raise ConfigError("generator: must be resnet or unet")
        if self.norm not in ("instance", "batch", "none"):
            raise ConfigError("norm: must be instance, batch or none")
        for name in ("base_channels", "disc_channels", "disc_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1")
        if self.resnet_blocks < 0:
            raise ConfigError("resnet_blocks: must be >= 0")
        if self.unet_depth < 2:
            raise ConfigError("unet_depth: must be at least 2")
        if self.generator == "unet" and self.crop_size % (2**self.unet_depth):
            raise ConfigError(
                f"crop_size: {self.crop_size} is not a multiple of 2**unet_depth "
                f"({2**self.unet_depth}); lower --unet-depth or change --crop-size"
            )
        if self.generator == "resnet" and (self.crop_size % 4 or self.crop_size < 8):
            raise ConfigError(
                f"crop_size: {self.crop_size} must be a multiple of 4 and at least 8 (ResNet G)"
            )
        if not 0 <= self.dropout < 1:
            raise ConfigError("dropout: must be in [0, 1)")
        if self.lambda_cycle < 0:
            raise ConfigError("lambda_cycle: must be >= 0")
        if self.lambda_distill < 0:
            raise ConfigError("lambda_distill: must be >= 0")
        if self.lambda_identity < 0:
            raise ConfigError("lambda_identity: must be >= 0")
        if self.pool_size < 0:
            raise ConfigError("pool_size: must be >= 0")
