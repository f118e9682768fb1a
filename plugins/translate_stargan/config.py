"""StarGAN's settings (``StarGANConfig``): attributes, networks and the objective's weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from translate.config import SingleDataConfig, opt
from translate.fields import check


@dataclass(frozen=True)
class StarGANConfig(SingleDataConfig):
    """StarGAN data, model and loss settings (defaults: the paper's 128x128 CelebA setup)."""

    data: Path = opt(
        None,
        "Dataset folder: one sub-folder of images per domain (DIR/<domain>/*.png; "
        "DIR/train/<domain>/ and DIR/val/<domain>/ when present), or the images an "
        "--attributes file names.",
    )
    attributes: Path | None = opt(
        None,
        "Attribute file for multi-label data (CelebA style): a CSV 'image,<attr>,...' with 1/0 "
        "(or 1/-1) values, or CelebA's list_attr_celeba.txt; image names relative to --data.",
    )
    domains: str = opt(
        "",
        "Domains (folders) or attributes (columns) to train on, comma-separated; default: all. "
        "The checkpoint stores the list, which `translate run --to` checks names against.",
    )
    load_size: int = opt(128, "Resize images to this square size before cropping.")
    crop_size: int = opt(128, "Random crop size for training (evaluation resizes to it).")
    base_channels: int = opt(64, "Width of the generator's first layer (paper: 64).")
    resnet_blocks: int = opt(6, "Residual blocks of the generator (paper: 6).")
    norm: Literal["instance", "batch", "none"] = opt("instance", "Normalisation in G (paper).")
    disc_channels: int = opt(64, "Width of the discriminator's first layer (paper: 64).")
    disc_layers: int = opt(
        6, "Stride-2 layers of the discriminator (paper: 6 at 128x128); crop >= 2**layers."
    )
    lambda_cls: float = opt(1.0, "Weight of the domain-classification losses (paper: 1).")
    lambda_rec: float = opt(10.0, "Weight of the reconstruction (cycle) L1 loss (paper: 10).")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.norm in ("instance", "batch", "none"), "norm", "must be instance, batch or none")
        for name in ("base_channels", "disc_channels", "disc_layers"):
            check(getattr(self, name) >= 1, name, "must be at least 1")
        check(self.resnet_blocks >= 0, "resnet_blocks", "must be >= 0")
        check(
            self.crop_size % 4 == 0 and self.crop_size >= 8,
            "crop_size",
            f"{self.crop_size} must be a multiple of 4 and at least 8 (the generator)",
        )
        check(
            self.crop_size >= 2**self.disc_layers,
            "crop_size",
            f"{self.crop_size} is smaller than 2**disc_layers ({2**self.disc_layers}); "
            "lower --disc-layers",
        )
        check(self.lambda_cls >= 0, "lambda_cls", "must be >= 0")
        check(self.lambda_rec >= 0, "lambda_rec", "must be >= 0")

    @property
    def domain_names(self) -> list[str]:
        return [n.strip() for n in self.domains.split(",") if n.strip()]

    @property
    def multi_label(self) -> bool:
        """Attributes (several may be on at once) rather than exclusive domains."""
        return self.attributes is not None
