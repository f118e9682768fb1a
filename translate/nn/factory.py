"""Building a generator from a config's common fields (shared by the image-to-image plugins)."""

from __future__ import annotations

from typing import Any

from torch import nn

from translate.nn.resnet import ResnetGenerator
from translate.nn.unet import UnetGenerator


def build_generator(cfg: Any, *, in_channels: int = 3, out_channels: int = 3) -> nn.Module:
    """A U-Net or ResNet generator from ``cfg.generator`` ("unet" | "resnet") and the fields
    ``unet_depth``, ``resnet_blocks``, ``base_channels``, ``norm`` and ``dropout`` (and
    ``antialias`` for the ResNet, when the config has it)."""
    if cfg.generator == "unet":
        return UnetGenerator(
            in_channels=in_channels,
            out_channels=out_channels,
            depth=cfg.unet_depth,
            base_channels=cfg.base_channels,
            norm=cfg.norm,
            dropout=cfg.dropout,
        )
    return ResnetGenerator(
        in_channels=in_channels,
        out_channels=out_channels,
        base_channels=cfg.base_channels,
        n_blocks=cfg.resnet_blocks,
        norm=cfg.norm,
        dropout=cfg.dropout,
        antialias=getattr(cfg, "antialias", False),
    )
