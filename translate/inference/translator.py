"""``Translator``: a checkpoint or an exported ONNX model as a callable on PIL images.

One inference path for every plugin and backend: the plugin's ``preprocess`` turns PIL images
into a (B, C, H, W) tensor in [-1, 1]; the input is padded (reflect) up to the module's
``multiple_of`` and ``minimum``, or cut into overlapping feathered tiles when it is large
(``translate.inference.tiling``); a backend (PyTorch or ONNX Runtime,
``translate.inference.backends``) runs the module; the output is cropped back (times ``scale``)
and the plugin's ``postprocess`` makes PIL images. Only the backend differs between
``--backend torch`` and ``--backend onnx``.

Inference semantics are explicit: every model is in eval mode (batch-norm running statistics,
no dropout) unless a plugin's inference option says otherwise (pix2pix's ``test_time_dropout``,
which therefore cannot be exported). When a checkpoint holds EMA weights (``ema.<model>.*``),
those are what inference uses.

A ``Translator`` keeps no per-call state: a server can hold one and call it from several worker
threads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

import translate
from translate.config import config_from_dict, config_to_dict
from translate.engine import checkpoint as ckpt
from translate.engine.device import resolve_device
from translate.errors import CheckpointError, ConfigError, DataError, PluginError
from translate.inference.backends import OnnxBackend, TorchBackend, TrtProfile
from translate.inference.tiling import (
    AUTO_TILE_SIZE,
    pad_to,
    padded_size,
    resolve_tiles,
    run_tiled,
    should_tile,
)
from translate.plugin import PluginBase, SizeRequirements
from translate.registry import load_plugin

# re-exported: older code imports the padding helpers from here
__all__ = ["LoadedModel", "Translator", "load_checkpoint", "pad_to", "padded_size"]

log = logging.getLogger(__name__)

EMA_PREFIX = "ema."
DEFAULT_BATCH_SIZE = 4


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


# ---------------------------------------------------------------------------- loading
@dataclass
class LoadedModel:
    """A checkpoint rebuilt for inference: the plugin's inference module and its context."""

    folder: Path
    plugin: Any
    plugin_cfg: Any
    meta: dict[str, Any]
    opts: Any
    models: dict[str, nn.Module]
    module: nn.Module
    ema: list[str]  # models whose EMA weights were loaded

    @property
    def requirements(self) -> SizeRequirements:
        return self.plugin.size_requirements(self.plugin_cfg)


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


def load_checkpoint(
    path: Path | str, *, options: Mapping[str, Any] | None = None, device: str = "cpu"
) -> LoadedModel:
    """Rebuild a checkpoint's models (EMA weights preferred) and the plugin's inference module."""
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
    return LoadedModel(folder, plugin, plugin_cfg, meta, opts, models, module, ema)


def probe_channels(plugin: Any, cfg: Any, req: SizeRequirements) -> int:
    """Channels of the module's input: the plugin's ``input_channels(cfg)`` when it has one,
    else its ``preprocess`` on a blank image."""
    if callable(getattr(plugin, "input_channels", None)):
        return int(plugin.input_channels(cfg))
    side = padded_size(max(req.minimum, req.multiple_of), req)
    return int(plugin.preprocess([Image.new("RGB", (side, side))], cfg).shape[1])


def uses_instance_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.instancenorm._InstanceNorm) for m in module.modules())


class _DefaultImageIO(PluginBase):
    """RGB <-> [-1, 1] conversion for an ONNX model whose plugin is not installed."""

    config_cls = dict
    dataset_kind = "single"

    def __init__(self, name: str) -> None:
        self.name = name  # type: ignore[misc]


