"""The StyleGAN2 plugin: a style-based generator of new images, with adaptive augmentation.

Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN" (config F), trained
as in Karras et al. 2020b, "Training Generative Adversarial Networks with Limited Data" (ADA).
Networks: ``translate.nn.stylegan2`` (mapping with lr multiplier 0.01, modulated and
demodulated convolutions, noise, skip generator; residual discriminator with minibatch stddev),
equalised learning rate everywhere (``translate.nn.equalized``).

One step (Sec. 3 and App. B of ADA's paper; the official ``loss.py``'s phases):

* D: the non-saturating logistic loss ``softplus(D(G(z))) + softplus(-D(x))`` plus lazy R1,
  ``gamma / 2 * ||grad D(x)||^2`` every 16 steps times 16 (the core objective: ``--r1-gamma``,
  ``--penalty-interval``); ADA (``--ada-target 0.6``) augments every image D sees, in both steps.
* G: ``softplus(-D(G(z)))``, with style mixing (probability 0.9: the layers after a random
  crossover take the styles of a second z); every 4 steps the path-length penalty (Eq. 4,
  weight 2, running mean decay 0.01) on half the batch, times 4 (``translate.losses.lazy``).
* G's EMA by a half-life of 10k images, ramped over the first 5% of the images seen
  (``--ema-kimg``, ``--ema-rampup``); w_avg tracked for the truncation trick.
"""

from __future__ import annotations

import math
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

MIN_SIZE, MAX_SIZE = 8, 1024
#: the magnitudes of psi accepted (psi past 1 extrapolates away from w_avg)
PSI_MIN, PSI_MAX = 1e-3, 2.0
#: the official code's heuristics for a dataset of side ``res`` on one GPU ("auto" config)
R1_GAMMA_COEF = 0.0002  # gamma = 0.0002 * res^2 / batch


