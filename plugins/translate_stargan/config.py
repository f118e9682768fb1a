"""StarGAN's settings (``StarGANConfig``): data (one or two datasets, the CelebA crop), networks and
the objective's weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from translate.config import SingleDataConfig, opt
from translate.fields import check

#: The paper's CelebA crop (Sec. 4.1 and the authors' code): 178x178 of the 178x218 faces.
CELEBA_CROP = 178


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
    data2: Path | None = opt(
        None,
        "A second labelled dataset trained at once, a folder per domain (RaFD style, "
        "DIR/<domain>/*.png): its domains follow --data's in the label, then the mask vector "
        "saying which dataset labelled each image (Sec. 3.2).",
    )
    domains2: str = opt(
        "", "Domains (folders) of --data2 to train on, comma-separated; default: all."
    )
    center_crop: int = opt(
        -1,
        "Centre-crop a square of this side before resizing (the paper's CelebA preprocessing: "
        "178 of the aligned 178x218 faces, then 128, so faces keep their aspect); smaller images "
        "give the square of their shorter side. -1: 178 with --attributes (CelebA style), "
        "none for a folder per domain; 0: none (squash to --load-size).",
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
        check(self.center_crop >= -1, "center_crop", "must be -1 (auto), 0 (none) or a side")

    @property
    def first_domains(self) -> list[str]:
        return [n.strip() for n in self.domains.split(",") if n.strip()]

    @property
    def second_domains(self) -> list[str]:
        return [n.strip() for n in self.domains2.split(",") if n.strip()]

    @property
    def domain_names(self) -> list[str]:
        """Every label name: --data's domains, then --data2's (the mask vector is not named)."""
        return self.first_domains + self.second_domains

    @property
    def label_size(self) -> int:
        """G's label input: the names, plus the 2-entry mask vector with --data2."""
        return len(self.domain_names) + (2 if self.data2 is not None else 0)

    @property
    def effective_center_crop(self) -> int:
        """``center_crop`` with -1 resolved: 178 for attribute (CelebA) data, else none."""
        if self.center_crop >= 0:
            return self.center_crop
        return CELEBA_CROP if self.multi_label else 0

    @property
    def multi_label(self) -> bool:
        """Attributes (several may be on at once) rather than exclusive domains."""
        return self.attributes is not None
