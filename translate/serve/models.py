"""Served models: a ``Translator`` per model, plus its variants for per-request options.

Every request runs through ``Translator`` (the inference path of ``translate run``). A plugin's
inference options (CycleGAN's ``direction``) are baked into the inference module, so other
options need another ``Translator`` from the same checkpoint. Options with a fixed set of values
(choices, booleans) are all loaded at start (``preload_variants``): requests never read the
checkpoint again, so a checkpoint folder moved or rewritten after start changes nothing. Others
(free-form values) are loaded on first use and kept (a few at most). A request's ``tile_size``
only needs ``Translator.with_tiling``, which shares the backend, and an option that picks a
conditioning input's value (stargan's ``to``: an input of the module and of its ONNX export)
only ``Translator.with_options``: every domain is served by the one loaded model, ONNX or not.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import typing
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from translate.conditioning import option_names, values_from_options
from translate.config import config_to_dict, field_types
from translate.errors import ConfigError
from translate.serve.config import INTEGER_TEXT, NUMBER_TEXT, ModelSource, SourceKind

log = logging.getLogger(__name__)

#: Free-form option variants kept loaded per model; older ones are dropped and reloaded when
#: asked for again.
MAX_VARIANTS = 4
#: Choice variants loaded at start (beyond this many combinations, they load on first use).
MAX_PRELOAD = 8


@dataclass(frozen=True)
class LoadSettings:
    """How every served model is loaded: the ``translate run`` options."""

    backend: str | None = None
    device: str = "auto"
    tile_size: int | None = None
    tile_overlap: int | None = None
    batch_size: int = 4
    threads: int | None = None
    amp: str | None = None  # translate.inference.precision: None is the shared default, fp32


def load_translator(kind: SourceKind, ref: Any, settings: LoadSettings) -> Any:
    """A ``Translator`` for an identified model (``ModelRef``): a shipped model's or a
    checkpoint folder, or an .onnx file (``kind`` says how the user named it)."""
    from translate.inference.translator import Translator
    from translate.loading.identify import as_ref

    ref = as_ref(ref)  # a path is identified here; the server passes what it identified
    common = dict(
        device=settings.device,
        tile_size=settings.tile_size,
        tile_overlap=settings.tile_overlap,
        batch_size=settings.batch_size,
        threads=settings.threads,
    )
    if kind == "onnx":
        if settings.backend not in (None, "onnx"):
            raise ConfigError(f"--onnx {ref}: an ONNX model runs on backend onnx")
        return Translator.from_onnx(ref.location, **common)
    return Translator.from_checkpoint(ref, backend=settings.backend, amp=settings.amp, **common)


def option_fields(plugin: Any, cfg: Any = None) -> list[dict[str, Any]]:
    """The plugin's inference options for clients: name, type, default, choices, help.
    With the model's config ``cfg``, a free-form option gets the choices the plugin's
    ``option_choices(cfg)`` names for it (stargan: the checkpoint's domains)."""
    cls = getattr(plugin, "inference_config_cls", None)
    if cls is None or not dataclasses.is_dataclass(cls):
        return []
    hook = getattr(plugin, "option_choices", None)
    by_model = dict(hook(cfg)) if cfg is not None and callable(hook) else {}
    hints = field_types(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        choices = list(typing.get_args(tp)) if typing.get_origin(tp) is typing.Literal else None
        if tp is bool:
            choices = [False, True]
        if choices is None and by_model.get(f.name):
            choices = list(by_model[f.name])
        default = None if f.default is dataclasses.MISSING else f.default
        out.append(
            {
                "name": f.name,
                "type": getattr(tp, "__name__", str(tp)) if choices is None else "choice",
                "default": default,
                "choices": choices,
                "help": f.metadata.get("help", ""),
            }
        )
    return out


def check_option_text(fields: list[dict[str, Any]], options: Mapping[str, str]) -> None:
    """Option values as the schema declares them (``translate.serve.schema``): a bool is
    ``true`` or ``false``, an int or float plain decimal text; a ``ConfigError`` otherwise."""
    kinds = {f["name"]: ("bool" if f["choices"] == [False, True] else f["type"]) for f in fields}
    for name, value in options.items():
        kind = kinds.get(name)
        if kind == "bool" and value not in ("true", "false"):
            raise ConfigError(f"{name}: must be a bool, true or false; got {value[:40]!r}")
        pattern = {"int": INTEGER_TEXT, "float": NUMBER_TEXT}.get(kind or "")
        if pattern is not None and not pattern.fullmatch(value):
            raise ConfigError(f"{name}: must be {kind} in decimal digits; got {value[:40]!r}")


@dataclass
class ServedModel:
    """One model under its URL name. ``translator`` uses the load-time options; ``variant``
    gives the one for a request's options (thread-safe: called from the worker threads)."""

    source: ModelSource
    translator: Any
    settings: LoadSettings
    cost: Any = None  # a ``RequestCost`` (translate.serve.budget), set by the server
    ref: Any = None  # the source's ``ModelRef`` when identified: variants load from it
    _preloaded: dict[Any, Any] = field(default_factory=dict, repr=False)
    _variants: OrderedDict[Any, Any] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def plugin_name(self) -> str:
        return str(self.translator.meta["plugin"])

    @property
    def scale(self) -> int:
        return int(self.translator.requirements.scale)

    @property
    def option_names(self) -> list[str]:
        return [o["name"] for o in option_fields(self.translator.plugin)]

    def parse_options(self, options: Mapping[str, str]) -> Any:
        """A request's plugin options (strings) -> the plugin's inference config; None when
        none are given. Unknown names and bad values are ``ConfigError``s."""
        if not options:
            return None
        valid = self.option_names
        unknown = [k for k in options if k not in valid]
        if unknown:
            listing = ", ".join(valid) or "none"
            raise ConfigError(
                f"option {unknown[0]!r} is not known to model {self.name!r} "
                f"(plugin {self.plugin_name}); its options: {listing}"
            )
        from translate.loading import parse_options

        check_option_text(option_fields(self.translator.plugin), options)
        return parse_options(self.translator.plugin, dict(options))

    @property
    def condition_options(self) -> set[str]:
        """Options that pick a conditioning input's value: no other load needed for them."""
        return option_names(self.translator.conditions)

    def _structural(self, opts: Any) -> Any:
        """``opts`` with the conditioning options set to the model's own (what must be loaded)."""
        base = self.translator.opts
        if opts is None or base is None or not self.condition_options:
            return opts
        keep = {k: getattr(base, k) for k in self.condition_options if hasattr(base, k)}
        return dataclasses.replace(opts, **keep)

    def check_options(self, opts: Any) -> None:
        """Refuse options this model cannot have (an ONNX export's are fixed, but for those
        that pick a conditioning input's value); a bad condition name is refused here too."""
        base = self.translator
        if opts is not None and self.condition_options:
            values_from_options(base.conditions, opts)  # ConfigError with did-you-mean
        structural = self._structural(opts)
        if structural is None or structural == base.opts or self.source.kind != "onnx":
            return
        stored = config_to_dict(base.opts) if base.opts is not None else {}
        raise ConfigError(
            f"model {self.name!r} is an ONNX export made with options {stored}; "
            "export it again (or serve its checkpoint) for other options"
        )

    def choice_variants(self) -> list[Any]:
        """Every combination of the plugin's choice options other than the model's own, or []
        when an option is free-form or there are more than ``MAX_PRELOAD``. Conditioning
        options need no variant of their own (``Translator.with_options``)."""
        if self.source.kind == "onnx":
            return []  # an export's options are fixed
        fields = option_fields(self.translator.plugin, self.translator.plugin_cfg)
        fields = [f for f in fields if f["name"] not in self.condition_options]
        if not fields or any(f["choices"] is None for f in fields):
            return []
        combos = list(itertools.product(*(f["choices"] for f in fields)))
        if len(combos) - 1 > MAX_PRELOAD:
            return []
        names = [f["name"] for f in fields]
        out = []
        for combo in combos:
            opts = self.parse_options(
                {n: str(v).lower() for n, v in zip(names, combo, strict=True)}
            )
            if opts != self.translator.opts:
                out.append(opts)
        return out

    def preload_variants(self) -> int:
        """Load every choice variant now (see the module docstring); how many were loaded."""
        for opts in self.choice_variants():
            log.info("model %s: loading the variant for options %s", self.name, opts)
            self._preloaded[opts] = self._load(opts)
        return len(self._preloaded)

    def preloaded(self) -> list[Any]:
        """The variants loaded at start."""
        return list(self._preloaded.values())

    def variant(self, opts: Any) -> Any:
        """The ``Translator`` for parsed options ``opts`` (None: the model's own): a loaded
        variant for the options that change the module, with the conditioning values of
        ``opts`` (sharing its backend)."""
        structural = self._structural(opts)
        loaded = self._loaded_variant(structural)
        if opts is None or opts == loaded.opts:
            return loaded
        return loaded.with_options(opts)

    def _loaded_variant(self, opts: Any) -> Any:
        base = self.translator
        if opts is None or opts == base.opts:
            return base
        if opts in self._preloaded:
            return self._preloaded[opts]
        self.check_options(opts)
        with self._lock:  # one load per variant, even when several workers ask at once
            if opts in self._variants:
                self._variants.move_to_end(opts)
                return self._variants[opts]
            log.info("model %s: loading a variant for options %s", self.name, opts)
            loaded = self._load(opts)
            self._variants[opts] = loaded
            while len(self._variants) > MAX_VARIANTS:
                self._variants.popitem(last=False)
            return loaded

    def _load(self, opts: Any) -> Any:
        """A ``Translator`` of this model's checkpoint with options ``opts``."""
        from translate.inference.translator import Translator

        location: Any = self.ref
        if location is None:
            location = self.source.location
            if self.source.kind == "model":
                from translate.shipped import resolve_model

                location = str(resolve_model(location))
        s = self.settings
        return Translator.from_checkpoint(
            location,
            backend=s.backend,
            device=s.device,
            amp=s.amp,
            options=config_to_dict(opts),
            tile_size=s.tile_size,
            tile_overlap=s.tile_overlap,
            batch_size=s.batch_size,
            threads=s.threads,
        )

    def code_info(self) -> dict[str, Any] | None:
        """A model with a code input (many answers per input: ``samples``, ``seed``, ``style``,
        ``translate.serve.work``): its name, size and whether a style image is taken."""
        from translate.conditioning import codes

        found = codes(self.translator.conditions)
        if not found:
            return None
        style = self.translator.code_encoder is not None
        return {"name": found[0].name, "dim": found[0].size, "style_image": style}

    def describe(self, *, max_pixels: int, max_upload_bytes: int, formats: list[str]) -> dict:
        """What ``GET /v1/models`` lists for this model."""
        t = self.translator
        req = t.requirements
        return {
            "name": self.name,
            "plugin": self.plugin_name,
            "source": self.source.kind,
            "step": t.meta.get("step"),
            "backend": t.backend.kind,
            "device": str(t.device),
            "scale": req.scale,
            "multiple_of": req.multiple_of,
            "minimum": req.minimum,
            "options": option_fields(t.plugin, t.plugin_cfg),
            "defaults": config_to_dict(t.opts) if t.opts is not None else {},
            "code": self.code_info(),
            "limits": {
                "max_upload_bytes": max_upload_bytes,
                "max_input_pixels": max_pixels // (req.scale * req.scale),
                "input_formats": formats,
            },
        }
