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

from translate.evaluation import EvalSet
from translate.evaluation_generation import (
    generation_protocol,
    labelled_folders,
    model_input,
    real_images,
)
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


def infogan_protocol(models: Any, folder: Path, cfg: Any) -> EvalSet:
    """FID/KID of samples against ``folder``'s images (the generation protocol), with
    ``code_recovery`` and, for a folder per class, ``cluster_accuracy`` as figures of its row."""
    sampler = models.sampler
    evalset = generation_protocol(models, folder)
    D = sampler.loaded.models["D"].eval()
    inputs = sampler.inputs(max(models.samples or 500, 2), seed=models.seed + 1)
    drawn = inputs[1].argmax(1).numpy()  # the categorical code, the first condition
    figures = {"code_recovery": float((q_categories(D, sampler.generate(*inputs)) == drawn).mean())}
    classes = labelled_folders(folder)
    if classes:
        real = real_images(folder, classes)
        x = model_input([im for im, _ in real], cfg.image_size)
        labels = np.array([k for _, k in real])
        figures["cluster_accuracy"] = cluster_accuracy(q_categories(D, x), labels)
        evalset.notes.append(
            f"cluster_accuracy: Q's categories of the real images of {len(classes)} classes, "
            "matched one-to-one to the classes (Hungarian)"
        )
    evalset.items[0].metrics.update(figures)
    return evalset
