"""Typed, frozen configuration dataclasses: the single source of truth for every option.

Three dataclasses describe a training run: the plugin's own config (``Pix2PixConfig``...), the
core ``TrainConfig`` (loop, optimiser, checkpoints) and ``GANConfig`` (objective and
regularisers, shared by every plugin). CLI options are generated from their fields
(``translate.cli.options``), help text comes from ``field(metadata={"help": ...})``, and
checkpoints store them as JSON (``config_to_dict`` / ``config_from_dict``).

This module must stay light: no torch import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# re-exported: the (de)serialisation of these configs lives in translate.config_io
from translate.config_io import coerce as coerce
from translate.config_io import config_from_dict as config_from_dict
from translate.config_io import config_to_dict as config_to_dict
from translate.config_io import field_types as field_types
from translate.config_io import load_config_file as load_config_file

# re-exported: the core loop's settings live in translate.config_train
from translate.config_train import AmpMode as AmpMode
from translate.config_train import DeviceName as DeviceName
from translate.config_train import TrainConfig as TrainConfig
from translate.data.configs import Direction as Direction
from translate.data.configs import PairedDataConfig as PairedDataConfig
from translate.data.configs import SingleDataConfig as SingleDataConfig
from translate.data.configs import UnpairedDataConfig as UnpairedDataConfig
from translate.fields import check
from translate.fields import opt as opt

GAN_LOSSES = (
    "minimax",
    "nonsaturating",
    "lsgan",
    "wgan",
    "wgan-gp",
    "hinge",
    "rpgan",
    "ragan",
)
#: Families whose loss has a real target that one-sided label smoothing can soften.
LABEL_SMOOTHING_LOSSES = ("minimax", "nonsaturating", "lsgan")
DIFF_AUGMENT_POLICIES = ("color", "translation", "cutout")
#: ADA pipelines (Karras et al. 2020, "Training GANs with Limited Data"; translate.losses.ada).
ADA_PIPELINES = ("blit", "geom", "color", "bg", "bgc")

SpectralNormTarget = Literal["none", "d", "both"]
AttentionTarget = Literal["none", "d", "g", "both"]
OptimizerName = Literal["auto", "adam", "rmsprop"]

# WGAN with weight clipping, Arjovsky et al. 2017, Algorithm 1: alpha = 5e-5, c = 0.01,
# n_critic = 5, RMSProp. Applied only when the user leaves the option unset.
WGAN_LR = 5e-5
WGAN_CLIP = 0.01
WGAN_N_CRITIC = 5
# WGAN-GP, Gulrajani et al. 2017, Algorithm 1: lambda = 10, n_critic = 5, Adam with
# alpha = 1e-4, beta1 = 0, beta2 = 0.9 (one learning rate for G and D).
WGAN_GP_WEIGHT = 10.0
WGAN_GP_LR = 1e-4
WGAN_GP_BETAS = (0.0, 0.9)
WGAN_GP_N_CRITIC = 5


# ---------------------------------------------------------------------------- GANConfig groups
# GANConfig composes one small frozen dataclass per concern by inheritance: same fields,
# options, gan_defaults keys and meta.json. Adding a group: docs/architecture.md. They live
# here, not in translate/losses or translate/engine (which import torch; this module must not).


@dataclass(frozen=True)
class ObjectiveConfig:
    """The adversarial objective (read by ``translate.losses.objective``) and the optimiser
    and step ratio its family prescribes (read by ``translate.engine``)."""

    gan_loss: str = opt(
        "nonsaturating",
        "Adversarial objective: " + ", ".join(GAN_LOSSES) + ". See the README's GAN table. "
        "wgan (weight clipping) defaults to RMSprop, --lr 5e-5, --clip-value 0.01 and "
        "--n-critic 5; wgan-gp to Adam --lr 1e-4, --beta1 0, --beta2 0.9, --n-critic 5 and "
        "--gp-weight 10 (both: --lr-d as --lr), unless given.",
        choices=GAN_LOSSES,
    )
    label_smoothing: float = opt(
        0.0, "One-sided label smoothing: real target 1 - s (minimax/nonsaturating/lsgan)."
    )
    clip_value: float | None = opt(
        None,
        "WGAN weight clipping: clamp D's parameters to [-c, c] after each D step; "
        "default 0.01 for wgan (only wgan clips).",
    )
    n_critic: int | None = opt(
        None,
        "Discriminator steps per generator step (one batch each); default 5 for wgan and "
        "wgan-gp, else 1.",
    )
    optimizer: OptimizerName = opt(
        "auto", "Optimiser of every group: auto (RMSprop for wgan, else Adam), adam or rmsprop."
    )

    def __post_init__(self) -> None:
        check(
            self.gan_loss in GAN_LOSSES,
            "gan_loss",
            f"unknown objective {self.gan_loss!r}; choose one of {', '.join(GAN_LOSSES)}",
        )
        check(0 <= self.label_smoothing < 0.5, "label_smoothing", "must be in [0, 0.5)")
        check(self.clip_value is None or self.clip_value >= 0, "clip_value", "must be >= 0")
        check(self.n_critic is None or self.n_critic >= 1, "n_critic", "must be at least 1")
        check(
            self.optimizer in ("auto", "adam", "rmsprop"),
            "optimizer",
            "must be auto, adam or rmsprop",
        )

    # -- effective values (family defaults for options left unset)
    @property
    def effective_clip_value(self) -> float:
        if self.clip_value is not None:
            return self.clip_value
        return WGAN_CLIP if self.gan_loss == "wgan" else 0.0

    @property
    def effective_n_critic(self) -> int:
        if self.n_critic is not None:
            return self.n_critic
        if self.gan_loss == "wgan":
            return WGAN_N_CRITIC
        return WGAN_GP_N_CRITIC if self.gan_loss == "wgan-gp" else 1

    @property
    def effective_optimizer(self) -> str:
        if self.optimizer != "auto":
            return self.optimizer
        return "rmsprop" if self.gan_loss == "wgan" else "adam"

    @property
    def family_train_defaults(self) -> dict[str, Any]:
        """TrainConfig values the family's paper prescribes, applied where the user gave none
        (both WGAN papers use one learning rate for G and D: ``lr_d`` unset)."""
        if self.gan_loss == "wgan":
            return {"lr": WGAN_LR, "lr_d": None}
        if self.gan_loss == "wgan-gp":
            beta1, beta2 = WGAN_GP_BETAS
            return {"lr": WGAN_GP_LR, "lr_d": None, "beta1": beta1, "beta2": beta2}
        return {}


@dataclass(frozen=True)
class PenaltyConfig:
    """Gradient penalties on D (read by ``translate.losses.regularizers`` via the objective)."""

    gp_weight: float | None = opt(
        None,
        "One-centred gradient penalty on real/fake interpolates (Gulrajani et al. 2017); "
        "default 10 for wgan-gp, else 0.",
    )
    r1_gamma: float = opt(0.0, "R1 zero-centred gradient penalty on real data (gamma).")
    r2_gamma: float = opt(0.0, "R2 zero-centred gradient penalty on generated data (gamma).")
    penalty_interval: int = opt(
        1,
        "Lazy regularisation: apply the gradient penalties every N steps, weighted by N "
        "(Karras et al. 2020; StyleGAN2 uses 16 for R1).",
    )
    epsilon_drift: float = opt(
        0.0,
        "Drift penalty eps * E[D(x)^2] on D's scores of real images, keeping a WGAN critic's "
        "output near 0 (Karras et al. 2018, App. A.1: 0.001; 0: off).",
    )

    def __post_init__(self) -> None:
        check(self.gp_weight is None or self.gp_weight >= 0, "gp_weight", "must be >= 0")
        check(self.epsilon_drift >= 0, "epsilon_drift", "must be >= 0 (0: off)")
        check(self.r1_gamma >= 0 and self.r2_gamma >= 0, "r1_gamma/r2_gamma", "must be >= 0")
        check(self.penalty_interval >= 1, "penalty_interval", "must be at least 1")


@dataclass(frozen=True)
class ArchitectureConfig:
    """Architectural transforms of the networks (read by ``translate.engine.transforms``)."""

    spectral_norm: SpectralNormTarget = opt(
        "none",
        "Spectral normalisation of every conv/linear layer (Miyato et al. 2018): "
        "d (discriminators) or both (also generators, as SAGAN).",
    )
    gradient_norm: bool = opt(
        False, "Gradient normalisation of D's output (GN-GAN, Wu et al. 2021)."
    )
    self_attention: AttentionTarget = opt(
        "none",
        "Add a SAGAN self-attention block (Zhang et al. 2019) to d, g or both, after the "
        "first convolution at 1/8 resolution (or the deepest one).",
    )
    minibatch_std: int = opt(
        0,
        "Minibatch standard-deviation layer before D's last layer, over groups of N samples "
        "(Karras et al. 2018 use 4; 0: off; needs --batch-size >= 2).",
    )

    def __post_init__(self) -> None:
        check(
            self.spectral_norm in ("none", "d", "both"), "spectral_norm", "must be none, d or both"
        )
        check(
            self.self_attention in ("none", "d", "g", "both"),
            "self_attention",
            "must be none, d, g or both",
        )
        check(self.minibatch_std >= 0, "minibatch_std", "must be >= 0 (0: off)")


@dataclass(frozen=True)
class StabiliserConfig:
    """Extra terms and noise that steady training (read by ``translate.losses.objective``)."""

    feature_matching: float = opt(
        0.0,
        "Weight of the feature-matching loss on D's features (pix2pixHD, Wang et al. 2018; "
        "Salimans et al. 2016 for unpaired data).",
    )
    instance_noise: float = opt(
        0.0,
        "Std of Gaussian instance noise added to D's inputs, annealed linearly to 0 "
        "(Sønderby et al. 2017; Arjovsky & Bottou 2017).",
    )
    instance_noise_steps: int = opt(
        0, "Steps over which --instance-noise anneals to 0 (0: the whole run)."
    )
    ortho_reg: float = opt(
        0.0,
        "Orthogonal regularisation of the generators' weights with this weight (BigGAN's "
        "off-diagonal form, Brock et al. 2019, Eq. 3; they use 1e-4; 0: off).",
    )
    clip_grad_norm: float = opt(
        0.0, "Clip each optimiser group's gradient norm to this before its step (0: off)."
    )

    def __post_init__(self) -> None:
        check(self.clip_grad_norm >= 0, "clip_grad_norm", "must be >= 0 (0: off)")
        check(self.feature_matching >= 0, "feature_matching", "must be >= 0")
        check(self.instance_noise >= 0, "instance_noise", "must be >= 0")
        check(self.instance_noise_steps >= 0, "instance_noise_steps", "must be >= 0")
        check(self.ortho_reg >= 0, "ortho_reg", "must be >= 0 (0: off)")


@dataclass(frozen=True)
class AugmentationConfig:
    """Augmentation of D's inputs (read by ``translate.losses.augment``)."""

    diff_augment: str = opt(
        "",
        "DiffAugment policy for D's real and fake inputs alike (Zhao et al. 2020): "
        "comma-separated subset of " + ", ".join(DIFF_AUGMENT_POLICIES) + ".",
    )

    def __post_init__(self) -> None:
        unknown = [p for p in self.diff_augment_policy if p not in DIFF_AUGMENT_POLICIES]
        check(
            not unknown,
            "diff_augment",
            f"unknown policy {unknown[0] if unknown else ''!r}; "
            f"use a comma-separated subset of {', '.join(DIFF_AUGMENT_POLICIES)}",
        )

    @property
    def diff_augment_policy(self) -> tuple[str, ...]:
        """The DiffAugment operations, in application order (colour, translation, cutout)."""
        given = [p.strip() for p in self.diff_augment.split(",") if p.strip()]
        return tuple(given)


