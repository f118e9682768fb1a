"""Loading an ONNX file written by ``translate export``: its metadata says everything.

Plugin, size multiple, minimum, scale, input channels, inference options and precision are
stored in the file's ``metadata_props`` (see ``translate.export.onnx``), so an exported model
runs without flags. When its plugin is not installed, a 3-channel model still runs with plain
RGB <-> [-1, 1] conversion.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from translate.conditioning import from_metadata, split_options
from translate.config import config_from_dict
from translate.errors import CheckpointError, ConfigError, PluginError
from translate.loading.model import DefaultImageIO, LoadedOnnx
from translate.plugin import SizeRequirements
from translate.registry import load_plugin

log = logging.getLogger(__name__)

PRODUCER = "translate"
SPANDREL = "spandrel"  # the pseudo-plugin of models loaded with spandrel
REQUIRED_KEYS = ("plugin", "multiple_of", "minimum", "scale", "input_channels")


def first_line(exc: BaseException | None) -> str:
    """The first non-empty line of an exception's message (libraries write whole reports)."""
    if exc is None:
        return "unknown error"
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def read_metadata(path: Path | str) -> dict[str, str]:
    """The translate metadata of an exported model; one-line CheckpointErrors for a missing
    file, a file that is not ONNX, or an ONNX model that ``translate export`` did not write."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: ONNX model not found")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise CheckpointError(f"{path}: not an ONNX model ({first_line(exc)})") from None
    if not proto.ir_version or not proto.graph.node:
        raise CheckpointError(f"{path}: not an ONNX model (no graph in it)")
    md = {p.key: p.value for p in proto.metadata_props}
    missing = [k for k in REQUIRED_KEYS if k not in md]
    if md.get("producer") != PRODUCER or missing:
        raise CheckpointError(
            f"{path}: an ONNX model without translate metadata (missing "
            f"{', '.join(missing) or 'producer'}); export it with `translate export`"
        )
    for key, least in INT_FIELDS.items():
        metadata_int(path, md, key, least)
    _check_graph_input(path, proto, md)
    return md


#: Integer metadata fields and their smallest valid value.
INT_FIELDS = {"multiple_of": 1, "minimum": 1, "scale": 1, "input_channels": 1}


def metadata_int(path: Path, md: Mapping[str, str], key: str, least: int = 1) -> int:
    """An integer metadata field, checked: one line naming the field when it is not an
    integer or is below ``least`` (``multiple_of=0`` divided by zero, ``scale=-4`` made
    negative sizes: tracebacks)."""
    try:
        value = int(md[key])
    except ValueError:
        raise CheckpointError(
            f"{path}: metadata field {key!r} should be an integer, got {md[key]!r}"
        ) from None
    if value < least:
        raise CheckpointError(
            f"{path}: metadata field {key!r} must be at least {least}, got {value}"
        )
    return value


def _check_graph_input(path: Path, proto: Any, md: Mapping[str, str]) -> None:
    """The graph's first input must be what the metadata says: (N, C, H, W) with C =
    ``input_channels`` for an image model, (N, *latent_shape) for a generator, (N,
    *input_shape) for a side graph with a fixed input (a text encoder's tokens)."""
    if not proto.graph.input:
        raise CheckpointError(f"{path}: the graph has no input")
    first = proto.graph.input[0]
    dims = [
        d.dim_value if d.HasField("dim_value") else None for d in first.type.tensor_type.shape.dim
    ]
    key = next((k for k in ("latent_shape", "input_shape") if k in md), None)
    if key is not None:
        try:
            want = [None, *(int(x) for x in json.loads(md[key]))]
        except (ValueError, TypeError):
            raise CheckpointError(
                f"{path}: metadata field {key!r} is not a list of integers"
            ) from None
        shape = "(N, " + ", ".join(str(x) for x in want[1:]) + ")"
        what = f"the latent {shape}" if key == "latent_shape" else f"inputs {shape}"
    else:
        want = [None, int(md["input_channels"]), None, None]
        what = f"images (N, {want[1]}, H, W) (metadata 'input_channels')"
    fits = len(dims) == len(want) and all(
        w is None or d is None or d == w for d, w in zip(dims, want, strict=True)
    )
    if not fits:
        shown = ", ".join("?" if d is None else str(d) for d in dims)
        raise CheckpointError(
            f"{path}: graph input {first.name!r} has shape ({shown}); the metadata describes {what}"
        )


def _check_options(path: Path, stored: Mapping[str, Any], options: Mapping[str, Any]) -> None:
    """An export's options are fixed: asking for others is refused in one line."""
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if key not in stored:
            raise ConfigError(
                f"option {flag}: not an option of {path.name} "
                f"(exported with {json.dumps(stored) if stored else 'no options'})"
            )
        if json.loads(json.dumps(value, default=str)) != stored[key]:
            raise ConfigError(
                f"{path}: exported with {flag} {stored[key]}; export again with "
                f"{flag} {value} for that"
            )


def load_onnx(path: Path | str, *, options: Mapping[str, Any] | None = None) -> LoadedOnnx:
    """An ONNX file from ``translate export``; ``options``, if given, must match those it was
    exported with, except those that pick a conditioning input's value (stargan's ``to``):
    the file takes these as inputs, so any value its names allow is fine."""
    path = Path(path)
    md = read_metadata(path)
    if md.get("part") == "code_encoder":
        raise ConfigError(
            f"{path}: the code encoder of a {md['plugin']} model (a reference image -> its "
            "code, for --style-from); translate run takes the translator's export beside it"
        )
    if md.get("part") == "text_encoder":
        raise ConfigError(
            f"{path}: the text encoder of a {md['plugin']} model (a prompt -> its text vector, "
            "for --prompt); translate sample takes the generator's export beside it"
        )
    if md.get("part") == "encoder":
        raise ConfigError(
            f"{path}: the encoder of a {md['plugin']} model (images -> latents); translate run "
            "and sample take the export of its generator (translate export without --encoder)"
        )
    req = SizeRequirements(
        multiple_of=int(md["multiple_of"]),  # checked by read_metadata
        minimum=int(md["minimum"]),
        scale=int(md["scale"]),
    )
    conditions = from_metadata(md.get("conditions"), source=path)
    stored = json.loads(md.get("inference_options", "{}"))
    fixed, chosen = split_options(conditions, options or {})
    _check_options(path, stored, fixed)
    in_channels = int(md["input_channels"])
    try:
        plugin = load_plugin(md["plugin"])
        plugin_cfg = config_from_dict(plugin.config_cls, json.loads(md["plugin_config"]))
        opts = config_from_dict(plugin.inference_config_cls, {**stored, **chosen})
    except PluginError:
        plugin_cfg, opts = None, None
        if md["plugin"] == SPANDREL:  # a spandrel model needs no plugin: plain RGB is its own
            from translate.loading.spandrel_file import SpandrelConfig

            plugin_cfg = config_from_dict(SpandrelConfig, json.loads(md["plugin_config"]))
        elif in_channels != 3:
            raise CheckpointError(
                f"{path}: needs plugin {md['plugin']!r} installed to prepare its "
                f"{in_channels}-channel input"
            ) from None
        else:
            log.warning("plugin %s not installed: using plain RGB input/output", md["plugin"])
        plugin = DefaultImageIO(md["plugin"], req)
    except (KeyError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{path}: bad plugin_config in its metadata ({exc})") from exc
    meta = {
        "plugin": md["plugin"],
        "step": int(md["step"]) if md.get("step", "").isdigit() else md.get("step", "?"),
        "onnx": str(path),
        "metadata": md,
    }
    if md["plugin"] == SPANDREL:
        meta["name"] = f"spandrel {getattr(plugin_cfg, 'architecture', '?')} x{req.scale}"
    return LoadedOnnx(
        path=path,
        plugin=plugin,
        plugin_cfg=plugin_cfg,
        meta=meta,
        opts=opts,
        requirements=req,
        in_channels=in_channels,
        instance_norm=md.get("instance_norm") == "true",
        fp16=md.get("precision") == "fp16",
        metadata=md,
        conditions=conditions,
        latent_shape=tuple(json.loads(md["latent_shape"])) if "latent_shape" in md else None,
        latent_prior=md.get("latent_prior", "normal"),
    )
