"""A folder per class: ``DATA/<class>/*.png`` (``DATA/train/<class>/`` and ``DATA/val/<class>/``
when present). Items: ``{"image": (3, S, S) in [-1, 1], "label": class index}``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from translate.conditioning import did_you_mean
from translate.data.paired import index_seed, split_folder
from translate.data.single import SingleDataset
from translate.errors import ConfigError, DataError


def class_folders(root: Path) -> list[str]:
    """The class sub-folders of the training split, sorted."""
    folder = split_folder(Path(root), "train")
    assert folder is not None  # the train split always exists (root itself otherwise)
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(names) < 2:
        raise DataError(f"{folder}: needs one sub-folder of images per class (at least two)")
    return names


def check_class(name: str, classes: list[str], *, where: str) -> int:
    """The index of class ``name``; an unknown name raises one line with a suggestion."""
    if name not in classes:
        raise ConfigError(
            f"{where}: unknown class {name!r}{did_you_mean(name, classes)} "
            f"(available: {', '.join(classes)})"
        )
    return classes.index(name)


class ClassFolders(Dataset[dict[str, Any]]):
    """The images of each class folder (``SingleDataset``'s loading and augmentation)."""

    def __init__(self, folder: Path, classes: list[str], *, size: int, flip: bool, train: bool):
        self.parts = []
        for name in classes:
            if not (folder / name).is_dir():
                raise DataError(f"{folder / name}: class folder missing")
            self.parts.append(
                SingleDataset(folder / name, load_size=size, crop_size=size, flip=flip, train=train)
            )
        self.index = [(k, i) for k, part in enumerate(self.parts) for i in range(len(part))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, index_seed(key))
        label, i = self.index[index]
        item = self.parts[label][(i, seed)]
        return {**item, "label": label}


def build_class_dataset(cfg: Any, split: str) -> ClassFolders | None:
    root = Path(cfg.data)
    folder = split_folder(root, split)
    if folder is None:
        return None
    return ClassFolders(
        folder, cfg.class_names, size=cfg.image_size, flip=cfg.flip, train=split == "train"
    )