def auto_batch(res: int) -> int:
    """The official code's minibatch for one GPU: min(4096 / res, 32)."""
    return max(1, min(4096 // res, 32))


@dataclass(frozen=True)
class StyleGAN2Config:
    """StyleGAN2 data, model and regularisation settings (defaults: config F, 8 mapping layers,
    z and w 512; ``--width`` scales z, w and every layer's channels down for small runs)."""

    data: Path = opt(
        None,
        "Folder of training images (any sizes; resized to --image-size); train/ and val/ "
        "subfolders are used when present.",
    )
    image_size: int = opt(256, "Side of the generated square images: a power of two, 8 to 1024.")
    latent_dim: int = opt(512, "Dimension of z and of w (paper: 512), before --width.")
    width: float = opt(
        1.0, "Scale of z, w and every layer's channels (e.g. 0.125 for CPU-sized runs)."
    )
    channel_base: int = opt(32768, "Channels at resolution r: min(base / r, max) (config F).")
    channel_max: int = opt(512, "Largest number of channels of a layer.")
    mapping_layers: int = opt(8, "Fully connected layers of the mapping network (paper: 8).")
    mapping_lr_mul: float = opt(0.01, "Learning-rate multiplier of the mapping network.")
    style_mixing: float = opt(0.9, "Probability of style mixing regularisation (paper: 0.9).")
    pl_weight: float = opt(2.0, "Weight of the path-length penalty (paper: 2; 0: off).")
    pl_interval: int = opt(4, "Path-length penalty every N steps, weighted by N (paper: 4).")
    pl_decay: float = opt(0.01, "Decay of the path-length running mean (paper: 0.01).")
    pl_batch_shrink: int = opt(2, "The path-length penalty runs on batch / N images (2).")
    mbstd_group: int = opt(4, "Minibatch standard-deviation group size in D (paper: 4).")
    flip: bool = opt(False, "Random horizontal flips of the data (the official --mirror).")

    def __post_init__(self) -> None:
        check(self.data is not None, "data", "is required (--data DIR)")
        size = self.image_size
        check(
            MIN_SIZE <= size <= MAX_SIZE and size & (size - 1) == 0,
            "image_size",
            f"{size} must be a power of two from {MIN_SIZE} to {MAX_SIZE}",
        )
        check(self.latent_dim >= 1, "latent_dim", "must be at least 1")
        check(0 < self.width <= 1, "width", "must be in (0, 1]")
        check(self.channel_base >= 1 and self.channel_max >= 1, "channel_base", "must be >= 1")
        check(self.mapping_layers >= 1, "mapping_layers", "must be at least 1")
        check(self.mapping_lr_mul > 0, "mapping_lr_mul", "must be > 0")
        check(0 <= self.style_mixing <= 1, "style_mixing", "must be in [0, 1]")
        check(self.pl_weight >= 0, "pl_weight", "must be >= 0 (0: off)")
        check(self.pl_interval >= 1, "pl_interval", "must be at least 1")
        check(0 < self.pl_decay <= 1, "pl_decay", "must be in (0, 1]")
        check(self.pl_batch_shrink >= 1, "pl_batch_shrink", "must be at least 1")
        check(self.mbstd_group >= 1, "mbstd_group", "must be at least 1")

    @property
    def z_dim(self) -> int:
        return max(1, round(self.latent_dim * self.width))

    @property
    def channels(self) -> dict[str, int]:
        return {
            "channel_base": max(1, round(self.channel_base * self.width)),
            "channel_max": max(1, round(self.channel_max * self.width)),
        }


@dataclass(frozen=True)
class StyleGAN2Inference:
    """Inference options of StyleGAN2 (``translate sample --truncation`` sets the first)."""

    truncation_psi: float = opt(
        1.0, "Truncation in W: w_avg + psi * (w - w_avg) (1: none; 0.5-0.7: typical images)."
    )
    latent_space: str = opt(
        "z", "The module's input: z (through the mapping network) or w.", choices=("z", "w")
    )

    def __post_init__(self) -> None:
        check(
            math.isfinite(self.truncation_psi) and PSI_MIN <= abs(self.truncation_psi) <= PSI_MAX,
            "truncation_psi",
            f"{self.truncation_psi} must be within {PSI_MIN} to {PSI_MAX} in magnitude",
        )
        check(self.latent_space in ("z", "w"), "latent_space", "must be z or w")


class StyleGAN2Plugin(PluginBase[StyleGAN2Config]):
    name = "stylegan2"
    ddp_unused_parameters = True  # the path-length penalty does not reach the toRGB biases
    description = "Style-based generation with ADA for small datasets (Karras et al. 2020)"
    config_cls = StyleGAN2Config
    inference_config_cls = StyleGAN2Inference
    dataset_kind = "single"
    generates = True
    # non-saturating logistic loss, lazy R1 every 16 steps, ADA towards r_t = 0.6, G EMA
    # by a 10k-image half-life ramped over 5% of the images (official train.py, "auto")
    gan_defaults: ClassVar[Mapping[str, Any]] = {
        "gan_loss": "nonsaturating",
        "r1_gamma": 10.0,  # config F at 1024 px; config_gan_defaults: by resolution
        "penalty_interval": 16,
        "ada_target": 0.6,
        "ema_kimg": 10.0,
        "ema_rampup": 0.05,
    }
    # Adam lr 0.0025, betas (0, 0.99) (0.002 at 1024 px), no decay; 25M images
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "batch_size": 32,
        "lr": 0.0025,
        "beta1": 0.0,
        "beta2": 0.99,
        "lr_decay_start": 1.0,
        "max_steps": 781_250,
    }

    def config_train_defaults(self, cfg: StyleGAN2Config) -> Mapping[str, Any]:
        """By resolution (the official "auto" config): batch min(4096 / res, 32), lr 0.0025
        (0.002 at 1024), shrunk by k / (k + 1) for lazily regularised networks (G: the
        path-length interval; D: R1's 16)."""
        from translate.losses.lazy import lazy_adam

        lr = 0.002 if cfg.image_size >= 1024 else 0.0025
        betas = (0.0, 0.99)
        g_lr, _ = lazy_adam(lr, betas, cfg.pl_interval if cfg.pl_weight > 0 else 1)
        d_lr, _ = lazy_adam(lr, betas, int(self.gan_defaults["penalty_interval"]))
        return {"batch_size": auto_batch(cfg.image_size), "lr": g_lr, "lr_d": d_lr}

    def config_gan_defaults(self, cfg: StyleGAN2Config) -> Mapping[str, Any]:
        """R1's gamma by resolution: 0.0002 * res^2 / batch (the official heuristic)."""
        res = cfg.image_size
        return {"r1_gamma": R1_GAMMA_COEF * res * res / auto_batch(res)}

    def build_dataset(self, cfg: StyleGAN2Config, split: str) -> Dataset | None:
        from translate.data.single import build_generation

        return build_generation(cfg, split)

    def build_models(self, cfg: StyleGAN2Config) -> dict[str, nn.Module]:
        from translate.nn.stylegan2 import Discriminator, Generator

        z = cfg.z_dim
        return {
            "G": Generator(
                z,
                z,
                cfg.image_size,
                mapping_layers=cfg.mapping_layers,
                mapping_lr_mul=cfg.mapping_lr_mul,
                **cfg.channels,
            ),
            "D": Discriminator(cfg.image_size, mbstd_group=cfg.mbstd_group, **cfg.channels),
        }

    def latent_shape(self, cfg: StyleGAN2Config) -> tuple[int, ...]:
        return (cfg.z_dim,)

    @staticmethod
    def _styles(G: Any, n: int, cfg: StyleGAN2Config, device: Any) -> Tensor:  # noqa: N803
        """ws of ``n`` fresh latents, with style mixing."""
        import torch

        from translate.nn.stylegan2 import mix_styles

        z = torch.randn(n, cfg.z_dim, device=device)
        return mix_styles(G, z, G.mapping(z), cfg.style_mixing)

    def train_step(self, ctx: StepContext, batch: Any, cfg: StyleGAN2Config) -> dict[str, float]:
        import torch

        from translate.losses.lazy import lazy_scale
        from translate.losses.path_length import path_length_penalty

        G, D = ctx.models["G"], ctx.models["D"]
        real = batch["image"]  # (B, 3, S, S) in [-1, 1]
        b = real.shape[0]
        # D: logistic loss, lazy R1 and ADA come from the core objective
        with ctx.autocast(), torch.no_grad():
            fake = G.synthesis(self._styles(G, b, cfg, real.device))
        with ctx.autocast():
            loss_d, logs = ctx.gan.discriminator_loss(D, real, fake)
        ctx.optimize("D", loss_d)
        if not ctx.update_generator:
            return logs
        scale = lazy_scale(ctx.step, cfg.pl_interval) if cfg.pl_weight > 0 else 0.0
        with ctx.accumulate("G") as backward:
            with ctx.autocast():
                fake = G.synthesis(self._styles(G, b, cfg, real.device))
            with ctx.frozen("D"), ctx.autocast():
                loss_g, logs_g = ctx.gan.generator_loss(D, fake)
            backward(loss_g)
            if scale > 0:  # path length, every pl_interval steps, on a smaller batch
                ws = self._styles(G, max(1, b // cfg.pl_batch_shrink), cfg, real.device)
                with ctx.autocast():
                    images = G.synthesis(ws)
                pl = path_length_penalty(images, ws, G.pl_mean, decay=cfg.pl_decay)
                backward(pl * (cfg.pl_weight * scale))
                logs_g["pl_penalty"] = float(pl.detach())
                logs_g["pl_mean"] = float(G.pl_mean)
        return {**logs, **logs_g}

    def inference_module(
        self, models: Mapping[str, nn.Module], cfg: StyleGAN2Config, opts: Any
    ) -> nn.Module:
        """z (B, z_dim) -> images (B, 3, S, S), or w -> images (``latent_space w``); noise
        fixed, truncation ``truncation_psi`` in W."""
        from translate_stylegan2.sampling import StyleSampler

        return StyleSampler(models["G"], psi=opts.truncation_psi, space=opts.latent_space)  # type: ignore[arg-type]

    def truncated(self, module: nn.Module, truncation: float, cfg: StyleGAN2Config) -> nn.Module:
        """``translate sample --truncation PSI``: the truncation trick in W (StyleGAN's psi),
        not the core's resampling of z."""
        from translate.errors import ConfigError
        from translate_stylegan2.sampling import StyleSampler

        if not (math.isfinite(truncation) and PSI_MIN <= abs(truncation) <= PSI_MAX):
            raise ConfigError(
                f"truncation: psi {truncation} must be within {PSI_MIN} to {PSI_MAX} in magnitude"
            )
        assert isinstance(module, StyleSampler)
        return StyleSampler(module.G, psi=truncation, space=module.space)

    def sample_columns(
        self, models: Mapping[str, nn.Module], batch: Any, cfg: StyleGAN2Config
    ) -> list[Tensor]:
        """real images | samples of a fixed latent | the same at psi 0.7."""
        import torch

        from translate_stylegan2.sampling import StyleSampler

        real = batch["image"]
        z = torch.randn(real.shape[0], cfg.z_dim, generator=torch.Generator().manual_seed(0))
        z = z.to(real.device)
        G = models["G"]
        return [real, StyleSampler(G)(z), StyleSampler(G, psi=0.7)(z)]  # type: ignore[arg-type]

    def evaluate(self, models: Any, folder: Path, cfg: StyleGAN2Config) -> Any:
        """Samples against the real images of ``folder``: FID/KID."""
        from translate.evaluation_generation import generation_protocol

        return generation_protocol(models, folder)

    def tiny_config(self, data_root: Path) -> StyleGAN2Config:
        return StyleGAN2Config(
            data=data_root,
            image_size=8,
            latent_dim=16,
            width=1.0,
            channel_base=64,
            channel_max=16,
            mapping_layers=2,
        )


plugin = StyleGAN2Plugin()
