"""The superres plugin: single-image super-resolution, PSNR-oriented then adversarial.

SRGAN (Ledig et al. 2017) and ESRGAN (Wang et al. 2018) train in two phases:

1. ``--phase pixel``: the generator alone, pixel loss (L1, or Charbonnier, Lai et al. 2017):
   the PSNR-oriented model (SRResNet / RRDB-PSNR). The shipped default is such a model.
2. ``--phase gan --init-from runs/<pixel run>``: fine-tuning with a discriminator:
   ``lambda_pixel * pixel + lambda_adv * adversarial (+ lambda_perceptual * VGG features)``.
   Its defaults are ESRGAN's (Sec. 4.1): the relativistic average loss (``--gan-loss
   ragan``), pixel 1e-2, adversarial 5e-3, perceptual 1, Adam lr 1e-4 for G and D, and a VGG
   discriminator with batch norm; each is overridable. The perceptual term needs a VGG-19
   weights file (``--vgg-weights``), nothing is downloaded. Every core GAN family applies.

Ranges, as the papers': the pixel loss is taken on [0, 1] images (the networks work in
[-1, 1]); the VGG features of [0, 1] images normalised by the ImageNet statistics; the
adversarial term is the family's loss on D's logits, which does not depend on the image range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from translate.config import opt
from translate.errors import ConfigError
from translate.plugin import PluginBase, SizeRequirements

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor, nn

    from translate.plugin import StepContext

#: name -> (architecture, channels, blocks): "small" trains on a CPU in about an hour and is
#: the shipped default (0.95 M parameters); "srresnet" is SRGAN's generator (1.5 M); "rrdb" is
#: ESRGAN's (16.7 M), for GPUs.
PRESETS: dict[str, tuple[str, int, int]] = {
    "small": ("srresnet-single", 64, 12),
    "srresnet": ("srresnet", 64, 16),
    "rrdb": ("rrdb", 64, 23),
}


@dataclass(frozen=True)
class SuperResConfig:
    """Super-resolution data, network and loss settings."""

    data: tuple[Path, ...] = opt(
        (),
        "Folder of high-resolution images (repeat --data for several); low-resolution inputs "
        "are made on the fly.",
    )
    scale: int = opt(4, "Upscaling factor: 2, 3 or 4.", choices=(2, 3, 4))
    preset: Literal["small", "srresnet", "rrdb"] = opt(
        "small",
        "Generator: small (0.95 M parameters, trains on a CPU), srresnet (SRGAN, 1.5 M) or "
        "rrdb (ESRGAN, 16.7 M, for GPUs).",
    )
    channels: int | None = opt(None, "Override the preset's feature channels.")
    blocks: int | None = opt(None, "Override the preset's number of residual blocks.")
    patch_size: int = opt(48, "Low-resolution training patch side (HR patch: x scale).")
    degradation: Literal["bicubic", "realistic"] = opt(
        "bicubic",
        "How LR inputs are made: bicubic (the benchmark protocol) or realistic (Real-ESRGAN-"
        "style blur, resize, noise and JPEG, applied twice).",
    )
    phase: Literal["pixel", "gan"] = opt(
        "pixel",
        "pixel: PSNR-oriented pretraining (lr 2e-4); gan: adversarial fine-tuning (with "
        "--init-from; ESRGAN's lr 1e-4 unless --lr is given).",
    )
    init_from: Path | None = opt(
        None, "Start the generator from this checkpoint or run (the pixel phase's result)."
    )
    pixel_loss: Literal["l1", "charbonnier"] = opt("l1", "Pixel loss: l1 or charbonnier.")
    discriminator: Literal["vgg", "unet"] = opt(
        "vgg",
        "Discriminator (phase gan): vgg (SRGAN/ESRGAN) or unet (Real-ESRGAN, spectral norm).",
    )
    disc_norm: Literal["batch", "none"] = opt(
        "batch",
        "Normalisation in the vgg discriminator: batch (SRGAN, ESRGAN) or none (for gradient "
        "penalties or --spectral-norm d).",
    )
    disc_channels: int = opt(64, "Width of the discriminator's first layer.")
    lambda_pixel: float = opt(1e-2, "Weight of the pixel loss in phase gan (ESRGAN: 1e-2).")
    lambda_adv: float = opt(5e-3, "Weight of the adversarial loss (phase gan; ESRGAN: 5e-3).")
    lambda_perceptual: float = opt(1.0, "Weight of the VGG perceptual loss (with --vgg-weights).")
    vgg_weights: Path | None = opt(
        None,
        "VGG-19 weights file (torchvision's state dict, .pth or .safetensors) for the perceptual "
        "loss; without it there is no perceptual term.",
    )

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError("data: is required (--data DIR, repeatable)")
        if self.scale not in (2, 3, 4):
            raise ConfigError("scale: must be 2, 3 or 4")
        if self.preset not in PRESETS:
            raise ConfigError(f"preset: must be one of {', '.join(PRESETS)}")
        for name in ("channels", "blocks"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}: must be at least 1")
        if self.patch_size < 4:
            raise ConfigError("patch_size: must be at least 4")
        if self.discriminator == "unet" and (self.patch_size * self.scale) % 8:
            raise ConfigError(
                "patch_size: the U-Net discriminator needs patch_size * scale % 8 == 0"
            )
        for name in ("lambda_pixel", "lambda_adv", "lambda_perceptual"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0")

    @property
    def architecture(self) -> tuple[str, int, int]:
        arch, channels, blocks = PRESETS[self.preset]
        return arch, self.channels or channels, self.blocks or blocks


class SuperResPlugin(PluginBase[SuperResConfig]):
    name = "superres"
    ddp_unused_parameters = False  # every loss reaches all of its group (DDP)
    description = "Super-resolution x2/x3/x4, SRResNet/RRDB, pixel then GAN (SRGAN, ESRGAN)"
    config_cls = SuperResConfig
    dataset_kind = "single"
    # ESRGAN's relativistic average GAN for the fine-tuning phase
    gan_defaults: ClassVar[Mapping[str, Any]] = {"gan_loss": "ragan"}
    # EDSR/ESRGAN: batch 16, Adam(0.9, 0.999), 2e-4 for the pixel phase
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "batch_size": 16,
        "lr": 2e-4,
        "beta1": 0.9,
        "max_steps": 100_000,
        "sample_every": 1000,
        "checkpoint_every": 2000,
    }

    def config_train_defaults(self, cfg: SuperResConfig) -> dict[str, Any]:
        """ESRGAN's GAN phase trains G and D at 1e-4 (Wang et al. 2018, Sec. 4.1)."""
        return {"lr": 1e-4, "lr_d": None} if cfg.phase == "gan" else {}

    def build_generator(self, cfg: SuperResConfig) -> nn.Module:
        from translate_superres.nets import RRDBNet, SRResNet, init_residual

        arch, channels, blocks = cfg.architecture
        if arch == "rrdb":
            g: nn.Module = RRDBNet(scale=cfg.scale, channels=channels, blocks=blocks)
        else:
            g = SRResNet(
                scale=cfg.scale,
                channels=channels,
                blocks=blocks,
                single_upsample=arch == "srresnet-single",
            )
        return init_residual(g, scale=0.1)

    def build_models(self, cfg: SuperResConfig) -> dict[str, nn.Module]:
        from translate_superres.nets import UNetDiscriminator, VGGDiscriminator

        models: dict[str, nn.Module] = {"G": self.build_generator(cfg)}
        if cfg.phase == "gan":
            if cfg.discriminator == "unet":
                models["D"] = UNetDiscriminator(base_channels=cfg.disc_channels)
            else:
                models["D"] = VGGDiscriminator(base_channels=cfg.disc_channels, norm=cfg.disc_norm)
        return models

    def finalize_config(self, cfg: SuperResConfig) -> SuperResConfig:
        """Check the training-only files of a new run. Not in the config's own validation:
        ``run``, ``export``, ``serve`` and ``eval`` rebuild the config from a checkpoint that
        may have moved to a machine without them."""
        if cfg.vgg_weights is not None and not cfg.vgg_weights.is_file():
            raise ConfigError(f"vgg_weights: {cfg.vgg_weights}: file not found")
        return cfg

    def initialize(self, models: Mapping[str, nn.Module], cfg: SuperResConfig) -> None:
        """A fresh run's starting weights: the generator of ``--init-from`` when given."""
        if cfg.init_from is None:
            return
        from translate.engine import checkpoint as ckpt
        from translate.loading.checkpoint import load_inference_weights

        folder = ckpt.resolve_checkpoint(cfg.init_from)
        meta = ckpt.read_meta(folder)
        if meta.get("plugin") != self.name:
            raise ConfigError(
                f"init_from: {folder} is a {meta.get('plugin')!r} checkpoint, not superres"
            )
        # only the generator's shape must agree; the rest of their config is irrelevant here
        theirs = meta.get("plugin_config", {})
        shape = {k: theirs[k] for k in ("scale", "preset", "channels", "blocks") if k in theirs}
        mine = (cfg.scale, cfg.architecture)
        other = dataclasses.replace(cfg, **shape)
        if (other.scale, other.architecture) != mine:
            raise ConfigError(
                f"init_from: {folder} has scale {other.scale} and generator {other.architecture}, "
                f"this run needs {mine[0]} and {mine[1]}"
            )
        weights = ckpt.read_weights(folder)
        load_inference_weights(weights, {"G": models["G"]}, source=folder / ckpt.WEIGHTS)

    def build_dataset(self, cfg: SuperResConfig, split: str) -> Any:
        from translate_superres.data import SuperResDataset

        # "val": centre crops of the training images with the bicubic degradation (sample grids)
        return SuperResDataset(
            cfg.data,
            scale=cfg.scale,
            patch_size=cfg.patch_size,
            degradation=cfg.degradation,
            train=split == "train",
        )

    def train_step(self, ctx: StepContext, batch: Any, cfg: SuperResConfig) -> dict[str, float]:
        import torch

        from translate.losses import charbonnier_loss, l1_loss

        loss_fn = charbonnier_loss if cfg.pixel_loss == "charbonnier" else l1_loss

        def pixel_loss(sr: Tensor, hr: Tensor) -> Tensor:
            # on [0, 1] images, as ESRGAN's (Wang et al. 2018) and EDSR's: on [-1, 1] an L1
            # doubles, and lambda_pixel 1e-2 would weigh as 2e-2 against the other terms
            return loss_fn((sr.float() + 1) / 2, (hr + 1) / 2)

        G = ctx.models["G"]
        lr, hr = batch["input"], batch["target"]  # (B, 3, p, p), (B, 3, p*s, p*s) in [-1, 1]
        if cfg.phase == "pixel":
            with ctx.autocast():
                sr = G(lr)
            loss = pixel_loss(sr, hr)
            ctx.optimize("G", loss)
            return {"G_pixel": loss.item()}

        D = ctx.models["D"]
        with ctx.autocast(), torch.set_grad_enabled(ctx.update_generator):
            sr = G(lr)
        with ctx.autocast():
            loss_d, logs_d = ctx.gan.discriminator_loss(D, hr, sr)
        ctx.optimize("D", loss_d)
        if not ctx.update_generator:
            return logs_d
        with ctx.frozen("D"), ctx.autocast():
            loss_adv, logs_g = ctx.gan.generator_loss(D, sr, hr, paired=True)
        pixel = pixel_loss(sr, hr)
        loss_g = cfg.lambda_pixel * pixel + cfg.lambda_adv * loss_adv
        logs = {**logs_d, **logs_g, "G_pixel": pixel.item()}
        if cfg.vgg_weights is not None and cfg.lambda_perceptual > 0:
            from translate.losses.perceptual import ESRGAN_LAYERS, vgg_loss

            vgg = vgg_loss(cfg.vgg_weights, layers=ESRGAN_LAYERS, device=sr.device)
            perceptual = vgg(sr.float(), hr)
            loss_g = loss_g + cfg.lambda_perceptual * perceptual
            logs["G_perceptual"] = perceptual.item()
        ctx.optimize("G", loss_g)
        return logs

    def evaluate(self, upscale: Any, folder: Path, cfg: SuperResConfig) -> Any:
        """PSNR/SSIM on BT.601 Y beside bicubic, the standard protocol (evaluate.py), and LPIPS
        of the output against the HR image."""
        from translate.evaluation import EvalSet
        from translate_superres.evaluate import evaluate_items

        return EvalSet(evaluate_items(upscale, folder, scale=cfg.scale))

    def inference_module(self, models: Mapping[str, nn.Module], cfg: SuperResConfig, opts: Any):
        from translate_superres.nets import Clamped

        g = models["G"]
        return Clamped(g).train(g.training)  # a new wrapper must not flip the mode to train

    def size_requirements(self, cfg: SuperResConfig) -> SizeRequirements:
        return SizeRequirements(multiple_of=1, minimum=2, scale=cfg.scale)

    def sample_columns(
        self, models: Mapping[str, nn.Module], batch: Any, cfg: SuperResConfig
    ) -> list[Tensor]:
        """LR input (nearest-upscaled to the output size) | bicubic | model output | HR."""
        import torch.nn.functional as F

        lr = batch["input"]
        nearest = F.interpolate(lr, scale_factor=cfg.scale, mode="nearest")
        bicubic = F.interpolate(lr, scale_factor=cfg.scale, mode="bicubic", align_corners=False)
        return [nearest, bicubic.clamp(-1, 1), models["G"](lr).clamp(-1, 1), batch["target"]]

    def tiny_config(self, data_root: Path) -> SuperResConfig:
        return SuperResConfig(data=(data_root,), scale=2, channels=8, blocks=1, patch_size=8)


plugin = SuperResPlugin()
