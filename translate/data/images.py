"""Finding and decoding image files, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

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


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__})") from exc


def to_rgb(im: Image.Image) -> Image.Image:
    """A decoded image as RGB: grayscale and palette are converted; transparency is
    composited on white (rather than letting transparent pixels turn black)."""
    if im.mode == "RGBA" or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    return im.convert("RGB")


def load_rgb(path: Path) -> Image.Image:
    """Decode ``path`` fully as RGB (grayscale, palette and RGBA are converted)."""
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb(im)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: corrupt or unreadable image ({exc})") from exc


def to_array(image: Image.Image) -> np.ndarray:
    """PIL RGB -> (H, W, 3) uint8."""
    return np.asarray(image, dtype=np.uint8)
