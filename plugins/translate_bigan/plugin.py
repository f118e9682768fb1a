"""The BiGAN plugin: a generator and an encoder, learnt together by one discriminator.

Donahue, Kraehenbuehl and Darrell 2017, "Adversarial Feature Learning" (BiGAN); Dumoulin et al.
2017, "Adversarially Learned Inference" (ALI, ``--mode ali``). G maps z from the prior to images,
E maps images to latents, and D judges pairs: real (x, E(x)) against generated (G(z), z)
(``translate_bigan.nets``: z as maps before the image). The game is Eq. 3's

    min_{G, E} max_D  E_x[log D(x, E(x))] + E_z[log(1 - D(G(z), z))],

played with the core's adversarial loss (default: the standard GAN loss, as the paper): D takes
the core's discriminator loss on (real pair, generated pair); G and E take the generator loss
with the labels inverted (Sec. 3.4, "we use the 'inverted' labels"): G's generated pair is
scored as real, E's real pair as generated (the generator loss of -D on it). At the optimum E
inverts G (Theorem 2). z ~ U(-1, 1)^50 (the authors' MNIST setting); Adam 2e-4, beta1 0.5,
batch 128. ALI: a stochastic E (reparameterised Gaussian), N(0, I) latents, dropout in D.

The inference module is G (latents -> images; ``translate sample``), the encoder module E
(``translate encode``); ``translate run`` returns G(E(x)).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from translate.fields import check, opt
from translate.plugin import PluginBase

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor, nn
    from torch.utils.data import Dataset

    from translate.plugin import StepContext


@dataclass(frozen=True)
class BiGANConfig:
    """BiGAN / ALI data and model settings (defaults: BiGAN's MNIST setup)."""

    data: Path = opt(
        None,
        "Folder of training images (any sizes; resized to --image-size), no labels; train/ and "
        "val/ subfolders are used when present.",
    )
    mode: Literal["bigan", "ali"] = opt(
        "bigan",
        "bigan (a deterministic encoder, Donahue et al. 2017) or ali (a stochastic, "
        "reparameterised encoder and dropout in D, Dumoulin et al. 2017).",
    )
    image_size: int = opt(28, "Side of the square images, 8 to 64 (paper, MNIST: 28).")
    latent_dim: int = opt(50, "Dimension of z (paper, MNIST: 50).")
    prior: Literal["auto", "uniform", "normal"] = opt(
        "auto", "z's prior: uniform U(-1, 1) (BiGAN) or normal N(0, I) (ALI); auto: the mode's."
    )
    hidden: int = opt(1024, "Width of the hidden layers of G, E and D (paper: 1024).")
    flip: bool = opt(False, "Random horizontal flips during training.")

    def __post_init__(self) -> None:
        check(self.data is not None, "data", "is required (--data DIR)")
        check(self.mode in ("bigan", "ali"), "mode", f"{self.mode!r} is not one of bigan, ali")
        check(8 <= self.image_size <= 64, "image_size", f"{self.image_size} must be 8 to 64")
        check(1 <= self.latent_dim <= 4096, "latent_dim", "must be from 1 to 4096")
        check(
            self.prior in ("auto", "uniform", "normal"),
            "prior",
            f"{self.prior!r} is not one of auto, uniform, normal",
        )
        check(self.hidden >= 1, "hidden", "must be at least 1")

    @property
    def latent_prior(self) -> str:
        if self.prior != "auto":
            return self.prior
        return "uniform" if self.mode == "bigan" else "normal"


class BiGANPlugin(PluginBase[BiGANConfig]):
    name = "bigan"
    ddp_unused_parameters = False  # every loss reaches all of its group (DDP)
    description = "Generator and encoder learnt together: BiGAN / ALI (Donahue et al. 2017)"
    config_cls = BiGANConfig
    dataset_kind = "single"
    generates = True
    encodes = True
    gan_defaults: ClassVar[Mapping[str, Any]] = {"gan_loss": "nonsaturating"}
    train_defaults: ClassVar[Mapping[str, Any]] = {"batch_size": 128, "max_steps": 100_000}

    def build_dataset(self, cfg: BiGANConfig, split: str) -> Dataset | None:
        from translate.data.single import build_generation

        return build_generation(cfg, split)

    def build_models(self, cfg: BiGANConfig) -> dict[str, nn.Module]:
        from translate_bigan.nets import Encoder, Generator, JointDiscriminator, init_weights

        z, s, h, ali = cfg.latent_dim, cfg.image_size, cfg.hidden, cfg.mode == "ali"
        return {
            "G": init_weights(Generator(z, s, h)),
            "E": init_weights(Encoder(z, s, h, stochastic=ali)),
            "D": init_weights(JointDiscriminator(z, s, h, dropout=0.2 if ali else 0.0)),
        }

    def param_groups(self, models: Mapping[str, nn.Module]) -> dict[str, list[nn.Parameter]]:
        """G and E minimise one loss: one optimiser (group "G"); D its own."""
        return {
            "G": [*models["G"].parameters(), *models["E"].parameters()],
            "D": list(models["D"].parameters()),
        }

    def latent_shape(self, cfg: BiGANConfig) -> tuple[int, ...]:
        return (cfg.latent_dim,)

    def latent_prior(self, cfg: BiGANConfig) -> Literal["normal", "uniform"]:
        return "uniform" if cfg.latent_prior == "uniform" else "normal"

    def draw_latents(self, cfg: BiGANConfig, b: int, device: Any) -> Tensor:
        import torch

        if cfg.latent_prior == "uniform":
            return torch.rand(b, cfg.latent_dim, device=device) * 2 - 1
        return torch.randn(b, cfg.latent_dim, device=device)

    def train_step(self, ctx: StepContext, batch: Any, cfg: BiGANConfig) -> dict[str, float]:
        import torch

        from translate_bigan.nets import Negated, pair

        G, E, D = ctx.models["G"], ctx.models["E"], ctx.models["D"]
        real = batch["image"]  # (B, 3, S, S) in [-1, 1]
        z = self.draw_latents(cfg, real.shape[0], real.device)
        k = cfg.latent_dim
        with ctx.autocast(), torch.set_grad_enabled(ctx.update_generator):
            real_pair, fake_pair = pair(real, E(real)), pair(G(z), z)
        with ctx.autocast():  # D: (x, E(x)) real, (G(z), z) generated; both detached
            loss_d, logs = ctx.gan.discriminator_loss(D, real_pair, fake_pair, condition_channels=k)
        ctx.optimize("D", loss_d)
        if not ctx.update_generator:
            return logs
        with ctx.frozen("D"), ctx.autocast():  # G and E with the labels inverted
            loss_g, logs_g = ctx.gan.generator_loss(
                D, fake_pair, real_pair, paired=False, condition_channels=k
            )
            loss_e, logs_e = ctx.gan.generator_loss(
                Negated(D), real_pair, fake_pair, paired=False, condition_channels=k
            )
        ctx.optimize("G", loss_g + loss_e)
        return {**logs, **logs_g, "E_adv": logs_e["G_adv"]}

    def inference_module(
        self, models: Mapping[str, nn.Module], cfg: BiGANConfig, opts: Any
    ) -> nn.Module:
        """G: latents (B, Z) from the prior -> images (B, 3, S, S) in [-1, 1]."""
        return models["G"]

    def encoder_module(self, models: Mapping[str, nn.Module], cfg: BiGANConfig) -> nn.Module:
        """E: images (B, 3, S, S) in [-1, 1] -> latents (B, Z) (ALI: the mean)."""
        return models["E"]

    def encoder_size(self, cfg: BiGANConfig) -> int:
        return cfg.image_size

    def sample_columns(
        self, models: Mapping[str, nn.Module], batch: Any, cfg: BiGANConfig
    ) -> list[Tensor]:
        """real images | their reconstructions G(E(x)) | samples from a fixed latent."""
        import torch

        real = batch["image"]
        gen = torch.Generator().manual_seed(0)
        z = torch.rand(real.shape[0], cfg.latent_dim, generator=gen) * 2 - 1
        if cfg.latent_prior == "normal":
            z = torch.randn(real.shape[0], cfg.latent_dim, generator=gen)
        G, E = models["G"], models["E"]
        return [real, G(E(real)), G(z.to(real.device))]

    def evaluate(self, models: Any, folder: Path, cfg: BiGANConfig) -> Any:
        """FID/KID of samples against ``folder``'s images, and ``reconstruction_L1``: the mean
        absolute difference of each real image (at the model's size, in [-1, 1]) and G(E(x))."""
        import torch

        from translate.evaluation_generation import generation_protocol, model_input, real_images

        evalset = generation_protocol(models, folder)
        trained = models.sampler.loaded.models
        G, E = trained["G"].eval(), trained["E"].eval()
        x = model_input([im for im, _ in real_images(folder, [])], cfg.image_size)
        device = next(G.parameters()).device
        with torch.no_grad():
            y = torch.cat([G(E(x[i : i + 256].to(device))).cpu() for i in range(0, len(x), 256)])
        evalset.items[0].metrics["reconstruction_L1"] = float((y - x).abs().mean())
        return evalset

    def tiny_config(self, data_root: Path) -> BiGANConfig:
        return BiGANConfig(data=data_root, image_size=16, latent_dim=8, hidden=16)


plugin = BiGANPlugin()
