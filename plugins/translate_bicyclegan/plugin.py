"""The BicycleGAN plugin: cVAE-GAN + cLR-GAN on paired data.

Zhu et al. 2017, "Toward Multimodal Image-to-Image Translation" (NeurIPS), Eq. 9:

    G*, E* = arg min_{G,E} max_D  L_GAN^VAE(G, D, E) + lambda L_1^VAE(G, E) + L_GAN(G, D)
                                  + lambda_latent L_1^latent(G, E) + lambda_KL L_KL(E)

* cVAE-GAN (B -> z -> B^): z ~ E(B) (reparameterised), G(A, z) must reconstruct B (L1,
  lambda = 10, Eq. 2) and fool D (Eq. 1); KL(E(B) || N(0, I)) pulls E's codes to the prior
  (lambda_KL = 0.01, Eq. 3).
* cLR-GAN (z -> B^ -> z^): z ~ N(0, I), G(A, z) must fool D2 (Eq. 4) and E must recover z
  from it (|z - mu(E(G(A, z)))|, lambda_latent = 0.5, Eq. 5). As in the paper (Sec. 3.4, "we
  only update G and not E for the latent loss"), E is frozen there: the term trains G alone.

The batch is split in two halves as in the official code: the first is encoded, the second's
targets are D2's real images (a batch of one uses the same image for both).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from translate.plugin import ConditionInput, PluginBase, SizeRequirements
from translate_bicyclegan.config import BicycleGANConfig

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor, nn

    from translate.plugin import StepContext


def bicycle_terms(
    models: Mapping[str, nn.Module], real_a: Tensor, real_b: Tensor, z_random: Tensor, eps: Tensor
) -> dict[str, Tensor]:
    """The forward passes of one step (no adversarial term): B^ from E(B) and from z_random,
    the KL, the reconstruction L1 and the latent regression (E frozen by the caller)."""
    from translate.losses import l1_loss
    from translate.losses.latent import kl_normal

    G, E = models["G"], models["E"]
    mu, logvar = E(real_b)
    z_encoded = mu + (0.5 * logvar).exp() * eps  # reparameterisation (Kingma & Welling 2014)
    fake_encoded = G(real_a, z_encoded)
    fake_random = G(real_a, z_random)
    return {
        "fake_encoded": fake_encoded,
        "fake_random": fake_random,
        "kl": kl_normal(mu, logvar),
        "l1": l1_loss(fake_encoded.float(), real_b),
        "z_random": z_random,
    }


class BicycleGANPlugin(PluginBase[BicycleGANConfig]):
    name = "bicyclegan"
    ddp_unused_parameters = False  # every loss reaches all of its group (DDP)
    description = "Paired multimodal translation, cVAE-GAN + cLR-GAN (Zhu et al. 2017)"
    config_cls = BicycleGANConfig
    dataset_kind = "paired"
    # official code: lsgan, Adam 2e-4 (0.5, 0.999), batch 2, 100 + 100 epochs (linear decay)
    gan_defaults: ClassVar[Mapping[str, Any]] = {"gan_loss": "lsgan"}
    train_defaults: ClassVar[Mapping[str, Any]] = {"batch_size": 2, "max_steps": 200_000}

    def build_models(self, cfg: BicycleGANConfig) -> dict[str, nn.Module]:
        from translate.nn import MultiscaleDiscriminator, init_weights
        from translate_bicyclegan.nets import ResnetEncoder, ZUnet

        def disc() -> nn.Module:  # unconditional: D sees B only (official conditional_D off)
            d = MultiscaleDiscriminator(
                in_channels=3, n_scales=cfg.disc_scales, base_channels=cfg.disc_channels,
                n_layers=cfg.disc_layers, norm=cfg.norm,
            )  # fmt: skip
            return init_weights(d, scheme=cfg.init, gain=0.02)

        g = ZUnet(
            channels=3, nz=cfg.nz, where=cfg.where_add, depth=cfg.unet_depth,
            base=cfg.base_channels, norm=cfg.norm,
        )  # fmt: skip
        e = ResnetEncoder(
            channels=3, nz=cfg.nz, base=cfg.encoder_channels, blocks=cfg.encoder_blocks,
            norm=cfg.norm if cfg.encoder_norm == "same" else cfg.encoder_norm,
        )  # fmt: skip
        models = {
            "G": init_weights(g, scheme=cfg.init, gain=0.02),
            "E": init_weights(e, scheme=cfg.init, gain=0.02),
            "D": disc(),
        }
        if not cfg.shared_d:
            models["D2"] = disc()
        return models

    def param_groups(self, models: Mapping[str, nn.Module]) -> dict[str, list[nn.Parameter]]:
        """G and E share one Adam (per-parameter, so as two with one lr); D and D2 their own."""
        groups = {"G": [*models["G"].parameters(), *models["E"].parameters()]}
        return groups | {n: list(m.parameters()) for n, m in models.items() if n.startswith("D")}

    def train_step(self, ctx: StepContext, batch: Any, cfg: BicycleGANConfig) -> dict[str, float]:
        import torch

        from translate.losses.latent import latent_l1

        real_a, real_b = batch["input"], batch["target"]  # (B, 3, H, W) in [-1, 1]
        half = max(1, real_a.shape[0] // 2)
        a_enc, b_enc = real_a[:half], real_b[:half]
        b_rand = real_b[half : 2 * half] if real_a.shape[0] >= 2 else real_b
        D, D2 = ctx.models["D"], ctx.models.get("D2", ctx.models["D"])
        z_random = torch.randn(half, cfg.nz, device=real_a.device)
        eps = torch.randn(half, cfg.nz, device=real_a.device)
        with ctx.autocast(), torch.set_grad_enabled(ctx.update_generator):
            t = bicycle_terms(ctx.models, a_enc, b_enc, z_random, eps)
        with ctx.autocast():  # fakes are detached by the objective
            loss_d, logs = ctx.gan.discriminator_loss(D, b_enc, t["fake_encoded"])
            loss_d2, logs2 = ctx.gan.discriminator_loss(D2, b_rand, t["fake_random"])
        logs |= {f"D2_{k.removeprefix('D_')}": v for k, v in logs2.items()}
        if cfg.shared_d:
            ctx.optimize("D", cfg.lambda_gan * loss_d + cfg.lambda_gan2 * loss_d2)
        else:
            ctx.optimize("D", cfg.lambda_gan * loss_d)
            ctx.optimize("D2", cfg.lambda_gan2 * loss_d2)
        if not ctx.update_generator:
            return logs
        with ctx.frozen(*(n for n in ctx.models if n.startswith("D"))), ctx.autocast():
            adv, _ = ctx.gan.generator_loss(D, t["fake_encoded"], b_enc)
            adv2, _ = ctx.gan.generator_loss(D2, t["fake_random"], b_rand)
        with ctx.frozen("E"), ctx.autocast():  # the latent term trains G, not E (Sec. 3.4)
            z_l1 = latent_l1(ctx.models["E"](t["fake_random"])[0].float(), z_random)
        loss = (
            cfg.lambda_gan * adv + cfg.lambda_gan2 * adv2 + cfg.lambda_l1 * t["l1"]
            + cfg.lambda_kl * t["kl"] + cfg.lambda_z * z_l1
        )  # fmt: skip
        ctx.optimize("G", loss)
        return logs | ctx.gan.logs(
            {"G_adv": adv, "G_adv2": adv2, "G_L1": t["l1"], "KL": t["kl"], "z_L1": z_l1}
        )  # one device sync (or none: --deferred-sync)

    # -- inference: G(A, z) with the code z a second input (N(0, I), ``--samples``)
    def condition_inputs(self, cfg: BicycleGANConfig) -> tuple[ConditionInput, ...]:
        return (ConditionInput("z", "z", (), noun="code", distribution="normal", dim=cfg.nz),)

    def inference_module(self, models: Mapping[str, nn.Module], cfg: Any, opts: Any) -> nn.Module:
        return models["G"]

    def code_encoder(self, models: Mapping[str, nn.Module], cfg: Any, opts: Any) -> nn.Module:
        from translate_bicyclegan.nets import MeanCode

        return MeanCode(models["E"])

    def sample_columns(self, models: Mapping[str, nn.Module], batch: Any, cfg: Any) -> list[Tensor]:
        """input | three random samples | target."""
        import torch

        a = batch["input"]
        gen = torch.Generator().manual_seed(0)
        zs = [torch.randn(a.shape[0], cfg.nz, generator=gen).to(a.device) for _ in range(3)]
        return [a, *(models["G"](a, z) for z in zs), batch["target"]]

    def eval_data(self, cfg: Any) -> Path | None:
        """The validation split evaluated by --eval-every: ``<data>/val``, when present."""
        from translate.data.paired import split_folder

        return split_folder(Path(cfg.data), "val")

    def size_requirements(self, cfg: BicycleGANConfig) -> SizeRequirements:
        side = 2**cfg.unet_depth
        return SizeRequirements(multiple_of=side, minimum=max(side, 2 ** (cfg.encoder_blocks + 1)))

    def tiny_config(self, data_root: Path) -> BicycleGANConfig:
        return BicycleGANConfig(
            data=data_root, load_size=36, crop_size=32, unet_depth=5, base_channels=8,
            encoder_channels=8, encoder_blocks=2, disc_channels=8, disc_layers=2,
        )  # fmt: skip


plugin = BicycleGANPlugin()
