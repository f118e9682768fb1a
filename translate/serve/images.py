"""Uploaded bytes -> checked header -> decoded RGB image, and images -> response bytes.

The header is checked first (format, pixel count) without decoding the pixels: a
decompression bomb (a small file that decodes to a huge image) is refused before it costs
memory. Decoding and encoding run in the inference workers, not in the event loop.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from translate.data.images import to_rgb, upright
from translate.inference.image_io import INDEX_MODES
from translate.serve.config import OUTPUT_FORMATS


class ApiError(Exception):
    """A client error: HTTP ``status``, a one-line ``message`` and optional ``detail``."""

    def __init__(
        self, status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail
        self.headers = headers or {}


@dataclass(frozen=True)
class Header:
    """What the upload's header says: PIL format name and (width, height)."""

    format: str
    size: tuple[int, int]


def _open(data: bytes) -> Image.Image:
    with warnings.catch_warnings():
        # the size is checked by ``check_header``; PIL's own warning would only add noise
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))


def check_header(
    data: bytes, *, formats: tuple[str, ...], max_pixels: int, scale: int = 1
) -> Header:
    """The upload's format and size from its header alone; refuses what is empty (400), not
    an image or not an allowed format (415), or too large (413: width x height x scale^2 above
    ``max_pixels``)."""
    if not data:
        raise ApiError(400, "empty body: send an image (raw body or multipart field 'image')")
    try:
        with _open(data) as im:
            fmt, size = str(im.format or "?"), im.size
    except Image.DecompressionBombError as exc:
        raise ApiError(413, f"image too large: {exc}", {"max_pixels": max_pixels}) from None
    except UnidentifiedImageError:
        raise ApiError(
            415, "not an image (or a format that cannot be read)", {"formats": list(formats)}
        ) from None
    except Exception as exc:  # any decoder failure on untrusted bytes is the client's input
        raise ApiError(400, f"corrupt image header ({exc.__class__.__name__})") from None
    if fmt not in formats:
        raise ApiError(415, f"image format {fmt} is not accepted", {"formats": list(formats)})
    w, h = size
    if w < 1 or h < 1:
        raise ApiError(400, f"image has no pixels ({w}x{h})")
    if w * h * scale * scale > max_pixels:
        limit = max_pixels // (scale * scale)
        raise ApiError(
            413,
            f"image too large: {w}x{h} = {w * h} pixels, this model takes at most {limit}",
            {"width": w, "height": h, "max_input_pixels": limit},
        )
    return Header(fmt, (w, h))


def decode(data: bytes) -> Image.Image:
    """Decode the (header-checked) upload with the shared decoder's rules, as ``translate
    run`` reads files: upright, RGB, except
    single-channel images, kept as decoded (to a label-map plugin their values are class ids;
    other plugins' ``preprocess`` converts them to RGB)."""
    try:
        with _open(data) as im:
            im.load()
            im = upright(im)  # EXIF orientation, as translate run reads files
            if im.mode in INDEX_MODES and "transparency" not in im.info:
                return im
            return to_rgb(im)  # 16-bit grayscale scaled, transparency on white
    except Exception as exc:  # truncated or corrupt data: the client's input, never a 500
        raise ApiError(400, f"corrupt image: {exc}".strip()) from None


def encode(image: Image.Image, fmt: str) -> bytes:
    """A result image as bytes in output format ``fmt`` (a key of ``OUTPUT_FORMATS``)."""
    pil_format = OUTPUT_FORMATS[fmt][0]
    buf = io.BytesIO()
    if pil_format == "PNG":
        image.save(buf, "PNG", compress_level=3)  # fast; the web page and tests need lossless
    else:
        image.save(buf, pil_format, quality=90)
    return buf.getvalue()


def output_format(value: str | None, accept: str) -> str:
    """``?format=`` wins; else the first image type the Accept header names; else PNG."""
    if value is not None:  # exactly the schema's enum (lower case): 'JPEG' is a 422 there too
        if value not in OUTPUT_FORMATS:
            raise ApiError(
                422,
                f"format: {value!r} is not one of {', '.join(OUTPUT_FORMATS)}",
                {"formats": list(OUTPUT_FORMATS)},
            )
        return value
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        for key, (_, media_type) in OUTPUT_FORMATS.items():
            if media == media_type:
                return key
    return "png"
