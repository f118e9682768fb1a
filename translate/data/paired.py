"""Aligned image pairs: side-by-side A|B files (the pix2pix release format) or A/ and B/ folders.

Layout, for ``root`` and a split (``train``/``val``): ``root/<split>/`` when it exists, else
``root`` itself for ``train``. Inside, ``A/`` and ``B/`` folders are matched by file stem;
otherwise every image is one A|B pair split down the middle. Every file's header is checked up
front, so a non-image, a missing partner or a size mismatch fails before training starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
from torch.utils.data import Dataset

from translate.data import transforms
from translate.data.images import image_size, list_images, load_rgb, to_array
from translate.errors import DataError


def split_folder(root: Path, split: str) -> Path | None:
    """The folder holding ``split`` under ``root``, or None when there is no such split."""
    if not root.exists():
        raise DataError(f"{root}: data folder does not exist")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    candidate = root / split
    if candidate.is_dir():
        return candidate
    return root if split == "train" else None


def find_pairs(folder: Path) -> list[tuple[Path, Path | None]]:
    """(A, B) file pairs; B is None for side-by-side files."""
    a_dir, b_dir = folder / "A", folder / "B"
    if a_dir.is_dir() or b_dir.is_dir():
        a_files = {p.stem: p for p in list_images(a_dir)}
        b_files = {p.stem: p for p in list_images(b_dir)}
        only_a = sorted(set(a_files) - set(b_files))
        only_b = sorted(set(b_files) - set(a_files))
        if only_a or only_b:
            lonely = a_files[only_a[0]] if only_a else b_files[only_b[0]]
            other = b_dir if only_a else a_dir
            raise DataError(f"{lonely}: no image with the same name in {other}")
        pairs: list[tuple[Path, Path | None]] = [(a_files[s], b_files[s]) for s in sorted(a_files)]
        for a, b in pairs:
            assert b is not None
            size_a, size_b = image_size(a), image_size(b)
            if size_a != size_b:
                raise DataError(
                    f"{b}: size {size_b[0]}x{size_b[1]} differs from its pair {a} "
                    f"({size_a[0]}x{size_a[1]})"
                )
        return pairs
    pairs = []
    for path in list_images(folder):
        width, _ = image_size(path)
        if width % 2:
            raise DataError(
                f"{path}: width {width} is odd; expected side-by-side A|B images "
                "(or A/ and B/ folders)"
            )
        pairs.append((path, None))
    return pairs


class PairedDataset(Dataset[dict[str, Any]]):
    """Items: ``{"input": (3, S, S), "target": (3, S, S)}`` in [-1, 1] and ``"path"``.

    Indexable by ``i`` or by ``(i, seed)`` (from ``ResumableSampler``) for reproducible
    augmentation.
    """

    def __init__(
        self,
        folder: Path,
        *,
        direction: str = "a2b",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        train: bool = True,
    ):
        self.folder = folder
        self.pairs = find_pairs(folder)
        self.swap = direction == "b2a"
        self.pipeline = transforms.paired_pipeline(
            load_size=load_size, crop_size=crop_size, flip=flip, train=train
        )

    def __len__(self) -> int:
        return len(self.pairs)

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        a_path, b_path = self.pairs[index]
        if b_path is None:
            ab = to_array(load_rgb(a_path))
            half = ab.shape[1] // 2
            a, b = ab[:, :half], ab[:, half:]
        else:
            a, b = to_array(load_rgb(a_path)), to_array(load_rgb(b_path))
            if a.shape != b.shape:  # headers agreed but pixels do not: a damaged file
                raise DataError(f"{b_path}: decoded size differs from its pair {a_path}")
        return (b, a) if self.swap else (a, b)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, index_seed(key))
        source, target = self.load_pair(index)
        source, target = transforms.apply(self.pipeline, seed, source, target)
        return {
            "input": transforms.to_tensor(source),
            "target": transforms.to_tensor(target),
            "path": str(self.pairs[index][0]),
        }


class LabelMapDataset(PairedDataset):
    """The ``labels`` kind's default: pairs whose input is a colour-coded label map.

    Items as ``PairedDataset``'s, but the label map is resized with nearest-neighbour
    interpolation (a mask target of the shared geometry), so every pixel keeps an exact class
    colour and never a blend of two; ``"input"`` is (3, S, S) in [-1, 1]. A plugin that wants
    class ids or one-hot maps builds its own dataset (label2image does).
    """

    def __init__(self, folder: Path, **kwargs: Any):
        super().__init__(folder, **kwargs)
        # the pipeline's geometry, applied to a photo ("image") and a label map ("mask")
        self.pipeline = A.Compose(list(self.pipeline.transforms), seed=0)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, index_seed(key))
        label, photo = self.load_pair(index)
        self.pipeline.set_random_seed(seed)
        out = self.pipeline(image=photo, mask=label)
        return {
            "input": transforms.to_tensor(out["mask"]),
            "target": transforms.to_tensor(out["image"]),
            "path": str(self.pairs[index][0]),
        }


def index_seed(index: int) -> int:
    """Augmentation seed for plain integer indexing (evaluation, tests)."""
    return index
