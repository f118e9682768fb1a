"""InfoGAN's evaluation: the generation protocol (FID/KID of samples against real images) and
what the categorical code learnt.

* ``code_recovery``: the share of samples drawn with category k that Q assigns to k (how much of
  the code survives in the images: the lower bound of I(c; G(z, c)) that training maximises);
* ``cluster_accuracy`` (a folder per class only): Q's category of each real image against its
  class, after matching categories to classes one-to-one (``translate.metrics.clusters``); the
  paper's measure (Sec. 5.1: 5% error on MNIST).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from translate.evaluation import EvalItem, EvalSet
from translate.evaluation_generation import SHOWN, generation_protocol, real_images
from translate.inference.image_io import pil_to_tensor
from translate.inference.sampling import grid
from translate.metrics.clusters import cluster_accuracy


@torch.no_grad()
def q_categories(discriminator: Any, x: torch.Tensor, chunk: int = 256) -> np.ndarray:
    """Q's most likely category of each image (N, 3, S, S) in [-1, 1]."""
    device = next(discriminator.parameters()).device
    out = [
        discriminator.q(x[i : i + chunk].to(device))[0].argmax(1).cpu()
        for i in range(0, len(x), chunk)
    ]
    return torch.cat(out).numpy()


def as_tensor(images: list[Image.Image], side: int) -> torch.Tensor:
    """PIL images -> (N, 3, side, side) in [-1, 1] (resized to the model's size)."""
    sized = [im.convert("RGB").resize((side, side), Image.Resampling.BICUBIC) for im in images]
    return pil_to_tensor(sized)


def class_folders(folder: Path) -> list[str]:
    """The class sub-folders of ``folder`` (its train/ split when present) when it holds no
    images directly; none otherwise."""
    from translate.data.paired import split_folder

    root = split_folder(Path(folder), "train")
    assert root is not None
    if any(p.is_file() for p in root.iterdir() if not p.name.startswith(".")):
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def infogan_protocol(models: Any, folder: Path, cfg: Any) -> EvalSet:
    """FID/KID of samples against ``folder``'s images, ``code_recovery`` and, for a folder per
    class, ``cluster_accuracy`` (figures of the one row, ``samples``)."""
    sampler = models.sampler
    classes = class_folders(folder)
    if classes:  # the generation protocol's unconditional branch, on the images of all classes
        real = real_images(folder, classes)
        reals = [im for im, _ in real]
        samples = sampler(models.samples or len(reals), seed=models.seed)
        evalset = EvalSet(
            [EvalItem("samples", {"samples": grid(samples[:SHOWN])})],
            distributions={"": (samples, reals)},
        )
    else:
        evalset = generation_protocol(models, folder)
    D = sampler.loaded.models["D"].eval()
    inputs = sampler.inputs(max(models.samples or 500, 2), seed=models.seed + 1)
    drawn = inputs[1].argmax(1).numpy()  # the categorical code, the first condition
    figures = {"code_recovery": float((q_categories(D, sampler.generate(*inputs)) == drawn).mean())}
    if classes:
        x = as_tensor([im for im, _ in real], cfg.image_size)
        labels = np.array([k for _, k in real])
        figures["cluster_accuracy"] = cluster_accuracy(q_categories(D, x), labels)
        evalset.notes.append(
            f"cluster_accuracy: Q's categories of the real images of {len(classes)} classes, "
            "matched one-to-one to the classes (Hungarian)"
        )
    evalset.items[0].metrics.update(figures)
    return evalset
