"""ONNX export of any plugin's inference module, checked against PyTorch in ONNX Runtime.

Below ``translate.export`` (whose ``export_onnx(checkpoint, out)`` loads the checkpoint exactly
as ``translate run`` does: eval mode, EMA weights when present, the plugin's inference options)
and beside ``loading.onnx_cache`` (``--backend onnx``), so loading never imports export.
``export_loaded(loaded, out)`` exports the plugin's
``inference_module`` with dynamic batch, height and width, stores everything needed to run it
as ONNX metadata, then runs the file in ONNX Runtime on random inputs at two sizes and refuses
to write it if any output differs from PyTorch by more than ``FP32_TOLERANCE`` (1e-4; fp16:
``FP16_TOLERANCE`` against the fp32 PyTorch output).

Exporter: ``torch.onnx.export(..., dynamo=True)`` (torch.export based, the default since
PyTorch 2.9). Height and width are declared as ``multiple_of * k`` (derived dimensions), so
the exported graph states the size contract; it gives clean graphs (batch norm folded into the
convolutions, plain ``Pad(reflect)``, one ``InstanceNormalization`` per layer) and fails loudly
on data-dependent control flow instead of silently tracing one branch. ``exporter="torchscript"``
(the legacy tracer, deprecated by PyTorch) remains as an escape hatch; the parity check guards
both.

Metadata (``metadata_props``, all strings): producer, plugin, plugin_version,
translate_version, torch_version, opset, step, multiple_of, minimum, scale, value_range,
input_channels, output_channels, inference_options (JSON; each option also under its own name,
e.g. ``direction``), plugin_config (JSON; paths reduced to their last component, so no
absolute path of the training machine is embedded), ema (JSON list of models with EMA weights),
precision (fp32/fp16), instance_norm, exporter, palette (JSON) when the plugin config has
one, and latent_shape (JSON) for a generating plugin (``plugin.generates``: dcgan), whose
export takes a batch of latents (B, *latent_shape) as input instead of images.

Conditioning inputs (``Plugin.condition_inputs``: stargan's target label, cgan's class) are
inputs of their own after the image or latent, each (batch, size) float32 and named as declared
(``label``, ``class``); metadata ``conditions`` (JSON) lists them with their option and entry
names, so ``translate run model.onnx --to blond`` feeds the vector the option names, and the
option is not one of the fixed ``inference_options``. The parity check runs a batch whose rows
cycle through every entry's one-hot (up to ``parity.MAX_PARITY_ROWS``), so each domain or class is
compared with PyTorch.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import io
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import translate
from translate.conditioning import split_options, to_metadata
from translate.config import config_to_dict
from translate.engine.device import inference_precision, precision_context
from translate.errors import ConfigError, ExportError, TranslateError
from translate.loading.model import LoadedModel, latent_prior, uses_instance_norm
from translate.loading.onnx_file import PRODUCER, REQUIRED_KEYS, read_metadata
from translate.loading.onnx_file import first_line as _first_line
from translate.loading.parity import (
    check_parity,
    latent_inputs,
    parity_batch,
    parity_cases,
    parity_inputs,
)
from translate.plugin import ConditionInput, SizeRequirements

__all__ = ["PRODUCER", "REQUIRED_KEYS", "ExportResult", "export_loaded", "save_checked"]
__all__ += ["check_parity", "read_metadata"]  # from loading.parity / loading.onnx_file

log = logging.getLogger(__name__)

FP32_TOLERANCE = 1e-4
#: fp16 weights and activations against the fp32 PyTorch output, in [-1, 1] units (about 4
#: grey levels of 255); measured worst case on the default generators: see the README.
FP16_TOLERANCE = 3e-2
INPUT_NAME, OUTPUT_NAME = "input", "output"
EXPORTERS = ("dynamo", "torchscript")
_TWO_GB = 2**31 - 2**24


@dataclass(frozen=True)
class ExportResult:
    """What ``export_onnx`` wrote and how it was checked."""

    path: Path
    checks: list[tuple[tuple[int, ...], float]]  # (input shape, max |ORT - torch|)
    tolerance: float
    checked_with: str | None  # ORT provider of the parity run; None when it was skipped
    note: str
    metadata: dict[str, str]
    seconds: float
    #: files written with it (a multimodal model's code encoder, its own graph)
    companions: list[ExportResult] = field(default_factory=list)

    def summary(self) -> str:
        size = self.path.stat().st_size / 2**20
        head = f"wrote {self.path} ({size:.1f} MB, {self.metadata.get('precision')})"
        if self.checked_with is None:
            return f"{head}; parity NOT checked: {self.note}"
        diffs = ", ".join(f"{d:.1e} at {'x'.join(map(str, s))}" for s, d in self.checks)
        return "\n".join([
            f"{head}; ONNX Runtime ({self.checked_with}) vs PyTorch max |diff| {diffs} "
            f"(tolerance {self.tolerance:.0e})",
            *(c.summary() for c in self.companions),
        ])  # fmt: skip


# ---------------------------------------------------------------------------- module
def _option_flags(opts: Any) -> str:
    """Non-default inference options as command-line flags, e.g. ``--test-time-dropout``."""
    if opts is None or not dataclasses.is_dataclass(opts):
        return ""
    defaults = type(opts)()
    flags = []
    for f in dataclasses.fields(opts):
        value = getattr(opts, f.name)
        if value != getattr(defaults, f.name):
            flag = "--" + f.name.replace("_", "-")
            flags.append(flag if value is True else f"{flag} {value}")
    return " ".join(flags)


def exportable_module(loaded: LoadedModel) -> nn.Module:
    """A copy of the inference module fit for export: deterministic (refuses training-mode
    layers, i.e. test-time dropout or batch statistics) and without parametrisations (spectral
    norm is folded into the weights it produces in eval mode)."""
    from torch.nn.utils import parametrize

    active = [m for m in loaded.module.modules() if m.training]
    if active:
        stochastic = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)
        kinds = sorted({type(m).__name__ for m in active if isinstance(m, stochastic)})
        flags = _option_flags(loaded.opts) or "these inference options"
        raise ConfigError(
            f"{loaded.plugin.name}: cannot export with {flags}: the model then runs "
            f"{', '.join(kinds or [type(loaded.module).__name__])} in training mode (random "
            "dropout, batch statistics), which no ONNX file reproduces; export without it"
        )
    module = copy.deepcopy(loaded.module).cpu().float().eval()
    for sub in module.modules():
        if parametrize.is_parametrized(sub):
            # fold by hand: remove_parametrizations deletes the property from the
            # Parametrized* class, which the copy shares with the caller's module (it would
            # then raise AttributeError on `weight`); this only rebinds the copy
            folded = {name: getattr(sub, name).detach().clone() for name in sub.parametrizations}
            del sub._modules["parametrizations"]
            sub.__class__ = sub.__class__.__bases__[0]  # the plain class it was built as
            for name, value in folded.items():
                sub.register_parameter(name, nn.Parameter(value))
    module.requires_grad_(False)
    return module


class _Half(nn.Module):
    """fp16 weights and arithmetic behind fp32 inputs and outputs (casts inside the graph), so
    callers and the runtime need not know the precision."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module.half()

    def forward(self, x: Tensor, *conditions: Tensor) -> Tensor:
        return self.module(x.half(), *(c.half() for c in conditions)).float()


