"""``translate datasets demo``: a small synthetic paired dataset, written offline in about a
second, in the layout of the pix2pix facades release (``train/`` and ``val/`` of side-by-side
``A|B`` images: A, the left half, is the "photo"; B, the right half, its label map), plus
``inputs/``: the validation label maps alone, what ``translate run`` takes once trained.

Each image holds a few rectangles and discs of four classes on a background. The label map
paints each class in one flat colour (as facades' label maps do); the photo renders the same
layout with a colour per class, a vertical light gradient and a little fixed noise, so the
label -> photo task (``--direction b2a``, as for facades) is learnable in a few hundred steps
and its outputs are easy to judge by eye.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from translate.errors import DataError

#: Label-map colour of each class (0: background) and the colour it is rendered in.
LABELS = ((10, 10, 120), (230, 30, 30), (30, 200, 60), (250, 220, 30), (40, 200, 230))
COLOURS = ((150, 170, 190), (130, 70, 40), (60, 120, 50), (220, 200, 170), (40, 60, 90))


def demo_pair(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One (photo, label map) pair, each (size, size, 3) uint8."""
    classes = np.zeros((size, size), np.int64)
    yy, xx = np.mgrid[:size, :size]
    for _ in range(int(rng.integers(3, 7))):
        cls = int(rng.integers(1, len(LABELS)))
        r = int(rng.integers(size // 10, size // 4))
        cy, cx = (int(v) for v in rng.integers(0, size, 2))
        if rng.integers(2):
            shape = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        else:
            shape = (abs(yy - cy) <= r) & (abs(xx - cx) <= r * 3 // 2)
        classes[shape] = cls
    labels = np.asarray(LABELS, np.uint8)[classes]
    light = 0.75 + 0.35 * (1 - yy / size)[..., None]  # brighter at the top
    noise = rng.normal(0, 6, (size, size, 3))
    photo = np.asarray(COLOURS, np.float64)[classes] * light + noise
    return photo.clip(0, 255).astype(np.uint8), labels


def write_demo(
    dest: Path, *, n_train: int = 40, n_val: int = 8, size: int = 256, seed: int = 0
) -> Path:
    """Write the demo set to ``dest`` (``train/`` and ``val/``, ``NNN.png`` of ``size`` x
    ``2 size``; ``inputs/NNN.png``, the validation label maps). ``dest`` must not exist or be
    empty: nothing is ever written over. The set appears under its name only once complete."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataError(f"{dest}: already exists and is not empty; give another folder")
    if size < 16:
        raise DataError(f"size: must be at least 16, got {size}")
    tmp = dest.with_name(f".{dest.name}.writing-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    try:
        for split, n in (("train", n_train), ("val", n_val)):
            (tmp / split).mkdir(parents=True)
            for i in range(n):
                photo, labels = demo_pair(rng, size)
                pair = np.concatenate([photo, labels], axis=1)
                Image.fromarray(pair).save(tmp / split / f"{i:03d}.png", compress_level=1)
                if split == "val":
                    (tmp / "inputs").mkdir(exist_ok=True)
                    Image.fromarray(labels).save(tmp / "inputs" / f"{i:03d}.png", compress_level=1)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