# ---------------------------------------------------------------------------- ONNX cache
def _cache_key(loaded: LoadedModel, *, fp16: bool, opset: int | None) -> str:
    weights = loaded.folder / ckpt.WEIGHTS
    stat = weights.stat()
    key = {
        "weights": [stat.st_size, stat.st_mtime_ns],
        "options": config_to_dict(loaded.opts),
        "fp16": fp16,
        "opset": opset,
        "translate": translate.__version__,
        "torch": torch.__version__,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def cached_export(loaded: LoadedModel, *, fp16: bool = False, opset: int | None = None) -> Path:
    """An ONNX export of ``loaded``, made once and reused: ``<checkpoint>/model.<key>.onnx``
    (the key hashes the weights file, the options, the precision and the versions); written
    atomically, and to ``~/.cache/translate/onnx`` when the checkpoint folder is read-only."""
    from translate.export.onnx import export_loaded

    key = _cache_key(loaded, fp16=fp16, opset=opset)
    name = f"model.{key}.onnx"
    candidates = [loaded.folder / name]
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "translate"
    folder_id = hashlib.sha256(str(loaded.folder.resolve()).encode()).hexdigest()[:12]
    candidates.append(cache_root / "onnx" / f"{folder_id}.{name}")
    for path in candidates:
        if path.is_file():
            return path
    for path in candidates:
        if not os.access(path.parent, os.W_OK) and path.parent.exists():
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            log.info("exporting %s to %s (first ONNX run of this checkpoint)", loaded.folder, path)
            export_loaded(loaded, path, fp16=fp16, opset=opset)
            return path
        except PermissionError:
            continue
    raise CheckpointError(f"{loaded.folder}: no writable place for the ONNX export cache")


# ---------------------------------------------------------------------------- Translator
class Translator:
    """Apply a trained model to images: ``Translator.from_checkpoint(path)(images)``.

    ``tile_size``: None tiles images above ~1 megapixel at 1024-pixel tiles, 0 never tiles,
    N tiles images with a side above N at N-pixel tiles; ``tile_overlap`` defaults to a
    quarter of the tile. ``batch_size``: images of one size translated together.
    """

    def __init__(
        self,
        backend: TorchBackend | OnnxBackend,
        *,
        plugin: Any,
        plugin_cfg: Any,
        requirements: SizeRequirements,
        meta: Mapping[str, Any],
        opts: Any,
        in_channels: int,
        instance_norm: bool = False,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size: must be at least 1, got {batch_size}")
        self.backend = backend
        self.plugin = plugin
        self.plugin_cfg = plugin_cfg
        self.requirements = requirements
        self.meta = dict(meta)
        self.opts = opts
        self.in_channels = in_channels
        self.instance_norm = instance_norm
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap
        self.batch_size = batch_size
        self._warned_instance_norm = False
        if tile_size:  # a tile the model cannot take is refused now, not at the first image
            resolve_tiles(tile_size, tile_overlap, requirements, max_side=backend.max_side)

    # -------------------------------------------------------------- construction
    @classmethod
    def from_checkpoint(
        cls,
        path: Path | str,
        *,
        device: str = "auto",
        options: Mapping[str, Any] | None = None,
        backend: str | None = None,
        amp: str = "none",
        fp16: bool = False,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
    ) -> Translator:
        """A checkpoint (its folder, or a run folder) on ``backend`` ``torch`` (default) or
        ``onnx``.

        ``onnx`` exports once to a cache file in the checkpoint folder (parity-checked) and
        runs it in ONNX Runtime; ``fp16`` selects a half-precision export. An ``.onnx`` file
        given as ``path`` is handed to ``from_onnx``.
        """
        if Path(path).suffix.lower() == ".onnx" and Path(path).is_file():
            if backend not in (None, "onnx"):
                raise ConfigError(f"{path}: an ONNX model runs on --backend onnx, not {backend}")
            return cls.from_onnx(
                path, device=device, options=options, tile_size=tile_size,
                tile_overlap=tile_overlap, batch_size=batch_size, threads=threads,
            )  # fmt: skip
        backend = backend or "torch"
        if backend not in ("torch", "onnx"):
            raise ConfigError(f"backend: {backend!r} is not one of torch, onnx")
        if backend == "onnx":
            if amp != "none":
                raise ConfigError(
                    "amp: applies to --backend torch; for half precision in ONNX Runtime "
                    "export with --fp16"
                )
            loaded = load_checkpoint(path, options=options, device="cpu")
            onnx_path = cached_export(loaded, fp16=fp16)
            translator = cls.from_onnx(
                onnx_path, device=device, tile_size=tile_size, tile_overlap=tile_overlap,
                batch_size=batch_size, threads=threads,
            )  # fmt: skip
            translator.meta = {**translator.meta, **loaded.meta}
            return translator
        if fp16:
            raise ConfigError("fp16: selects a half-precision ONNX export; use --amp with torch")
        dev = resolve_device(device)
        loaded = load_checkpoint(path, options=options, device=device)
        if threads is not None:
            torch.set_num_threads(threads)
        req = loaded.requirements
        return cls(
            TorchBackend(loaded.module, dev, amp=amp),
            plugin=loaded.plugin,
            plugin_cfg=loaded.plugin_cfg,
            requirements=req,
            meta={**loaded.meta, "ema": loaded.ema},
            opts=loaded.opts,
            in_channels=probe_channels(loaded.plugin, loaded.plugin_cfg, req),
            instance_norm=uses_instance_norm(loaded.module),
            tile_size=tile_size,
            tile_overlap=tile_overlap,
            batch_size=batch_size,
        )

    @classmethod
    def from_onnx(
        cls,
        path: Path | str,
        *,
        device: str = "auto",
        options: Mapping[str, Any] | None = None,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
    ) -> Translator:
        """An ONNX file written by ``translate export``: everything (plugin, size multiple,
        scale, options) comes from its metadata, so it needs no flags. ``options``, if given,
        must match those it was exported with."""
        from translate.export.onnx import read_metadata

        path = Path(path)
        md = read_metadata(path)
        req = SizeRequirements(
            multiple_of=int(md["multiple_of"]),
            minimum=int(md["minimum"]),
            scale=int(md["scale"]),
        )
        stored = json.loads(md.get("inference_options", "{}"))
        for key, value in (options or {}).items():
            if key not in stored:
                raise ConfigError(
                    f"option --{key.replace('_', '-')}: not an option of {path.name} "
                    f"(exported with {json.dumps(stored) if stored else 'no options'})"
                )
            if json.loads(json.dumps(value, default=str)) != stored[key]:
                flag = "--" + key.replace("_", "-")
                raise ConfigError(
                    f"{path}: exported with {flag} {stored[key]}; export again with "
                    f"{flag} {value} for that"
                )
        in_channels = int(md["input_channels"])
        try:
            plugin = load_plugin(md["plugin"])
            plugin_cfg = config_from_dict(plugin.config_cls, json.loads(md["plugin_config"]))
            opts = config_from_dict(plugin.inference_config_cls, stored)
        except PluginError:
            if in_channels != 3:
                raise CheckpointError(
                    f"{path}: needs plugin {md['plugin']!r} installed to prepare its "
                    f"{in_channels}-channel input"
                ) from None
            log.warning("plugin %s not installed: using plain RGB input/output", md["plugin"])
            plugin, plugin_cfg, opts = _DefaultImageIO(md["plugin"]), None, None
        except (KeyError, ValueError, ConfigError) as exc:
            raise CheckpointError(f"{path}: bad plugin_config in its metadata ({exc})") from exc
        tile = tile_size or AUTO_TILE_SIZE
        need = padded_size(max(req.minimum, req.multiple_of), req)
        profile = TrtProfile(
            channels=in_channels,
            min_side=need,
            opt_side=max(need, tile // req.multiple_of * req.multiple_of),
            max_side=max(need, tile // req.multiple_of * req.multiple_of),
            max_batch=batch_size,
        )
        backend = OnnxBackend(
            path,
            device=device,
            threads=threads,
            profile=profile,
            fp16=md.get("precision") == "fp16",
        )
        meta = {
            "plugin": md["plugin"],
            "step": int(md["step"]) if md.get("step", "").isdigit() else md.get("step", "?"),
            "onnx": str(path),
            "metadata": md,
        }
        return cls(
            backend,
            plugin=plugin,
            plugin_cfg=plugin_cfg,
            requirements=req,
            meta=meta,
            opts=opts,
            in_channels=in_channels,
            instance_norm=md.get("instance_norm") == "true",
            tile_size=tile_size,
            tile_overlap=tile_overlap,
            batch_size=batch_size,
        )

    # -------------------------------------------------------------- properties
    @property
    def name(self) -> str:
        return f"{self.meta['plugin']} (step {self.meta.get('step', '?')})"

    @property
    def module(self) -> nn.Module | None:
        """The PyTorch inference module (None on the ONNX backend)."""
        return getattr(self.backend, "module", None)

    @property
    def device(self) -> torch.device | str:
        return self.backend.device

    def describe(self) -> str:
        """One line: model and backend, for logs."""
        return f"{self.name} on {self.backend.describe()}"

    def with_tiling(self, tile_size: int | None, tile_overlap: int | None = None) -> Translator:
        """This model (sharing its backend and weights) with other tiling settings: what a
        server does for a request that asks for its own ``tile_size``. A tile the model cannot
        take is refused here (``ConfigError``)."""
        return Translator(
            self.backend,
            plugin=self.plugin,
            plugin_cfg=self.plugin_cfg,
            requirements=self.requirements,
            meta=self.meta,
            opts=self.opts,
            in_channels=self.in_channels,
            instance_norm=self.instance_norm,
            tile_size=tile_size,
            tile_overlap=tile_overlap,
            batch_size=self.batch_size,
        )

    # -------------------------------------------------------------- running
    def _tile_for(self, h: int, w: int) -> int | None:
        auto = self.tile_size is None
        tile = should_tile(h, w, self.tile_size, max_side=self.backend.max_side)
        if tile is not None and auto:  # the auto tile must still fit the model
            tile = max(tile, padded_size(max(self.requirements.minimum, 1), self.requirements))
        return tile

    def translate_tensor(
        self, x: Tensor, *, on_tile: Callable[[int, int], None] | None = None
    ) -> Tensor:
        """(B, C, H, W) in the plugin's input range -> (B, C', H*scale, W*scale) float32 on
        the CPU, any H and W; large inputs are tiled (one tile on the device at a time)."""
        if x.dim() != 4:
            raise DataError(f"input: expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise DataError(f"input: {x.shape[1]} channels, but the model takes {self.in_channels}")
        x = x.detach().float().cpu()
        b, _, h, w = x.shape
        req, s = self.requirements, self.requirements.scale
        tile = self._tile_for(h, w)
        if tile is None:
            step = self.backend.max_batch or b
            outs = [self.backend(pad_to(x[i : i + step], req)) for i in range(0, b, step)]
            return torch.cat(outs)[..., : h * s, : w * s]
        spec = resolve_tiles(tile, self.tile_overlap, req, max_side=self.backend.max_side)
        if self.instance_norm and not self._warned_instance_norm:
            self._warned_instance_norm = True  # once per Translator, not once per image
            log.warning(
                "tiling an instance-norm model at %d px: per-tile statistics can shift "
                "brightness; a larger --tile-size / --tile-overlap reduces it",
                spec.tile,
            )
        return torch.cat(
            [run_tiled(self.backend, x[i : i + 1], spec, req, on_tile=on_tile) for i in range(b)]
        )

    def batches(self, sizes: Sequence[tuple[int, int]]) -> list[list[int]]:
        """Indices grouped into batches of equal image size (at most ``batch_size`` each),
        in first-seen order."""
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, size in enumerate(sizes):
            groups[size].append(i)
        return [
            idx[i : i + self.batch_size]
            for idx in groups.values()
            for i in range(0, len(idx), self.batch_size)
        ]

    def __call__(self, images: Image.Image | Sequence[Image.Image]) -> list[Image.Image]:
        """PIL images (any sizes) -> translated PIL images, in order; same-size images run
        together in batches of ``batch_size``."""
        batch = [images] if isinstance(images, Image.Image) else list(images)
        out: list[Image.Image | None] = [None] * len(batch)
        for idx in self.batches([im.size for im in batch]):
            x = self.plugin.preprocess([batch[i] for i in idx], self.plugin_cfg)
            y = self.plugin.postprocess(self.translate_tensor(x), self.plugin_cfg)
            for i, image in zip(idx, y, strict=True):
                out[i] = image
        return out  # type: ignore[return-value]

    def preview(self, images: Image.Image | Sequence[Image.Image]) -> list[Image.Image]:
        """What the model is given, drawn for people (label2image: the parsed label map in its
        palette's colours), for plugins with a ``preview(images, cfg)`` method."""
        preview = getattr(self.plugin, "preview", None)
        if not callable(preview) or self.plugin_cfg is None:
            raise ConfigError(f"preview: plugin {self.meta['plugin']} has no input preview")
        batch = [images] if isinstance(images, Image.Image) else list(images)
        return [preview([image], self.plugin_cfg)[0] for image in batch]
