"""Colourisation, a pix2pix application: grayscale photo -> colour photo.

Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks" (Sec. 4,
"BW -> color"): a U-Net generator and a 70x70 PatchGAN that sees (input, output) pairs, trained
with the conditional GAN objective + lambda * L1 (Eq. 4), lambda = 100. The paper predicts colour
from the L channel of Lab; here G maps BT.601 luminance to RGB, both in [-1, 1]. Data: any folder
of photos (the ``single`` kind); the grayscale input is computed from each photo in the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from translate.config import SingleDataConfig, opt
from translate.errors import ConfigError
from translate.plugin import PluginBase, SizeRequirements

if TYPE_CHECKING:  # torch is imported inside the methods: listing plugins stays fast
    from PIL import Image
    from torch import Tensor, nn

    from translate.plugin import StepContext


@dataclass(frozen=True)
class ColorizeConfig(SingleDataConfig):  # --data, --load-size, --crop-size, --flip
    """Colourisation settings (defaults: the paper's 256x256 setup)."""

    unet_depth: int = opt(8, "U-Net down-sampling levels (8 for 256x256 crops).")
    base_channels: int = opt(64, "Width of the first generator layer (ngf).")
    disc_channels: int = opt(64, "Width of the first discriminator layer (ndf).")
    disc_layers: int = opt(3, "PatchGAN layers (3: 70x70 receptive field).")
    lambda_l1: float = opt(100.0, "Weight of the L1 loss (paper: 100).")

    def __post_init__(self) -> None:
        super().__post_init__()  # checks --data, --load-size and --crop-size
        if self.unet_depth < 2:
            raise ConfigError("unet_depth: must be at least 2")
        if self.crop_size % 2**self.unet_depth:
            raise ConfigError(
                f"crop_size: {self.crop_size} is not a multiple of 2**unet_depth "
                f"({2**self.unet_depth}); lower --unet-depth or change --crop-size"
            )
        if self.lambda_l1 < 0:
            raise ConfigError("lambda_l1: must be >= 0")


def to_gray(rgb: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luminance (ITU-R BT.601 weights), in the input's range."""
    r, g, b = rgb.unbind(1)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


class ColorizePlugin(PluginBase[ColorizeConfig]):
    name = "colorize"  # must equal the entry-point name in pyproject.toml
    description = "Grayscale -> colour, U-Net + PatchGAN + L1 (Isola et al. 2017)"
    config_cls = ColorizeConfig
    dataset_kind = "single"  # batches are {"image": (B, 3, H, W) in [-1, 1], "path": [...]}
    gan_defaults: ClassVar[Mapping[str, Any]] = {"gan_loss": "nonsaturating"}  # the paper's

    def build_models(self, cfg: ColorizeConfig) -> dict[str, nn.Module]:
        from translate.nn import PatchDiscriminator, UnetGenerator, init_weights

        g = UnetGenerator(
            in_channels=1, out_channels=3, depth=cfg.unet_depth, base_channels=cfg.base_channels
        )
        # conditional D: it sees the grayscale input and a colour image, concatenated
        d = PatchDiscriminator(
            in_channels=4, base_channels=cfg.disc_channels, n_layers=cfg.disc_layers
        )
        return {"G": init_weights(g), "D": init_weights(d)}  # "D..." names: discriminators

    def train_step(self, ctx: StepContext, batch: Any, cfg: ColorizeConfig) -> dict[str, float]:
        import torch

        from translate.losses import l1_loss

        G, D = ctx.models["G"], ctx.models["D"]
        photo = batch["image"]  # (B, 3, H, W) in [-1, 1], on the training device
        gray = to_gray(photo)  # (B, 1, H, W): the generator's input
        # on a critic-only step (--n-critic N) G is not updated: build no graph through it
        with ctx.autocast(), torch.set_grad_enabled(ctx.update_generator):
            fake = G(gray)
        real_pair, fake_pair = torch.cat([gray, photo], 1), torch.cat([gray, fake], 1)
        with ctx.autocast():
            # D sees (gray, photo): penalties, colour jitter and noise act on the photo only
            loss_d, logs_d = ctx.gan.discriminator_loss(
                D,
                real_pair,
                fake_pair,
                condition_channels=1,
            )
        ctx.optimize("D", 0.5 * loss_d)  # halved, as in the paper (Sec. 3.3)
        if not ctx.update_generator:
            return logs_d
        with ctx.frozen("D"), ctx.autocast():
            # paired=True: fake_pair[i] and real_pair[i] share their input (feature matching)
            loss_adv, logs_g = ctx.gan.generator_loss(
                D,
                fake_pair,
                real_pair,
                paired=True,
                condition_channels=1,
            )
            loss_l1 = l1_loss(fake.float(), photo)
        ctx.optimize("G", loss_adv + cfg.lambda_l1 * loss_l1)
        return {**logs_d, **logs_g, **ctx.gan.logs({"G_L1": loss_l1})}

    def inference_module(
        self, models: Mapping[str, nn.Module], cfg: ColorizeConfig, opts: Any
    ) -> nn.Module:
        return models["G"]  # what translate run, export and serve call: (B, 1, H, W) -> RGB

    def size_requirements(self, cfg: ColorizeConfig) -> SizeRequirements:
        side = 2**cfg.unet_depth  # the runner pads inputs to a multiple and crops back
        return SizeRequirements(multiple_of=side, minimum=side)

    def preprocess(self, images: list[Image.Image], cfg: ColorizeConfig) -> Tensor:
        """PIL images of one size (colour or not) -> (B, 1, H, W) luminance in [-1, 1]."""
        from translate.inference.image_io import pil_to_tensor

        return to_gray(pil_to_tensor(images))

    def sample_columns(
        self, models: Mapping[str, nn.Module], batch: Any, cfg: ColorizeConfig
    ) -> list[Tensor]:
        """Sample grid columns: grayscale input | colourised | the original photo."""
        gray = to_gray(batch["image"])
        return [gray.expand(-1, 3, -1, -1), models["G"](gray), batch["image"]]

    def tiny_config(self, data_root: Path) -> ColorizeConfig:
        """Two CPU training steps in about a second (``check_plugin_contract``)."""
        return ColorizeConfig(
            data=data_root, load_size=36, crop_size=32, unet_depth=5, base_channels=8,
            disc_channels=8, disc_layers=2,
        )  # fmt: skip


plugin = ColorizePlugin()
