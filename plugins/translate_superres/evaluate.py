"""The standard super-resolution evaluation protocol (so figures compare with published tables).

For each HR image of a folder: crop to a multiple of the scale; make the LR input with
antialiased bicubic downscaling (PIL's bicubic, a = -0.5, as MATLAB's ``imresize``), 8-bit;
upscale it with the model and, as the baseline, with bicubic; convert outputs and HR to BT.601
Y; crop ``scale`` pixels from every border; PSNR and SSIM. Greyscale images are evaluated as
RGB with R = G = B (Y = 16 + 219/255 * v). With this, bicubic x4 gives 28.43 dB on Set5 and
26.09 dB on Set14 (tests/test_superres.py checks the pieces; the published 28.42 / 26.00 come
from slightly different MATLAB code paths).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from translate.data.images import list_images, load_rgb
from translate.evaluation import EvalItem
from translate.metrics import y_psnr_ssim
from translate_superres.data import crop_to_multiple

Upscale = Callable[[list[Image.Image]], list[Image.Image]]


def evaluate_items(upscale: Upscale | None, folder: Path, *, scale: int) -> list[EvalItem]:
    """One item per image: bicubic PSNR/SSIM and, when ``upscale`` is given, the model's; the
    LR input, bicubic, output and HR images for the report; LPIPS compares output and HR."""
    items: list[EvalItem] = []
    for path in list_images(folder):
        hr = crop_to_multiple(load_rgb(path), scale)
        w, h = hr.size
        lr = hr.resize((w // scale, h // scale), Image.Resampling.BICUBIC)
        reference = np.asarray(hr)
        bicubic_image = lr.resize((w, h), Image.Resampling.BICUBIC)
        bicubic = np.asarray(bicubic_image)
        item = EvalItem(path.name, {"input": lr, "bicubic": bicubic_image, "target": hr})
        if upscale is not None:
            output_image = upscale([lr])[0].convert("RGB")
            output = np.asarray(output_image)
            if output.shape != reference.shape:
                raise ValueError(f"{path}: model output {output.shape} != HR {reference.shape}")
            item.images["output"] = output_image
            item.metrics["PSNR"], item.metrics["SSIM"] = y_psnr_ssim(
                output, reference, border=scale
            )
            item.compare = ("output", "target")
        item.metrics["bicubic PSNR"], item.metrics["bicubic SSIM"] = y_psnr_ssim(
            bicubic, reference, border=scale
        )
        items.append(item)
    return items


def evaluate_folder(
    upscale: Upscale | None, folder: Path, *, scale: int
) -> list[dict[str, float | str]]:
    """One row per image: bicubic PSNR/SSIM and, when ``upscale`` is given, the model's."""
    return [{"image": it.name, **it.metrics} for it in evaluate_items(upscale, folder, scale=scale)]
