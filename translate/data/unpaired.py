"""Unpaired image folders: two domains sampled independently (CycleGAN, Zhu et al. 2017).

Layouts, for a dataset ``root`` and a split (``train``/``val``/``test``): ``root/<split>A`` and
``root/<split>B`` (the CycleGAN release: ``trainA``, ``testA``...), ``root/<split>/A`` and
``root/<split>/B``, or ``root/A`` and ``root/B`` (train only); or two explicit folders. The two
domains need not have the same number or size of images. Every file's header is checked up
front, so a non-image fails before training starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from translate.data import transforms
from translate.data.images import image_size, list_images, load_rgb, to_array
from translate.errors import DataError

#: Folder names of other splits, tried in order, for a training folder (sample grids use them).
EVAL_SPLITS = ("val", "test")


def find_domains(root: Path, split: str) -> tuple[Path, Path] | None:
    """(A folder, B folder) of ``split`` under a dataset ``root``; None when the split is absent."""
    if not root.exists():
        raise DataError(f"{root}: data folder does not exist")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    candidates = [
        (root / f"{split}A", root / f"{split}B"),
        (root / split / "A", root / split / "B"),
    ]
    if split == "train":
        candidates.append((root / "A", root / "B"))
    for a_dir, b_dir in candidates:
        if a_dir.is_dir() or b_dir.is_dir():
            if not (a_dir.is_dir() and b_dir.is_dir()):
                present, absent = (a_dir, b_dir) if a_dir.is_dir() else (b_dir, a_dir)
                raise DataError(f"{absent}: data folder does not exist (found {present})")
            return a_dir, b_dir
    if split == "train":
        raise DataError(
            f"{root}: no unpaired domains found; expected trainA/ and trainB/, train/A/ and "
            "train/B/, or A/ and B/ folders"
        )
    return None


def sibling_split(folder: Path, split: str) -> Path | None:
    """The ``split`` counterpart of a training-domain folder, when it exists:
    ``trainA`` -> ``testA`` / ``valA``, ``train/A`` -> ``test/A``; None otherwise."""
    names = [split] if split != "val" else list(EVAL_SPLITS)
    for name in names:
        if folder.name.startswith("train") and len(folder.name) > len("train"):
            candidate = folder.with_name(name + folder.name[len("train") :])
        elif folder.parent.name == "train":
            candidate = folder.parent.with_name(name) / folder.name
        else:
            continue
        if candidate.is_dir():
            return candidate
    return None


def check_headers(files: list[Path]) -> None:
    """Fail on the first file that is not a readable image (header only, no decoding)."""
    for path in files:
        image_size(path)


class UnpairedDataset(Dataset[dict[str, Any]]):
    """Items: ``{"A": (3, S, S), "B": (3, S, S)}`` in [-1, 1], ``"path_a"`` and ``"path_b"``.

    Index ``i`` (or ``(i, seed)`` from ``ResumableSampler``) gives ``A[i % len(A)]``; in training
    B is an independent draw seeded by the per-sample seed (the reference's unaligned dataset),
    in evaluation ``B[i % len(B)]`` so sample grids are stable. Each domain gets its own crop and
    flip (the images are unrelated and may differ in size). ``len`` is the larger domain.
    """

    def __init__(
        self,
        a_dir: Path,
        b_dir: Path,
        *,
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        train: bool = True,
    ):
        self.a_dir, self.b_dir = Path(a_dir), Path(b_dir)
        self.a_files = list_images(self.a_dir)
        self.b_files = list_images(self.b_dir)
        check_headers(self.a_files)
        check_headers(self.b_files)
        self.train = train
        self.pipeline = transforms.paired_pipeline(
            load_size=load_size, crop_size=crop_size, flip=flip, train=train
        )

    @classmethod
    def from_root(cls, root: Path, split: str = "train", **kwargs: Any) -> UnpairedDataset | None:
        """The dataset of ``split`` under ``root`` (see ``find_domains``), or None if absent."""
        found = find_domains(Path(root), split)
        if found is None:
            return None
        return cls(*found, train=split == "train", **kwargs)

    def __len__(self) -> int:
        return max(len(self.a_files), len(self.b_files))

    def _load(self, path: Path, seed: int) -> np.ndarray:
        (image,) = transforms.apply(self.pipeline, seed, to_array(load_rgb(path)))
        return image

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, key)
        # one stream per sample: B's draw and both augmentation seeds (31-bit for albumentations)
        rng = np.random.default_rng([seed, 0x5EED])
        seed_a, seed_b = (int(v) for v in rng.integers(0, 2**31 - 1, 2))
        j = int(rng.integers(len(self.b_files))) if self.train else index % len(self.b_files)
        path_a, path_b = self.a_files[index % len(self.a_files)], self.b_files[j]
        return {
            "A": transforms.to_tensor(self._load(path_a, seed_a)),  # (3, S, S) in [-1, 1]
            "B": transforms.to_tensor(self._load(path_b, seed_b)),  # (3, S, S) in [-1, 1]
            "path_a": str(path_a),
            "path_b": str(path_b),
        }


def build_unpaired(cfg: Any, split: str) -> UnpairedDataset | None:
    """The dataset of ``split`` from a config's ``domain_a``, ``domain_b``, ``load_size``,
    ``crop_size`` and ``flip``: the two folders for ``train``; for another split their
    ``testA``/``valA``-like siblings (see ``sibling_split``), or None when there are none."""
    a_dir, b_dir = Path(cfg.domain_a), Path(cfg.domain_b)
    if split != "train":
        a_eval, b_eval = sibling_split(a_dir, split), sibling_split(b_dir, split)
        if a_eval is None or b_eval is None:
            return None
        a_dir, b_dir = a_eval, b_eval
    return UnpairedDataset(
        a_dir,
        b_dir,
        load_size=cfg.load_size,
        crop_size=cfg.crop_size,
        flip=cfg.flip,
        train=split == "train",
    )


def eval_root(domain_a: Path) -> Path | None:
    """The dataset root above a training folder ``domain_a`` (``root/trainA`` or ``root/train/A``)
    that has a test or val split of both domains, for ``--eval-every``; None without one."""
    for root in (domain_a.parent, domain_a.parent.parent):
        if any(find_domains(root, split) for split in ("test", "val")):
            return root
    return None


def load_domains(folder: Path) -> tuple[dict[str, list[str]], dict[str, list[Any]]]:
    """For ``translate eval``: the A and B images of ``folder``'s test split (else val, else
    train; ``testA``/``testB`` or ``test/A``...) as ({"A": names, "B": names}, {"A": RGB
    images, "B": ...}), each domain sorted by name. Raises DataError without two domains."""
    domains = next(
        (d for split in ("test", "val", "train") if (d := find_domains(folder, split))), None
    )
    if domains is None:
        raise DataError(f"{folder}: no testA/testB (or A/, B/) folders to evaluate")
    files = {side: list_images(d) for side, d in zip("AB", domains, strict=True)}
    names = {side: [p.name for p in paths] for side, paths in files.items()}
    return names, {side: [load_rgb(p) for p in paths] for side, paths in files.items()}
