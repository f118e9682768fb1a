"""The pix2pix plugin: U-Net (or ResNet) generator, conditional PatchGAN, adversarial + L1.

Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks":
G* = arg min_G max_D L_cGAN(G, D) + lambda * L_L1(G)  (Eq. 4), lambda = 100.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from translate.config import PairedDataConfig, opt
from translate.errors import ConfigError
from translate.plugin import PluginBase, SizeRequirements

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from translate.plugin import StepContext


@dataclass(frozen=True)
class Pix2PixConfig(PairedDataConfig):
    """pix2pix model and loss settings (defaults: the paper's facades setup)."""

    generator: Literal["unet", "resnet"] = opt("unet", "Generator: U-Net (paper) or ResNet.")
    unet_depth: int = opt(8, "U-Net down-sampling levels (8 for 256x256: 'unet_256').")
    resnet_blocks: int = opt(9, "Residual blocks of the ResNet generator.")
    base_channels: int = opt(64, "Width of the first generator layer (ngf).")
    norm: Literal["batch", "instance", "none"] = opt("batch", "Normalisation in G and D.")
    dropout: float = opt(0.5, "Dropout in the U-Net's inner decoder blocks (paper: 0.5).")
    discriminator: Literal["patch", "pixel", "multiscale"] = opt(
        "patch", "Discriminator: PatchGAN (70x70 with 3 layers), 1x1 pixel, or multi-scale."
    )
    disc_layers: int = opt(3, "PatchGAN layers (3: 70x70 receptive field).")
    disc_channels: int = opt(64, "Width of the first discriminator layer (ndf).")
    lambda_l1: float = opt(100.0, "Weight of the L1 reconstruction loss (paper: 100).")
    init: Literal["normal", "xavier", "kaiming", "orthogonal"] = opt(
        "normal", "Weight initialisation (paper: normal, std 0.02)."
    )
    distill_from: Path | None = opt(
        None,
        "Dense parent checkpoint (set by 'translate compress'): G starts as its channel-pruned "
        "generator, D as its discriminator, and G also learns the parent's outputs.",
    )
    lambda_distill: float = opt(
        100.0, "Weight of the L1 loss to the dense parent's outputs (with --distill-from)."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.unet_depth < 2:
            raise ConfigError("unet_depth: must be at least 2")
        if self.generator == "unet" and self.crop_size % (2**self.unet_depth):
            raise ConfigError(
                f"crop_size: {self.crop_size} is not a multiple of 2**unet_depth "
                f"({2**self.unet_depth}); lower --unet-depth or change --crop-size"
            )
        if not 0 <= self.dropout < 1:
            raise ConfigError("dropout: must be in [0, 1)")
        if self.lambda_l1 < 0:
            raise ConfigError("lambda_l1: must be >= 0")
        if self.lambda_distill < 0:
            raise ConfigError("lambda_distill: must be >= 0")


@dataclass(frozen=True)
class Pix2PixInference:
    """Inference options of pix2pix."""

    test_time_dropout: bool = opt(
        False,
        "Run G as the paper does at test time: dropout on and batch statistics instead of "
        "running averages (outputs vary between runs; not exportable).",
    )


class Pix2PixPlugin(PluginBase[Pix2PixConfig]):
    name = "pix2pix"
    ddp_unused_parameters = False  # every loss reaches all of its group (DDP)
    description = "Paired translation, conditional GAN + L1 (Isola et al. 2017)"
    config_cls = Pix2PixConfig
    inference_config_cls = Pix2PixInference
    dataset_kind = "paired"
    # the paper's objective is the non-saturating cGAN loss; 200 epochs of facades (400 images)
    gan_defaults: ClassVar[Mapping[str, Any]] = {"gan_loss": "nonsaturating"}
    train_defaults: ClassVar[Mapping[str, Any]] = {"max_steps": 80_000}

    def build_models(self, cfg: Pix2PixConfig) -> dict[str, nn.Module]:
        from translate.nn import (
            MultiscaleDiscriminator,
            PatchDiscriminator,
            PixelDiscriminator,
            init_weights,
        )
        from translate.nn.factory import build_generator

        g = build_generator(cfg)
        # conditional D sees the input and the (real or fake) output, concatenated
        if cfg.discriminator == "patch":
            d: nn.Module = PatchDiscriminator(
                in_channels=6,
                base_channels=cfg.disc_channels,
                n_layers=cfg.disc_layers,
                norm=cfg.norm,
            )
        elif cfg.discriminator == "pixel":
            d = PixelDiscriminator(in_channels=6, base_channels=cfg.disc_channels, norm=cfg.norm)
        else:
            d = MultiscaleDiscriminator(
                in_channels=6,
                base_channels=cfg.disc_channels,
                n_layers=cfg.disc_layers,
                norm=cfg.norm,
            )
        return {
            "G": init_weights(g, scheme=cfg.init, gain=0.02),
            "D": init_weights(d, scheme=cfg.init, gain=0.02),
        }

    def initialize(self, models: Mapping[str, nn.Module], cfg: Pix2PixConfig) -> None:
        """A compression run (``--distill-from``) starts from its pruned dense parent."""
        if cfg.distill_from is not None:
            from translate.compress import init_from_parent

            init_from_parent(models, cfg.distill_from, generators=["G"])

    def checkpoint_meta(self, cfg: Pix2PixConfig) -> dict[str, Any]:
        """A compressed model records its parent, keep ratio and method in meta.json."""
        from translate.compress import compression_meta

        return compression_meta(cfg.distill_from, cfg.base_channels, cfg.lambda_distill)

    def train_step(self, ctx: StepContext, batch: Any, cfg: Pix2PixConfig) -> dict[str, float]:
        import torch

        from translate.losses import l1_loss

        G, D = ctx.models["G"], ctx.models["D"]
        real_a, real_b = batch["input"], batch["target"]  # (B, 3, H, W) in [-1, 1]
        # on a critic-only step (n_critic > 1) G is not trained: no graph through it
        with ctx.autocast(), torch.set_grad_enabled(ctx.update_generator):
            fake_b = G(real_a)
        with ctx.autocast():
            # D: real pairs (A, B) vs fake pairs (A, G(A)); the objective detaches the fake
            loss_d, logs_d = ctx.gan.discriminator_loss(
                D,
                torch.cat([real_a, real_b], 1),
                torch.cat([real_a, fake_b], 1),
                condition_channels=real_a.shape[1],  # penalties etc. on the B image only
            )
        # the paper halves D's objective to slow D relative to G (Isola 2017, Sec. 3.3)
        ctx.optimize("D", 0.5 * loss_d)
        if not ctx.update_generator:
            return logs_d
        with ctx.frozen("D"), ctx.autocast():
            # fake and real pairs share the input A: paired feature matching when enabled
            loss_adv, logs_g = ctx.gan.generator_loss(
                D,
                torch.cat([real_a, fake_b], 1),
                torch.cat([real_a, real_b], 1),
                paired=True,
                condition_channels=real_a.shape[1],
            )
            loss_l1 = l1_loss(fake_b.float(), real_b)
            loss_g = loss_adv + cfg.lambda_l1 * loss_l1
            own = {"G_L1": loss_l1}
            if cfg.distill_from is not None and cfg.lambda_distill > 0:
                # self-supervised compression (Yu & Pool 2020): the dense G's output as target
                from translate.compress import teacher_output

                target = teacher_output(cfg.distill_from, "G", real_a).float()
                loss_distill = l1_loss(fake_b.float(), target)
                loss_g = loss_g + cfg.lambda_distill * loss_distill
                own["G_distill"] = loss_distill
        ctx.optimize("G", loss_g)
        return {**logs_d, **logs_g, **ctx.gan.logs(own)}

    def inference_module(
        self, models: Mapping[str, nn.Module], cfg: Pix2PixConfig, opts: Any
    ) -> nn.Module:
        g = models["G"]
        if getattr(opts, "test_time_dropout", False):
            g.train()  # the paper's test-time behaviour: dropout + batch statistics
        return g

    def eval_data(self, cfg: Any) -> Path | None:
        """The validation split evaluated by --eval-every: ``<data>/val``, when present."""
        from translate.data.paired import split_folder

        return split_folder(Path(cfg.data), "val")

    def evaluate(self, models: Any, folder: Path, cfg: Pix2PixConfig) -> Any:
        """Paired protocol on ``folder`` (or its test/val split): L1, PSNR, SSIM, LPIPS of
        each output against its target; FID/KID of the outputs against the targets."""
        from PIL import Image

        from translate.data.paired import PairedDataset
        from translate.evaluation import eval_folder, paired_protocol

        pairs = PairedDataset(eval_folder(folder), direction=cfg.direction, train=False)

        def load(i: int) -> tuple[str, Image.Image, Image.Image]:
            source, target = pairs.load_pair(i)
            return pairs.pairs[i][0].name, Image.fromarray(source), Image.fromarray(target)

        return paired_protocol(models, (load(i) for i in range(len(pairs))))

    def tiny_config(self, data_root: Path) -> Pix2PixConfig:
        return Pix2PixConfig(
            data=data_root,
            load_size=36,
            crop_size=32,
            unet_depth=5,
            base_channels=8,
            disc_channels=8,
            disc_layers=2,
        )

    def size_requirements(self, cfg: Pix2PixConfig) -> SizeRequirements:
        if cfg.generator == "unet":
            side = 2**cfg.unet_depth
            return SizeRequirements(multiple_of=side, minimum=side)
        # 8: two stride-2 downsamplings must leave more than 1x1 for instance norm
        return SizeRequirements(multiple_of=4, minimum=8)


plugin = Pix2PixPlugin()
