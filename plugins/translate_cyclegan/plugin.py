"""The CycleGAN plugin: two generators, two PatchGANs, adversarial + cycle + identity losses.

Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
Networks": G: X -> Y (here G_A: A -> B), F: Y -> X (G_B: B -> A), discriminators D_Y (D_A, on
B images) and D_X (D_B, on A images);
L(G, F, D_X, D_Y) = L_GAN(G, D_Y) + L_GAN(F, D_X) + lambda * L_cyc(G, F)   (Eq. 3), lambda = 10,
plus the identity loss of Sec. 5.2 (weight 0.5 * lambda), LSGAN objectives and a history pool of
50 generated images per discriminator (Sec. 4). Network names follow the reference code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from translate.config import opt
from translate.errors import ConfigError
from translate.plugin import PluginBase, SizeRequirements
from translate_cyclegan.config import CycleGANConfig

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor, nn

    from translate.plugin import StepContext


@dataclass(frozen=True)
class CycleGANInference:
    """Inference options of CycleGAN."""

    direction: Literal["a2b", "b2a"] = opt("a2b", "a2b: apply G_A (A -> B); b2a: apply G_B.")

    def __post_init__(self) -> None:
        if self.direction not in ("a2b", "b2a"):
            raise ConfigError("direction: must be a2b or b2a")


#: Run the independent generator calls of a step as one batched call (see _generator_step):
#: None batches on CUDA only, where a step is bound by kernel launches and four calls instead of
#: six saved 18% (H200, batch 1, 256x256); on a CPU the convolutions' time is per image, the
#: batched step measured no faster (2.86 s against 2.77 s) and held 18% more memory.
#: True/False force it (tests, ``benchmarks/train_speed.py``'s A/B).
BATCH_INDEPENDENT_CALLS: bool | None = None


class CycleGANPlugin(PluginBase[CycleGANConfig]):
    name = "cyclegan"
    ddp_unused_parameters = True  # each cycle is backpropagated alone: part of G each
    description = "Unpaired translation, cycle-consistent GAN (Zhu et al. 2017)"
    config_cls = CycleGANConfig
    inference_config_cls = CycleGANInference
    dataset_kind = "unpaired"
    # the paper: LSGAN objective; 200 epochs (100 at a constant LR, 100 decaying linearly to
    # zero) of horse2zebra, whose larger domain has 1334 images: 200 * 1334 steps at batch 1
    gan_defaults: ClassVar[Mapping[str, Any]] = {"gan_loss": "lsgan"}
    train_defaults: ClassVar[Mapping[str, Any]] = {"max_steps": 266_800, "lr_decay_start": 0.5}

    # ------------------------------------------------------------------ models
    def build_models(self, cfg: CycleGANConfig) -> dict[str, nn.Module]:
        from translate.nn import PatchDiscriminator, init_weights
        from translate.nn.factory import build_generator

        def generator() -> nn.Module:
            return init_weights(build_generator(cfg), scheme=cfg.init, gain=0.02)

        def discriminator() -> nn.Module:
            d = PatchDiscriminator(
                in_channels=3,
                base_channels=cfg.disc_channels,
                n_layers=cfg.disc_layers,
                norm=cfg.norm,
            )
            return init_weights(d, scheme=cfg.init, gain=0.02)

        # G_A: A -> B, judged by D_A (real B vs G_A(A)); G_B: B -> A, judged by D_B
        return {
            "G_A": generator(),
            "G_B": generator(),
            "D_A": discriminator(),
            "D_B": discriminator(),
        }

    def param_groups(self, models: Mapping[str, nn.Module]) -> dict[str, list[nn.Parameter]]:
        """One optimiser for both generators and one for both discriminators (the reference)."""
        return {
            "G": [*models["G_A"].parameters(), *models["G_B"].parameters()],
            "D": [*models["D_A"].parameters(), *models["D_B"].parameters()],
        }

    # ------------------------------------------------------------------ data
    # ------------------------------------------------------------------ training
    def initialize(self, models: Mapping[str, nn.Module], cfg: CycleGANConfig) -> None:
        """A compression run (``--distill-from``) starts from its pruned dense parent."""
        if cfg.distill_from is not None:
            from translate.compress import init_from_parent

            init_from_parent(models, cfg.distill_from, generators=["G_A", "G_B"])

    def checkpoint_meta(self, cfg: CycleGANConfig) -> dict[str, Any]:
        """A compressed model records its parent, keep ratio and method in meta.json."""
        from translate.compress import compression_meta

        return compression_meta(cfg.distill_from, cfg.base_channels, cfg.lambda_distill)

    def train_step(self, ctx: StepContext, batch: Any, cfg: CycleGANConfig) -> dict[str, float]:
        import torch

        real_a, real_b = batch["A"], batch["B"]  # (B, 3, H, W) in [-1, 1]
        # False on the critic-only steps of --n-critic: D trains alone, G runs without a graph
        if ctx.update_generator:
            fake_a, fake_b, logs = self._generator_step(ctx, real_a, real_b, cfg)
        else:
            with torch.no_grad(), ctx.autocast():
                fake_b, fake_a = ctx.models["G_A"](real_a), ctx.models["G_B"](real_b)
            logs = {}
        return {**logs, **self._discriminator_step(ctx, real_a, real_b, fake_a, fake_b, cfg)}

    def _generator_step(
        self, ctx: StepContext, real_a: Tensor, real_b: Tensor, cfg: CycleGANConfig
    ) -> tuple[Tensor, Tensor, dict[str, float]]:
        """One update of G_A and G_B with D frozen; returns the detached fakes (A, B) and logs.

        Each generator pass runs once; only the two detached fakes outlive this call.
        """
        import torch

        from translate.losses import cycle_loss, identity_loss

        G_A, G_B = ctx.models["G_A"], ctx.models["G_B"]
        D_A, D_B = ctx.models["D_A"], ctx.models["D_B"]
        lambda_idt = cfg.lambda_identity * cfg.lambda_cycle
        # G_A's translation of A and its identity pass on B do not depend on each other, so they
        # can run as one call on both (likewise G_B): four generator calls per step, not six.
        # With per-sample normalisation (instance norm, none) each image's output is what its
        # own call gives; batch norm would mix the two halves' statistics, so it keeps six.
        batch = BATCH_INDEPENDENT_CALLS
        if batch is None:
            batch = real_a.device.type == "cuda"
        batched = lambda_idt > 0 and cfg.norm != "batch" and batch
        n = real_a.shape[0]
        zero = torch.zeros((), device=real_a.device)
        idt_a = idt_b = zero
        # The loss is backpropagated in parts (A -> B -> A, B -> A -> B, identities), each as
        # soon as it is computed: its graph is freed before the next part's is built, so peak
        # memory holds three generator passes, not six. The gradients are the same.
        with ctx.frozen("D_A", "D_B"), ctx.accumulate("G") as backward:
            with ctx.autocast():
                if batched:
                    fake_b, same_b = G_A(torch.cat([real_a, real_b])).split(n)
                    # identity loss, Sec. 5.2, Zhu et al. 2017 (after Taigman et al. 2017):
                    # ||G(y) - y||_1 + ||F(x) - x||_1, keeps colours that need not change
                    idt_a = identity_loss(same_b, real_b)
                else:
                    fake_b = G_A(real_a)
                adv_a, logs_a = ctx.gan.generator_loss(D_A, fake_b, real_b)
                # cycle-consistency loss, Eq. 2, Zhu et al. 2017: ||F(G(x)) - x||_1 (+ below)
                cycle_a = cycle_loss(G_B(fake_b), real_a)
                distill_a = self._distill(cfg, "G_A", real_a, fake_b)
            backward(
                adv_a
                + cfg.lambda_cycle * cycle_a
                + cfg.lambda_distill * distill_a
                + lambda_idt * idt_a
            )
            with ctx.autocast():
                if batched:
                    fake_a, same_a = G_B(torch.cat([real_b, real_a])).split(n)
                    idt_b = identity_loss(same_a, real_a)
                else:
                    fake_a = G_B(real_b)
                adv_b, logs_b = ctx.gan.generator_loss(D_B, fake_a, real_a)
                cycle_b = cycle_loss(G_A(fake_a), real_b)  # ||G(F(y)) - y||_1
                distill_b = self._distill(cfg, "G_B", real_b, fake_a)
            backward(
                adv_b
                + cfg.lambda_cycle * cycle_b
                + cfg.lambda_distill * distill_b
                + lambda_idt * idt_b
            )
            if lambda_idt > 0 and not batched:  # batch norm: the identity passes on their own
                with ctx.autocast():
                    idt_a = identity_loss(G_A(real_b), real_b)
                backward(lambda_idt * idt_a)
                with ctx.autocast():
                    idt_b = identity_loss(G_B(real_a), real_a)
                backward(lambda_idt * idt_b)
        terms = {"cycle_A": cycle_a, "cycle_B": cycle_b, "idt_A": idt_a, "idt_B": idt_b}
        if cfg.distill_from is not None:
            terms.update(distill_A=distill_a, distill_B=distill_b)
        logs = {"G_adv_A": logs_a["G_adv"], "G_adv_B": logs_b["G_adv"], **ctx.gan.logs(terms)}
        return fake_a.detach(), fake_b.detach(), logs

    @staticmethod
    def _distill(cfg: CycleGANConfig, name: str, real: Tensor, fake: Tensor) -> Tensor:
        """Self-supervised compression (Yu & Pool 2020): L1 from generator ``name``'s output
        to its dense parent's; 0 outside a compression run and in the fine-tuning baseline."""
        import torch

        from translate.losses import l1_loss

        if cfg.distill_from is None or cfg.lambda_distill == 0:  # 0: the fine-tuning baseline
            return torch.zeros((), device=real.device)
        from translate.compress import teacher_output

        return l1_loss(fake.float(), teacher_output(cfg.distill_from, name, real).float())

    def _discriminator_step(
        self,
        ctx: StepContext,
        real_a: Tensor,
        real_b: Tensor,
        fake_a: Tensor,
        fake_b: Tensor,
        cfg: CycleGANConfig,
    ) -> dict[str, float]:
        """One update of D_A and D_B on real images vs a history of generated ones (Sec. 4,
        after Shrivastava et al. 2017).

        The paper divides each D objective by 2 "which slows down the rate at which D learns,
        relative to the rate of G" (Sec. 4); both share one optimiser, so the halves are summed.
        """
        pooled_b = ctx.image_pool("fake_B", cfg.pool_size).query(fake_b)
        pooled_a = ctx.image_pool("fake_A", cfg.pool_size).query(fake_a)
        with ctx.autocast():
            loss_d_a, logs_a = ctx.gan.discriminator_loss(ctx.models["D_A"], real_b, pooled_b)
            loss_d_b, logs_b = ctx.gan.discriminator_loss(ctx.models["D_B"], real_a, pooled_a)
        ctx.optimize("D", 0.5 * loss_d_a + 0.5 * loss_d_b)
        return {"D_A": 0.5 * logs_a["D_loss"], "D_B": 0.5 * logs_b["D_loss"]}

    # ------------------------------------------------------------------ inference
    def inference_module(
        self, models: Mapping[str, nn.Module], cfg: CycleGANConfig, opts: Any
    ) -> nn.Module:
        """G_A for ``a2b``, G_B for ``b2a``; each is a plain generator (runs and exports as is)."""
        return models["G_B"] if getattr(opts, "direction", "a2b") == "b2a" else models["G_A"]

    def sample_columns(
        self, models: Mapping[str, nn.Module], batch: Any, cfg: CycleGANConfig
    ) -> list[Tensor]:
        """real A | fake B | reconstructed A | real B | fake A | reconstructed B."""
        G_A, G_B = models["G_A"], models["G_B"]
        real_a, real_b = batch["A"], batch["B"]  # (B, 3, H, W) in [-1, 1]
        fake_b, fake_a = G_A(real_a), G_B(real_b)
        return [real_a, fake_b, G_B(fake_b), real_b, fake_a, G_A(fake_a)]

    def size_requirements(self, cfg: CycleGANConfig) -> SizeRequirements:
        if cfg.generator == "unet":
            side = 2**cfg.unet_depth
            return SizeRequirements(multiple_of=side, minimum=side)
        # two stride-2 stages; at least 2x2 at the bottleneck for its reflection padding and
        # instance norm (a 1x1 map has no spatial statistics)
        return SizeRequirements(multiple_of=4, minimum=8)

    def eval_data(self, cfg: CycleGANConfig) -> Path | None:
        """The dataset root whose testA/testB (or valA/valB) --eval-every evaluates."""
        from translate.data.unpaired import eval_root

        return eval_root(Path(cfg.domain_a))

    def evaluate(self, models: Any, folder: Path, cfg: CycleGANConfig) -> Any:
        """Per direction: FID/KID of the translations, per image: cycle-reconstruction L1."""
        from translate_cyclegan.evaluation import evaluate

        return evaluate(models, folder)

    def tiny_config(self, data_root: Path) -> CycleGANConfig:
        return CycleGANConfig(
            domain_a=data_root / "A",
            domain_b=data_root / "B",
            load_size=36,
            crop_size=32,
            resnet_blocks=2,
            base_channels=8,
            disc_channels=8,
            disc_layers=2,
        )


plugin = CycleGANPlugin()
