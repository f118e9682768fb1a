"""The TransGAN plugin: image generation with two transformers and no convolutions.

Jiang, Chang and Wang 2021, "TransGAN: Two Pure Transformers Can Make One Strong GAN, and That
Can Scale Up". G turns z into a grid of tokens and grows it by pixel shuffle through stages of
transformer blocks, the last with grid self-attention; D reads patch tokens at three scales
(``translate_transgan.nets``). The paper's training recipe is the core's: WGAN-GP (Gulrajani et
al. 2017), 4 critic steps per generator step, DiffAugment (Zhao et al. 2020; translation, cutout,
colour, on by default: Sec. 4.2 finds it essential for transformers), Adam lr 1e-4 with betas
(0, 0.99), EMA of G (authors' CIFAR-10 script).
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


def parse_depths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        return ()


@dataclass(frozen=True)
class TransGANConfig:
    """TransGAN data and model settings (defaults: the authors' CIFAR-10 configuration)."""

    data: Path = opt(
        None,
        "Folder of training images (any sizes; resized to --image-size); train/ and val/ "
        "subfolders are used when present.",
    )
    image_size: int = opt(32, "Side of the images: --bottom-width * 2^(stages - 1) (paper: 32).")
    latent_dim: int = opt(1024, "Dimension of z (authors' CIFAR-10 script: 1024).")
    bottom_width: int = opt(8, "Side of G's first token grid (paper: 8).")
    g_dim: int = opt(1024, "Token width of G's first stage; each stage has a quarter (1024).")
    g_depths: str = opt(
        "5,4,2", "Blocks per G stage, comma-separated; one stage per doubling (paper: 5,4,2)."
    )
    g_heads: int = opt(4, "Attention heads in G's blocks (at most the stage's width).")
    grid: int = opt(16, "Window side of grid self-attention at G's last stage; 0: full (16).")
    d_dim: int = opt(384, "Token width of D's last scale (authors: 384).")
    d_depth: int = opt(7, "D's blocks: a third per scale, then one with the class token (7).")
    d_heads: int = opt(4, "Attention heads in D's blocks (authors: 4).")
    patch_size: int = opt(4, "D's finest patch side; then 2x and 4x (authors: 4).")
    flip: bool = opt(True, "Random horizontal flips during training.")

    def __post_init__(self) -> None:
        check(self.data is not None, "data", "is required (--data DIR)")
        depths = parse_depths(self.g_depths)
        check(
            bool(depths) and all(d >= 1 for d in depths),
            "g_depths",
            f"{self.g_depths!r} must be positive integers, comma-separated (e.g. 5,4,2)",
        )
        check(self.bottom_width >= 1, "bottom_width", "must be at least 1")
        want = self.bottom_width * 2 ** (len(depths) - 1)
        check(
            self.image_size == want,
            "image_size",
            f"{self.image_size} must be --bottom-width x 2^(stages - 1) = {want} "
            f"({len(depths)} stages in --g-depths)",
        )
        check(self.latent_dim >= 1, "latent_dim", "must be at least 1")
        check(
            self.g_dim % 4 ** (len(depths) - 1) == 0 and self.g_dim % self.g_heads == 0,
            "g_dim",
            f"{self.g_dim} must be divisible by 4^(stages - 1) and by --g-heads",
        )
        check(self.g_heads >= 1 and self.d_heads >= 1, "g_heads", "heads must be at least 1")
        check(self.grid >= 0, "grid", "must be >= 0 (0: full attention)")
        check(
            self.grid == 0 or self.image_size % self.grid == 0,
            "grid",
            f"{self.grid} must divide --image-size {self.image_size}",
        )
        check(
            self.d_dim % 4 == 0 and (self.d_dim // 4) % self.d_heads == 0,
            "d_dim",
            f"{self.d_dim} must be a multiple of 4 whose quarter --d-heads divides",
        )
        check(self.d_depth >= 1, "d_depth", "must be at least 1")
        check(
            self.patch_size >= 1 and self.image_size % (4 * self.patch_size) == 0,
            "patch_size",
            f"{self.patch_size}: 4 x the patch must divide --image-size {self.image_size}",
        )


class TransGANPlugin(PluginBase[TransGANConfig]):
    name = "transgan"
    ddp_unused_parameters = False  # every loss reaches all of its group (DDP)
    description = "Generation with two transformers, no convolutions (Jiang et al. 2021)"
    config_cls = TransGANConfig
    dataset_kind = "single"
    generates = True
    gan_defaults: ClassVar[Mapping[str, Any]] = {
        "gan_loss": "wgan-gp",
        "n_critic": 4,
        "diff_augment": "translation,cutout,color",
        "ema_decay": 0.9999,
        "clip_grad_norm": 5.0,  # the authors' script clips D's and G's gradient norms at 5
    }
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "batch_size": 64,
        "max_steps": 500_000,
        "lr": 1e-4,
        "beta1": 0.0,
        "beta2": 0.99,
    }

    def build_dataset(self, cfg: TransGANConfig, split: str) -> Dataset | None:
        from translate.data.single import build_generation

        return build_generation(cfg, split)

    def build_models(self, cfg: TransGANConfig) -> dict[str, nn.Module]:
        from translate_transgan.nets import Discriminator, Generator, init_weights

        G = Generator(
            cfg.latent_dim,
            bottom=cfg.bottom_width,
            dim=cfg.g_dim,
            depths=parse_depths(cfg.g_depths),
            heads=cfg.g_heads,
            grid=cfg.grid,
        )
        D = Discriminator(
            cfg.image_size,
            patch=cfg.patch_size,
            dim=cfg.d_dim,
            depth=cfg.d_depth,
            heads=cfg.d_heads,
        )
        return {"G": init_weights(G), "D": init_weights(D)}

    def latent_shape(self, cfg: TransGANConfig) -> tuple[int, ...]:
        return (cfg.latent_dim,)

    def train_step(self, ctx: StepContext, batch: Any, cfg: TransGANConfig) -> dict[str, float]:
        """The core's game (default WGAN-GP on DiffAugmented images) between the transformers."""
        import torch

        from translate.losses.objective import unconditional_gan_step

        real = batch["image"]  # (B, 3, S, S) in [-1, 1]
        z = torch.randn(real.shape[0], cfg.latent_dim, device=real.device)
        return unconditional_gan_step(ctx, real, z)

    def inference_module(
        self, models: Mapping[str, nn.Module], cfg: TransGANConfig, opts: Any
    ) -> nn.Module:
        """G: latents (B, Z) ~ N(0, I) -> images (B, 3, S, S) in [-1, 1]."""
        return models["G"]

    def sample_columns(
        self, models: Mapping[str, nn.Module], batch: Any, cfg: TransGANConfig
    ) -> list[Tensor]:
        """real images | samples from a fixed latent."""
        import torch

        real = batch["image"]
        z = torch.randn(real.shape[0], cfg.latent_dim, generator=torch.Generator().manual_seed(0))
        return [real, models["G"](z.to(real.device))]

    def evaluate(self, models: Any, folder: Path, cfg: TransGANConfig) -> Any:
        """Samples against the real images of ``folder``: FID/KID."""
        from translate.evaluation_generation import generation_protocol

        return generation_protocol(models, folder)

    def tiny_config(self, data_root: Path) -> TransGANConfig:
        return TransGANConfig(
            data=data_root,
            image_size=16,
            latent_dim=8,
            bottom_width=4,
            g_dim=16,
            g_depths="1,1,1",
            g_heads=2,
            grid=4,
            d_dim=16,
            d_depth=1,
            d_heads=2,
            patch_size=2,
        )


plugin = TransGANPlugin()
