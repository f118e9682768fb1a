"""CUT's options, with the defaults of the paper and its official code.

Park et al., "Contrastive Learning for Unpaired Image-to-Image Translation", ECCV 2020 (Sec. 4,
Appendix C) and github.com/taesungp/contrastive-unpaired-translation (``--CUT_mode``). Three
options depend on ``--mode`` and default to the mode's value when not given: ``lambda_nce`` (CUT
1, FastCUT 10), ``nce_identity`` (CUT on, FastCUT off) and ``flip_equivariance`` (CUT off,
FastCUT on); the stored config holds the resolved values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from translate.config import UnpairedDataConfig, opt
from translate.fields import check

#: The mode-dependent defaults: (lambda_nce, nce_identity, flip_equivariance).
MODE_DEFAULTS = {"cut": (1.0, True, False), "fastcut": (10.0, False, True)}


def encoder_layers(resnet_blocks: int, antialias: bool) -> int:
    """How many layers of the ResNet generator's flat numbering come before its upsampling:
    stem (4), two downsampling stages (4 layers each with anti-aliasing, else 3), the blocks."""
    return 4 + 2 * (4 if antialias else 3) + resnet_blocks


@dataclass(frozen=True)
class CUTConfig(UnpairedDataConfig):
    """CUT / FastCUT data, model and loss settings (defaults: the paper's 256x256 setup)."""

    mode: Literal["cut", "fastcut"] = opt(
        "cut",
        "cut: lambda_NCE 1 plus the identity NCE on domain B; fastcut: lambda_NCE 10, "
        "flip-equivariance, no identity NCE (Sec. 4).",
    )
    resnet_blocks: int = opt(9, "Residual blocks of the ResNet generator (resnet_9blocks).")
    base_channels: int = opt(64, "Width of the first generator layer (ngf).")
    disc_channels: int = opt(64, "Width of the first discriminator layer (ndf).")
    disc_layers: int = opt(3, "PatchGAN layers (3: the 70x70 PatchGAN).")
    norm: Literal["instance", "batch", "none"] = opt("instance", "Normalisation in G and D.")
    antialias: bool = opt(
        True,
        "Blurred down- and upsampling in G and D, as the official code (--no-antialias: "
        "strided and transposed convolutions, as CycleGAN).",
    )
    nce_layers: str = opt(
        "0,4,8,12,16",
        "Generator layers whose features PatchNCE compares, in the reference's flat numbering "
        "(0: the padded input, 4/8: the two downsampling convolutions, 12/16: residual "
        "blocks 1 and 5).",
    )
    num_patches: int = opt(256, "Patch locations sampled per layer and image (S).")
    head_units: int = opt(256, "Width of each layer's 2-layer MLP head H_l (netF_nc).")
    nce_temperature: float = opt(0.07, "Temperature tau of PatchNCE.")
    lambda_gan: float = opt(1.0, "Weight of the adversarial loss.")
    lambda_nce: float | None = opt(None, "Weight of PatchNCE (default: cut 1, fastcut 10).")
    nce_identity: bool | None = opt(
        None, "Also PatchNCE between y and G(y) for real B images (default: cut on, fastcut off)."
    )
    flip_equivariance: bool | None = opt(
        None,
        "Flip G's input at random and its features back (default: cut off, fastcut on).",
    )
    init: Literal["normal", "xavier", "kaiming", "orthogonal"] = opt(
        "xavier", "Weight initialisation of G, D and the heads (official: xavier, gain 0.02)."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.mode in MODE_DEFAULTS, "mode", "must be cut or fastcut")
        for name, default in zip(
            ("lambda_nce", "nce_identity", "flip_equivariance"),
            MODE_DEFAULTS[self.mode],
            strict=True,
        ):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        check(self.norm in ("instance", "batch", "none"), "norm", "must be instance, batch or none")
        for name in ("base_channels", "disc_channels", "disc_layers", "num_patches", "head_units"):
            check(getattr(self, name) >= 1, name, "must be at least 1")
        check(self.resnet_blocks >= 0, "resnet_blocks", "must be >= 0")
        check(
            self.crop_size % 4 == 0 and self.crop_size >= 8,
            "crop_size",
            f"{self.crop_size} must be a multiple of 4 and at least 8 (ResNet G)",
        )
        check(self.nce_temperature > 0, "nce_temperature", "must be > 0")
        check(self.lambda_gan >= 0, "lambda_gan", "must be >= 0")
        check(self.lambda_nce >= 0, "lambda_nce", "must be >= 0")  # type: ignore[operator]
        last = encoder_layers(self.resnet_blocks, self.antialias) - 1
        try:
            layers = [int(v) for v in self.nce_layers.split(",")]
        except ValueError:
            layers = []
        check(
            bool(layers)
            and layers == sorted(set(layers))
            and layers[0] >= 0
            and layers[-1] <= last,
            "nce_layers",
            f"{self.nce_layers!r} must be increasing comma-separated layer numbers in "
            f"[0, {last}] (the encoder of this generator)",
        )

    @property
    def layers(self) -> list[int]:
        """``nce_layers`` as a list of ints."""
        return [int(v) for v in self.nce_layers.split(",")]
