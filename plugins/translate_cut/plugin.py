"""The CUT plugin: one generator, one PatchGAN, adversarial + PatchNCE losses.

Park, Efros, Zhang, Zhu, "Contrastive Learning for Unpaired Image-to-Image Translation", ECCV
2020. A generator G: X -> Y (here A -> B), a discriminator D on B images and, for the layers
l of G's encoder, small MLP heads H_l. The objective (Sec. 3, Eq. 5):

    L = L_GAN(G, D, X, Y) + lambda_X * L_PatchNCE(G, H, X) + lambda_Y * L_PatchNCE(G, H, Y)

where L_PatchNCE(G, H, X) compares the encoder's features of G(x) (queries) with those of x
(keys) patch by patch (``translate.losses.patchnce``); the second term, on real y against G(y),
is the identity loss of CUT. CUT: lambda_X = lambda_Y = 1 (the official code averages the two
NCE terms, each weighted lambda_NCE = 1); FastCUT: lambda_X = 10, lambda_Y = 0, plus
flip-equivariance (G's input is flipped at random and its output's features flipped back).
LSGAN objective, no history pool. Network names follow the official code.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from translate.plugin import PluginBase, SizeRequirements
from translate_cut.config import CUTConfig

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor, nn

    from translate.plugin import StepContext

#: horse2zebra's larger domain has 1334 images: one epoch is 1334 steps at batch 1. The
#: official code trains CUT 200 + 200 epochs (constant, then linear decay to zero) and FastCUT
#: 150 + 50 (``--n_epochs``, ``--n_epochs_decay``).
EPOCH = 1334
SCHEDULES = {
    "cut": {"max_steps": 400 * EPOCH, "lr_decay_start": 0.5},
    "fastcut": {"max_steps": 200 * EPOCH, "lr_decay_start": 0.75},
}


class CUTPlugin(PluginBase[CUTConfig]):
    name = "cut"
    ddp_unused_parameters = False  # every loss reaches all of its group (DDP)
    description = "Unpaired translation, contrastive (CUT / FastCUT, Park et al. 2020)"
    config_cls = CUTConfig
    dataset_kind = "unpaired"
    gan_defaults: ClassVar[Mapping[str, Any]] = {"gan_loss": "lsgan"}
    train_defaults: ClassVar[Mapping[str, Any]] = SCHEDULES["cut"]

    def config_train_defaults(self, cfg: CUTConfig) -> Mapping[str, Any]:
        return SCHEDULES[cfg.mode]

    # ------------------------------------------------------------------ models
    def build_models(self, cfg: CUTConfig) -> dict[str, nn.Module]:
        """G (ResNet, anti-aliased), D (70x70 PatchGAN) and F (the PatchNCE heads H_l).

        The official code creates F's heads at the first batch, from the features' channels;
        the channels depend on the architecture only, so F is built here from one dry forward
        of G's encoder on a blank image: every core path (checkpoint loading, optimisers, DDP,
        EMA, resume) then sees all parameters from the start, and no batch is needed to load.
        """
        import torch

        from translate.losses.patchnce import PatchNCEHeads
        from translate.nn import PatchDiscriminator, ResnetGenerator, init_weights

        G = ResnetGenerator(
            in_channels=3,
            out_channels=3,
            base_channels=cfg.base_channels,
            n_blocks=cfg.resnet_blocks,
            norm=cfg.norm,
            antialias=cfg.antialias,
        )
        D = PatchDiscriminator(
            in_channels=3,
            base_channels=cfg.disc_channels,
            n_layers=cfg.disc_layers,
            norm=cfg.norm,
            antialias=cfg.antialias,
        )
        with torch.no_grad():
            G.eval()  # (batch norm: no running statistics from the blank image)
            features = G.encode(torch.zeros(1, 3, 16, 16), cfg.layers)
            G.train()
        F = PatchNCEHeads.for_features(features, cfg.head_units)
        models = {"G": G, "D": D, "F": F}
        return {k: init_weights(m, scheme=cfg.init, gain=0.02) for k, m in models.items()}

    def param_groups(self, models: Mapping[str, nn.Module]) -> dict[str, list[nn.Parameter]]:
        """G and the heads in one Adam (the official code's optimizer_G and optimizer_F share
        the learning rate, betas and steps; Adam is per parameter), D in another."""
        return {
            "G": [*models["G"].parameters(), *models["F"].parameters()],
            "D": list(models["D"].parameters()),
        }

    # ------------------------------------------------------------------ training
    def train_step(self, ctx: StepContext, batch: Any, cfg: CUTConfig) -> dict[str, float]:
        import torch

        G, D = ctx.models["G"], ctx.models["D"]
        real_a, real_b = batch["A"], batch["B"]  # (B, 3, H, W) in [-1, 1]
        n = real_a.shape[0]
        # FastCUT's flip-equivariance: half of the steps translate the mirrored images
        flipped = bool(cfg.flip_equivariance) and bool(torch.rand(()) < 0.5)

        def flip(t: Tensor) -> Tensor:
            return t.flip(3) if flipped else t

        # CUT's identity term translates y too. The official code runs G once on [x; y]; with
        # per-image norms G(y) can wait until G(x)'s graph is freed (the same values, a lower
        # peak); batch norm mixes the two, so it keeps the joint call.
        joint = bool(cfg.nce_identity) and cfg.norm == "batch"
        with ctx.autocast(), torch.set_grad_enabled(ctx.update_generator):
            fake = G(flip(torch.cat([real_a, real_b]) if joint else real_a))
        fake_b = fake[:n]

        # D: real B vs G(x); the core's LSGAN loss 0.5 E(D(y) - 1)^2 + 0.5 E D(G(x))^2 is the
        # official code's (D_real + D_fake) * 0.5 already
        with ctx.autocast():
            loss_d, logs_d = ctx.gan.discriminator_loss(D, real_b, fake_b)
        ctx.optimize("D", loss_d)
        logs = {"D": logs_d["D_loss"]}
        if not ctx.update_generator:  # a critic-only step of --n-critic
            return logs

        # G and the heads, D frozen: L_GAN + lambda_NCE * PatchNCE(x, G(x)), and for CUT the
        # mean of that PatchNCE and PatchNCE(y, G(y)) (the official code's loss_NCE_both)
        weight = cfg.lambda_nce * (0.5 if cfg.nce_identity else 1.0)
        with ctx.frozen("D"), ctx.accumulate("G") as backward:
            with ctx.autocast():
                adv, logs_g = ctx.gan.generator_loss(D, fake_b, real_b)
                nce_x = self.patchnce(ctx, real_a, fake_b, flipped, cfg)
            loss = cfg.lambda_gan * adv + weight * nce_x
            if cfg.nce_identity:
                if not joint:
                    backward(loss)
                    loss = torch.zeros((), device=loss.device)
                with ctx.autocast():
                    same_b = fake[n:] if joint else G(flip(real_b))
                    nce_y = self.patchnce(ctx, real_b, same_b, flipped, cfg)
                loss = loss + weight * nce_y
                logs["NCE_Y"] = nce_y.item()
            backward(loss)
        return {**logs, "G_adv": logs_g["G_adv"], "NCE": nce_x.item()}

    @staticmethod
    def patchnce(
        ctx: StepContext, source: Tensor, output: Tensor, flipped: bool, cfg: CUTConfig
    ) -> Tensor:
        """L_PatchNCE between G's encoder features of ``output`` (queries) and of ``source``
        (keys, detached in the loss); a flipped step flips the output's features back, so
        that they line up with the unflipped source's (flip-equivariance)."""
        import torch

        from translate.losses.patchnce import multilayer_patchnce

        G = ctx.models["G"]
        queries = G.encode(output, cfg.layers)
        if flipped:
            queries = [q.flip(3) for q in queries]
        with torch.no_grad():  # the keys are detached in the loss: no graph to keep
            keys = G.encode(source, cfg.layers)
        return multilayer_patchnce(
            ctx.models["F"],
            queries,
            keys,
            num_patches=cfg.num_patches,
            temperature=cfg.nce_temperature,
        )

    # ------------------------------------------------------------------ inference
    def inference_module(
        self, models: Mapping[str, nn.Module], cfg: CUTConfig, opts: Any
    ) -> nn.Module:
        """G: A -> B, a plain generator (runs and exports as is)."""
        return models["G"]

    def sample_columns(
        self, models: Mapping[str, nn.Module], batch: Any, cfg: CUTConfig
    ) -> list[Tensor]:
        """real A | fake B | real B | G(real B) (what the identity NCE looks at)."""
        G = models["G"]
        return [batch["A"], G(batch["A"]), batch["B"], G(batch["B"])]

    def size_requirements(self, cfg: CUTConfig) -> SizeRequirements:
        # two downsampling stages; at least 2x2 at the bottleneck (reflection padding, norm)
        return SizeRequirements(multiple_of=4, minimum=8)

    def eval_data(self, cfg: CUTConfig) -> Path | None:
        """The dataset root whose testA/testB (or valA/valB) --eval-every evaluates."""
        from translate.data.unpaired import eval_root

        return eval_root(Path(cfg.domain_a))

    def evaluate(self, models: Any, folder: Path, cfg: CUTConfig) -> Any:
        """FID/KID of G's translations of the A images against the real B images (A2B, the
        paper's protocol; CUT has no B -> A mapping); per B image, the identity L1 of G(y)
        against y, which the identity NCE keeps small."""
        from translate.data.unpaired import load_domains
        from translate.evaluation import EvalItem, EvalSet
        from translate.metrics import l1

        names, real = load_domains(folder)
        fake = {side: [im.convert("RGB") for im in models(real[side])] for side in "AB"}
        items = [
            EvalItem(f"A/{name}", {"real A": x, "fake B": y})
            for name, x, y in zip(names["A"], real["A"], fake["A"], strict=True)
        ]
        for name, y, same in zip(names["B"], real["B"], fake["B"], strict=True):
            metric = {"identity L1": l1(_array(same, y.size), _array(y, y.size))}
            items.append(EvalItem(f"B/{name}", {"real B": y, "G(B)": same}, metric))
        return EvalSet(items, distributions={"A2B": (fake["A"], real["B"])})

    def tiny_config(self, data_root: Path) -> CUTConfig:
        return CUTConfig(
            domain_a=data_root / "A",
            domain_b=data_root / "B",
            load_size=36,
            crop_size=32,
            resnet_blocks=2,
            base_channels=8,
            disc_channels=8,
            disc_layers=2,
            nce_layers="0,4,8,12,13",
            num_patches=16,
            head_units=16,
        )


def _array(image: Any, size: tuple[int, int]) -> Any:
    """An RGB image as an array, resized to ``size`` (bicubic) where it differs."""
    import numpy as np
    from PIL import Image

    if image.size != size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(image)


plugin = CUTPlugin()
