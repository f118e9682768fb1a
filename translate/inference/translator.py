"""``Translator``: a checkpoint as a callable on PIL images.

Inference semantics are explicit: every model is in eval mode (batch-norm running statistics,
no dropout) unless a plugin's inference option says otherwise (pix2pix's ``test_time_dropout``).
Any input size works: the image is padded (reflect) up to the generator's ``multiple_of`` and
``minimum``, and the output cropped back (times ``scale``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from translate.config import config_from_dict
from translate.engine import checkpoint as ckpt
from translate.engine.device import resolve_device
from translate.errors import CheckpointError, ConfigError, PluginError
from translate.plugin import SizeRequirements
from translate.registry import load_plugin


def padded_size(size: int, req: SizeRequirements) -> int:
    target = max(size, req.minimum)
    return -(-target // req.multiple_of) * req.multiple_of


def pad_to(x: Tensor, req: SizeRequirements) -> Tensor:
    """Pad (B, C, H, W) on the bottom/right to a size the module accepts."""
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, req) - h, padded_size(w, req) - w
    if ph == 0 and pw == 0:
        return x
    # reflect padding needs the pad to be smaller than the side; replicate the rest
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def parse_options(plugin: Any, options: Mapping[str, Any] | None) -> Any:
    """The plugin's inference options from a dict; unknown names list the valid ones."""
    cls = plugin.inference_config_cls
    options = dict(options or {})
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in options if k not in valid]
    if unknown:
        listing = ", ".join("--" + v.replace("_", "-") for v in valid) or "none"
        raise ConfigError(
            f"option --{unknown[0].replace('_', '-')} is not known to plugin {plugin.name}; "
            f"its inference options: {listing}"
        )
    return config_from_dict(cls, options)


class Translator:
    """Apply a trained model to images: ``Translator.from_checkpoint(path)(images)``."""

    def __init__(
        self,
        plugin: Any,
        plugin_cfg: Any,
        module: nn.Module,
        *,
        device: torch.device,
        meta: Mapping[str, Any],
        opts: Any,
    ):
        self.plugin = plugin
        self.plugin_cfg = plugin_cfg
        self.module = module
        self.device = device
        self.meta = dict(meta)
        self.opts = opts
        self.requirements: SizeRequirements = plugin.size_requirements(plugin_cfg)

    @classmethod
    def from_checkpoint(
        cls,
        path: Path | str,
        *,
        device: str = "auto",
        options: Mapping[str, Any] | None = None,
    ) -> Translator:
        folder = ckpt.resolve_checkpoint(Path(path))
        meta = ckpt.read_meta(folder)
        try:
            plugin = load_plugin(meta["plugin"])
        except PluginError as exc:
            raise CheckpointError(f"{folder}: needs plugin {meta['plugin']!r}: {exc}") from exc
        try:
            plugin_cfg = config_from_dict(plugin.config_cls, meta["plugin_config"])
        except (KeyError, ConfigError) as exc:
            raise CheckpointError(f"{folder / ckpt.META}: bad plugin_config ({exc})") from exc
        opts = parse_options(plugin, options)
        models = plugin.build_models(plugin_cfg)
        stored = [m for m in meta.get("models", list(models)) if m in models]
        weights = ckpt.read_weights(folder)
        ckpt.load_models(weights, {k: models[k] for k in stored}, source=folder / ckpt.WEIGHTS)
        dev = resolve_device(device)
        for model in models.values():
            model.to(dev).eval()
        module = plugin.inference_module(models, plugin_cfg, opts)
        return cls(plugin, plugin_cfg, module, device=dev, meta=meta, opts=opts)

    @property
    def name(self) -> str:
        return f"{self.meta['plugin']} (step {self.meta.get('step', '?')})"

    @torch.no_grad()
    def translate_tensor(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in the plugin's input range -> output, any H and W."""
        h, w = x.shape[-2:]
        y = self.module(pad_to(x.to(self.device), self.requirements))
        s = self.requirements.scale
        return y[..., : h * s, : w * s]

    def __call__(self, images: Image.Image | list[Image.Image]) -> list[Image.Image]:
        batch = [images] if isinstance(images, Image.Image) else list(images)
        out: list[Image.Image] = []
        for image in batch:  # one at a time: sizes may differ
            x = self.plugin.preprocess([image], self.plugin_cfg)
            out.extend(self.plugin.postprocess(self.translate_tensor(x), self.plugin_cfg))
        return out