@dataclass(frozen=True)
class AdaConfig:
    """Adaptive discriminator augmentation (read by ``translate.losses.ada`` and the engine,
    which adjusts p and checkpoints it). Images only, never a condition map."""

    ada_target: float = opt(
        0.0,
        "Adaptive discriminator augmentation (Karras et al. 2020, ADA): the target of "
        "r_t = E[sign(D(real))] that its probability p is steered towards (paper: 0.6); 0: off.",
    )
    ada_p: float | None = opt(
        None,
        "ADA probability p in [0, 1]: fixed (without --ada-target) or the starting value "
        "(with it; default 0).",
    )
    ada_pipeline: str = opt(
        "bgc",
        "ADA transforms: blit (flips, quarter turns, integer shifts), geom (scale, rotation, "
        "anisotropy, fractional shifts), color, bg or bgc (all, the paper's default).",
        choices=ADA_PIPELINES,
    )
    ada_kimg: float = opt(
        500.0, "ADA: p can go from 0 to 1 in this many thousand images (paper: 500)."
    )
    ada_interval: int = opt(4, "ADA: adjust p every N steps (paper: 4).")

    def __post_init__(self) -> None:
        check(0 <= self.ada_target < 1, "ada_target", "must be in [0, 1) (0: off; paper 0.6)")
        check(self.ada_p is None or 0 <= self.ada_p <= 1, "ada_p", "must be in [0, 1]")
        check(
            self.ada_pipeline in ADA_PIPELINES,
            "ada_pipeline",
            f"unknown pipeline {self.ada_pipeline!r}; choose one of {', '.join(ADA_PIPELINES)}",
        )
        check(self.ada_kimg > 0, "ada_kimg", "must be > 0")
        check(self.ada_interval >= 1, "ada_interval", "must be at least 1")

    @property
    def ada_enabled(self) -> bool:
        """Whether ADA augments D's inputs (adaptive with a target, or a fixed p)."""
        return self.ada_target > 0 or self.ada_p is not None


