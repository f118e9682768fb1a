"""StarGAN's data: images with a domain label, from a folder per domain or an attribute file.

Two layouts (Choi et al. 2018 train on RaFD, one expression per image, and CelebA, several
binary attributes per image):

* **A folder per domain** (``--data DIR``): ``DIR/<domain>/*.png``; the label is one-hot over
  the domains (sorted folder names, or ``--domains`` to pick some). ``DIR/train/<domain>/`` and
  ``DIR/val/<domain>/`` when ``DIR/train/`` exists (val feeds the sample grids).
* **An attribute file** (``--data DIR --attributes FILE``): multi-label, each image has a
  binary vector over the attributes (``--domains`` picks columns, e.g. CelebA's 5 of 40).
  ``FILE`` is a CSV (header ``image,<attr>,<attr>...``, values 1 / 0 or 1 / -1) or CelebA's
  ``list_attr_celeba.txt`` (an image count, a line of attribute names, then
  ``<file> <v> <v> ...`` rows). Image names are relative to ``DIR``. Training split only.
  Each image is first centre-cropped to a 178x178 square (``--center-crop``, the paper's CelebA
  preprocessing: the aligned 178x218 faces keep their aspect), then resized to ``--load-size``.

Items: ``{"image": (3, S, S) in [-1, 1], "label": (n,) float in {0, 1}, "path": str}``. Every
file's header is read up front; a bad file, a missing column or an unknown domain is one
``DataError`` / ``ConfigError`` line naming the file.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from translate.conditioning import did_you_mean
from translate.data.images import list_images
from translate.data.paired import split_folder
from translate.data.single import SingleDataset
from translate.errors import ConfigError, DataError


def pick_domains(available: list[str], wanted: str, *, source: Path, what: str) -> list[str]:
    """The comma-separated ``wanted`` names (all ``available`` ones when empty), each checked."""
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    if not names:
        return available
    for name in names:
        if name not in available:
            raise ConfigError(
                f"domains: {source} has no {what} {name!r}{did_you_mean(name, available)} "
                f"(it has {', '.join(available)})"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"domains: {wanted!r} names a {what} twice")
    return names


def domain_folders(root: Path) -> list[str]:
    """Sorted names of the sub-folders of ``root`` (hidden ones skipped)."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_attributes(path: Path) -> tuple[list[str], list[tuple[str, list[int]]]]:
    """(attribute names, [(image name, 0/1 values)]) of a CSV or CelebA attribute file."""
    if not path.is_file():
        raise DataError(f"{path}: attribute file does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the attribute file ({exc})") from exc
    if path.suffix.lower() == ".csv":
        rows = [r for r in csv.reader(text.splitlines()) if r]
        if not rows:
            raise DataError(f"{path}: empty attribute file")
        names, body = [c.strip() for c in rows[0][1:]], rows[1:]
    else:  # CelebA: "<count>", "<names...>", then "<file> <values...>"
        lines = [ln.split() for ln in text.splitlines() if ln.strip()]
        if lines and len(lines[0]) == 1 and lines[0][0].isdigit():
            lines = lines[1:]
        if not lines:
            raise DataError(f"{path}: empty attribute file")
        names, body = lines[0], lines[1:]
    if not names:
        raise DataError(f"{path}: the header names no attributes")
    entries = []
    for line, row in enumerate(body, 2):
        if len(row) != len(names) + 1:
            raise DataError(
                f"{path}: line {line} has {len(row) - 1} values for {len(names)} attributes"
            )
        try:
            values = [int(float(v)) for v in row[1:]]
        except ValueError as exc:
            raise DataError(f"{path}: line {line}: values must be 1, 0 or -1") from exc
        if any(v not in (-1, 0, 1) for v in values):
            raise DataError(f"{path}: line {line}: values must be 1, 0 or -1")
        entries.append((row[0].strip(), [int(v == 1) for v in values]))
    if not entries:
        raise DataError(f"{path}: no images listed")
    return names, entries


