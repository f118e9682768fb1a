"""From flat options to a run's parts: options routed to configs, plugin defaults, optimisers,
the run folder (claimed atomically). ``translate.engine.loop`` builds the Trainer from these."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from translate.config import GANConfig, TrainConfig, config_from_dict
from translate.config_io import load_config_file
from translate.engine import checkpoint as ckpt
from translate.errors import CheckpointError, ConfigError, OutputError, unknown_option
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


def gan_defaults_for(plugin: Any, plugin_cfg: Any, gan_opts: Mapping[str, Any]) -> dict[str, Any]:
    """``gan_opts`` over the plugin's ``config_gan_defaults(plugin_cfg)`` (GANConfig defaults
    that depend on its config, e.g. stylegan2's R1 gamma by resolution), if it has the hook."""
    hook = getattr(plugin, "config_gan_defaults", None)
    by_config = dict(hook(plugin_cfg)) if callable(hook) else {}
    return {**by_config, **gan_opts}


def train_defaults_for(plugin: Any, plugin_cfg: Any, gan_cfg: GANConfig) -> dict[str, Any]:
    """``TrainConfig`` defaults over the plugin's static ones: its ``config_train_defaults``
    (superres --phase gan: lr 1e-4), then the chosen family's paper settings (wgan: lr 5e-5),
    except, when the family is the plugin's own objective, those the plugin sets itself (its
    paper's settings for it: progan's WGAN-GP at lr 1e-3, betas (0, 0.99), not Gulrajani's)."""
    hook = getattr(plugin, "config_train_defaults", None)
    family = dict(hook(plugin_cfg)) if callable(hook) else {}
    paper = gan_cfg.family_train_defaults
    if gan_cfg.gan_loss == plugin.gan_defaults.get("gan_loss"):
        own = {**plugin.train_defaults, **family}
        paper = {k: v for k, v in paper.items() if k not in own}
    return {**family, **paper}


def build_optimizer(
    params: list[nn.Parameter], *, lr: float, train: TrainConfig, gan: GANConfig
) -> torch.optim.Optimizer:
    """Adam (betas from the train config), or RMSprop for wgan (Arjovsky et al. 2017)."""
    if gan.effective_optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, foreach=True)
    # fused: one kernel per parameter group instead of ~6 passes over every tensor
    # (a fifth of a pix2pix step on CPU with the unfused update)
    return DenseAdam(params, lr=lr, betas=(train.beta1, train.beta2), fused=True)


class DenseAdam(torch.optim.Adam):
    """``torch.optim.Adam`` whose fused kernel gets each parameter's tensors in one layout,
    channels-last ones as the dense arrays they are.

    Speed: the CPU kernel wants contiguous tensors and otherwise copies each parameter, gradient
    and moment to a contiguous clone and back; with channels-last models that was 40 ms of a
    0.29 s pix2pix step (its U-Net holds 54M parameters, most in 4-D weights). Adam is
    element-wise, so when a parameter, its gradient and its moments share one channels-last
    layout, the same permuted view of each is contiguous and pairs the same elements: the
    update is bit-identical.

    Correctness: in PyTorch 2.14 that kernel pairs the wrong elements when a parameter's tensors
    differ in layout (a channels-last weight with a contiguous gradient or moments: moments
    restored from a run trained without channels-last, say), silently. A gradient or moment
    whose strides differ from its parameter's is therefore first copied into the parameter's
    layout (the moments stay so). State, ``state_dict`` and loading are Adam's own."""

    def _init_group(self, group, params, grads, exp_avgs, exp_avg_sqs, max_sqs, steps):
        for p in group["params"]:
            if p.grad is not None and p.dim() == 4:
                p.grad = _strided_like(p.grad, p)
                state = self.state[p]
                for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                    if key in state:
                        state[key] = _strided_like(state[key], p)
        has_complex = super()._init_group(
            group, params, grads, exp_avgs, exp_avg_sqs, max_sqs, steps
        )
        lists = [params, grads, exp_avgs, exp_avg_sqs] + ([max_sqs] if group["amsgrad"] else [])
        for i, p in enumerate(params):
            if (
                p.dim() == 4
                and not p.is_contiguous()
                and p.is_contiguous(memory_format=torch.channels_last)
            ):
                for seq in lists:
                    seq[i] = seq[i].permute(0, 2, 3, 1)
        return has_complex


