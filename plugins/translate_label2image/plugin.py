"""The label2image plugin: semantic label map -> photo (SPADE or a pix2pixHD global generator).

Park et al. 2019, "Semantic Image Synthesis with Spatially-Adaptive Normalization" (SPADE), and
Wang et al. 2018, "High-Resolution Image Synthesis and Semantic Manipulation with Conditional
GANs" (pix2pixHD). The generator sees the label map as one-hot classes (plus, optionally,
pix2pixHD's instance-boundary channel); a multi-scale PatchGAN judges (labels, image) pairs.
Objective (SPADE, Sec. 4): hinge GAN loss + discriminator feature matching (lambda 10 summed over
4 layers: ``--feature-matching 40`` in the core's per-layer mean) + VGG perceptual loss
(lambda 10) when a VGG-19 weights file is given.

The palette (class colours) is part of the model: ``finalize_config`` reads it from
``--palette`` or estimates it from the training label maps before training, and the config,
palette included, is stored in the checkpoint, so ``translate run`` needs no flags.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from translate.errors import ConfigError, DataError
from translate.plugin import PluginBase, SizeRequirements
from translate_label2image.config import Label2ImageConfig

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image
    from torch import Tensor, nn

    from translate.plugin import StepContext

log = logging.getLogger("translate.label2image")


class Label2ImagePlugin(PluginBase[Label2ImageConfig]):
    name = "label2image"
    ddp_unused_parameters = False  # every loss reaches all of its group (DDP)
    description = "Label map -> photo, SPADE / pix2pixHD generators (Park et al. 2019)"
    config_cls = Label2ImageConfig
    dataset_kind = "labels"
    # SPADE, Sec. 4: hinge loss, feature matching, spectral norm in G and D, TTUR with
    # lr 1e-4 (G) / 4e-4 (D), Adam (0, 0.9), linear decay over the second half
    gan_defaults: ClassVar[Mapping[str, Any]] = {
        "gan_loss": "hinge",
        "feature_matching": 40.0,
        "spectral_norm": "both",
    }
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "max_steps": 80_000,
        "lr": 1e-4,
        "lr_d": 4e-4,
        "beta1": 0.0,
        "beta2": 0.9,
    }

    # ------------------------------------------------------------------ config
    def finalize_config(self, cfg: Label2ImageConfig) -> Label2ImageConfig:
        """Resolve the label format, the palette and the class count from ``--palette`` or
        the training label maps (once, before training; a resumed run keeps its own)."""
        from translate_label2image.data import finalize_labels

        return finalize_labels(cfg)

    # ------------------------------------------------------------------ models
    def build_models(self, cfg: Label2ImageConfig) -> dict[str, nn.Module]:
        from translate.nn import MultiscaleDiscriminator, ResnetGenerator, init_weights
        from translate_label2image.spade import SPADEGenerator

        if cfg.classes < 1:
            raise ConfigError("num_classes: unknown; give --palette or --num-classes")
        labels = cfg.input_channels
        if cfg.generator == "spade":
            g: nn.Module = SPADEGenerator(
                label_channels=labels,
                base_channels=cfg.base_channels,
                n_up=cfg.n_up,
                hidden=cfg.spade_hidden,
                norm=cfg.spade_norm,
            )
        else:
            g = ResnetGenerator(
                in_channels=labels,
                out_channels=3,
                base_channels=cfg.base_channels,
                n_blocks=cfg.resnet_blocks,
                n_downsampling=cfg.n_up,
                norm="instance",
            )
        # conditional D: (one-hot labels, image) concatenated, as in pix2pixHD and SPADE
        d = MultiscaleDiscriminator(
            in_channels=labels + 3,
            n_scales=cfg.disc_scales,
            base_channels=cfg.disc_channels,
            n_layers=cfg.disc_layers,
            norm="instance",
        )
        # SPADE initialises with Xavier (gain 0.02)
        return {
            "G": init_weights(g, scheme="xavier", gain=0.02),
            "D": init_weights(d, scheme="xavier", gain=0.02),
        }

    def build_dataset(self, cfg: Label2ImageConfig, split: str) -> Any:
        from translate.data.paired import split_folder
        from translate_label2image.data import LabelDataset

        folder = split_folder(cfg.data, split)
        return None if folder is None else LabelDataset(folder, cfg, train=split == "train")

    def initialize(self, models: Mapping[str, nn.Module], cfg: Label2ImageConfig) -> None:
        """A compression run (``--distill-from``) starts from its pruned dense parent."""
        if cfg.distill_from is not None:
            from translate.compress import init_from_parent

            init_from_parent(models, cfg.distill_from, generators=["G"])

    def checkpoint_meta(self, cfg: Label2ImageConfig) -> dict[str, Any]:
        """A compressed model records its parent, keep ratio and method in meta.json."""
        from translate.compress import compression_meta

        return compression_meta(cfg.distill_from, cfg.base_channels, cfg.lambda_distill)

    # ------------------------------------------------------------------ step
    def train_step(self, ctx: StepContext, batch: Any, cfg: Label2ImageConfig) -> dict[str, float]:
        import torch

        from translate.losses import l1_loss

        G, D = ctx.models["G"], ctx.models["D"]
        seg, real = batch["input"], batch["target"]  # (B, L, H, W) one-hot; (B, 3, H, W)
        with ctx.autocast(), torch.set_grad_enabled(ctx.update_generator):
            fake = G(seg)
        with ctx.autocast():
            # the objective detaches the fake for D's step
            # the one-hot labels are the condition: penalties, colour augmentation and noise
            # act on the image channels only
            loss_d, logs_d = ctx.gan.discriminator_loss(
                D,
                torch.cat([seg, real], 1),
                torch.cat([seg, fake], 1),
                condition_channels=seg.shape[1],
            )
        ctx.optimize("D", loss_d)
        if not ctx.update_generator:
            return logs_d
        logs: dict[str, float] = {}
        with ctx.frozen("D"), ctx.autocast():
            # paired: fake i and real i render the same label map (pix2pixHD feature matching)
            loss_g, logs_g = ctx.gan.generator_loss(
                D,
                torch.cat([seg, fake], 1),
                torch.cat([seg, real], 1),
                paired=True,
                condition_channels=seg.shape[1],
            )
            if cfg.vgg_weights is not None and cfg.lambda_vgg > 0:
                from translate.losses.perceptual import PIX2PIXHD_LAYERS, vgg_loss

                vgg = vgg_loss(cfg.vgg_weights, layers=PIX2PIXHD_LAYERS, device=ctx.device)
                loss_vgg = vgg(fake, real)
                loss_g = loss_g + cfg.lambda_vgg * loss_vgg
                logs["G_vgg"] = loss_vgg.item()
            if cfg.lambda_l1 > 0:
                loss_l1 = l1_loss(fake.float(), real)
                loss_g = loss_g + cfg.lambda_l1 * loss_l1
                logs["G_L1"] = loss_l1.item()
            if cfg.distill_from is not None and cfg.lambda_distill > 0:
                # self-supervised compression (Yu & Pool 2020): the dense G's output as target
                from translate.compress import teacher_output

                target = teacher_output(cfg.distill_from, "G", seg).float()
                loss_distill = l1_loss(fake.float(), target)
                loss_g = loss_g + cfg.lambda_distill * loss_distill
                logs["G_distill"] = loss_distill.item()
        ctx.optimize("G", loss_g)
        return {**logs_d, **logs_g, **logs}

    # ------------------------------------------------------------------ inference
    def inference_module(
        self, models: Mapping[str, nn.Module], cfg: Label2ImageConfig, opts: Any
    ) -> nn.Module:
        return models["G"]  # (B, L, H, W) one-hot -> (B, 3, H, W) in [-1, 1]

    def size_requirements(self, cfg: Label2ImageConfig) -> SizeRequirements:
        side = 2**cfg.n_up
        # at least 2x2 at the coarsest stage: instance statistics of one pixel are empty
        return SizeRequirements(multiple_of=side, minimum=2 * side)

    def input_channels(self, cfg: Label2ImageConfig) -> int:
        return cfg.input_channels

    def parse_labels(self, images: list[Image.Image], cfg: Label2ImageConfig) -> list[Any]:
        """PIL label maps -> [(ids (H, W) int64, -1 don't care; instance ids or None)]."""
        from translate_label2image.data import parse_label_maps

        return parse_label_maps(images, cfg)

    def preprocess(self, images: list[Image.Image], cfg: Label2ImageConfig) -> Tensor:
        """Label maps (colour RGB or index L/P/I PNGs) of one size -> (B, L, H, W) one-hot."""
        import torch

        from translate.data.palette import instance_edges
        from translate_label2image.data import encode

        parsed = self.parse_labels(images, cfg)
        if len({ids.shape for ids, _ in parsed}) > 1:
            raise DataError("label maps: preprocess needs maps of one size")
        return torch.stack(
            [
                encode(ids, cfg.classes, instance_edges(inst) if inst is not None else None)
                for ids, inst in parsed
            ]
        )

    def preview(self, images: list[Image.Image], cfg: Label2ImageConfig) -> list[Image.Image]:
        """What the model is given: each label map parsed and drawn in the palette's colours
        (don't-care pixels grey)."""
        from PIL import Image

        from translate.data.palette import colourise, palette_array

        palette = palette_array(cfg.palette)
        return [
            Image.fromarray(colourise(ids, palette), "RGB")
            for ids, _ in self.parse_labels(images, cfg)
        ]

    def sample_columns(
        self, models: Mapping[str, nn.Module], batch: Any, cfg: Label2ImageConfig
    ) -> list[Tensor]:
        """Label map in the palette's colours | output | photo."""
        import torch

        from translate.data.palette import DONT_CARE_COLOUR, palette_array

        ids = batch["labels"]  # (B, H, W), -1: don't care
        table = torch.cat(
            [
                torch.from_numpy(palette_array(cfg.palette)).float(),
                torch.tensor([DONT_CARE_COLOUR], dtype=torch.float32),
            ]
        ).to(ids.device)
        shown = table[torch.where(ids < 0, len(table) - 1, ids)].permute(0, 3, 1, 2) / 127.5 - 1
        module = self.inference_module(models, cfg, self.inference_config_cls())
        return [shown, module(batch["input"]), batch["target"]]

    def eval_data(self, cfg: Any) -> Path | None:
        """The validation split evaluated by --eval-every: ``<data>/val``, when present."""
        from translate.data.paired import split_folder

        return split_folder(Path(cfg.data), "val")

    def evaluate(self, models: Any, folder: Path, cfg: Label2ImageConfig) -> Any:
        """Paired protocol on ``folder`` (or its test/val split): each label map translated
        and compared with its photo (L1, PSNR, SSIM, LPIPS; FID/KID of outputs vs photos)."""
        from translate.data.paired import find_pairs
        from translate.evaluation import eval_folder, paired_protocol
        from translate_label2image.data import split_pair

        pairs = find_pairs(eval_folder(folder))
        return paired_protocol(
            models, ((a.name, *split_pair(a, b, cfg.direction)) for a, b in pairs)
        )

    def tiny_config(self, data_root: Path) -> Label2ImageConfig:
        return Label2ImageConfig(
            data=data_root,
            load_size=36,
            crop_size=32,
            base_channels=8,
            n_up=3,
            spade_hidden=16,
            disc_channels=8,
            disc_layers=2,
        )


plugin = Label2ImagePlugin()