@dataclass(frozen=True)
class AveragingConfig:
    """Weight averaging of the generators (read by ``translate.engine.ema``)."""

    ema_decay: float = opt(
        0.0,
        "Keep an exponential moving average of the generators' weights with this decay "
        "(e.g. 0.999; 0: off); used for samples, run and export.",
    )
    ema_kimg: float = opt(
        0.0,
        "Generator EMA by its half-life in thousands of images instead of a fixed decay "
        "(Karras et al. 2020: 10): decay 0.5 ** (global batch / (1000 * kimg)) per step; "
        "0: off (see --ema-decay).",
    )
    ema_rampup: float = opt(
        0.0,
        "With --ema-kimg: the half-life is at most this fraction of the images seen so far "
        "(StyleGAN2-ADA's ramp, 0.05; 0: no ramp).",
    )

    def __post_init__(self) -> None:
        check(0 <= self.ema_decay < 1, "ema_decay", "must be in [0, 1) (0: off)")
        check(self.ema_kimg >= 0, "ema_kimg", "must be >= 0 (0: off)")
        check(0 <= self.ema_rampup <= 1, "ema_rampup", "must be in [0, 1] (0: no ramp)")
        check(
            not (self.ema_kimg > 0 and self.ema_decay > 0),
            "ema_kimg",
            "a half-life (--ema-kimg) and a fixed --ema-decay both set the EMA; pass "
            "--ema-kimg 0 for a fixed decay",
        )
        check(
            self.ema_rampup == 0 or self.ema_kimg > 0,
            "ema_rampup",
            "ramps the half-life of --ema-kimg; set it",
        )


