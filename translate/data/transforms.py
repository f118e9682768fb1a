"""Albumentations pipelines that apply the same geometry to every image of a sample.

Training: resize to ``load_size``, random ``crop_size`` crop, horizontal flip (pix2pix/CycleGAN's
"resize_and_crop"). Evaluation: resize to ``crop_size``. Each call is seeded per sample, so a
resumed run sees exactly the augmentations it would have seen without the interruption.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np
import torch


def geometry_steps(*, load_size: int, crop_size: int, flip: bool, train: bool) -> list[Any]:
    """Training: resize to ``load_size``, random ``crop_size`` crop, optional flip;
    evaluation: resize to ``crop_size``. For an ``A.Compose`` with the targets of a sample."""
    if not train:
        return [A.Resize(crop_size, crop_size)]
    steps: list[Any] = [A.Resize(load_size, load_size)]
    if crop_size < load_size:
        steps.append(A.RandomCrop(crop_size, crop_size))
    if flip:
        steps.append(A.HorizontalFlip(p=0.5))
    return steps


def center_square(array: np.ndarray, side: int) -> np.ndarray:
    """The centred ``side`` x ``side`` square of an (H, W, C) image (StarGAN's CelebA
    preprocessing: 178 of the aligned 178x218 faces, before the resize); an image smaller than
    that gives the centred square of its shorter side. ``side`` 0: the image unchanged."""
    if side <= 0:
        return array
    h, w = array.shape[:2]
    side = min(side, h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return array[top : top + side, left : left + side]


def paired_pipeline(
    *, load_size: int, crop_size: int, flip: bool, train: bool, extra_images: int = 1
) -> A.Compose:
    """A pipeline applied identically to ``image`` and ``image1``.. ``image{extra_images}``."""
    steps = geometry_steps(load_size=load_size, crop_size=crop_size, flip=flip, train=train)
    targets = {f"image{i}": "image" for i in range(1, extra_images + 1)}
    return A.Compose(steps, additional_targets=targets, seed=0)


def apply(pipeline: A.Compose, seed: int, *images: np.ndarray) -> list[np.ndarray]:
    """Run ``pipeline`` on images of one size with a per-sample seed; same geometry for all."""
    pipeline.set_random_seed(seed)
    kwargs = {"image": images[0], **{f"image{i}": im for i, im in enumerate(images[1:], 1)}}
    out = pipeline(**kwargs)
    return [out["image"], *(out[f"image{i}"] for i in range(1, len(images)))]


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) in [-1, 1], of torch's default dtype (float32; float64
    in the tests that compare two computation orders exactly)."""
    if not array.flags.writeable:  # PIL-backed arrays are read-only; torch wants to own memory
        array = array.copy()
    x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    return x.to(torch.get_default_dtype()).div(127.5).sub(1)
