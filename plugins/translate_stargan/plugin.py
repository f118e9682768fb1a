"""The StarGAN plugin: one generator for many domains, conditioned on the target label.

Choi et al. 2018, "StarGAN: Unified Generative Adversarial Networks for Multi-Domain
Image-to-Image Translation". With x an image of label c', a target label c drawn at random:

    L_D = -L_adv + lambda_cls * L_cls^r                              (Eq. 5)
    L_G =  L_adv + lambda_cls * L_cls^f + lambda_rec * L_rec           (Eq. 6)

L_adv is the core GAN objective (the paper: WGAN-GP, Eq. 8, this plugin's default family; every
core family and regulariser applies); L_cls^r = -log D_cls(c'|x) on real images (Eq. 2) and
L_cls^f = -log D_cls(c|G(x, c)) on generated ones (Eq. 3): cross-entropy over one-hot domains,
binary cross-entropy per attribute for multi-label data; L_rec = ||x - G(G(x, c), c')||_1, the
reconstruction (cycle) loss (Eq. 4). lambda_cls = 1, lambda_rec = 10 (Sec. 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from translate.config import opt
from translate.plugin import ConditionInput, PluginBase, SizeRequirements
from translate_stargan.config import StarGANConfig

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor, nn
    from torch.utils.data import Dataset

    from translate.plugin import StepContext

#: Sample-grid columns: at most this many target domains (attributes) are drawn.
MAX_SAMPLE_DOMAINS = 8


@dataclass(frozen=True)
class StarGANInference:
    """Inference options of StarGAN."""

    to: str = opt(
        "",
        "Target domain, or for an attribute model the attributes to switch on, comma-separated "
        "(the others are off); names as in the checkpoint. Default: its first domain (no "
        "attribute on). The model (and its ONNX export) takes it as its label input.",
    )


class StarGANPlugin(PluginBase[StarGANConfig]):
    name = "stargan"
    ddp_unused_parameters = False  # every loss reaches all of its group (DDP)
    description = "Many domains, one generator conditioned on the target label (Choi et al. 2018)"
    config_cls = StarGANConfig
    inference_config_cls = StarGANInference
    dataset_kind = "unpaired"  # one folder of unrelated images per domain
    # the paper: WGAN-GP (n_critic 5, lambda_gp 10: the family's defaults); Adam lr 1e-4 for
    # 200k iterations at batch 16, decaying linearly to 0 over the last 100k
    gan_defaults: ClassVar[Mapping[str, Any]] = {"gan_loss": "wgan-gp"}
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "max_steps": 200_000,
        "batch_size": 16,
        "lr_decay_start": 0.5,
    }

    # ------------------------------------------------------------------ config and data
    def finalize_config(self, cfg: StarGANConfig) -> StarGANConfig:
        """Resolve ``--domains`` against the data (all of them by default) once per run."""
        import dataclasses

        from translate_stargan.data import available_domains, pick_domains

        available = available_domains(cfg)
        source = Path(cfg.attributes if cfg.multi_label else cfg.data)
        what = "attribute" if cfg.multi_label else "domain folder"
        chosen = pick_domains(available, cfg.domains, source=source, what=what)
        second = ""
        if cfg.data2 is not None:
            from translate_stargan.data import second_domains

            second = ",".join(second_domains(cfg, chosen))
        return dataclasses.replace(cfg, domains=",".join(chosen), domains2=second)

    def build_dataset(self, cfg: StarGANConfig, split: str) -> Dataset | None:
        from translate_stargan.data import build_domain_dataset

        return build_domain_dataset(cfg, cfg.first_domains, split)

    # ------------------------------------------------------------------ models
    def build_models(self, cfg: StarGANConfig) -> dict[str, nn.Module]:
        from translate_stargan.nets import LabelConditionedGenerator, StarDiscriminator

        n = len(cfg.domain_names)
        if n < 1:  # finalize_config fills the list; a hand-made config may not have
            from translate.errors import ConfigError

            raise ConfigError("domains: no domains (give --domains or let the data name them)")
        return {
            "G": LabelConditionedGenerator(
                n_domains=cfg.label_size,
                base_channels=cfg.base_channels,
                n_blocks=cfg.resnet_blocks,
                norm=cfg.norm,
            ),
            "D": StarDiscriminator(
                n_domains=n, base_channels=cfg.disc_channels, n_layers=cfg.disc_layers
            ),
        }

    # ------------------------------------------------------------------ training
    @staticmethod
    def classification_loss(logits: Tensor, label: Tensor, cfg: StarGANConfig) -> Tensor:
        """Domain-classification loss (Eqs. 2-3, Choi et al. 2018): cross-entropy over
        exclusive domains; for attributes, binary cross-entropy summed over them (averaged
        over the batch, as the authors' CelebA code)."""
        from torch.nn import functional as F

        if cfg.data2 is not None:  # the mask vector: each image's own dataset's labels only
            from translate_stargan import mask

            n1, n2 = len(cfg.first_domains), len(cfg.second_domains)
            return mask.classification_loss(logits, label, n1, n2, multi_label=cfg.multi_label)
        logits = logits.float()
        if cfg.multi_label:
            bce = F.binary_cross_entropy_with_logits(logits, label, reduction="sum")
            return bce / logits.shape[0]
        return F.cross_entropy(logits, label.argmax(1))

    @staticmethod
    def random_targets(label: Tensor, cfg: StarGANConfig) -> Tensor:
        """Target labels c: a uniformly drawn domain per image; for attributes, the labels of
        other images of the batch (realistic combinations, as the authors' code)."""
        import torch

        if cfg.data2 is not None:  # the image's mask kept, its dataset's labels drawn
            from translate_stargan import mask

            n1, n2 = len(cfg.first_domains), len(cfg.second_domains)
            return mask.random_targets(label, n1, n2, multi_label=cfg.multi_label)
        b, n = label.shape
        if cfg.multi_label:
            shift = int(torch.randint(1, b, ()).item()) if b > 1 else 0
            return label.roll(shift, 0)
        index = torch.randint(0, n, (b,), device=label.device)
        return torch.nn.functional.one_hot(index, n).to(label.dtype)

    def train_step(self, ctx: StepContext, batch: Any, cfg: StarGANConfig) -> dict[str, float]:
        import torch

        from translate.losses import l1_loss

        G, D = ctx.models["G"], ctx.models["D"]
        real, label = batch["image"], batch["label"]  # (B, 3, H, W) in [-1, 1]; (B, n)
        target = self.random_targets(label, cfg)
        # on a critic-only step (--n-critic N) G is not updated: build no graph through it
        with ctx.autocast(), torch.set_grad_enabled(ctx.update_generator):
            fake = G(real, target)

        # D: L_D = -L_adv + lambda_cls * L_cls^r (Eq. 5); the objective detaches the fake
        with ctx.autocast():
            loss_adv_d, logs_d = ctx.gan.discriminator_loss(D, real, fake)
            _, cls_real = D(real, with_class=True)
            cls_r = self.classification_loss(cls_real, label, cfg)
        ctx.optimize("D", loss_adv_d + cfg.lambda_cls * cls_r)
        logs = {**logs_d, "D_cls": cls_r.item()}
        if not ctx.update_generator:
            return logs

        # G: L_G = L_adv + lambda_cls * L_cls^f + lambda_rec * L_rec (Eq. 6)
        with ctx.frozen("D"), ctx.autocast():
            # fake[i] shows real[i] in another domain: not the same content as real[i]
            loss_adv_g, logs_g = ctx.gan.generator_loss(D, fake, real, paired=False)
            _, cls_fake = D(fake, with_class=True)
            cls_f = self.classification_loss(cls_fake, target, cfg)
            # reconstruction loss, Eq. 4: ||x - G(G(x, c), c')||_1
            rec = l1_loss(G(fake, label).float(), real)
        ctx.optimize("G", loss_adv_g + cfg.lambda_cls * cls_f + cfg.lambda_rec * rec)
        terms = torch.stack([cls_f, rec]).detach().tolist()
        return {**logs, **logs_g, "G_cls": terms[0], "G_rec": terms[1]}

    # ------------------------------------------------------------------ inference
    def inference_module(
        self, models: Mapping[str, nn.Module], cfg: StarGANConfig, opts: Any
    ) -> nn.Module:
        """G(x, label): the target label is the module's second input (``condition_inputs``),
        fed from ``--to`` by run and serve, and an input of the ONNX export. With ``--data2``
        the mask vector is set from the label (``mask.MaskAppended``)."""
        if cfg.data2 is not None:
            from translate_stargan.mask import MaskAppended

            return MaskAppended(models["G"], len(cfg.first_domains), len(cfg.second_domains))
        return models["G"]

    def condition_inputs(self, cfg: StarGANConfig) -> tuple[ConditionInput, ...]:
        """The target label (B, n): a one-hot of the domain, or the attributes' multi-hot."""
        noun = "attribute" if cfg.multi_label else "domain"
        names = tuple(cfg.domain_names)
        return (ConditionInput("label", "to", names, multi=cfg.multi_label, noun=noun),)

    def option_choices(self, cfg: StarGANConfig) -> Mapping[str, list[str]]:
        """The checkpoint's domains for ``to`` (the service page offers them; an attribute
        model also takes several, comma-separated, through the API and ``run``)."""
        return {"to": cfg.domain_names}

    def sample_columns(
        self, models: Mapping[str, nn.Module], batch: Any, cfg: StarGANConfig
    ) -> list[Tensor]:
        """input | G(x, c) per domain (for attributes: the input's label with one flipped)."""
        import torch

        G = models["G"]
        real, label = batch["image"], batch["label"]  # (B, 3, H, W); (B, n)
        columns = [real]
        if cfg.data2 is not None:  # one column per name, through the inference module's mask
            masked = self.inference_module(models, cfg, None)
            eye = torch.eye(len(cfg.domain_names), device=real.device)
            for k in range(min(len(cfg.domain_names), MAX_SAMPLE_DOMAINS)):
                columns.append(masked(real, eye[k].expand(real.shape[0], -1)))
            return columns
        for k in range(min(label.shape[1], MAX_SAMPLE_DOMAINS)):
            if cfg.multi_label:
                target = label.clone()
                target[:, k] = 1 - target[:, k]
            else:
                target = torch.zeros_like(label)
                target[:, k] = 1
            columns.append(G(real, target))
        return columns

    # ------------------------------------------------------------------ evaluation
    def eval_data(self, cfg: StarGANConfig) -> Path | None:
        """``DIR/val`` (or ``DIR/test``) with the domain folders, for ``--eval-every``."""
        if cfg.multi_label or cfg.data2 is not None:
            return None
        return next((p for s in ("val", "test") if (p := Path(cfg.data) / s).is_dir()), None)

    def evaluate(self, models: Any, folder: Path, cfg: StarGANConfig) -> Any:
        """``folder/<domain>/`` images, each translated into every other domain and back.
        Per target domain: FID/KID of the translations into it against its real images (as
        StarGAN v2, Choi et al. 2020, per target rather than per pair); per image: the
        reconstruction L1 of translating back to its own domain, averaged over targets."""
        import numpy as np

        from translate.data.images import list_images, load_rgb
        from translate.errors import ConfigError
        from translate.evaluation import EvalItem, EvalSet
        from translate.metrics import l1

        if cfg.multi_label or cfg.data2 is not None:
            raise ConfigError(
                "translate eval stargan: evaluates models of one folder per domain; this one "
                "was trained on an attribute file or two datasets"
            )
        domains = cfg.domain_names
        real = {d: [load_rgb(p) for p in list_images(Path(folder) / d)] for d in domains}
        names = {d: [p.name for p in list_images(Path(folder) / d)] for d in domains}
        to = {d: models.open(to=d) for d in domains}
        fakes: dict[str, list[Any]] = {d: [] for d in domains}
        items = []
        for source in domains:
            shown: list[dict[str, Any]] = [{"input": x} for x in real[source]]
            errors: list[list[float]] = [[] for _ in real[source]]
            for target in (d for d in domains if d != source):
                fake = [im.convert("RGB") for im in to[target](real[source])]
                back = [im.convert("RGB") for im in to[source](fake)]
                fakes[target] += fake
                for i, (x, y, r) in enumerate(zip(real[source], fake, back, strict=True)):
                    shown[i][f"to {target}"] = y
                    errors[i].append(l1(np.asarray(r), np.asarray(x)))
            for name, images, err in zip(names[source], shown, errors, strict=True):
                metric = {"rec L1": float(np.mean(err))}
                items.append(EvalItem(f"{source}/{name}", images, metric))
        distributions = {d: (fakes[d], real[d]) for d in domains if fakes[d]}
        return EvalSet(items, distributions=distributions)

    def size_requirements(self, cfg: StarGANConfig) -> SizeRequirements:
        # two stride-2 stages; at least 2x2 at the bottleneck for its reflection padding and
        # instance norm (a 1x1 map has no spatial statistics)
        return SizeRequirements(multiple_of=4, minimum=8)

    def tiny_config(self, data_root: Path) -> StarGANConfig:
        return StarGANConfig(
            data=data_root,
            load_size=36,
            crop_size=32,
            base_channels=8,
            resnet_blocks=1,
            disc_channels=8,
            disc_layers=3,
        )


plugin = StarGANPlugin()