def available_domains(cfg: Any) -> list[str]:
    """Every domain (folder) or attribute (column) the config's data offers."""
    if cfg.attributes is not None:
        return read_attributes(Path(cfg.attributes))[0]
    folder = split_folder(Path(cfg.data), "train")
    assert folder is not None  # split_folder returns the root itself for "train"
    names = domain_folders(folder)
    if len(names) < 2:
        raise DataError(
            f"{folder}: expected one sub-folder of images per domain (at least 2), found "
            f"{len(names)}; or give an attribute file with --attributes"
        )
    return names


def second_domains(cfg: Any, first: list[str]) -> list[str]:
    """The chosen domains (folders) of ``--data2``, the second dataset of the mask vector; no
    name may repeat one of the first dataset's (``first``)."""
    folder = split_folder(Path(cfg.data2), "train")
    assert folder is not None  # split_folder returns the root itself for "train"
    available = domain_folders(folder)
    if len(available) < 2:
        raise DataError(f"{folder}: expected one sub-folder of images per domain (at least 2)")
    chosen = pick_domains(available, cfg.domains2, source=folder, what="domain folder")
    clash = sorted(set(chosen) & set(first))
    if clash:
        raise ConfigError(f"domains2: {folder} repeats the name(s) {', '.join(clash)} of --data")
    return chosen


class DomainDataset(SingleDataset):
    """Images and their labels; indexable by ``i`` or ``(i, seed)`` (resumable augmentation)."""

    def __init__(
        self,
        files: list[Path],
        labels: np.ndarray,
        *,
        load_size: int,
        crop_size: int,
        flip: bool,
        train: bool,
        center_crop: int = 0,
    ) -> None:
        folder = files[0].parent if files else Path(".")
        super().__init__(
            folder,
            load_size=load_size,
            crop_size=crop_size,
            flip=flip,
            train=train,
            files=files,
            center_crop=center_crop,
        )
        self.labels = torch.from_numpy(labels.astype(np.float32))  # (N, n_domains)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index = key[0] if isinstance(key, tuple) else key
        return {**super().__getitem__(key), "label": self.labels[index]}


def build_domain_dataset(cfg: Any, domains: list[str], split: str) -> DomainDataset | None:
    """The ``split`` of the config's data over ``domains``; None when the data has none."""
    root = Path(cfg.data)
    files: list[Path] = []
    rows: list[list[int]] = []
    if cfg.attributes is not None:
        if split != "train":
            return None
        names, entries = read_attributes(Path(cfg.attributes))
        columns = [names.index(d) for d in domains]
        for name, values in entries:
            path = root / name
            if not path.is_file():
                raise DataError(f"{path}: listed in {cfg.attributes} but not found")
            files.append(path)
            rows.append([values[c] for c in columns])
    else:
        folder = split_folder(root, split)
        if folder is None:
            return None
        for k, domain in enumerate(domains):
            found = list_images(folder / domain)
            files += found
            rows += [[int(j == k) for j in range(len(domains))]] * len(found)
    width = len(domains)
    if getattr(cfg, "data2", None) is not None:  # the mask vector (Sec. 3.2): [c_1, c_2, m]
        if split != "train":
            return None
        second = cfg.second_domains
        rows = [r + [0] * len(second) + [1, 0] for r in rows]
        folder = split_folder(Path(cfg.data2), "train")
        assert folder is not None
        for k, domain in enumerate(second):
            found = list_images(folder / domain)
            files += found
            rows += [[0] * width + [int(j == k) for j in range(len(second))] + [0, 1]] * len(found)
        width += len(second) + 2
    return DomainDataset(
        files,
        np.array(rows, np.int64).reshape(len(files), width),
        load_size=cfg.load_size,
        crop_size=cfg.crop_size,
        flip=cfg.flip,
        train=split == "train",
        center_crop=cfg.effective_center_crop,
    )