#: In command-line order (GANConfig's bases are these, reversed).
GAN_GROUPS = (
    ObjectiveConfig,
    PenaltyConfig,
    ArchitectureConfig,
    StabiliserConfig,
    AugmentationConfig,
    AdaConfig,
    AveragingConfig,
)


@dataclass(frozen=True)
class GANConfig(
    AveragingConfig,
    AdaConfig,
    AugmentationConfig,
    StabiliserConfig,
    ArchitectureConfig,
    PenaltyConfig,
    ObjectiveConfig,
):
    """The adversarial objective and its regularisers and stabilisers; applies to every plugin.

    Options left at ``None`` take the chosen family's default (``effective_*`` properties), so an
    explicit value always wins. Nonsensical combinations raise a one-line ``ConfigError``; the
    README's "GAN objectives" section lists what combines. Fields: the ``GAN_GROUPS``.
    """

    def __post_init__(self) -> None:
        for group in GAN_GROUPS:
            group.__post_init__(self)
        self._check_combinations()

    def _check_combinations(self) -> None:
        """Refuse combinations that make no sense, with the reason in one line."""
        loss = self.gan_loss
        if self.label_smoothing:
            check(
                loss in LABEL_SMOOTHING_LOSSES,
                "label_smoothing",
                f"only applies to minimax, nonsaturating and lsgan, not {loss} "
                "(it has no real target to soften)",
            )
        clip = self.effective_clip_value
        if loss == "wgan":
            check(
                clip > 0,
                "clip_value",
                "wgan needs weight clipping (> 0) to keep the critic Lipschitz; "
                "for a penalty instead use --gan-loss wgan-gp",
            )
        elif clip > 0:
            check(
                False,
                "clip_value",
                f"weight clipping belongs to --gan-loss wgan, not {loss}; use spectral norm or "
                "a gradient penalty to constrain this discriminator",
            )
        if loss == "wgan-gp":
            check(
                self.effective_gp_weight > 0,
                "gp_weight",
                "wgan-gp needs a positive penalty weight; without it the critic is unconstrained "
                "(use --gan-loss wgan for clipping)",
            )
        penalties = self.active_penalties
        if clip > 0 and penalties:
            check(
                False,
                penalties[0],
                "weight clipping (wgan) and a gradient penalty both constrain the critic; "
                "pick one (--gan-loss wgan-gp for the penalty)",
            )
        if clip > 0 and self.spectral_norm != "none":
            check(
                False,
                "spectral_norm",
                "wgan's weight clipping and spectral norm both constrain the critic; pick one",
            )
        if self.gradient_norm:
            check(
                clip == 0,
                "gradient_norm",
                "gradient normalisation and wgan's weight clipping both constrain the critic; "
                "pick one",
            )
            check(
                self.spectral_norm == "none",
                "gradient_norm",
                "gradient normalisation already makes D 1-Lipschitz; drop --spectral-norm",
            )
            check(
                not penalties,
                "gradient_norm",
                f"gradient normalisation already bounds D's gradient; drop {penalties[0]}"
                if penalties
                else "",
            )
        check(
            not (self.ada_enabled and self.diff_augment_policy),
            "ada_target",
            "ADA and DiffAugment both augment what D sees; pick one (--diff-augment '' or "
            "--ada-target 0)",
        )
        if self.penalty_interval > 1:
            check(
                bool(penalties),
                "penalty_interval",
                "lazy regularisation needs a gradient penalty (--r1-gamma, --r2-gamma or "
                "--gp-weight)",
            )
        if self.instance_noise_steps:
            check(
                self.instance_noise > 0,
                "instance_noise_steps",
                "set --instance-noise (the initial std) to anneal it",
            )

    @property
    def effective_gp_weight(self) -> float:
        if self.gp_weight is not None:
            return self.gp_weight
        return WGAN_GP_WEIGHT if self.gan_loss == "wgan-gp" else 0.0

    @property
    def active_penalties(self) -> list[str]:
        """Names of the options of the gradient penalties that are on."""
        return [
            name
            for name, on in (
                ("gp_weight", self.effective_gp_weight > 0),
                ("r1_gamma", self.r1_gamma > 0),
                ("r2_gamma", self.r2_gamma > 0),
            )
            if on
        ]
