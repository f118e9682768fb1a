"""The data fields of each dataset kind, as config dataclasses a plugin's config extends.

``PluginBase.build_dataset`` builds the default dataset of a plugin's ``dataset_kind`` from these
fields (``translate.data.build_dataset``); a plugin whose config extends the kind's class gets
its data pipeline, its ``--data``-like options and their checks without writing any of it:

=========  ======================  =====================================================
kind       extend                  fields the default dataset reads
=========  ======================  =====================================================
paired     ``PairedDataConfig``    data, direction, load_size, crop_size, flip
labels     ``PairedDataConfig``    data, direction, load_size, crop_size, flip
unpaired   ``UnpairedDataConfig``  domain_a, domain_b, load_size, crop_size, flip
single     ``SingleDataConfig``    data, load_size, crop_size, flip
=========  ======================  =====================================================

This module must stay light: no torch import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from translate.fields import check, opt

Direction = Literal["a2b", "b2a"]

#: Config fields that ``translate.data.build_dataset`` reads for each dataset kind.
DATA_FIELDS: dict[str, tuple[str, ...]] = {
    "paired": ("data", "direction", "load_size", "crop_size", "flip"),
    "labels": ("data", "direction", "load_size", "crop_size", "flip"),
    "unpaired": ("domain_a", "domain_b", "load_size", "crop_size", "flip"),
    "single": ("data", "load_size", "crop_size", "flip"),
}

#: The config class a plugin of each dataset kind extends to get those fields.
DATA_CONFIGS: dict[str, str] = {
    "paired": "PairedDataConfig",
    "labels": "PairedDataConfig",
    "unpaired": "UnpairedDataConfig",
    "single": "SingleDataConfig",
}


def _check_sizes(load_size: int, crop_size: int) -> None:
    check(crop_size >= 1, "crop_size", "must be at least 1")
    check(load_size >= crop_size, "load_size", f"must be >= crop_size ({load_size} < {crop_size})")


@dataclass(frozen=True)
class PairedDataConfig:
    """Data fields of the ``paired`` and ``labels`` kinds (pix2pix, label-to-image)."""

    data: Path = opt(
        None,
        "Dataset folder: side-by-side A|B images, or A/ and B/ folders matched by file name; "
        "train/ and val/ subfolders are used when present.",
    )
    direction: Direction = opt("a2b", "a2b: translate A (left / A/) into B; b2a: the reverse.")
    load_size: int = opt(286, "Resize images to this square size before cropping.")
    crop_size: int = opt(256, "Random crop size for training (evaluation resizes to it).")
    flip: bool = opt(True, "Random horizontal flips during training.")

    def __post_init__(self) -> None:
        check(self.data is not None, "data", "is required (--data DIR)")
        check(self.direction in ("a2b", "b2a"), "direction", "must be a2b or b2a")
        _check_sizes(self.load_size, self.crop_size)


@dataclass(frozen=True)
class UnpairedDataConfig:
    """Data fields of the ``unpaired`` kind: two folders of unrelated images."""

    domain_a: Path = opt(
        None,
        "Folder of domain-A training images (e.g. horse2zebra/trainA); a sibling testA/ or "
        "valA/ feeds the sample grids.",
    )
    domain_b: Path = opt(None, "Folder of domain-B training images (e.g. horse2zebra/trainB).")
    load_size: int = opt(286, "Resize images to this square size before cropping.")
    crop_size: int = opt(256, "Random crop size for training (evaluation resizes to it).")
    flip: bool = opt(True, "Random horizontal flips during training.")

    def __post_init__(self) -> None:
        check(self.domain_a is not None, "domain_a", "is required (--domain-a DIR)")
        check(self.domain_b is not None, "domain_b", "is required (--domain-b DIR)")
        _check_sizes(self.load_size, self.crop_size)


@dataclass(frozen=True)
class SingleDataConfig:
    """Data fields of the ``single`` kind: one folder of images (the plugin derives its input
    and target from each image, e.g. a grayscale copy to colourise)."""

    data: Path = opt(
        None,
        "Folder of training images; train/ and val/ subfolders are used when present "
        "(val/ feeds the sample grids).",
    )
    load_size: int = opt(286, "Resize images to this square size before cropping.")
    crop_size: int = opt(256, "Random crop size for training (evaluation resizes to it).")
    flip: bool = opt(True, "Random horizontal flips during training.")

    def __post_init__(self) -> None:
        check(self.data is not None, "data", "is required (--data DIR)")
        _check_sizes(self.load_size, self.crop_size)
