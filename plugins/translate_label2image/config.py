"""label2image's settings (``Label2ImageConfig``): the data, the label encoding and palette,
the SPADE / pix2pixHD networks and the objective's weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from translate.config import PairedDataConfig, opt
from translate.errors import ConfigError


@dataclass(frozen=True)
class Label2ImageConfig(PairedDataConfig):
    """label2image settings. Defaults are a small CPU-friendly model; the SPADE paper's
    256x256 setting is ``--crop-size 256 --load-size 286 --base-channels 64 --n-up 5
    --spade-hidden 128 --disc-channels 64 --disc-layers 4`` (see the plugin README)."""

    load_size: int = opt(143, "Resize images to this square size before cropping.")
    crop_size: int = opt(128, "Random crop size for training (evaluation resizes to it).")
    labels: Literal["auto", "colour", "index"] = opt(
        "auto",
        "How the training label maps encode classes: colour (a colour per class), index "
        "(pixel value = class id, single-channel PNGs) or auto (index for single-channel "
        "files, else colour).",
    )
    palette: tuple[str, ...] = opt(
        (),
        "Class colours in class-id order (#rrggbb or r,g,b; repeat the option), or one palette "
        "file (JSON list, or one colour per line). Default: estimated from the training label "
        "maps (colour) or the VOC colour map (index). Stored in the checkpoint.",
    )
    num_classes: int = opt(
        0, "Number of classes; 0: the palette's size (colour maps) or the largest id + 1 (index)."
    )
    colour_tolerance: float = opt(
        60.0, "Colour label maps: RGB distance beyond which a pixel matches no palette colour."
    )
    max_unknown: float = opt(
        0.01,
        "Colour label maps: share of pixels allowed in flat regions beyond --colour-tolerance "
        "(such pixels on class borders, JPEG ringing, just take the nearest colour); a map "
        "with more is refused.",
    )
    dont_care: int = opt(
        -1,
        "Class id meaning 'unlabelled' (e.g. 255 in index maps): its pixels get no class "
        "(an all-zero one-hot); -1: none.",
    )
    instance_edges: bool = opt(
        False,
        "Add pix2pixHD's instance-boundary channel; label maps are then instance-id PNGs "
        "(Cityscapes *_instanceIds: class * 1000 + instance).",
    )
    generator: Literal["spade", "global"] = opt(
        "spade", "spade (Park et al. 2019) or global (pix2pixHD's global ResNet generator)."
    )
    base_channels: int = opt(32, "Width of the generator's last stage (ngf; papers: 64).")
    n_up: int = opt(
        4,
        "SPADE up-samplings, or the global generator's down-samplings; inputs are padded to "
        "multiples of 2**n_up (SPADE paper: 5; pix2pixHD: 4).",
    )
    spade_hidden: int = opt(64, "Hidden width of each SPADE layer (paper: 128).")
    spade_norm: Literal["instance", "batch"] = opt(
        "instance",
        "SPADE's parameter-free normalisation (the paper: batch; instance suits batch 1).",
    )
    resnet_blocks: int = opt(6, "Residual blocks of the global generator (pix2pixHD: 9).")
    disc_scales: int = opt(2, "Scales of the multi-scale PatchGAN (SPADE: 2, pix2pixHD: 3).")
    disc_layers: int = opt(
        3,
        "Layers of each PatchGAN (3: 70x70 patches and 4 matched feature layers, the same net "
        "as SPADE's n_layers_D 4 and pix2pixHD's n_layers_D 3, which count layers differently).",
    )
    disc_channels: int = opt(32, "Width of each PatchGAN's first layer (ndf; papers: 64).")
    vgg_weights: Path | None = opt(
        None,
        "torchvision VGG-19 ImageNet weights file (vgg19-dcbb9e9d.pth) for the perceptual "
        "loss; none: no perceptual loss.",
    )
    lambda_vgg: float = opt(10.0, "Weight of the VGG perceptual loss (SPADE: 10).")
    lambda_l1: float = opt(0.0, "Weight of an L1 loss to the photo (not in SPADE; 0: off).")
    distill_from: Path | None = opt(
        None,
        "Dense parent checkpoint (set by 'translate compress'; --generator global): G starts as "
        "its channel-pruned generator, D as its discriminator, and G also learns its outputs.",
    )
    lambda_distill: float = opt(
        10.0, "Weight of the L1 loss to the dense parent's outputs (with --distill-from)."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        checks = (
            (self.n_up >= 1, "n_up", "must be at least 1"),
            (self.num_classes >= 0, "num_classes", "must be >= 0 (0: from the data)"),
            (self.colour_tolerance > 0, "colour_tolerance", "must be positive"),
            (0 <= self.max_unknown < 1, "max_unknown", "must be in [0, 1)"),
            (self.dont_care >= -1, "dont_care", "must be a class id, or -1 for none"),
            (self.lambda_vgg >= 0 and self.lambda_l1 >= 0, "lambda_vgg/lambda_l1", "must be >= 0"),
            (self.lambda_distill >= 0, "lambda_distill", "must be >= 0"),
        )
        for ok, name, message in checks:
            if not ok:
                raise ConfigError(f"{name}: {message}")
        for name in ("base_channels", "spade_hidden", "disc_scales", "disc_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1")
        side = 2**self.n_up
        if self.crop_size % side or self.crop_size < 2 * side:
            raise ConfigError(
                f"crop_size: {self.crop_size} must be a multiple of 2**n_up ({side}) and at "
                f"least {2 * side}; change --crop-size or --n-up"
            )

    @property
    def classes(self) -> int:
        """Number of classes (the palette's size unless ``num_classes`` is given)."""
        return self.num_classes or len(self.palette)

    @property
    def input_channels(self) -> int:
        return self.classes + (1 if self.instance_edges else 0)
