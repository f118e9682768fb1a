"""PIL <-> tensor at the public boundary, and collecting input files for ``translate run``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from translate.data.images import (
    IMAGE_EXTENSIONS,
    decode_image,
    image_size,
    list_images,
    load_rgb,
    split_alpha,
    to_rgb,
)
from translate.errors import DataError


def pil_to_tensor(images: list[Image.Image]) -> Tensor:
    """PIL images of one size -> (B, 3, H, W) float in [-1, 1] (converted to RGB by the
    shared decoder's rules: 16-bit grayscale scaled, transparency on white)."""
    arrays = [np.asarray(to_rgb(im), dtype=np.uint8) for im in images]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError("pil_to_tensor needs images of one size")
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return batch.float().div(127.5).sub(1)


def tensor_to_pil(batch: Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [-1, 1] -> RGB PIL images (values outside the range are clipped)."""
    data = batch.detach().float().cpu().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    return [Image.fromarray(x.permute(1, 2, 0).numpy(), "RGB") for x in data]


def collect_inputs(paths: list[Path]) -> list[Path]:
    """Files and folders (their images, sorted) -> image files; missing paths fail."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(list_images(path))
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    if not files:
        raise DataError("no input images given")
    return files


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise DataError(
            f"{path}: not an image file (expected {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )


def read_image(path: Path) -> Image.Image:
    """An input image as RGB; errors name the file."""
    _check_suffix(path)
    return load_rgb(path)


#: Single-channel modes that ``read_input`` keeps as decoded (their values may be class ids).
INDEX_MODES = frozenset({"L", "P", "I", "I;16", "I;16B", "I;16L"})


def read_input(path: Path) -> Image.Image:
    """An input image for ``translate run`` (see ``read_input_alpha``), alpha dropped."""
    return read_input_alpha(path)[0]


def read_input_alpha(path: Path) -> tuple[Image.Image, Image.Image | None]:
    """An input image for ``translate run``, upright (EXIF orientation applied), and its alpha
    channel (``L``) or None. The image is RGB, except single-channel images (L, P without
    transparency, I, I;16), which stay as decoded because to a label-map plugin their values
    are class ids (``PluginBase.preprocess`` converts them to RGB like any other image, 16-bit
    scaled to 8). ``filename`` holds the path, as ``Image.open`` sets it, so plugins' errors
    can name the file; errors name the file."""
    _check_suffix(path)
    decoded = decode_image(path)
    if decoded.mode in INDEX_MODES and "transparency" not in decoded.info:
        image, alpha = decoded, None
    else:
        image, alpha = split_alpha(decoded)
    image.filename = str(path)  # type: ignore[attr-defined]
    return image, alpha


def attach_alpha(image: Image.Image, alpha: Image.Image) -> Image.Image:
    """``image`` (RGB) with ``alpha`` as its transparency, resized to it (bicubic, as the
    colour of a super-resolution output)."""
    if alpha.size != image.size:
        alpha = alpha.resize(image.size, Image.Resampling.BICUBIC)
    out = image.convert("RGB")
    out.putalpha(alpha)
    return out


def read_size(path: Path) -> tuple[int, int]:
    """An input image's (width, height) from its header (batches are planned before any
    image is decoded); errors name the file."""
    _check_suffix(path)
    return image_size(path)
