"""Finding and decoding image files, with errors that name the file: the one decoder that
``translate train`` (datasets), ``translate run`` (``translate.inference.image_io``) and the
service (``translate.serve.images``) share.

Decoding applies what a viewer shows: EXIF orientation (phone photos), 16-bit grayscale
scaled to 8 bits, alpha composited on white for RGB (``split_alpha`` keeps it for ``run``).
A header declaring more pixels than PIL will decode (a decompression bomb), a truncated body
or a non-image is one ``DataError`` naming the file.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from translate.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; an empty or missing folder fails."""
    if not folder.exists():
        raise DataError(f"{folder}: data folder does not exist")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise DataError(
            f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    return files


@contextlib.contextmanager
def open_image(path: Path) -> Iterator[Image.Image]:
    """``Image.open`` with every failure as one ``DataError`` naming the file: not an image,
    a header declaring more pixels than PIL decodes (a decompression bomb: refused before any
    pixel is read), a truncated or corrupt body."""
    try:
        with Image.open(path) as im:
            yield im
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: image too large to decode ({exc})") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not a readable image (unknown format)") from None
    except (OSError, ValueError, SyntaxError, struct.error) as exc:
        # PIL raises all of these for damaged files ("image file is truncated", bad chunks)
        raise DataError(f"{path}: corrupt or unreadable image ({exc})") from None


#: EXIF orientations that swap width and height (rotations by 90 or 270 degrees).
_TRANSPOSED = frozenset({5, 6, 7, 8})


def orientation(im: Image.Image, *, header_only: bool = False) -> int:
    """The EXIF orientation tag (1: as stored). ``header_only``: only what the header holds;
    PIL's PNG ``getexif`` would decode every pixel to look for an eXIf chunk after the image
    data (rare; ``decode_image`` still finds it)."""
    if header_only and im.format == "PNG" and "exif" not in im.info:
        return 1
    try:
        return int(im.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # a malformed EXIF block is ignored, as viewers do
        return 1


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) as the image will be shown (EXIF orientation applied), from the file
    header, without decoding the pixels."""
    with open_image(path) as im:
        w, h = im.size
        return (h, w) if orientation(im, header_only=True) in _TRANSPOSED else (w, h)


def decode_image(path: Path) -> Image.Image:
    """Decode ``path`` fully in its own mode, upright (EXIF orientation applied, as a phone
    photo is shown); errors name the file."""
    with open_image(path) as im:
        im.load()
        return upright(im)


def upright(im: Image.Image) -> Image.Image:
    """``im`` with its EXIF orientation applied (``ImageOps.exif_transpose``)."""
    if orientation(im) == 1:
        return im.copy()  # detached from the file, which the caller closes
    return ImageOps.exif_transpose(im)


def to_8bit(im: Image.Image) -> Image.Image:
    """16- and 32-bit grayscale (``I;16*``, ``I``; a 16-bit PNG) as 8-bit ``L``, scaled by
    1/257 (65535 -> 255) rather than clipped (PIL's ``convert`` makes it nearly all white);
    ``F`` (float) is clipped to [0, 255]. Other modes are returned unchanged."""
    if im.mode.startswith("I;16") or im.mode == "I":
        a = np.asarray(im).astype(np.float64)
        if im.mode == "I" and a.max(initial=0) <= 255:
            return Image.fromarray(a.clip(0, 255).astype(np.uint8), "L")
        return Image.fromarray((a / 257.0).round().clip(0, 255).astype(np.uint8), "L")
    if im.mode == "F":
        return Image.fromarray(np.asarray(im).clip(0, 255).astype(np.uint8), "L")
    return im


def has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        im.mode == "P" and "transparency" in im.info
    )


def split_alpha(im: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """(RGB image, its alpha as ``L`` or None): a translated image gets the alpha back
    (``translate run``). The colour of fully transparent pixels is kept as stored."""
    if not has_alpha(im):
        return to_rgb(im), None
    rgba = im.convert("RGBA")
    return rgba.convert("RGB"), rgba.getchannel("A")


def to_rgb(im: Image.Image) -> Image.Image:
    """A decoded image as RGB: grayscale (8 or 16 bit) and palette are converted; transparency
    is composited on white (rather than letting transparent pixels turn black)."""
    im = to_8bit(im)
    if has_alpha(im):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    return im.convert("RGB")


def load_rgb(path: Path) -> Image.Image:
    """Decode ``path`` fully as upright RGB (grayscale, 16-bit, palette and RGBA converted)."""
    return to_rgb(decode_image(path))


def to_array(image: Image.Image) -> np.ndarray:
    """PIL RGB -> (H, W, 3) uint8."""
    return np.asarray(image, dtype=np.uint8)
