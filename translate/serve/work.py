"""What the inference pool runs for the translate route: the work items, how they group into
batches, and the batch function.

A plain request (``Work``) is one image; requests of one model, options, tiling and image size
share a batch. A request to a model with a code input (bicyclegan's z, Zhu et al. 2017; munit's
style, Huang et al. 2018) may ask for many answers (``MultimodalWork``): ``samples`` K
translations with codes drawn from N(0, I) by ``seed`` (``translate run --samples K --seed S``),
or one in the code of a ``style`` image (``--style-from``); the answer is the K outputs side by
side in one image (``translate run --grid``). Such requests run one by one, never batched with
plain ones.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from translate.errors import ConfigError, DataError
from translate.serve.dragging import DragWork, run_drag
from translate.serve.images import ApiError, check_header, decode, encode
from translate.serve.sampling import SampleWork

__all__ = ["BatchKey", "MultimodalWork", "Work", "check_multimodal", "run_batch"]


@dataclass(frozen=True)
class BatchKey:
    """Requests that may share one batch: same model, options, tiling and image size (and
    plain or multimodal)."""

    model: str
    opts: Hashable
    tiling: tuple[int | None, int | None] | None  # None: the model's own settings
    size: tuple[int, int]
    multimodal: bool = False


@dataclass(frozen=True)
class Work:
    data: bytes
    format: str


@dataclass(frozen=True)
class MultimodalWork:
    """One image and its K codes: drawn by ``seed`` (``samples`` of them), or one ``style``
    image's (its encoded bytes, checked by ``check_multimodal``)."""

    data: bytes
    format: str
    samples: int = 1
    seed: int | None = None
    style: bytes | None = None


def check_multimodal(
    model: Any,
    *,
    samples: int | None,
    seed: int | None,
    style: bytes | None,
    max_samples: int,
    formats: tuple[str, ...],
    max_pixels: int,
) -> tuple[int, int | None, bytes | None] | None:
    """The request's (samples, seed, style), checked at the edge (one line naming the field:
    422, a bad style image 400/413/415); None when it asks for none of them."""
    given = [
        n for n, v in (("samples", samples), ("seed", seed), ("style", style)) if v is not None
    ]
    if not given:
        return None
    from translate.conditioning import codes

    t = model.translator
    if not codes(t.conditions):
        raise ConfigError(
            f"{given[0]}: model {model.name!r} (plugin {model.plugin_name}) takes no code; it "
            "gives one answer per input"
        )
    limit = min(max_samples, 64)  # translate.inference.multimodal.MAX_SAMPLES
    if samples is not None and not 1 <= samples <= limit:
        raise ConfigError(
            f"samples: must be from 1 to {limit} (this server's limit), got {samples}"
        )
    if style is None:
        return (samples or 1, seed, None)
    if samples not in (None, 1) or seed is not None:
        raise ConfigError("style: gives one output, in the style image's code; leave out "
                          f"{'samples' if samples not in (None, 1) else 'seed'}")  # fmt: skip
    if t.code_encoder is None:
        raise ConfigError(
            f"style: model {model.name!r} has no code encoder here (an ONNX export needs its "
            ".encoder.onnx beside it; a checkpoint has one)"
        )
    try:
        check_header(style, formats=formats, max_pixels=max_pixels)
    except ApiError as exc:
        raise ApiError(exc.status, f"style: {exc.message}", exc.detail, exc.headers) from None
    return (1, None, style)


def _render(translator: Any, item: MultimodalWork) -> tuple[bytes, tuple[int, int]]:
    """The K outputs of one image, side by side, encoded; and the sheet's size."""
    from translate.inference.multimodal import grid, style_code, translate_samples

    image = decode(item.data)
    if item.style is not None:
        try:
            reference = decode(item.style)
        except ApiError as exc:
            raise ApiError(exc.status, f"style: {exc.message}", exc.detail) from None
        code = style_code(translator, reference, "style")
        outs = translate_samples(translator, [image], 1, code=code)[0]
    else:
        outs = translate_samples(translator, [image], item.samples, seed=item.seed)[0]
    sheet: Image.Image = grid(outs)
    return encode(sheet, item.format), sheet.size


def run_batch(
    models: Mapping[str, Any],
    generators: Mapping[str, Any] | None = None,
    editors: Mapping[str, Any] | None = None,
) -> Any:
    """The pool's batch function: decode, translate together, encode (in a worker thread);
    a multimodal request's K outputs; a generating model's samples as one grid; or a drag of
    a style generator (``editors``: ``translate.serve.dragging``)."""

    def run(key: BatchKey, items: Sequence[Any]) -> list[Any]:
        if isinstance(items[0], DragWork):
            return [run_drag((editors or {})[item.model], item) for item in items]
        if isinstance(items[0], SampleWork):
            generator = (generators or {})[key.model]
            return [generator.render(item.request) for item in items]
        model = models[key.model]
        translator = model.variant(key.opts)
        if key.tiling is not None:
            translator = translator.with_tiling(*key.tiling)
        results: list[Any] = [None] * len(items)
        if key.multimodal:
            for i, item in enumerate(items):
                try:
                    results[i] = _render(translator, item)
                except (ApiError, ConfigError, DataError) as exc:  # this request's alone
                    results[i] = exc
            return results
        images, where = [], []
        for i, item in enumerate(items):
            try:
                images.append(decode(item.data))
                where.append(i)
            except ApiError as exc:
                results[i] = exc
        if images:
            for i, out in zip(where, translator(images), strict=True):
                results[i] = (encode(out, items[i].format), out.size)
        return results

    return run
