"""The conditional GAN family's settings (``CGANConfig``): conditioning, networks, objective."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from translate.fields import check, opt


@dataclass(frozen=True)
class CGANConfig:
    """cgan data, model and loss settings."""

    data: Path = opt(
        None,
        "Dataset folder: one sub-folder of images per class (DIR/<class>/*.png; "
        "DIR/train/<class>/ and DIR/val/<class>/ when present).",
    )
    classes: str = opt(
        "",
        "Classes (folders) to train on, comma-separated; default: all. The checkpoint stores "
        "the list, which `translate sample --class` checks names against.",
    )
    conditioning: Literal["concat", "acgan", "projection"] = opt(
        "projection",
        "How D uses the class: concat (one-hot input maps, Mirza and Osindero 2014), acgan "
        "(auxiliary classifier, Odena et al. 2017) or projection (Miyato and Koyama 2018).",
    )
    generator: Literal["dcgan", "biggan"] = opt(
        "dcgan",
        "G's architecture: dcgan (the one-hot concatenated to z, Radford et al. 2016) or biggan "
        "(residual up-blocks, class-conditional batch norm with a shared class embedding, "
        "hierarchical z, spectral norm; Brock et al. 2019). Pair biggan with --ortho-reg 1e-4.",
    )
    discriminator: Literal["auto", "dcgan", "biggan"] = opt(
        "auto",
        "D's architecture: dcgan (strided convolutions, batch norm) or biggan (residual "
        "blocks, spectral norm, sum pooling; Brock et al. 2019); auto: the generator's.",
    )
    attention: int = opt(
        0,
        "biggan networks only: a SAGAN self-attention block (Zhang et al. 2019) after the block "
        "of G, and of D, whose feature maps are this many pixels square (e.g. 16 for 32x32 "
        "images; in each biggan network that has such maps); 0: none.",
    )
    embedding_dim: int = opt(128, "biggan only: size of G's shared class embedding.")
    image_size: int = opt(32, "Side of the generated square images: a power of two, 8 to 256.")
    latent_dim: int = opt(100, "Dimension of the noise vector z.")
    base_channels: int = opt(64, "Width of G's last and D's first layer; doubles per stage.")
    extra_layers: int = opt(
        0, "3x3 stride-1 layers added to G and D (capacity for very small images)."
    )
    lambda_cls: float = opt(1.0, "Weight of AC-GAN's classification loss (acgan only).")
    flip: bool = opt(True, "Random horizontal flips during training.")

    def __post_init__(self) -> None:
        from translate_dcgan.plugin import check_image_size

        check(self.data is not None, "data", "is required (--data DIR)")
        check(
            self.conditioning in ("concat", "acgan", "projection"),
            "conditioning",
            f"{self.conditioning!r} is not one of concat, acgan, projection",
        )
        check_image_size(self.image_size)
        check(self.latent_dim >= 1, "latent_dim", "must be at least 1")
        check(self.base_channels >= 1, "base_channels", "must be at least 1")
        check(self.extra_layers >= 0, "extra_layers", "must be >= 0")
        check(self.lambda_cls >= 0, "lambda_cls", "must be >= 0")
        check(
            self.generator in ("dcgan", "biggan"),
            "generator",
            f"{self.generator!r} is not one of dcgan, biggan",
        )
        check(
            self.discriminator in ("auto", "dcgan", "biggan"),
            "discriminator",
            f"{self.discriminator!r} is not one of auto, dcgan, biggan",
        )
        check(self.embedding_dim >= 1, "embedding_dim", "must be at least 1")
        check(self.attention >= 0, "attention", "must be >= 0 (0: none)")
        if self.attention:
            from translate.nn.biggan import discriminator_sides, generator_sides

            g, d = self.attention_sites
            g_sides = ", ".join(map(str, generator_sides(self.image_size)))
            d_sides = ", ".join(map(str, discriminator_sides(self.image_size, self.extra_layers)))
            check(
                g or d,
                "attention",
                f"no biggan network has {self.attention}-pixel feature maps at --image-size "
                f"{self.image_size} (--generator biggan: {g_sides}; --discriminator biggan: "
                f"{d_sides})",
            )
        if self.generator == "biggan":
            slots = 1 + self.image_size.bit_length() - 3 + self.extra_layers
            check(
                self.latent_dim >= slots,
                "latent_dim",
                f"biggan splits z into {slots} chunks (one per block and one for the input); "
                f"needs at least {slots}",
            )

    @property
    def attention_sites(self) -> tuple[bool, bool]:
        """Whether G and D get ``--attention``'s block: a biggan network with maps that size."""
        from translate.nn.biggan import discriminator_sides, generator_sides

        g = self.generator == "biggan" and self.attention in generator_sides(self.image_size)
        d = self.d_architecture == "biggan" and self.attention in discriminator_sides(
            self.image_size, self.extra_layers
        )
        return g, d

    @property
    def d_architecture(self) -> str:
        """D's architecture with ``auto`` resolved (the generator's)."""
        return self.generator if self.discriminator == "auto" else self.discriminator

    @property
    def class_names(self) -> list[str]:
        return [n.strip() for n in self.classes.split(",") if n.strip()]
