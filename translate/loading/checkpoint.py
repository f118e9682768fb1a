"""Loading a checkpoint folder (ours: ``model.safetensors`` + ``meta.json``) for inference.

The checkpoint describes itself: the plugin, its config and the engine's GAN transforms come
from ``meta.json``, so nothing from training has to be repeated. Every model is in eval mode
(batch-norm running statistics, no dropout) unless a plugin's inference option says otherwise
(pix2pix's ``test_time_dropout``, which therefore cannot be exported). When a checkpoint holds
EMA weights (``ema.<model>.*``), those are what inference uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from translate.config import config_from_dict
from translate.engine import checkpoint as ckpt
from translate.engine.device import resolve_device
from translate.errors import CheckpointError, ConfigError, PluginError
from translate.loading.model import LoadedModel, check_held, parse_options
from translate.registry import load_plugin

EMA_PREFIX = "ema."


def _apply_core_transforms(models: dict[str, nn.Module], meta: Mapping[str, Any]) -> None:
    """Re-apply the engine's architectural GAN transforms (spectral norm, attention) that the
    checkpoint was trained with, so that its weights fit."""
    try:
        from translate.engine.transforms import apply_gan_transforms
    except ImportError:  # an engine without architectural transforms
        return
    from translate.config import GANConfig

    try:
        gan_cfg = config_from_dict(GANConfig, meta.get("gan_config", {}))
    except ConfigError as exc:
        raise CheckpointError(f"bad gan_config in {ckpt.META} ({exc})") from exc
    apply_gan_transforms(models, gan_cfg)


def load_inference_weights(
    weights: Mapping[str, Tensor], models: Mapping[str, nn.Module], *, source: Path
) -> list[str]:
    """Load each model's weights, preferring its EMA copy (``ema.<model>.*``) where present.

    EMA tensors override the plain ones key by key, so an EMA that stores only parameters
    still gets the plain buffers. Returns the names of the models that use EMA weights.
    """
    with_ema: list[str] = []
    for name, model in models.items():
        head, ema_head = f"{name}.", f"{EMA_PREFIX}{name}."
        state = {k[len(head) :]: v for k, v in weights.items() if k.startswith(head)}
        ema = {k[len(ema_head) :]: v for k, v in weights.items() if k.startswith(ema_head)}
        if ema:
            with_ema.append(name)
        merged = {f"{name}.{k}": v for k, v in {**state, **ema}.items()}
        ckpt.load_models(merged, {name: model}, source=source)
    return with_ema


def checkpoint_plugin(path: Path | str) -> str:
    """The plugin name a checkpoint (or run folder) records, without loading weights."""
    return str(ckpt.read_meta(ckpt.resolve_checkpoint(Path(path)))["plugin"])


def load_checkpoint(
    path: Path | str,
    *,
    options: Mapping[str, Any] | None = None,
    device: str = "cpu",
    meta: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """Rebuild a checkpoint's models (EMA weights preferred) and the plugin's inference module.
    ``meta``: the folder's ``meta.json`` when the caller identified it already
    (``loading.identify``); ``path`` is then the resolved checkpoint folder."""
    folder = ckpt.resolve_checkpoint(Path(path)) if meta is None else Path(path)
    meta = ckpt.read_meta(folder) if meta is None else meta
    try:
        plugin = load_plugin(meta["plugin"])
    except PluginError as exc:
        raise CheckpointError(f"{folder}: needs plugin {meta['plugin']!r}: {exc}") from exc
    try:
        plugin_cfg = config_from_dict(plugin.config_cls, meta["plugin_config"])
    except (KeyError, ConfigError) as exc:
        raise CheckpointError(f"{folder / ckpt.META}: bad plugin_config ({exc})") from exc
    # an import records the options it runs with by default (a CycleGAN holding only G_B: b2a)
    opts = parse_options(plugin, {**meta.get("inference_options", {}), **(options or {})})
    models = plugin.build_models(plugin_cfg)
    _apply_core_transforms(models, meta)
    stored = [m for m in meta.get("models", list(models)) if m in models]
    weights = ckpt.read_weights(folder)
    ema = load_inference_weights(
        weights, {k: models[k] for k in stored}, source=folder / ckpt.WEIGHTS
    )
    dev = resolve_device(device)
    for model in models.values():
        model.to(dev).eval()
    module = plugin.inference_module(models, plugin_cfg, opts)
    check_held(module, models, stored, folder)
    return LoadedModel(
        folder, plugin, plugin_cfg, meta, opts, models, module, ema, folder / ckpt.WEIGHTS
    )
