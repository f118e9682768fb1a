"""From flat options to a run's parts: options routed to configs, plugin defaults, optimisers,
the run folder's default name. ``translate.engine.loop`` builds the Trainer from these."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from translate.config import GANConfig, TrainConfig, config_from_dict
from translate.errors import unknown_option
from translate.registry import discover


def split_options(plugin: Any, options: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    """Route flat options to (plugin config, TrainConfig, GANConfig) by field name."""
    names = [
        {f.name for f in dataclasses.fields(cls)}
        for cls in (plugin.config_cls, TrainConfig, GANConfig)
    ]
    parts: tuple[dict, dict, dict] = ({}, {}, {})
    for key, value in options.items():
        for part, fields in zip(parts, names, strict=True):
            if key in fields:
                part[key] = value
                break
        else:
            known = set().union(*names)
            raise unknown_option(key, known, owner=f"plugin {plugin.name}")
    return parts


def default_configs(plugin: Any) -> tuple[TrainConfig, GANConfig]:
    """The core configs with the plugin's own defaults (e.g. its paper's objective)."""
    return (
        config_from_dict(TrainConfig, dict(plugin.train_defaults)),
        config_from_dict(GANConfig, dict(plugin.gan_defaults)),
    )


def build_optimizer(
    params: list[nn.Parameter], *, lr: float, train: TrainConfig, gan: GANConfig
) -> torch.optim.Optimizer:
    """Adam (betas from the train config), or RMSprop for wgan (Arjovsky et al. 2017)."""
    if gan.effective_optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, foreach=True)
    # fused: one kernel per parameter group instead of ~6 passes over every tensor
    # (a fifth of a pix2pix step on CPU with the unfused update)
    return torch.optim.Adam(params, lr=lr, betas=(train.beta1, train.beta2), fused=True)


def plugin_version(name: str) -> str:
    info = discover().get(name)
    return info.version if info else "?"


def new_run_dir(plugin_name: str, root: Path = Path("runs")) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = root / f"{plugin_name}-{stamp}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = root / f"{plugin_name}-{stamp}-{n}"
    return run_dir