def _group_varargs(module: nn.Module, shapes: tuple[Any, ...]) -> tuple[Any, ...]:
    """``shapes`` (one per input) as torch.export takes them for ``module.forward``: the inputs
    that fill a ``*args`` parameter (``_Half``'s conditions, InfoGAN's codes) as one tuple."""
    params = list(inspect.signature(module.forward).parameters.values())
    for i, param in enumerate(params):
        if param.kind is inspect.Parameter.VAR_POSITIONAL and len(shapes) > i:
            return (*shapes[:i], tuple(shapes[i:]))
    return shapes


def _check_condition_names(conditions: Sequence[ConditionInput], plugin: str) -> None:
    names = [INPUT_NAME, OUTPUT_NAME, *(c.name for c in conditions)]
    clash = next((n for n in names if names.count(n) > 1 or not n.isidentifier()), None)
    if clash is not None:
        raise ExportError(
            f"{plugin}: conditioning input name {clash!r} is not a unique identifier (taken: "
            f"{', '.join(names)})"
        )


def _dynamic_dims(req: SizeRequirements) -> tuple[dict[int, Any], tuple[int, int]]:
    from torch.export import Dim

    m = req.multiple_of
    lo = max(1, math.ceil(req.minimum / m))
    batch = Dim("batch", min=1, max=4096)
    if m > 1:
        height, width = m * Dim("height_blocks", min=lo), m * Dim("width_blocks", min=lo)
        # example sizes avoid 1 (specialised by torch.export) and equal sides (unified)
        example = (m * max(lo, 2), m * (max(lo, 2) + 1))
    else:
        height, width = Dim("height", min=lo), Dim("width", min=lo)
        example = (max(lo, 16), max(lo, 16) + 1)
    return {0: batch, 2: height, 3: width}, example


