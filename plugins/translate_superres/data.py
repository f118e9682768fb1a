"""High-resolution image folders -> (low-resolution input, high-resolution target) patches.

Only HR images are needed: each sample is a random HR crop (with a random flip / 90-degree
rotation, the eight symmetries of the square), and its LR input is made on the fly by one of
two degradations:

- ``bicubic``: antialiased bicubic downscaling (PIL's, the kernel of MATLAB's ``imresize``
  with a = -0.5), quantised to 8 bits: the classic benchmark degradation, the same one
  ``translate eval superres`` applies, so a model trained on it is measured on what it learnt.
- ``realistic``: a second-order degradation in the spirit of Real-ESRGAN (Wang et al. 2021,
  Sec. 3.1): twice [blur with a random (an)isotropic or generalised Gaussian kernel, random
  resize with a random interpolation, Gaussian or Poisson noise, JPEG compression], then a
  resize to the LR size. Built from albumentations transforms (the noise model is a few lines
  of numpy: albumentations has no Poisson noise).

Images smaller than the HR crop are left out (with a log line); a folder with none large
enough is an error that names it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from translate.data import transforms
from translate.data.images import image_size, list_images, load_rgb, to_array
from translate.errors import DataError

log = logging.getLogger(__name__)


def bicubic_downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (H // scale, W // scale, 3) uint8, antialiased bicubic (PIL)."""
    h, w = hr.shape[:2]
    image = Image.fromarray(hr).resize((w // scale, h // scale), Image.Resampling.BICUBIC)
    return np.asarray(image)


def crop_to_multiple(image: Image.Image, scale: int) -> Image.Image:
    """Crop the bottom/right so both sides are multiples of ``scale`` (the SR protocol)."""
    w, h = image.size
    return image.crop((0, 0, w - w % scale, h - h % scale))


def _realistic_stage(strength: float) -> Any:
    import albumentations as A
    import cv2

    return A.Compose(
        [
            A.OneOf(
                [
                    A.AdvancedBlur(
                        blur_limit=(7, 21),
                        sigma_x_limit=(0.2, 3.0 * strength),
                        sigma_y_limit=(0.2, 3.0 * strength),
                        beta_limit=(0.5, 4.0),
                        p=1.0,
                    ),
                    A.GaussianBlur(blur_limit=(7, 21), sigma_limit=(0.2, 3.0 * strength), p=1.0),
                ],
                p=0.9,
            ),
            A.RandomScale(
                scale_limit=(-0.5, 0.5 * strength),
                interpolation=cv2.INTER_LINEAR,
                p=0.8,
            ),
            A.ImageCompression(quality_range=(int(30 / strength), 95), p=0.8),
        ]
    )


class RealisticDegradation:
    """Real-ESRGAN-style second-order degradation of a uint8 HR crop to the LR size."""

    def __init__(self) -> None:
        self.stages = [_realistic_stage(1.0), _realistic_stage(0.8)]

    @staticmethod
    def _noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = image.astype(np.float32) / 255.0
        if rng.random() < 0.5:  # Gaussian, colour or grey (Real-ESRGAN: sigma 1-30 of 255)
            sigma = rng.uniform(1, 25) / 255.0
            shape = x.shape if rng.random() < 0.6 else (*x.shape[:2], 1)
            x = x + rng.normal(0.0, sigma, size=shape).astype(np.float32)
        else:  # Poisson (shot noise), scale 0.05-3 as Real-ESRGAN's
            peak = 10 ** rng.uniform(1.0, 3.0)
            x = rng.poisson(np.clip(x, 0, 1) * peak).astype(np.float32) / peak
        return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def __call__(self, hr: np.ndarray, scale: int, rng: np.random.Generator) -> np.ndarray:
        import albumentations as A
        import cv2

        out_h, out_w = hr.shape[0] // scale, hr.shape[1] // scale
        x = hr
        for stage in self.stages:
            stage.set_random_seed(int(rng.integers(2**31)))
            x = stage(image=x)["image"]
            if rng.random() < 0.8:
                x = self._noise(x, rng)
        interpolation = [cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC][rng.integers(3)]
        x = cv2.resize(x, (out_w, out_h), interpolation=interpolation)
        final = A.ImageCompression(quality_range=(30, 95), p=1.0)
        final.set_random_seed(int(rng.integers(2**31)))
        return final(image=x)["image"]


def dihedral(image: np.ndarray, k: int) -> np.ndarray:
    """One of the eight symmetries of the square (k in 0..7): rotation by k % 4 quarter
    turns, then a horizontal flip when k >= 4."""
    out = np.rot90(image, k % 4)
    return np.ascontiguousarray(out[:, ::-1] if k >= 4 else out)


class SuperResDataset(Dataset[dict[str, Any]]):
    """Items: ``{"input": (3, p, p), "target": (3, p * scale, p * scale)}`` in [-1, 1].

    Indexable by ``i`` or by ``(i, seed)`` (``ResumableSampler``): crop, symmetry and
    degradation are a function of the seed. ``train=False`` takes the centre crop, no
    symmetry, and the bicubic degradation (samples, evaluation-like views).
    """

    def __init__(
        self,
        folders: tuple[Path, ...],
        *,
        scale: int,
        patch_size: int,
        degradation: str = "bicubic",
        train: bool = True,
    ) -> None:
        self.scale, self.patch_size, self.train = scale, patch_size, train
        self.hr_size = patch_size * scale
        files = [p for folder in folders for p in list_images(folder)]
        self.files = [p for p in files if min(image_size(p)) >= self.hr_size]
        skipped = len(files) - len(self.files)
        if not self.files:
            raise DataError(
                f"{folders[0]}: no image is at least {self.hr_size} pixels on its shorter side "
                f"(patch_size {patch_size} x scale {scale}); lower --patch-size"
            )
        if skipped:
            log.info("left out %d images smaller than %d pixels", skipped, self.hr_size)
        self.degrade = RealisticDegradation() if degradation == "realistic" and train else None
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.files)

    def image(self, index: int) -> np.ndarray:
        """The decoded HR image, cached (the classic training sets fit in memory easily)."""
        if index not in self._cache:
            self._cache[index] = to_array(load_rgb(self.files[index]))
        return self._cache[index]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, key)
        image = self.image(index)
        h, w = image.shape[:2]
        s = self.hr_size
        rng = np.random.default_rng(seed)
        if self.train:
            # crop on the LR grid, so the HR crop's pixels align with whole LR pixels
            top = int(rng.integers(0, (h - s) // self.scale + 1)) * self.scale
            left = int(rng.integers(0, (w - s) // self.scale + 1)) * self.scale
        else:
            top, left = (h - s) // 2, (w - s) // 2
        hr = image[top : top + s, left : left + s]
        if self.train:
            hr = dihedral(hr, int(rng.integers(8)))
        if self.degrade is not None:
            lr = self.degrade(hr, self.scale, rng)
        else:
            lr = bicubic_downscale(hr, self.scale)
        return {
            "input": transforms.to_tensor(lr),
            "target": transforms.to_tensor(hr),
            "path": str(self.files[index]),
        }
