"""GAN-family transforms of the models a plugin built, and the checks that go with them.

Plugins build plain networks; the stabilisers chosen in ``GANConfig`` are applied here, after
``plugin.build_models``, to every model by its name: names starting with ``"D"`` are
discriminators, names starting with ``"G"`` generators (the same convention as the optimiser
groups' ``lr_d``). In order:

1. ``self_attention`` -- a SAGAN block in the chosen networks (``translate.nn.surgery``);
2. ``minibatch_std`` -- the minibatch standard-deviation layer in front of D's last layer;
3. ``spectral_norm`` -- every layer of D (and of G for ``both``).

The transforms change the parameter set, so whoever rebuilds a trained model (resume, run,
export) must call ``apply_gan_transforms`` with the checkpoint's ``gan_config`` before loading
its weights. They consume the global RNG (new layers' initialisation), deterministically.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from translate.config import GANConfig, TrainConfig
from translate.errors import ConfigError
from translate.nn.minibatch_std import add_minibatch_std
from translate.nn.surgery import add_self_attention, apply_spectral_norm

__all__ = ["apply_gan_transforms", "check_gan_compatible", "is_discriminator", "is_generator"]


def is_discriminator(name: str) -> bool:
    return name.startswith("D")


def is_generator(name: str) -> bool:
    return name.startswith("G")


def _targets(models: Mapping[str, nn.Module], option: str, which: str) -> list[str]:
    """Model names a ``d`` / ``g`` / ``both`` option applies to; refuses an empty match."""
    names = [
        n
        for n in models
        if (which in ("d", "both") and is_discriminator(n))
        or (which in ("g", "both") and is_generator(n))
    ]
    wanted = {"d": "discriminator", "g": "generator", "both": "generator and discriminator"}
    if which in ("d", "both") and not any(is_discriminator(n) for n in models):
        raise ConfigError(f"{option}: this plugin builds no {wanted['d']} (no model named D...)")
    if which in ("g", "both") and not any(is_generator(n) for n in models):
        raise ConfigError(f"{option}: this plugin builds no {wanted['g']} (no model named G...)")
    return names


def apply_gan_transforms(models: dict[str, nn.Module], gan: GANConfig) -> dict[str, nn.Module]:
    """Apply ``gan``'s architectural stabilisers to ``models`` in place; returns ``models``."""
    if gan.self_attention != "none":
        for name in _targets(models, "self_attention", gan.self_attention):
            try:
                add_self_attention(models[name])
            except ValueError as exc:
                raise ConfigError(f"self_attention: model {name} {exc}") from None
    if gan.minibatch_std:
        for name in _targets(models, "minibatch_std", "d"):
            try:
                add_minibatch_std(models[name], group_size=gan.minibatch_std)
            except ValueError as exc:
                raise ConfigError(f"minibatch_std: model {name} {exc}") from None
    if gan.spectral_norm != "none":
        for name in _targets(models, "spectral_norm", gan.spectral_norm):
            apply_spectral_norm(models[name])
    return models


def _uses_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def check_gan_compatible(
    models: Mapping[str, nn.Module], gan: GANConfig, train: TrainConfig | None = None
) -> None:
    """Refuse, in one line, GAN options that do not fit the plugin's models or the loop.

    * Gradient penalties and gradient normalisation are per sample; batch norm mixes the
      samples of a batch, so a penalised or normalised discriminator must not use it
      (Gulrajani et al. 2017, Sec. 4).
    * Feature matching needs discriminators with ``forward_features``.
    * The minibatch standard deviation needs batches of at least two samples.
    """
    per_sample = [*gan.active_penalties, *(["gradient_norm"] if gan.gradient_norm else [])]
    discriminators = {n: m for n, m in models.items() if is_discriminator(n)}
    if per_sample:
        for name, model in discriminators.items():
            if _uses_batch_norm(model):
                first = per_sample[0]
                what = (
                    "wgan-gp's penalty"
                    if gan.gan_loss == "wgan-gp" and first == "gp_weight"
                    else first
                )
                raise ConfigError(
                    f"gan_loss: {what} needs a discriminator without batch norm, but {name} "
                    "uses it; add --norm instance (or none)"
                )
    if gan.feature_matching > 0:
        if not discriminators:
            raise ConfigError("feature_matching: this plugin builds no discriminator")
        for name, model in discriminators.items():
            if not callable(getattr(model, "forward_features", None)):
                raise ConfigError(
                    f"feature_matching: discriminator {name} ({type(model).__name__}) has no "
                    "forward_features(x) to match"
                )
    if gan.minibatch_std and train is not None and train.batch_size < 2:
        raise ConfigError(
            "minibatch_std: needs --batch-size of at least 2 (it measures variation across "
            "the batch)"
        )
