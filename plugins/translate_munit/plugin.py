"""The MUNIT plugin: content and style codes, cross-domain translation by swapping styles.

Huang et al. 2018, "Multimodal Unsupervised Image-to-Image Translation" (ECCV). Each domain
i has an encoder (content c_i = E^c_i(x_i), style s_i = E^s_i(x_i)) and a decoder G_i.
Translation x_{1->2} = G_2(c_1, s_2) with a style s_2 ~ N(0, I). The objective (Eq. 5):

    min_{E, G} max_D  L_GAN^x1 + L_GAN^x2 + lambda_x (L_recon^x1 + L_recon^x2)
                      + lambda_c (L_recon^c1 + L_recon^c2) + lambda_s (L_recon^s1 + L_recon^s2)

* image reconstruction (Eq. 2): |G_1(E^c_1(x_1), E^s_1(x_1)) - x_1|, lambda_x = 10;
* latent reconstruction (Eq. 3): |E^c_2(x_{1->2}) - c_1| (lambda_c = 1) and
  |E^s_2(x_{1->2}) - s_2| (lambda_s = 1);
* adversarial (Eq. 4): LSGAN, a multi-scale discriminator per domain judging x_{2->1} / x_{1->2};
* optional explicit style-augmented cycle (App. B, ``lambda_cyc``):
  |G_1(E^c_2(x_{1->2}), E^s_1(x_1)) - x_1|;
* optional domain-invariant perceptual loss (App. B, ``lambda_vgg`` with ``--vgg-weights``):
  mean((IN(VGG(x_{1->2})) - IN(VGG(x_1)))^2), and the same for 2->1: a translation keeps its
  source's content, compared on instance-normalised VGG features.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from translate.plugin import ConditionInput, PluginBase, SizeRequirements
from translate_munit.config import MUNITConfig, MUNITInference

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor, nn

    from translate.plugin import StepContext


def munit_terms(
    gen_a: nn.Module, gen_b: nn.Module, x_a: Tensor, x_b: Tensor, s_a: Tensor, s_b: Tensor,
    lambda_cyc: float = 0.0, vgg: nn.Module | None = None,
) -> dict[str, Tensor]:  # fmt: skip
    """The generator's forward passes and reconstruction terms of one step (Eq. 2-3), given
    the random styles s_a, s_b (B, style_dim); the translations for the adversarial terms;
    with ``vgg`` (a ``VGGLoss`` with the in_mse distance), the perceptual term."""
    from translate.losses import l1_loss
    from translate.losses.latent import latent_l1

    c_a, s_a_prime = gen_a.encode(x_a)
    c_b, s_b_prime = gen_b.encode(x_b)
    x_ba, x_ab = gen_a.decode(c_b, s_a), gen_b.decode(c_a, s_b)  # cross-domain translations
    c_b_rec, s_a_rec = gen_a.encode(x_ba)
    c_a_rec, s_b_rec = gen_b.encode(x_ab)
    terms = {
        "x_ab": x_ab,
        "x_ba": x_ba,
        "recon_x": l1_loss(gen_a.decode(c_a, s_a_prime), x_a)
        + l1_loss(gen_b.decode(c_b, s_b_prime), x_b),
        "recon_c": latent_l1(c_a_rec, c_a) + latent_l1(c_b_rec, c_b),
        "recon_s": latent_l1(s_a_rec, s_a) + latent_l1(s_b_rec, s_b),
    }
    if lambda_cyc > 0:
        terms["cyc"] = l1_loss(gen_a.decode(c_a_rec, s_a_prime), x_a) + l1_loss(
            gen_b.decode(c_b_rec, s_b_prime), x_b
        )
    if vgg is not None:  # translations against their content's source
        terms["vgg"] = vgg(x_ba, x_b) + vgg(x_ab, x_a)
    return terms


class MUNITPlugin(PluginBase[MUNITConfig]):
    name = "munit"
    ddp_unused_parameters = False  # every loss reaches all of its group (DDP)
    description = "Unpaired multimodal translation, content + style codes (Huang et al. 2018)"
    config_cls = MUNITConfig
    inference_config_cls = MUNITInference
    dataset_kind = "unpaired"
    # official configs: lsgan, Adam 1e-4 (0.5, 0.999), batch 1, 1M iterations, lr halved
    # every 100k (``lr_multiplier``)
    gan_defaults: ClassVar[Mapping[str, Any]] = {"gan_loss": "lsgan"}
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "lr": 1e-4, "beta1": 0.5, "beta2": 0.999, "batch_size": 1, "max_steps": 1_000_000,
        "lr_decay_start": 1.0,
    }  # fmt: skip

    def lr_multiplier(self, step: int, cfg: MUNITConfig) -> float:
        """The official configs' ``lr_policy: step``: halved every ``lr_step`` steps."""
        return 0.5 ** (step // cfg.lr_step)

    def finalize_config(self, cfg: MUNITConfig) -> MUNITConfig:
        if cfg.vgg_weights is not None and not Path(cfg.vgg_weights).is_file():
            # checked here, not in the config: `run` must load a checkpoint without the file
            from translate.errors import ConfigError

            raise ConfigError(f"vgg_weights: {cfg.vgg_weights}: no such file")
        return cfg

    def build_models(self, cfg: MUNITConfig) -> dict[str, nn.Module]:
        from translate.nn import MultiscaleDiscriminator, init_weights
        from translate_munit.nets import AutoEncoder

        def disc() -> nn.Module:
            d = MultiscaleDiscriminator(
                in_channels=3, n_scales=cfg.disc_scales, base_channels=cfg.disc_channels,
                n_layers=cfg.disc_layers, norm="none",
            )  # fmt: skip
            return init_weights(d, scheme="normal", gain=0.02)

        if cfg.mode == "unit":  # private layers per domain, the shared ones once (model S)
            from translate_munit.unit import Private, Shared

            shared = Shared(cfg.base_channels * 2**cfg.n_downsample)
            gens = {"G_A": Private(cfg), "G_B": Private(cfg), "S": shared}
        else:
            gens = {"G_A": AutoEncoder(cfg), "G_B": AutoEncoder(cfg)}
        gens = {n: init_weights(m, scheme="kaiming") for n, m in gens.items()}
        return {**gens, "D_A": disc(), "D_B": disc()}

    def param_groups(self, models: Mapping[str, nn.Module]) -> dict[str, list[nn.Parameter]]:
        """One optimiser for both auto-encoders, one for both discriminators (as the paper)."""
        gens = [models[n] for n in ("G_A", "G_B", "S") if n in models]  # S: UNIT's shared
        return {
            "G": [p for m in gens for p in m.parameters()],
            "D": [*models["D_A"].parameters(), *models["D_B"].parameters()],
        }

    def train_step(self, ctx: StepContext, batch: Any, cfg: MUNITConfig) -> dict[str, float]:
        import torch

        d_a, d_b = ctx.models["D_A"], ctx.models["D_B"]
        x_a, x_b = batch["A"], batch["B"]  # (B, 3, H, W) in [-1, 1]
        vgg = None
        if cfg.vgg_weights is not None and cfg.lambda_vgg > 0:
            from translate.losses.perceptual import MUNIT_LAYERS, vgg_loss

            vgg = vgg_loss(
                cfg.vgg_weights, layers=MUNIT_LAYERS, device=ctx.device, distance="in_mse"
            )
        with ctx.autocast(), torch.set_grad_enabled(ctx.update_generator):
            t = self._terms(ctx, x_a, x_b, cfg, vgg)
        with ctx.autocast():  # D_A judges translations into A, D_B into B (fakes detached)
            loss_da, logs_a = ctx.gan.discriminator_loss(d_a, x_a, t["x_ba"])
            loss_db, logs_b = ctx.gan.discriminator_loss(d_b, x_b, t["x_ab"])
        ctx.optimize("D", loss_da + loss_db)
        logs = {f"{k}_A": v for k, v in logs_a.items()} | {f"{k}_B": v for k, v in logs_b.items()}
        if not ctx.update_generator:
            return logs
        with ctx.frozen("D_A", "D_B"), ctx.autocast():
            adv_a, _ = ctx.gan.generator_loss(d_a, t["x_ba"], x_a)
            adv_b, _ = ctx.gan.generator_loss(d_b, t["x_ab"], x_b)
        weights = {"recon_x": cfg.lambda_x, "vgg": cfg.lambda_vgg}
        if cfg.mode == "unit":  # Eq. 3 and 5 of Liu et al. 2017
            weights |= {"kl": cfg.lambda_kl, "cyc": cfg.lambda_unit_cyc, "kl_cyc": cfg.lambda_kl}
        else:  # Eq. 5 of Huang et al. 2018
            weights |= {"recon_c": cfg.lambda_c, "recon_s": cfg.lambda_s, "cyc": cfg.lambda_cyc}
        terms = {k: t[k] for k in weights if k in t}
        loss = adv_a + adv_b + sum(weights[k] * v for k, v in terms.items())
        ctx.optimize("G", loss)
        named = {("G_vgg" if k == "vgg" else k): v for k, v in terms.items()}
        return logs | ctx.gan.logs({"G_adv": adv_a + adv_b, **named})  # one sync (or none)

    def _terms(self, ctx: StepContext, x_a: Tensor, x_b: Tensor, cfg: MUNITConfig, vgg: Any):
        """MUNIT's terms with styles from N(0, I), or UNIT's with the latents' noise."""
        import torch

        m = ctx.models
        if cfg.mode == "unit":
            from translate_munit.unit import unit_terms

            side = 2**cfg.n_downsample
            shape = (cfg.base_channels * side, x_a.shape[2] // side, x_a.shape[3] // side)
            eps = [torch.randn(x.shape[0], *shape, device=x.device) for x in (x_a, x_b, x_a, x_b)]
            t = unit_terms(m["G_A"], m["G_B"], m["S"], x_a, x_b, tuple(eps))
            if vgg is not None:
                t["vgg"] = vgg(t["x_ba"], x_b) + vgg(t["x_ab"], x_a)
            return t
        s_a = torch.randn(x_a.shape[0], cfg.style_dim, device=x_a.device)
        s_b = torch.randn(x_b.shape[0], cfg.style_dim, device=x_b.device)
        return munit_terms(m["G_A"], m["G_B"], x_a, x_b, s_a, s_b, cfg.lambda_cyc, vgg)

    # -- inference: the style code is the module's second input (N(0, I), ``--samples``)
    def condition_inputs(self, cfg: MUNITConfig) -> tuple[ConditionInput, ...]:
        if cfg.mode == "unit":  # UNIT: one answer per input, no code
            return ()
        return (
            ConditionInput(
                "style", "style", (), noun="code", distribution="normal", dim=cfg.style_dim
            ),
        )

    def inference_module(self, models: Mapping[str, nn.Module], cfg: Any, opts: Any) -> nn.Module:
        from translate_munit.nets import Translation

        if cfg.mode == "unit":
            from translate_munit.unit import UnitTranslation

            a, b = (models["G_B"], models["G_A"]) if getattr(opts, "direction", "a2b") == "b2a" \
                else (models["G_A"], models["G_B"])  # fmt: skip
            return UnitTranslation(a, models["S"], b)
        if getattr(opts, "direction", "a2b") == "b2a":
            return Translation(models["G_B"], models["G_A"])
        return Translation(models["G_A"], models["G_B"])

    def code_encoder(self, models: Mapping[str, nn.Module], cfg: Any, opts: Any) -> nn.Module:
        """The target domain's style encoder: ``--style-from`` takes an image of that domain."""
        target = "G_A" if getattr(opts, "direction", "a2b") == "b2a" else "G_B"
        return None if cfg.mode == "unit" else models[target].style

    def sample_columns(self, models: Mapping[str, nn.Module], batch: Any, cfg: Any) -> list[Tensor]:
        """A | three random styles of A->B | B | B's own style on A's content."""
        import torch

        a, b = batch["A"], batch["B"]
        if cfg.mode == "unit":  # A | A->B | B | B->A
            from translate_munit.unit import UnitTranslation

            g_a, s, g_b = models["G_A"], models["S"], models["G_B"]
            return [a, UnitTranslation(g_a, s, g_b)(a), b, UnitTranslation(g_b, s, g_a)(b)]
        gen = torch.Generator().manual_seed(0)
        styles = [
            torch.randn(a.shape[0], cfg.style_dim, generator=gen).to(a.device) for _ in range(3)
        ]
        c_a = models["G_A"].content(a)
        fakes = [models["G_B"].decode(c_a, s) for s in styles]
        return [a, *fakes, b, models["G_B"].decode(c_a, models["G_B"].style(b))]

    def size_requirements(self, cfg: MUNITConfig) -> SizeRequirements:
        side = 2**cfg.n_downsample
        return SizeRequirements(multiple_of=side, minimum=max(side, 16))

    def tiny_config(self, data_root: Path) -> MUNITConfig:
        return MUNITConfig(
            domain_a=data_root / "A", domain_b=data_root / "B", load_size=36, crop_size=32,
            base_channels=4, n_res=1, mlp_dim=16, disc_channels=4, disc_layers=2, disc_scales=2,
        )  # fmt: skip


plugin = MUNITPlugin()
