"""The DCGAN plugin: a generator of new images from noise, trained on a folder of images.

Radford, Metz and Chintala 2016, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks". G maps z ~ N(0, I) (B, Z, 1, 1) to an image; D tells real
images from G's. The objective is the core's (the paper's: the non-saturating GAN loss of
Goodfellow et al. 2014, this plugin's default; every core family and regulariser applies);
Adam, lr 2e-4, beta1 0.5, batch 128 (Sec. 4).

Its inference module is G itself: it maps a latent to images, so ``translate sample`` (not
``run``) is how it is used, and its ONNX export takes the latent as input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from translate.fields import check, opt
from translate.plugin import PluginBase

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor, nn
    from torch.utils.data import Dataset

    from translate.plugin import StepContext

#: Image sizes the architecture builds (4x4 after the projection, doubling per stage).
MIN_SIZE, MAX_SIZE = 8, 256


def check_image_size(size: int) -> None:
    check(
        MIN_SIZE <= size <= MAX_SIZE and size & (size - 1) == 0,
        "image_size",
        f"{size} must be a power of two from {MIN_SIZE} to {MAX_SIZE}",
    )


@dataclass(frozen=True)
class DCGANConfig:
    """DCGAN data and model settings (defaults: the paper's 64x64 setup)."""

    data: Path = opt(
        None,
        "Folder of training images (any sizes; resized to --image-size); train/ and val/ "
        "subfolders are used when present.",
    )
    image_size: int = opt(64, "Side of the generated square images: a power of two, 8 to 256.")
    latent_dim: int = opt(100, "Dimension of the noise vector z (paper: 100).")
    base_channels: int = opt(64, "Width of G's last and D's first layer; doubles per stage.")
    extra_layers: int = opt(
        0,
        "3x3 stride-1 layers added to G (at full resolution) and D (after its first layer): "
        "the DCGAN authors' code's n_extra_layers; capacity for very small images.",
    )
    flip: bool = opt(True, "Random horizontal flips during training.")

    def __post_init__(self) -> None:
        check(self.data is not None, "data", "is required (--data DIR)")
        check_image_size(self.image_size)
        check(self.latent_dim >= 1, "latent_dim", "must be at least 1")
        check(self.base_channels >= 1, "base_channels", "must be at least 1")
        check(self.extra_layers >= 0, "extra_layers", "must be >= 0")


class DCGANPlugin(PluginBase[DCGANConfig]):
    name = "dcgan"
    ddp_unused_parameters = False  # every loss reaches all of its group (DDP)
    description = "Unconditional image generation from noise (Radford et al. 2016)"
    config_cls = DCGANConfig
    dataset_kind = "single"
    generates = True
    gan_defaults: ClassVar[Mapping[str, Any]] = {"gan_loss": "nonsaturating"}
    # the paper: Adam at 2e-4, beta1 0.5, batch 128, constant (Sec. 4): --lr-decay-start 1
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "batch_size": 128,
        "max_steps": 20_000,
        "lr_decay_start": 1.0,
    }

    def build_dataset(self, cfg: DCGANConfig, split: str) -> Dataset | None:
        from translate.data.single import build_generation

        return build_generation(cfg, split)

    def build_models(self, cfg: DCGANConfig) -> dict[str, nn.Module]:
        from translate.nn.dcgan import DCGANDiscriminator, DCGANGenerator, init_dcgan

        return {
            "G": init_dcgan(
                DCGANGenerator(
                    latent_dim=cfg.latent_dim,
                    image_size=cfg.image_size,
                    base_channels=cfg.base_channels,
                    extra_layers=cfg.extra_layers,
                )
            ),
            "D": init_dcgan(
                DCGANDiscriminator(
                    image_size=cfg.image_size,
                    base_channels=cfg.base_channels,
                    extra_layers=cfg.extra_layers,
                )
            ),
        }

    def latent_shape(self, cfg: DCGANConfig) -> tuple[int, ...]:
        return (cfg.latent_dim, 1, 1)

    def train_step(self, ctx: StepContext, batch: Any, cfg: DCGANConfig) -> dict[str, float]:
        import torch

        from translate.losses.objective import unconditional_gan_step

        real = batch["image"]  # (B, 3, S, S) in [-1, 1]
        z = torch.randn(real.shape[0], *self.latent_shape(cfg), device=real.device)
        return unconditional_gan_step(ctx, real, z)

    def inference_module(
        self, models: Mapping[str, nn.Module], cfg: DCGANConfig, opts: Any
    ) -> nn.Module:
        """G: a latent (B, Z, 1, 1) -> images (B, 3, S, S) in [-1, 1]."""
        return models["G"]

    def sample_columns(
        self, models: Mapping[str, nn.Module], batch: Any, cfg: DCGANConfig
    ) -> list[Tensor]:
        """real images | samples from a fixed latent (the same at every step, so grids of
        successive steps show one model's progress)."""
        import torch

        real = batch["image"]
        gen = torch.Generator().manual_seed(0)
        z = torch.randn(real.shape[0], *self.latent_shape(cfg), generator=gen)
        return [real, models["G"](z.to(real.device))]

    def evaluate(self, models: Any, folder: Path, cfg: DCGANConfig) -> Any:
        """Samples against the real images of ``folder``: FID/KID
        (``translate.evaluation_generation``)."""
        from translate.evaluation_generation import generation_protocol

        return generation_protocol(models, folder)

    def tiny_config(self, data_root: Path) -> DCGANConfig:
        return DCGANConfig(data=data_root, image_size=16, latent_dim=8, base_channels=8)


plugin = DCGANPlugin()