def _strided_like(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t``, or a copy of it with ``like``'s strides."""
    if t.stride() == like.stride():
        return t
    return torch.empty_strided(like.shape, like.stride(), dtype=t.dtype, device=t.device).copy_(t)


def plugin_version(name: str) -> str:
    info = discover().get(name)
    return info.version if info else "?"


#: What a training run writes in its folder; a folder holding any of them holds a run.
RUN_ENTRIES = ("checkpoints", "metrics.jsonl", "samples", "curves.png", "tensorboard")


def claim_run_dir(
    run_dir: Path | None, plugin_name: str, *, overwrite: bool = False, root: Path = Path("runs")
) -> Path:
    """Create the folder of a new run, atomically (``mkdir`` fails if it exists), and return
    it. No ``run_dir``: ``runs/<plugin>-<timestamp>``, or ``...-2``, ``-3`` when another run
    took that name first (two runs started in the same second never share a folder). A given
    ``run_dir`` that already holds a run (``RUN_ENTRIES``) is refused in one line unless
    ``overwrite``, which removes that run's files (and nothing else in the folder); an
    existing folder without a run is used as it is. Used by ``translate train`` and
    ``translate compress`` alike (the Trainer calls it for every new run)."""
    from translate.atomic import write_error

    if run_dir is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        name, n = f"{plugin_name}-{stamp}", 1
        while True:
            candidate = root / (name if n == 1 else f"{name}-{n}")
            try:
                candidate.mkdir(parents=True)
                return candidate
            except FileExistsError:
                n += 1
            except OSError as exc:
                raise write_error(candidate, exc) from exc
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True)
        return run_dir
    except FileExistsError:
        pass
    except OSError as exc:
        raise write_error(run_dir, exc) from exc
    if not run_dir.is_dir():
        raise OutputError(f"{run_dir}: exists and is not a folder; give another --run-dir")
    held = [run_dir / entry for entry in RUN_ENTRIES if (run_dir / entry).exists()]
    if held and not overwrite:
        raise ConfigError(
            f"{run_dir}: already holds a run; continue it with --resume {run_dir}, give "
            "another --run-dir, or pass --overwrite to replace it"
        )
    for entry in held:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return run_dir


def run_configs(
    plugin: Any,
    options: Mapping[str, Any],
    *,
    resume: Path | None = None,
    config_file: Path | None = None,
) -> tuple[Any, TrainConfig, GANConfig, Path | None]:
    """The three configs of a run from flat options (CLI or notebook), a config file, or a
    checkpoint to resume (then its folder is returned too, else None). On resume only loop
    settings may change, and ``max_steps`` must not be below the checkpoint's step."""
    options = {k: v for k, v in options.items() if v is not None}
    if config_file is not None:
        options = {**load_config_file(Path(config_file)), **options}
    plugin_opts, train_opts, gan_opts = split_options(plugin, options)
    if resume is not None:
        folder = ckpt.resolve_checkpoint(Path(resume))
        meta = ckpt.read_meta(folder)
        if meta["plugin"] != plugin.name:
            raise CheckpointError(
                f"{folder}: checkpoint is from plugin {meta['plugin']!r}, not {plugin.name!r}"
            )
        if plugin_opts or gan_opts:
            changed = ", ".join(f"--{k.replace('_', '-')}" for k in {**plugin_opts, **gan_opts})
            raise ConfigError(
                f"cannot change {changed} when resuming; the model is fixed by {folder}"
            )
        try:
            plugin_cfg = config_from_dict(plugin.config_cls, meta["plugin_config"])
            train_cfg = config_from_dict(TrainConfig, {**meta["train_config"], **train_opts})
            gan_cfg = config_from_dict(GANConfig, meta["gan_config"])
        except KeyError as exc:
            raise CheckpointError(f"{folder / ckpt.META}: missing {exc}") from exc
        step = int(meta.get("step", 0))
        if train_cfg.max_steps < step:  # training on would rewrite the later state
            raise ConfigError(
                f"--max-steps {train_cfg.max_steps}: {folder} is already at step {step}; "
                f"give --max-steps {step} or more (its state past step "
                f"{train_cfg.max_steps} would be lost)"
            )
        return plugin_cfg, train_cfg, gan_cfg, folder
    train_base, gan_base = default_configs(plugin)
    plugin_cfg = config_from_dict(plugin.config_cls, plugin_opts)
    # defaults that depend on the plugin's config (stylegan2: R1's gamma by resolution)
    gan_cfg = config_from_dict(
        GANConfig, gan_defaults_for(plugin, plugin_cfg, gan_opts), base=gan_base
    )
    # defaults that depend on the plugin's config (superres --phase gan: lr 1e-4), then the
    # chosen family's paper settings (wgan: lr 5e-5), unless the user set them
    family = train_defaults_for(plugin, plugin_cfg, gan_cfg)
    family = {k: v for k, v in family.items() if k not in train_opts}
    train_cfg = config_from_dict(TrainConfig, {**family, **train_opts}, base=train_base)
    return plugin_cfg, train_cfg, gan_cfg, None