def export_proto(
    module: nn.Module,
    req: SizeRequirements,
    channels: int,
    *,
    fp16: bool = False,
    opset: int | None = None,
    exporter: str = "dynamo",
    latent: Sequence[int] | None = None,
    conditions: Sequence[ConditionInput] = (),
) -> Any:
    """The ``onnx.ModelProto`` of ``module`` with dynamic batch, height and width; for a
    generating plugin (``latent`` its latent shape), with a dynamic batch of latents. Each
    of ``conditions`` is a further (batch, size) input, sharing the batch dimension."""
    if exporter not in EXPORTERS:
        raise ConfigError(f"exporter: {exporter!r} is not one of {', '.join(EXPORTERS)}")
    wrapped = _Half(module) if fp16 else module
    if latent is not None:
        from torch.export import Dim

        dims: dict[int, Any] = {0: Dim("batch", min=1, max=4096)}
        example = torch.zeros(2, *latent)
        axes = {0: "batch"}
    else:
        dims, (h, w) = _dynamic_dims(req)
        example = torch.zeros(2, channels, h, w)
        axes = {0: "batch", 2: "height", 3: "width"}
    # one-hots of the first entry as examples; the batch Dim object is shared with the input
    args = (example, *(torch.eye(c.size)[[0, 0]] for c in conditions))
    shapes = (dims, *({0: dims[0]} for _ in conditions))
    names = [INPUT_NAME, *(c.name for c in conditions)]
    dynamic_axes = {INPUT_NAME: axes, OUTPUT_NAME: axes} | {
        c.name: {0: "batch"} for c in conditions
    }
    kwargs: dict[str, Any] = {"input_names": names, "output_names": [OUTPUT_NAME]}
    if opset is not None:
        kwargs["opset_version"] = opset
    noise = io.StringIO()
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(noise),
            torch.no_grad(),
        ):
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                program = torch.onnx.export(
                    wrapped,
                    args,
                    dynamo=True,
                    dynamic_shapes=_group_varargs(wrapped, shapes),
                    optimize=True,
                    verbose=False,
                    **kwargs,
                )
                return program.model_proto
            import onnx

            buffer = io.BytesIO()
            torch.onnx.export(
                wrapped,
                args,
                buffer,
                dynamo=False,
                dynamic_axes=dynamic_axes,
                **kwargs,
            )
            return onnx.load_from_string(buffer.getvalue())
    except TranslateError:
        raise
    except Exception as exc:
        log.debug("torch.onnx.export failed", exc_info=True)
        other = "torchscript" if exporter == "dynamo" else "dynamo"
        raise ExportError(
            f"torch.onnx.export ({exporter}) failed: {_first_line(exc)}; try --exporter {other}"
        ) from exc


# ---------------------------------------------------------------------------- metadata
def build_metadata(
    loaded: LoadedModel,
    *,
    channels: tuple[int, int],
    fp16: bool,
    opset: int,
    exporter: str,
    instance_norm: bool,
    conditions: Sequence[ConditionInput] | None = None,
) -> dict[str, str]:
    from translate.registry import discover

    req = loaded.requirements
    info = discover().get(loaded.plugin.name)
    # portable: no absolute path of the training machine leaves it inside the model file
    options = (
        config_to_dict(loaded.opts, portable=True) if dataclasses.is_dataclass(loaded.opts) else {}
    )
    conditions = loaded.conditions if conditions is None else conditions
    # an option that picks a conditioning input's value is an input of the file, not fixed
    options, _ = split_options(conditions, options)
    md = {
        "producer": PRODUCER,
        "plugin": loaded.plugin.name,
        "plugin_version": info.version if info else "?",
        "translate_version": translate.__version__,
        "torch_version": torch.__version__,
        "opset": str(opset),
        "step": str(loaded.meta.get("step", "")),
        "multiple_of": str(req.multiple_of),
        "minimum": str(req.minimum),
        "scale": str(req.scale),
        "value_range": "[-1,1]",
        "input_channels": str(channels[0]),
        "output_channels": str(channels[1]),
        "inference_options": json.dumps(options, sort_keys=True),
        "plugin_config": json.dumps(
            config_to_dict(loaded.plugin_cfg, portable=True), sort_keys=True
        ),
        "ema": json.dumps(loaded.ema),
        "precision": "fp16" if fp16 else "fp32",
        "instance_norm": "true" if instance_norm else "false",
        "exporter": exporter,
    }
    if conditions:
        md["conditions"] = to_metadata(conditions)
    palette = getattr(loaded.plugin_cfg, "palette", None)
    if palette is not None:
        md["palette"] = json.dumps(palette, default=str)
    for key, value in options.items():  # e.g. "direction": "a2b", next to the JSON
        md.setdefault(key, value if isinstance(value, str) else json.dumps(value))
    return md


