"""The InfoGAN plugin: generation from noise and codes that come to mean something, unlabelled.

Chen et al. 2016, "InfoGAN: Interpretable Representation Learning by Information Maximizing
Generative Adversarial Nets". G's input is the noise z and a latent code c: here one categorical
code ``c`` (K categories, uniform) and L continuous codes ``c1`` ... ``cL`` (each U(-1, 1)),
the paper's MNIST setting with K = 10, L = 2 (Sec. 5). A network Q, sharing D's trunk
(``translate_infogan.nets``), reads the codes back from G's images; the mutual-information term
lambda L_I(G, Q) (Eq. 5-6, ``information_loss``: cross-entropy for c, a Gaussian negative
log-likelihood for c1 ... cL) is minimised by G and by D's trunk with Q (Eq. 6: min_{G, Q}),
beside the adversarial objective (the core's; the paper's is the standard GAN loss, this
plugin's default). Adam with lr 1e-3 for G and 2e-4 for D (Appendix C).

The inference module takes the noise and each code as inputs of their own (``condition_inputs``
declares them once), so ``translate sample --code c=3 --vary c1=-2:2:9`` (a traversal grid),
the Python API, the ONNX export and the service all name the codes the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from translate.fields import check, opt
from translate.plugin import ConditionInput, PluginBase

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor, nn
    from torch.utils.data import Dataset

    from translate.plugin import StepContext

CATEGORICAL = "c"  # the categorical code's name; the continuous ones are c1 ... cL


@dataclass(frozen=True)
class InfoGANConfig:
    """InfoGAN data, codes and loss settings (defaults: the paper's MNIST setup)."""

    data: Path = opt(
        None,
        "Folder of training images (any sizes; resized to --image-size), no labels needed; "
        "train/ and val/ subfolders are used when present.",
    )
    image_size: int = opt(28, "Side of the generated square images: a multiple of 4, 8 to 256.")
    latent_dim: int = opt(62, "Dimension of the incompressible noise z (paper, MNIST: 62).")
    categories: int = opt(10, "Categories K of the categorical code c (paper, MNIST: 10).")
    continuous_codes: int = opt(2, "Continuous codes c1 ... cL, each U(-1, 1) (paper: 2).")
    lambda_cat: float = opt(1.0, "Weight of the categorical code's information term (paper: 1).")
    lambda_cont: float = opt(
        0.1,
        "Weight of the continuous codes' term; smaller than the categorical one so that it stays "
        "on the scale of the GAN loss (Sec. 7); 0.1 is ours, the paper gives no number.",
    )
    continuous_loss: Literal["fixed", "nll"] = opt(
        "fixed",
        "Q(c | x) for a continuous code: fixed (a Gaussian of unit variance around Q's mean, the "
        "authors' code) or nll (Q also predicts the log standard deviation).",
    )
    flip: bool = opt(False, "Random horizontal flips during training (off: digits have sides).")

    def __post_init__(self) -> None:
        check(self.data is not None, "data", "is required (--data DIR)")
        check(
            8 <= self.image_size <= 256 and self.image_size % 4 == 0,
            "image_size",
            f"{self.image_size} must be a multiple of 4 from 8 to 256",
        )
        check(self.latent_dim >= 1, "latent_dim", "must be at least 1")
        check(2 <= self.categories <= 1000, "categories", "must be from 2 to 1000")
        check(0 <= self.continuous_codes <= 16, "continuous_codes", "must be from 0 to 16")
        check(self.lambda_cat >= 0, "lambda_cat", "must be >= 0")
        check(self.lambda_cont >= 0, "lambda_cont", "must be >= 0")
        check(
            self.continuous_loss in ("fixed", "nll"),
            "continuous_loss",
            f"{self.continuous_loss!r} is not one of fixed, nll",
        )


class InfoGANPlugin(PluginBase[InfoGANConfig]):
    name = "infogan"
    ddp_unused_parameters = False  # every loss reaches all of its group (DDP)
    description = "Generation with learnt, named codes: InfoGAN (Chen et al. 2016)"
    config_cls = InfoGANConfig
    dataset_kind = "single"
    generates = True
    gan_defaults: ClassVar[Mapping[str, Any]] = {"gan_loss": "nonsaturating"}
    # the authors' MNIST run: batch 128, 50 epochs of 100 updates; G 1e-3, D 2e-4 (Appendix C)
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "batch_size": 128,
        "max_steps": 5_000,
        "lr": 1e-3,
        "lr_d": 2e-4,
    }

    def build_dataset(self, cfg: InfoGANConfig, split: str) -> Dataset | None:
        from translate.data.single import build_generation

        return build_generation(cfg, split)

    def build_models(self, cfg: InfoGANConfig) -> dict[str, nn.Module]:
        from translate_infogan.nets import InfoDiscriminator, InfoGenerator, init_weights

        width = cfg.latent_dim + cfg.categories + cfg.continuous_codes
        D = InfoDiscriminator(
            cfg.image_size,
            cfg.categories,
            cfg.continuous_codes,
            learn_std=cfg.continuous_loss == "nll",
        )
        return {"G": init_weights(InfoGenerator(width, cfg.image_size)), "D": init_weights(D)}

    def latent_shape(self, cfg: InfoGANConfig) -> tuple[int, ...]:
        """The noise z: (Z,); the codes are inputs of their own (``condition_inputs``)."""
        return (cfg.latent_dim,)

    def condition_inputs(self, cfg: InfoGANConfig) -> tuple[ConditionInput, ...]:
        """The codes, in G's input order: ``c`` a one-hot (B, K), then ``c1`` ... ``cL`` each
        (B, 1) from U(-1, 1); all set by name with ``--code NAME=VALUE``."""
        names = tuple(str(k) for k in range(cfg.categories))
        cat = ConditionInput(CATEGORICAL, "code", names, noun="category value")
        cont = tuple(
            ConditionInput(f"c{i}", "code", (f"c{i}",), continuous=True, low=-1.0, high=1.0)
            for i in range(1, cfg.continuous_codes + 1)
        )
        return (cat, *cont)

    def draw_codes(self, cfg: InfoGANConfig, b: int, device: Any) -> tuple[Tensor, ...]:
        """The prior p(z) p(c): z ~ N(0, I), c uniform over K, c1 ... cL ~ U(-1, 1)."""
        import torch

        z = torch.randn(b, cfg.latent_dim, device=device)
        category = torch.randint(0, cfg.categories, (b,), device=device)
        continuous = torch.rand(b, cfg.continuous_codes, device=device) * 2 - 1
        return z, category, continuous

    def train_step(self, ctx: StepContext, batch: Any, cfg: InfoGANConfig) -> dict[str, float]:
        import torch
        from torch.nn.functional import one_hot

        from translate_infogan.nets import information_loss

        G, D = ctx.models["G"], ctx.models["D"]
        real = batch["image"]  # (B, 3, S, S) in [-1, 1]
        z, category, continuous = self.draw_codes(cfg, real.shape[0], real.device)
        code = torch.cat([z, one_hot(category, cfg.categories).float(), continuous], 1)
        weights = {"lambda_cat": cfg.lambda_cat, "lambda_cont": cfg.lambda_cont}
        with ctx.autocast(), torch.set_grad_enabled(ctx.update_generator):
            fake = G(code)
        # D's step: the adversarial loss, plus lambda L_I for Q and D's trunk (fakes detached)
        with ctx.autocast():
            loss_d, logs = ctx.gan.discriminator_loss(D, real, fake)
            info_d, _ = information_loss(D.q(fake.detach()), category, continuous, **weights)
        ctx.optimize("D", loss_d + info_d)
        if not ctx.update_generator:
            return logs
        # G's step: the adversarial loss, plus lambda L_I through G (D and Q frozen)
        with ctx.frozen("D"), ctx.autocast():
            loss_g, logs_g = ctx.gan.generator_loss(D, fake, real, paired=False)
            info_g, logs_i = information_loss(D.q(fake), category, continuous, **weights)
        ctx.optimize("G", loss_g + info_g)
        return {**logs, **logs_g, **logs_i}

    def inference_module(
        self, models: Mapping[str, nn.Module], cfg: InfoGANConfig, opts: Any
    ) -> nn.Module:
        """G(z, c, c1, ..., cL): (B, Z), (B, K), (B, 1) ... -> images (B, 3, S, S) in [-1, 1]."""
        from translate_infogan.nets import CodedGenerator

        return CodedGenerator(models["G"])

    def sample_columns(
        self, models: Mapping[str, nn.Module], batch: Any, cfg: InfoGANConfig
    ) -> list[Tensor]:
        """One column per category (at most 10), from the same fixed noise, continuous codes 0."""
        import torch

        b = batch["image"].shape[0]
        z = torch.randn(b, cfg.latent_dim, generator=torch.Generator().manual_seed(0))
        module = self.inference_module(models, cfg, None)
        device = batch["image"].device
        columns = []
        for k in range(min(cfg.categories, 10)):
            c = torch.zeros(b, cfg.categories)
            c[:, k] = 1
            codes = [torch.zeros(b, 1) for _ in range(cfg.continuous_codes)]
            columns.append(module(*(t.to(device) for t in (z, c, *codes))))
        return columns

    def evaluate(self, models: Any, folder: Path, cfg: InfoGANConfig) -> Any:
        """Samples against the real images of ``folder``: FID/KID, and the categorical code's
        figures (``translate_infogan.evaluation``): how often Q reads back the category that
        drew a sample, and, on a folder per class, the Hungarian-matched accuracy of Q's
        categories on the real images against their classes."""
        from translate_infogan.evaluation import infogan_protocol

        return infogan_protocol(models, folder, cfg)

    def tiny_config(self, data_root: Path) -> InfoGANConfig:
        return InfoGANConfig(data=data_root, image_size=16, latent_dim=8, categories=3)


plugin = InfoGANPlugin()
