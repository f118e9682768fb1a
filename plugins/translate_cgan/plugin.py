"""The cgan plugin: class-conditional image generation from noise, on a folder per class.

G maps ``cat([z, onehot(y)])`` to an image of class y: a DCGAN generator (Radford et al. 2016) or,
with ``--generator biggan``, a small BigGAN one (Brock et al. 2019; ``translate.nn.biggan``:
residual up-blocks, class-conditional batch norm from a shared embedding, hierarchical z,
optional self-attention, spectral norm; its residual projection-style discriminator by default).
D judges (image, class) pairs as ``--conditioning`` says (``translate_cgan.nets``). BigGAN's
orthogonal regularisation is the core's ``--ortho-reg`` (it applies to any generator). The
adversarial objective is the core's (default: hinge, as the projection discriminator paper;
every core family and regulariser applies). With ``acgan``, the auxiliary classification loss
(Odena et al. 2017, Eq. 2-3: L_C = log P(C = c | X) on real and fake images) is added with
weight ``--lambda-cls`` to D's loss (real and generated images) and to G's (its fakes).

The inference module is G behind ``ClassConditioned``: ``forward(z, class_onehot)`` with z
(B, Z, 1, 1) and the class one-hot (B, K) declared as a conditioning input
(``condition_inputs``), so the ONNX export takes the latent and the class as two inputs;
``translate sample --class NAME`` fills the one-hot.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from translate.plugin import ConditionInput, PluginBase
from translate_cgan.config import CGANConfig

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor, nn
    from torch.utils.data import Dataset

    from translate.plugin import StepContext


class CGANPlugin(PluginBase[CGANConfig]):
    name = "cgan"
    ddp_unused_parameters = False  # every loss reaches all of its group (DDP)
    description = "Class-conditional generation: concat, AC-GAN or projection discriminator"
    config_cls = CGANConfig
    dataset_kind = "unpaired"  # a folder of unrelated images per class
    generates = True
    gan_defaults: ClassVar[Mapping[str, Any]] = {"gan_loss": "hinge"}
    # Adam 2e-4, beta1 0.5, constant, as DCGAN (Sec. 4); a decay only with --lr-decay-start
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "batch_size": 64,
        "max_steps": 20_000,
        "lr_decay_start": 1.0,
    }

    # ------------------------------------------------------------------ config and data
    def finalize_config(self, cfg: CGANConfig) -> CGANConfig:
        """Resolve ``--classes`` against the data's class folders (all by default)."""
        import dataclasses

        from translate_cgan.data import check_class, class_folders

        available = class_folders(cfg.data)
        wanted = cfg.class_names or available
        for name in wanted:
            check_class(name, available, where=f"classes (folders of {cfg.data})")
        return dataclasses.replace(cfg, classes=",".join(wanted))

    def build_dataset(self, cfg: CGANConfig, split: str) -> Dataset | None:
        from translate_cgan.data import build_class_dataset

        return build_class_dataset(cfg, split)

    def condition_inputs(self, cfg: CGANConfig) -> tuple[ConditionInput, ...]:
        """The class to draw, a one-hot (B, K) in the order of ``--classes`` (``sample
        --class``)."""
        return (ConditionInput("class_onehot", "class", tuple(cfg.class_names), noun="class"),)

    def latent_shape(self, cfg: CGANConfig) -> tuple[int, ...]:
        """The noise z: (Z, 1, 1); the class is a separate input (``condition_inputs``)."""
        return (cfg.latent_dim, 1, 1)

    # ------------------------------------------------------------------ models
    def build_models(self, cfg: CGANConfig) -> dict[str, nn.Module]:
        from translate.errors import ConfigError

        k = len(cfg.class_names)
        if k < 2:  # finalize_config fills the list; a hand-made config may not have
            raise ConfigError("classes: needs at least two classes (give --classes or data)")
        try:
            return self._build(cfg, k)
        except ValueError as exc:  # a network that cannot be built as configured: one line
            raise ConfigError(str(exc)) from None

    def _build(self, cfg: CGANConfig, k: int) -> dict[str, nn.Module]:
        from translate.nn.biggan import BigGANGenerator
        from translate.nn.dcgan import DCGANGenerator, init_dcgan
        from translate_cgan.nets import ConditionalDiscriminator

        G: nn.Module
        if cfg.generator == "biggan":  # orthogonal init and spectral norm built in
            G = BigGANGenerator(
                latent_dim=cfg.latent_dim,
                n_classes=k,
                image_size=cfg.image_size,
                base_channels=cfg.base_channels,
                extra_blocks=cfg.extra_layers,
                shared_dim=cfg.embedding_dim,
                attention=cfg.attention if cfg.attention_sites[0] else 0,
            )
        else:
            G = init_dcgan(
                DCGANGenerator(
                    latent_dim=cfg.latent_dim + k,
                    image_size=cfg.image_size,
                    base_channels=cfg.base_channels,
                    extra_layers=cfg.extra_layers,
                )
            )
        residual = cfg.d_architecture == "biggan"
        D = ConditionalDiscriminator(
            image_size=cfg.image_size,
            n_classes=k,
            conditioning=cfg.conditioning,
            base_channels=cfg.base_channels,
            extra_layers=cfg.extra_layers,
            architecture=cfg.d_architecture,
            attention=cfg.attention if cfg.attention_sites[1] else 0,
        )
        return {"G": G, "D": D if residual else init_dcgan(D)}

    # ------------------------------------------------------------------ training
    @staticmethod
    def with_class(images: Tensor, onehot: Tensor) -> Tensor:
        """``cat([onehot maps, images])``: D's input (condition channels first)."""
        import torch

        b, k = onehot.shape
        maps = onehot.to(images.dtype).view(b, k, 1, 1).expand(b, k, *images.shape[-2:])
        return torch.cat([maps, images], 1)

    def train_step(self, ctx: StepContext, batch: Any, cfg: CGANConfig) -> dict[str, float]:
        import torch
        from torch.nn import functional as F

        G, D = ctx.models["G"], ctx.models["D"]
        real, label = batch["image"], batch["label"]  # (B, 3, S, S) in [-1, 1]; (B,)
        k = len(cfg.class_names)
        onehot = F.one_hot(label, k).float()
        z = torch.randn(real.shape[0], cfg.latent_dim, 1, 1, device=real.device)
        # fakes of the batch's classes (the class distribution of the data)
        with ctx.autocast(), torch.set_grad_enabled(ctx.update_generator):
            fake = G(torch.cat([z, onehot.view(*onehot.shape, 1, 1)], 1))
        real_in, fake_in = self.with_class(real, onehot), self.with_class(fake, onehot)
        acgan = cfg.conditioning == "acgan" and cfg.lambda_cls > 0

        with ctx.autocast():
            loss_d, logs = ctx.gan.discriminator_loss(D, real_in, fake_in, condition_channels=k)
            if acgan:  # D maximises L_C on real and generated images (Odena et al., Eq. 3)
                cls_r = F.cross_entropy(D.classify(real_in).float(), label)
                cls_f = F.cross_entropy(D.classify(fake_in.detach()).float(), label)
                loss_d = loss_d + cfg.lambda_cls * (cls_r + cls_f)
                logs["D_cls"], logs["D_cls_fake"] = cls_r.item(), cls_f.item()
        ctx.optimize("D", loss_d)
        if not ctx.update_generator:
            return logs

        with ctx.frozen("D"), ctx.autocast():
            loss_g, logs_g = ctx.gan.generator_loss(
                D, fake_in, real_in, paired=False, condition_channels=k
            )
            if acgan:  # G also maximises log P(C = c | X_fake)
                cls_f = F.cross_entropy(D.classify(fake_in).float(), label)
                loss_g = loss_g + cfg.lambda_cls * cls_f
                logs_g["G_cls"] = cls_f.item()
        ctx.optimize("G", loss_g)
        return {**logs, **logs_g}

    # ------------------------------------------------------------------ inference
    def inference_module(
        self, models: Mapping[str, nn.Module], cfg: CGANConfig, opts: Any
    ) -> nn.Module:
        """G(z, class_onehot): (B, Z, 1, 1) and (B, K) -> images (B, 3, S, S) in [-1, 1]."""
        from translate_cgan.nets import ClassConditioned

        return ClassConditioned(models["G"])

    def sample_columns(
        self, models: Mapping[str, nn.Module], batch: Any, cfg: CGANConfig
    ) -> list[Tensor]:
        """One column per class (at most 10), each from the same fixed latents."""
        import torch

        real = batch["image"]
        k = len(cfg.class_names)
        z = torch.randn(
            real.shape[0], cfg.latent_dim, 1, 1, generator=torch.Generator().manual_seed(0)
        )
        columns = []
        for c in range(min(k, 10)):
            onehot = torch.zeros(real.shape[0], k, 1, 1)
            onehot[:, c] = 1
            columns.append(models["G"](torch.cat([z, onehot], 1).to(real.device)))
        return columns

    def evaluate(self, models: Any, folder: Path, cfg: CGANConfig) -> Any:
        """Samples against the real images of ``folder``: FID/KID and class accuracy
        (``translate.evaluation_generation``)."""
        from translate.evaluation_generation import generation_protocol

        return generation_protocol(models, folder)

    def tiny_config(self, data_root: Path) -> CGANConfig:
        # the contract's unpaired data: data_root/A and data_root/B, two classes
        return CGANConfig(data=data_root, image_size=16, latent_dim=8, base_channels=8)


plugin = CGANPlugin()