# ---------------------------------------------------------------------------- export
def export_loaded(
    loaded: LoadedModel,
    out: Path,
    *,
    fp16: bool = False,
    opset: int | None = None,
    exporter: str = "dynamo",
    input_shape: Sequence[int] | None = None,
    metadata_extra: dict[str, str] | None = None,
    conditions: Sequence[ConditionInput] | None = None,
) -> ExportResult:
    """Export an already loaded model; the file appears at ``out`` only once it passed.
    ``input_shape``: the module takes a fixed-size input (B, *input_shape) (an encoder's
    images), noted in ``metadata_extra``, instead of images of any size or latents.
    ``conditions``: the module's further inputs, if not the plugin's (an encoder: none)."""
    start = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"out: {out} should end in .onnx")
    if out.is_dir():
        raise ConfigError(f"out: {out} is a folder; give a file name ending in .onnx")
    module = exportable_module(loaded)
    req = loaded.requirements
    in_ch = loaded.in_channels
    conditions = loaded.conditions if conditions is None else tuple(conditions)
    _check_condition_names(conditions, loaded.plugin.name)
    # a generating plugin's module maps latents (B, *latent_shape) to images
    latent = loaded.plugin.latent_shape(loaded.plugin_cfg) if _generates(loaded) else None
    latent = tuple(input_shape) if input_shape is not None else latent
    batch = parity_batch(conditions)
    inputs = parity_inputs(req, in_ch, batch) if latent is None else latent_inputs(latent, batch)
    cases = parity_cases(inputs, conditions)
    cpu = torch.device("cpu")  # the reference: what run, serve and Translator compute by default
    with torch.inference_mode(), precision_context(inference_precision(None, cpu), cpu):
        refs = [module(*case) for case in cases]
    for x, y in zip(inputs, refs, strict=True):
        if latent is not None:
            continue
        want = (x.shape[-2] * req.scale, x.shape[-1] * req.scale)
        if tuple(y.shape[-2:]) != want:
            raise ExportError(
                f"{loaded.plugin.name}: inference module maps {tuple(x.shape)} to "
                f"{tuple(y.shape)}, not to the size_requirements' scale {req.scale}"
            )
    proto = export_proto(
        module,
        req,
        in_ch,
        fp16=fp16,
        opset=opset,
        exporter=exporter,
        latent=latent,
        conditions=conditions,
    )
    used_opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    metadata = build_metadata(
        loaded,
        channels=(in_ch, int(refs[0].shape[1])),
        fp16=fp16,
        opset=used_opset,
        exporter=exporter,
        instance_norm=uses_instance_norm(module),
        conditions=conditions,
    )
    if latent is not None and input_shape is None:
        metadata["latent_shape"] = json.dumps(list(latent))
        metadata["latent_prior"] = latent_prior(loaded.plugin, loaded.plugin_cfg)
    metadata.update(metadata_extra or {})
    return save_checked(proto, out, metadata, cases, refs, fp16=fp16, start=start)


def save_checked(
    proto: Any,
    out: Path,
    metadata: dict[str, str],
    cases: Sequence[tuple[Tensor, ...]],
    refs: Sequence[Tensor],
    *,
    fp16: bool = False,
    start: float | None = None,
) -> ExportResult:
    """Write ``proto`` with ``metadata`` to ``out`` once ONNX Runtime's outputs on ``cases``
    match PyTorch's ``refs`` (``check_parity``); nothing is left at ``out`` otherwise. Every
    graph ``translate export`` writes (the model and its side graphs) goes through here."""
    import onnx

    start = time.perf_counter() if start is None else start
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name, proto.producer_version = PRODUCER, translate.__version__

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        if proto.ByteSize() > _TWO_GB:  # protobuf's limit: weights go to a side file
            onnx.save_model(
                proto, str(tmp), save_as_external_data=True, location=f"{out.name}.data"
            )
        else:
            onnx.save_model(proto, str(tmp))
        del proto
        tolerance = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
        checks, provider, note = check_parity(
            tmp, cases, refs, tolerance=tolerance, fp16=fp16, shown_as=out
        )
        os.replace(tmp, out)
    except OSError as exc:  # a full disk while writing the file: one line, nothing left
        from translate.atomic import write_error

        raise write_error(out, exc) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(
        path=out,
        checks=checks,
        tolerance=tolerance,
        checked_with=provider,
        note=note,
        metadata=metadata,
        seconds=time.perf_counter() - start,
    )


def _generates(loaded: LoadedModel) -> bool:
    return bool(getattr(loaded.plugin, "generates", False))
