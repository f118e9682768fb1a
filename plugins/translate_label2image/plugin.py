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

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from translate.config import PairedDataConfig, opt
from translate.errors import ConfigError, DataError
from translate.plugin import PluginBase, SizeRequirements

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image
    from torch import Tensor, nn

    from translate.plugin import StepContext

log = logging.getLogger("translate.label2image")

#: Label maps with a side below this are refused (nothing sensible to render).
MIN_SIDE = 8
#: Palette estimation reads at most this many training label maps (evenly spaced).
ESTIMATE_MAX_MAPS = 400


@dataclass(frozen=True)
class Label2ImageConfig(PairedDataConfig):
    """label2image settings. Defaults are a small CPU-friendly model; the SPADE paper's
    256x256 setting is ``--crop-size 256 --load-size 286 --base-channels 64 --n-up 5
    --spade-hidden 128 --disc-channels 64 --disc-layers 4`` (see the plugin README)."""

    load_size: int = opt(143, "Resize images to this square size before cropping.")
    crop_size: int = opt(128, "Random crop size for training (evaluation resizes to it).")
    labels: Literal["auto", "colour", "index"] = opt(
        "auto",
        "How the training label maps encode classes: colour (a colour per class), index "
        "(pixel value = class id, single-channel PNGs) or auto (index for single-channel "
        "files, else colour).",
    )
    palette: tuple[str, ...] = opt(
        (),
        "Class colours in class-id order (#rrggbb or r,g,b; repeat the option), or one palette "
        "file (JSON list, or one colour per line). Default: estimated from the training label "
        "maps (colour) or the VOC colour map (index). Stored in the checkpoint.",
    )
    num_classes: int = opt(
        0, "Number of classes; 0: the palette's size (colour maps) or the largest id + 1 (index)."
    )
    colour_tolerance: float = opt(
        60.0, "Colour label maps: RGB distance beyond which a pixel matches no palette colour."
    )
    max_unknown: float = opt(
        0.01,
        "Colour label maps: share of pixels allowed in flat regions beyond --colour-tolerance "
        "(such pixels on class borders, JPEG ringing, just take the nearest colour); a map "
        "with more is refused.",
    )
    dont_care: int = opt(
        -1,
        "Class id meaning 'unlabelled' (e.g. 255 in index maps): its pixels get no class "
        "(an all-zero one-hot); -1: none.",
    )
    instance_edges: bool = opt(
        False,
        "Add pix2pixHD's instance-boundary channel; label maps are then instance-id PNGs "
        "(Cityscapes *_instanceIds: class * 1000 + instance).",
    )
    generator: Literal["spade", "global"] = opt(
        "spade", "spade (Park et al. 2019) or global (pix2pixHD's global ResNet generator)."
    )
    base_channels: int = opt(32, "Width of the generator's last stage (ngf; papers: 64).")
    n_up: int = opt(
        4,
        "SPADE up-samplings, or the global generator's down-samplings; inputs are padded to "
        "multiples of 2**n_up (SPADE paper: 5; pix2pixHD: 4).",
    )
    spade_hidden: int = opt(64, "Hidden width of each SPADE layer (paper: 128).")
    spade_norm: Literal["instance", "batch"] = opt(
        "instance",
        "SPADE's parameter-free normalisation (the paper: batch; instance suits batch 1).",
    )
    resnet_blocks: int = opt(6, "Residual blocks of the global generator (pix2pixHD: 9).")
    disc_scales: int = opt(2, "Scales of the multi-scale PatchGAN (SPADE: 2, pix2pixHD: 3).")
    disc_layers: int = opt(
        3,
        "Layers of each PatchGAN (3: 70x70 patches and 4 matched feature layers, the same net "
        "as SPADE's n_layers_D 4 and pix2pixHD's n_layers_D 3, which count layers differently).",
    )
    disc_channels: int = opt(32, "Width of each PatchGAN's first layer (ndf; papers: 64).")
    vgg_weights: Path | None = opt(
        None,
        "torchvision VGG-19 ImageNet weights file (vgg19-dcbb9e9d.pth) for the perceptual "
        "loss; none: no perceptual loss.",
    )
    lambda_vgg: float = opt(10.0, "Weight of the VGG perceptual loss (SPADE: 10).")
    lambda_l1: float = opt(0.0, "Weight of an L1 loss to the photo (not in SPADE; 0: off).")
    distill_from: Path | None = opt(
        None,
        "Dense parent checkpoint (set by 'translate compress'; --generator global): G starts as "
        "its channel-pruned generator, D as its discriminator, and G also learns its outputs.",
    )
    lambda_distill: float = opt(
        10.0, "Weight of the L1 loss to the dense parent's outputs (with --distill-from)."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        checks = (
            (self.n_up >= 1, "n_up", "must be at least 1"),
            (self.num_classes >= 0, "num_classes", "must be >= 0 (0: from the data)"),
            (self.colour_tolerance > 0, "colour_tolerance", "must be positive"),
            (0 <= self.max_unknown < 1, "max_unknown", "must be in [0, 1)"),
            (self.dont_care >= -1, "dont_care", "must be a class id, or -1 for none"),
            (self.lambda_vgg >= 0 and self.lambda_l1 >= 0, "lambda_vgg/lambda_l1", "must be >= 0"),
            (self.lambda_distill >= 0, "lambda_distill", "must be >= 0"),
        )
        for ok, name, message in checks:
            if not ok:
                raise ConfigError(f"{name}: {message}")
        for name in ("base_channels", "spade_hidden", "disc_scales", "disc_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1")
        side = 2**self.n_up
        if self.crop_size % side or self.crop_size < 2 * side:
            raise ConfigError(
                f"crop_size: {self.crop_size} must be a multiple of 2**n_up ({side}) and at "
                f"least {2 * side}; change --crop-size or --n-up"
            )

    @property
    def classes(self) -> int:
        """Number of classes (the palette's size unless ``num_classes`` is given)."""
        return self.num_classes or len(self.palette)

    @property
    def input_channels(self) -> int:
        return self.classes + (1 if self.instance_edges else 0)


class Label2ImagePlugin(PluginBase[Label2ImageConfig]):
    name = "label2image"
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
        from translate.data.paired import split_folder
        from translate_label2image import palette as pal
        from translate_label2image.data import check_label_maps, label_sources

        if cfg.vgg_weights is not None and not Path(cfg.vgg_weights).is_file():
            # checked here, not in the config: `run` must load a checkpoint without the file
            raise ConfigError(f"vgg_weights: {cfg.vgg_weights}: no such file")
        if cfg.palette:
            colours = pal.resolve_palette(cfg.palette)
            fmt = "index" if cfg.labels == "index" else "colour"
            if cfg.labels == "auto":
                fmt = self._detect_format(cfg)
        else:
            fmt = cfg.labels if cfg.labels != "auto" else self._detect_format(cfg)
            folder = split_folder(cfg.data, "train")
            assert folder is not None  # split_folder returns the root for "train"
            if fmt == "colour":
                import numpy as np

                sources = label_sources(folder, cfg.direction, limit=ESTIMATE_MAX_MAPS)
                maps = (np.asarray(im.convert("RGB")) for _, im in sources)
                try:
                    colours = pal.estimate_palette(maps, num_classes=cfg.num_classes)
                except ValueError as exc:
                    raise DataError(f"{folder}: cannot estimate the label colours: {exc}") from exc
                log.info("estimated %d label colours: %s", len(colours), colours)
            else:
                n = cfg.num_classes or self._largest_id(cfg, folder) + 1
                colours = pal.default_palette(n)
        n = cfg.num_classes or len(colours)
        if fmt == "colour" and n != len(colours):
            raise ConfigError(f"num_classes: {n} differs from the palette's {len(colours)} colours")
        if len(colours) < n:
            colours = colours + pal.default_palette(n)[len(colours) :]
        if cfg.dont_care >= n and fmt == "colour":
            raise ConfigError(f"dont_care: {cfg.dont_care} is not one of the {n} palette classes")
        final = dataclasses.replace(
            cfg, labels=fmt, palette=tuple(pal.to_hex(c) for c in colours[:n]), num_classes=n
        )
        check_label_maps(final)  # every map, now: not a colour found mid-training
        return final

    @staticmethod
    def _detect_format(cfg: Label2ImageConfig) -> str:
        from translate.data.paired import split_folder
        from translate_label2image.data import label_sources
        from translate_label2image.palette import is_index_image

        folder = split_folder(cfg.data, "train")
        assert folder is not None
        _, first = next(label_sources(folder, cfg.direction))
        return "index" if is_index_image(first) else "colour"

    @staticmethod
    def _largest_id(cfg: Label2ImageConfig, folder: Path) -> int:
        import numpy as np

        from translate_label2image.data import label_sources
        from translate_label2image.palette import INSTANCE_DIVISOR, is_index_image

        largest = 0
        for path, im in label_sources(folder, cfg.direction):
            if not is_index_image(im):
                raise DataError(f"{path}: a {im.mode} image among index label maps")
            ids = np.asarray(im).astype(np.int64)
            if cfg.instance_edges:
                ids = np.where(ids >= INSTANCE_DIVISOR, ids // INSTANCE_DIVISOR, ids)
            if cfg.dont_care >= 0:
                ids = ids[ids != cfg.dont_care]
            largest = max(largest, int(ids.max(initial=0)))
        return largest

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
        from translate_label2image.palette import label_ids, palette_array

        palette = palette_array(cfg.palette)
        parsed = []
        for i, image in enumerate(images):
            source = getattr(image, "filename", "") or (
                "label map" if len(images) == 1 else f"label map {i + 1}"
            )
            if min(image.size) < MIN_SIDE:
                raise DataError(
                    f"{source}: {image.size[0]}x{image.size[1]} is too small to render; "
                    f"label maps need at least {MIN_SIDE} pixels per side"
                )
            parsed.append(
                label_ids(
                    image,
                    palette=palette,
                    num_classes=cfg.classes,
                    tolerance=cfg.colour_tolerance,
                    max_unknown=cfg.max_unknown,
                    dont_care=cfg.dont_care,
                    instances=cfg.instance_edges,
                    source=str(source),
                )
            )
        return parsed

    def preprocess(self, images: list[Image.Image], cfg: Label2ImageConfig) -> Tensor:
        """Label maps (colour RGB or index L/P/I PNGs) of one size -> (B, L, H, W) one-hot."""
        import torch

        from translate_label2image.data import encode
        from translate_label2image.palette import instance_edges

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

        from translate_label2image.palette import colourise, palette_array

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

        from translate_label2image.palette import DONT_CARE_COLOUR, palette_array

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
