"""The ProGAN plugin: progressive growing of a generator and a discriminator.

Karras et al. 2018, "Progressive Growing of GANs for Improved Quality, Stability, and
Variation" (ICLR). Training starts at 4x4; each doubling of the resolution is *faded in* over
``fade_kimg`` thousand images (Sec. 2, Fig. 2: the new block's output is weighted by alpha, which
rises linearly from 0 to 1, the old path's upscaled output by 1 - alpha; the real images are
blended the same way) and then *stabilised* for ``stable_kimg``; the last resolution trains
until the end of the run. Networks (``translate_progan.nets``): pixel-wise feature
normalisation in G (Sec. 4.2), equalised learning rate everywhere (Sec. 4.1), minibatch
standard deviation in D (Sec. 3).

One step (App. A.1, the official ``loss.py``): the core objective, by default WGAN-GP,
``D(G(z)) - D(x) + 10 * (||grad D(x_hat)|| - 1)^2 + 0.001 * D(x)^2`` (the drift term,
``--epsilon-drift``) for D and ``-D(G(z))`` for G, one D step per G step; Adam lr 0.001,
betas (0, 0.99); G's weights averaged with decay 0.999; minibatch 16, smaller at high
resolutions (``--batch-sizes``).

Where the run is in the growth (resolution, images seen in the phase, alpha) is a pure
function of the step (``growth_at``), which the engine checkpoints, so a run resumes exactly
mid-fade; G and D carry it as buffers so a checkpoint samples at its own resolution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from translate.fields import check, opt
from translate.plugin import PluginBase

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor, nn
    from torch.utils.data import Dataset

    from translate.plugin import StepContext

MIN_SIZE, MAX_SIZE = 4, 1024


def parse_batch_sizes(text: str) -> dict[int, int]:
    """``"256:14,512:6"`` -> {256: 14, 512: 6} (ValueError on a malformed entry)."""
    sizes = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        res, _, batch = item.partition(":")
        sizes[int(res)] = int(batch)
        if sizes[int(res)] < 1 or int(res) < 4 or int(res) & (int(res) - 1):
            raise ValueError(item)
    return sizes


@dataclass(frozen=True)
class ProGANConfig:
    """ProGAN data, model and growth settings (defaults: the paper's, App. A.1)."""

    data: Path = opt(
        None,
        "Folder of training images (any sizes; resized to --image-size); train/ and val/ "
        "subfolders are used when present.",
    )
    image_size: int = opt(256, "Final side of the generated images: a power of two, 4 to 1024.")
    start_resolution: int = opt(4, "Resolution training starts at (paper: 4).")
    latent_dim: int = opt(512, "Dimension of z (paper: 512).")
    fmap_base: int = opt(8192, "Channels at stage s: min(fmap_base / 2^s, fmap_max) (8192).")
    fmap_max: int = opt(512, "Largest number of channels of a layer (512).")
    fade_kimg: float = opt(800.0, "Thousands of images to fade in each new block (paper: 800).")
    stable_kimg: float = opt(
        800.0, "Thousands of images to train each resolution after its fade (paper: 800)."
    )
    batch_sizes: str = opt(
        "256:14,512:6,1024:3",
        "Minibatch per resolution, 'res:batch,...' (at most --batch-size, which every other "
        "resolution uses; paper: 16, then 14, 6, 3).",
    )
    mbstd_group: int = opt(4, "Minibatch standard-deviation group in D (official code: 4; 0: off).")
    pixel_norm: bool = opt(True, "Pixel-wise feature normalisation in G (Sec. 4.2).")
    flip: bool = opt(True, "Random horizontal flips of the data (the official mirror_augment).")

    def __post_init__(self) -> None:
        check(self.data is not None, "data", "is required (--data DIR)")
        for name in ("image_size", "start_resolution"):
            size = getattr(self, name)
            check(
                MIN_SIZE <= size <= MAX_SIZE and size & (size - 1) == 0,
                name,
                f"{size} must be a power of two from {MIN_SIZE} to {MAX_SIZE}",
            )
        check(self.start_resolution <= self.image_size, "start_resolution", "must be <= image_size")
        check(self.latent_dim >= 1, "latent_dim", "must be at least 1")
        check(self.fmap_base >= 1 and self.fmap_max >= 1, "fmap_base", "must be >= 1")
        check(self.fade_kimg > 0 and self.stable_kimg > 0, "fade_kimg", "fade and stable > 0")
        try:
            parse_batch_sizes(self.batch_sizes)
        except ValueError as exc:
            check(False, "batch_sizes", f"bad entry {exc}; use 'res:batch,...', e.g. '256:14'")
        check(self.mbstd_group >= 0, "mbstd_group", "must be >= 0 (0: off)")


class Growth(NamedTuple):
    """Where a step is in the growth: resolution, the phase, images seen in it, alpha, and
    the minibatch used at that resolution."""

    resolution: int
    phase: str  # "fade" or "stable"
    images: int
    alpha: float
    batch: int


def growth_at(step: int, cfg: ProGANConfig, batch: int) -> Growth:
    """The growth of step ``step`` (0-based) with loader batches of ``batch``: 4x4 stable, then
    per doubling a fade and a stable phase, each lasting its kimg in images at its resolution's
    minibatch (``--batch-sizes``, at most ``batch``); the last stable phase never ends. alpha is
    the images seen in a fade before this step over its length (official ``TrainingSchedule``)."""
    sizes = parse_batch_sizes(cfg.batch_sizes)
    res, phase, done = cfg.start_resolution, "stable", 0
    while True:
        b = min(sizes.get(res, batch), batch)
        kimg = cfg.fade_kimg if phase == "fade" else cfg.stable_kimg
        steps = math.ceil(kimg * 1000 / b)
        last = res == cfg.image_size and phase == "stable"
        if last or step < done + steps:
            images = (step - done) * b
            alpha = min(images / (kimg * 1000), 1.0) if phase == "fade" else 1.0
            return Growth(res, phase, images, alpha, b)
        done += steps
        res, phase = (res * 2, "fade") if phase == "stable" else (res, "stable")


class ProGANPlugin(PluginBase[ProGANConfig]):
    name = "progan"
    ddp_unused_parameters = True  # layers of resolutions not yet grown get no gradient
    description = "Progressive growing of GANs, 4x4 upwards (Karras et al. 2018)"
    config_cls = ProGANConfig
    dataset_kind = "single"
    generates = True
    # WGAN-GP with lambda 10 and the drift term, one D step per G step, G EMA 0.999 (App. A.1)
    gan_defaults: ClassVar[Mapping[str, Any]] = {
        "gan_loss": "wgan-gp",
        "n_critic": 1,
        "epsilon_drift": 0.001,
        "ema_decay": 0.999,
    }
    # Adam lr 0.001, betas (0, 0.99), constant; minibatch 16; 12M images (official total_kimg)
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "batch_size": 16,
        "lr": 0.001,
        "lr_d": None,
        "beta1": 0.0,
        "beta2": 0.99,
        "lr_decay_start": 1.0,
        "max_steps": 750_000,
    }

    def build_dataset(self, cfg: ProGANConfig, split: str) -> Dataset | None:
        from translate.data.single import build_generation

        return build_generation(cfg, split)

    def build_models(self, cfg: ProGANConfig) -> dict[str, nn.Module]:
        from translate_progan.nets import Discriminator, Generator

        widths = {"fmap_base": cfg.fmap_base, "fmap_max": cfg.fmap_max}
        G = Generator(cfg.latent_dim, cfg.image_size, use_pixel_norm=cfg.pixel_norm, **widths)
        D = Discriminator(cfg.image_size, mbstd_group=cfg.mbstd_group, **widths)
        for net in (G, D):  # a fresh run starts at the first resolution
            net.grow(cfg.start_resolution, 1.0)
        return {"G": G, "D": D}

    def latent_shape(self, cfg: ProGANConfig) -> tuple[int, ...]:
        return (cfg.latent_dim,)

    def train_step(self, ctx: StepContext, batch: Any, cfg: ProGANConfig) -> dict[str, float]:
        import torch

        from translate_progan.nets import real_images

        G, D = ctx.models["G"], ctx.models["D"]
        growth = growth_at(ctx.step, cfg, batch["image"].shape[0])
        for net in (G, D):
            net.grow(growth.resolution, growth.alpha)  # type: ignore[operator]
        level = int(math.log2(growth.resolution))
        real = real_images(batch["image"][: growth.batch], level, growth.alpha)
        z = torch.randn(real.shape[0], cfg.latent_dim, device=real.device)
        with ctx.autocast(), torch.set_grad_enabled(ctx.update_generator):
            fake = G(z)
        with ctx.autocast():  # WGAN-GP + drift from the core objective (fake detached there)
            loss_d, logs = ctx.gan.discriminator_loss(D, real, fake)
        ctx.optimize("D", loss_d)
        logs = {"resolution": float(growth.resolution), "alpha": growth.alpha, **logs}
        if not ctx.update_generator:
            return logs
        with ctx.frozen("D"), ctx.autocast():
            loss_g, logs_g = ctx.gan.generator_loss(D, fake, real, paired=False)
        ctx.optimize("G", loss_g)
        return {**logs, **logs_g}

    def inference_module(
        self, models: Mapping[str, nn.Module], cfg: ProGANConfig, opts: Any
    ) -> nn.Module:
        """z (B, latent_dim) -> images (B, 3, r, r) at the checkpoint's resolution and alpha."""
        from translate_progan.nets import Sampler

        return Sampler(models["G"])  # type: ignore[arg-type]

    def sample_columns(
        self, models: Mapping[str, nn.Module], batch: Any, cfg: ProGANConfig
    ) -> list[Tensor]:
        """real images as D sees them now | samples of a fixed latent, both at the current
        resolution, shown upscaled (nearest) to the final size."""
        import torch
        import torch.nn.functional as F

        from translate_progan.nets import real_images

        G = models["G"]
        level, alpha = int(G.level), float(G.alpha)  # type: ignore[arg-type]
        real = real_images(batch["image"], level, alpha)
        z = torch.randn(real.shape[0], cfg.latent_dim, generator=torch.Generator().manual_seed(0))
        fake = self.inference_module(models, cfg, None)(z.to(real.device))
        size = cfg.image_size
        return [F.interpolate(x, size=size, mode="nearest") for x in (real, fake)]

    def sample_caption(self, models: Mapping[str, nn.Module], cfg: ProGANConfig) -> str:
        """The grid's caption: the resolution and alpha it was drawn at."""
        G = models["G"]
        return f"{G.resolution}x{G.resolution} alpha {float(G.alpha):.3f}"  # type: ignore[union-attr]

    def evaluate(self, models: Any, folder: Path, cfg: ProGANConfig) -> Any:
        """Samples against the real images of ``folder``: FID/KID."""
        from translate.evaluation_generation import generation_protocol

        return generation_protocol(models, folder)

    def tiny_config(self, data_root: Path) -> ProGANConfig:
        return ProGANConfig(
            data=data_root,
            image_size=8,
            latent_dim=8,
            fmap_base=32,
            fmap_max=8,
            fade_kimg=0.004,
            stable_kimg=0.002,
        )


plugin = ProGANPlugin()
