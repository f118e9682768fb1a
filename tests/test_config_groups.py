"""GANConfig is a composition of per-concern groups (translate/config.py): the same fields,
attribute access, CLI options, gan_defaults keys and meta.json as the flat class it replaced."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from translate.config import GAN_GROUPS, GANConfig, config_from_dict, config_to_dict
from translate.errors import ConfigError

#: ``gan_config`` as written to meta.json by the flat GANConfig (before the groups), without
#: ``ortho_reg`` (an older field set): it loads, the missing field at its default.
OLD = Path(__file__).parent / "fixtures" / "gan_config_before_groups.json"

FLAT_FIELDS = {
    "gan_loss", "gp_weight", "r1_gamma", "r2_gamma", "penalty_interval", "label_smoothing",
    "clip_value", "n_critic", "optimizer", "spectral_norm", "gradient_norm", "self_attention",
    "minibatch_std", "feature_matching", "instance_noise", "instance_noise_steps",
    "diff_augment", "ortho_reg", "ema_decay",
    # added after the split: ADA's group and the EMA half-life (old meta.json: their defaults)
    "ada_target", "ada_p", "ada_pipeline", "ada_kimg", "ada_interval", "ema_kimg", "ema_rampup",
    "epsilon_drift",  # ProGAN's drift term (PenaltyConfig)
    "clip_grad_norm",  # gradient-norm clipping (StabiliserConfig; TransGAN's authors)
}  # fmt: skip


def test_the_groups_partition_the_flat_fields() -> None:
    per_group = [{f.name for f in dataclasses.fields(g)} for g in GAN_GROUPS]
    assert set().union(*per_group) == FLAT_FIELDS == {f.name for f in dataclasses.fields(GANConfig)}
    assert sum(map(len, per_group)) == len(FLAT_FIELDS)  # no field in two groups
    assert all(issubclass(GANConfig, g) for g in GAN_GROUPS)


def test_an_old_meta_json_gan_config_still_loads() -> None:
    old = json.loads(OLD.read_text())
    cfg = config_from_dict(GANConfig, old)
    assert (cfg.gan_loss, cfg.r1_gamma, cfg.penalty_interval, cfg.spectral_norm) == (
        "hinge", 0.5, 4, "d",
    )  # fmt: skip
    assert cfg.diff_augment_policy == ("color", "cutout") and cfg.ema_decay == 0.999
    assert cfg.ortho_reg == 0.0 and cfg.active_penalties == ["r1_gamma"]
    later = {  # fields added since, at their defaults: ADA off, no EMA half-life
        "ada_target": 0.0, "ada_p": None, "ada_pipeline": "bgc", "ada_kimg": 500.0,
        "ada_interval": 4, "ema_kimg": 0.0, "ema_rampup": 0.0, "epsilon_drift": 0.0,
        "clip_grad_norm": 0.0,
    }  # fmt: skip
    assert not cfg.ada_enabled
    assert config_to_dict(cfg) == {**old, "ortho_reg": 0.0, **later}


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"gan_loss": "nope"}, "gan_loss"),  # ObjectiveConfig
        ({"penalty_interval": 0}, "penalty_interval"),  # PenaltyConfig
        ({"minibatch_std": -1}, "minibatch_std"),  # ArchitectureConfig
        ({"instance_noise": -1.0}, "instance_noise"),  # StabiliserConfig
        ({"diff_augment": "colour"}, "diff_augment"),  # AugmentationConfig
        ({"ada_p": 2.0}, "ada_p"),  # AdaConfig
        ({"ema_decay": 1.0}, "ema_decay"),  # AveragingConfig
        ({"ada_target": 0.6, "diff_augment": "color"}, "ada_target"),  # across groups
        ({"gan_loss": "wgan", "r1_gamma": 1.0}, "r1_gamma"),  # across groups
    ],
)
def test_every_group_is_validated(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        GANConfig(**options)
