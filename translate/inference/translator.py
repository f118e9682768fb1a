"""``Translator``: a loaded model as a callable on PIL images.

One inference path for every plugin and backend: the plugin's ``preprocess`` turns PIL images
into a (B, C, H, W) tensor in [-1, 1]; the input is padded (reflect) up to the module's
``multiple_of`` and ``minimum``, or cut into overlapping feathered tiles when it is large
(``translate.inference.tiling``); a backend (PyTorch or ONNX Runtime,
``translate.inference.backends``) runs the module; the output is cropped back (times ``scale``)
and the plugin's ``postprocess`` makes PIL images. A model with conditioning inputs
(``Plugin.condition_inputs``: stargan's target label) is fed their vectors, encoded once from the
options (``--to blond``); ``with_options`` gives the same model for another value, sharing its
backend. Only the backend differs between
``--backend torch`` and ``--backend onnx``.

What a model is and how it is loaded (checkpoint folders, ONNX files, the ONNX cache, EMA
weights, eval-mode semantics) is ``translate.loading``'s concern; a ``Translator`` is built
from what ``translate.loading.load`` returns.

A ``Translator`` keeps no per-call state: a server can hold one and call it from several worker
threads.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from translate.conditioning import codes, expand, option_names, values_from_options
from translate.config import config_to_dict
from translate.engine.device import resolve_device
from translate.errors import ConfigError, DataError
from translate.inference.backends import OnnxBackend, TorchBackend, TrtProfile
from translate.inference.tiling import (
    AUTO_TILE_SIZE,
    pad_to,
    padded_size,
    resolve_tiles,
    run_tiled,
    should_tile,
)
from translate.loading import LoadedModel, LoadedOnnx, load, load_checkpoint
from translate.loading.model import parse_options, probe_channels
from translate.plugin import ConditionInput, SizeRequirements

# re-exported: older code imports these from here (they live in translate.loading now)
__all__ = [
    "LoadedModel",
    "Translator",
    "load_checkpoint",
    "pad_to",
    "padded_size",
    "parse_options",
    "probe_channels",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 4


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
        conditions: Sequence[ConditionInput] = (),
        codes: Mapping[str, Tensor] | None = None,
        code_encoder: Any = None,
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
        self.conditions = tuple(conditions)
        # (1, size) per condition, from the options; a bad name fails here, not per image
        self.condition_values = values_from_options(self.conditions, opts)
        # codes (``ConditionInput.is_code``) given for this Translator: (1 or B, dim) each
        self.codes = dict(codes or {})
        self.condition_values = tuple(
            self.codes.get(c.name, v)
            for c, v in zip(self.conditions, self.condition_values, strict=True)
        )
        #: image -> code (torch backend, plugins with ``code_encoder``): ``--style-from``
        self.code_encoder = code_encoder
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
        amp: str | None = None,
        fp16: bool = False,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
    ) -> Translator:
        """Any model ``translate.loading.load`` reads (a checkpoint or run folder, an
        ``.onnx`` file) on ``backend`` ``torch`` (default) or ``onnx``.

        ``onnx`` exports a PyTorch model once to the user cache (parity-checked) and runs it
        in ONNX Runtime; ``fp16`` selects a half-precision export.
        """
        if amp not in (None, "none", "auto") and backend == "onnx":
            raise ConfigError(
                "amp: applies to --backend torch; for half precision in ONNX Runtime "
                "export with --fp16"
            )
        on_torch = backend != "onnx"
        loaded = load(
            path,
            options=options,
            device=device if on_torch else "cpu",
            backend=backend,
            fp16=fp16,
        )
        return cls.from_loaded(
            loaded, device=device, amp=amp, tile_size=tile_size, tile_overlap=tile_overlap,
            batch_size=batch_size, threads=threads,
        )  # fmt: skip

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
        from translate.loading import load_onnx

        return cls.from_loaded(
            load_onnx(path, options=options), device=device, tile_size=tile_size,
            tile_overlap=tile_overlap, batch_size=batch_size, threads=threads,
        )  # fmt: skip

    @classmethod
    def from_loaded(
        cls,
        loaded: LoadedModel | LoadedOnnx,
        *,
        device: str = "auto",
        amp: str | None = None,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
    ) -> Translator:
        """A loaded model on its backend: a ``LoadedModel`` on PyTorch (moved to ``device``),
        a ``LoadedOnnx`` in ONNX Runtime."""
        if getattr(loaded.plugin, "generates", False):
            if not getattr(loaded.plugin, "encodes", False):
                raise ConfigError(
                    f"{loaded.source}: plugin {loaded.plugin.name} generates images from noise; "
                    "it translates none (use translate sample)"
                )
            from translate.inference.encoding import as_reconstruction

            loaded = as_reconstruction(loaded)  # G(E(x)): an image in, its reconstruction out
        req = loaded.requirements
        encoder: Any = None  # an nn.Module, or an OnnxCodeEncoder beside an ONNX file
        if isinstance(loaded, LoadedOnnx):
            if amp not in (None, "none", "auto"):
                raise ConfigError(
                    "amp: applies to --backend torch; for half precision in ONNX Runtime "
                    "export with --fp16"
                )
            tile = tile_size or AUTO_TILE_SIZE
            need = padded_size(max(req.minimum, req.multiple_of), req)
            side = max(need, tile // req.multiple_of * req.multiple_of)
            profile = TrtProfile(
                channels=loaded.in_channels,
                min_side=need,
                opt_side=side,
                max_side=side,
                max_batch=batch_size,
                conditions=tuple((c.name, c.size) for c in loaded.conditions),
            )
            backend: TorchBackend | OnnxBackend = OnnxBackend(
                loaded.path,
                device=device,
                threads=threads,
                profile=profile,
                fp16=loaded.fp16,
                conditions=len(loaded.conditions),
            )
            meta = loaded.meta
            if codes(loaded.conditions):  # its code encoder's own graph, when exported beside
                from translate.loading.code_encoder import load_code_encoder

                encoder = load_code_encoder(loaded.path, loaded.metadata)
        else:
            dev = resolve_device(device)
            if threads is not None:
                torch.set_num_threads(threads)
            loaded.module.to(dev)
            backend = TorchBackend(loaded.module, dev, amp=amp)
            meta = {**loaded.meta, "ema": loaded.ema}
            hook = getattr(loaded.plugin, "code_encoder", None)
            encoder = hook(loaded.models, loaded.plugin_cfg, loaded.opts) if hook else None
            if encoder is not None:
                encoder.to(dev).eval()
        return cls(
            backend,
            plugin=loaded.plugin,
            plugin_cfg=loaded.plugin_cfg,
            requirements=req,
            meta=meta,
            opts=loaded.opts,
            in_channels=loaded.in_channels,
            instance_norm=loaded.instance_norm,
            tile_size=tile_size,
            tile_overlap=tile_overlap,
            batch_size=batch_size,
            conditions=loaded.conditions,
            code_encoder=encoder,
        )

    # -------------------------------------------------------------- properties
    @property
    def name(self) -> str:
        if "name" in self.meta:  # a model without training steps (e.g. a spandrel file)
            return str(self.meta["name"])
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
        return self._sharing(tile_size=tile_size, tile_overlap=tile_overlap)

    def with_options(self, opts: Any) -> Translator:
        """This model (sharing its backend and weights) with inference options ``opts`` that
        differ from its own only in conditioning values (stargan's ``to``), which are inputs
        of the module; other differences need another load (``ConfigError``)."""
        free = option_names(self.conditions)
        mine, theirs = (
            {k: v for k, v in config_to_dict(o).items() if k not in free} if o is not None else {}
            for o in (self.opts, opts)
        )
        if mine != theirs:
            raise ConfigError(
                f"options {theirs} differ from this model's {mine} in more than its "
                "conditioning inputs; load it again with them"
            )
        return self._sharing(opts=opts)

    def with_codes(self, codes: Mapping[str, Tensor]) -> Translator:
        """This model (sharing its backend) fed the given codes: name -> (1 or B, dim) for
        each code input (``ConditionInput.is_code``: bicyclegan's z, munit's style)."""
        known = {c.name: c for c in self.conditions if c.is_code}
        for name, value in codes.items():
            if name not in known:
                raise ConfigError(
                    f"code {name!r}: this model's codes: {', '.join(known) or 'none'}"
                )
            if value.dim() != 2 or value.shape[1] != known[name].size:
                raise ConfigError(
                    f"code {name!r}: expected (B, {known[name].size}), got {tuple(value.shape)}"
                )
        return self._sharing(codes={**self.codes, **{k: v.float().cpu() for k, v in codes.items()}})

    def _sharing(self, **changes: Any) -> Translator:
        settings = {
            "plugin": self.plugin,
            "plugin_cfg": self.plugin_cfg,
            "requirements": self.requirements,
            "meta": self.meta,
            "opts": self.opts,
            "in_channels": self.in_channels,
            "instance_norm": self.instance_norm,
            "tile_size": self.tile_size,
            "tile_overlap": self.tile_overlap,
            "batch_size": self.batch_size,
            "conditions": self.conditions,
            "codes": self.codes,
            "code_encoder": self.code_encoder,
        }
        return Translator(self.backend, **{**settings, **changes})

    def run_module(self, x: Tensor) -> Tensor:
        """The backend on a batch that already has a size the module takes, with this
        model's condition vectors repeated for the batch."""
        return self.backend(x, *expand(self.condition_values, x.shape[0]))

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
            outs = [self.run_module(pad_to(x[i : i + step], req)) for i in range(0, b, step)]
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
            [run_tiled(self.run_module, x[i : i + 1], spec, req, on_tile=on_tile) for i in range(b)]
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

    def __call__(
        self,
        images: Image.Image | Sequence[Image.Image],
        *,
        on_tile: Callable[[int, int], None] | None = None,
    ) -> list[Image.Image]:
        """PIL images (any sizes) -> translated PIL images, in order; same-size images run
        together in batches of ``batch_size``. ``on_tile(done, total)`` follows a tiled image."""
        batch = [images] if isinstance(images, Image.Image) else list(images)
        out: list[Image.Image | None] = [None] * len(batch)
        for idx in self.batches([im.size for im in batch]):
            x = self.plugin.preprocess([batch[i] for i in idx], self.plugin_cfg)
            y = self.translate_tensor(x, on_tile=on_tile)
            y = self.plugin.postprocess(y, self.plugin_cfg)
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
