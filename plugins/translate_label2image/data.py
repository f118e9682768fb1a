"""Label map + photo pairs, read in the paired layouts of ``translate.data.paired``.

Side-by-side ``A|B`` files or ``A/`` and ``B/`` folders; ``--direction`` says which side is the
label map (facades: ``b2a``, the map is on the right). Label maps are decoded in their own
mode (index PNGs stay class ids) and parsed to class ids before augmentation; the geometry is
shared, with nearest-neighbour resizing for the ids (never blending two classes into a third).

Items: ``{"input": (L, S, S) one-hot (+ instance edges) in {0, 1}, "target": (3, S, S) in
[-1, 1], "labels": (S, S) int64 ids (-1: don't care), "path": str}``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from translate.data import transforms
from translate.data.images import decode_image, to_rgb
from translate.data.paired import find_pairs, index_seed
from translate.data.palette import INDEX_MODES, instance_edges, label_ids, palette_array
from translate.errors import ConfigError, DataError
from translate_label2image.config import Label2ImageConfig

log = logging.getLogger("translate.label2image")

#: Label maps with a side below this are refused (nothing sensible to render).
MIN_SIDE = 8
#: Palette estimation reads at most this many training label maps (evenly spaced).
ESTIMATE_MAX_MAPS = 400


def open_image(path: Path) -> Image.Image:
    """Decode ``path`` in its own mode with the shared decoder (upright; a bomb, truncated
    or non-image file is one ``DataError``); RGBA and transparent palettes composited on white."""
    im = decode_image(path)
    if im.mode == "RGBA" or (im.mode == "P" and "transparency" in im.info):
        return to_rgb(im)
    if im.mode not in INDEX_MODES and im.mode != "RGB":
        return to_rgb(im)
    return im


def split_pair(
    a_path: Path, b_path: Path | None, direction: str
) -> tuple[Image.Image, Image.Image]:
    """(label map, photo) of one pair; the photo as RGB, the label map in its own mode."""
    if b_path is None:
        ab = open_image(a_path)
        w, h = ab.size
        a, b = ab.crop((0, 0, w // 2, h)), ab.crop((w // 2, 0, w, h))
    else:
        a, b = open_image(a_path), open_image(b_path)
    label, photo = (b, a) if direction == "b2a" else (a, b)
    return label, photo.convert("RGB")


def label_sources(
    folder: Path, direction: str, *, limit: int = 0
) -> Iterator[tuple[Path, Image.Image]]:
    """(file, label map) of the pairs in ``folder``, decoded one at a time (palette
    estimation, format detection); ``limit > 0``: at most that many, evenly spaced."""
    pairs = find_pairs(folder)
    if 0 < limit < len(pairs):
        pairs = pairs[:: -(-len(pairs) // limit)]
    for a_path, b_path in pairs:
        label, _ = split_pair(a_path, b_path, direction)
        yield (b_path if (b_path is not None and direction == "b2a") else a_path), label


def check_label_maps(cfg: Any) -> None:
    """Parse every label map of the training and validation splits with ``cfg``'s final
    palette, before training: a colour outside it (or an id beyond the classes) is one
    ``DataError`` naming the file and the colour when the dataset is scanned, not a failure
    mid-training (palette estimation reads at most 400 maps; a --palette reads none)."""
    from translate.data.paired import split_folder

    palette = palette_array(cfg.palette)
    for split in ("train", "val"):
        folder = split_folder(cfg.data, split)
        if folder is None:
            continue
        for path, label in label_sources(folder, cfg.direction):
            label_ids(
                label, palette=palette, num_classes=cfg.num_classes,
                tolerance=cfg.colour_tolerance, max_unknown=cfg.max_unknown,
                dont_care=cfg.dont_care, instances=cfg.instance_edges, source=str(path),
            )  # fmt: skip


def label_pipeline(*, load_size: int, crop_size: int, flip: bool, train: bool) -> A.Compose:
    """Resize (bilinear photo, nearest ids), random crop, flip; one geometry for all."""
    steps = transforms.geometry_steps(
        load_size=load_size, crop_size=crop_size, flip=flip, train=train
    )
    return A.Compose(steps, additional_targets={"instance": "mask"}, seed=0)


def encode(ids: np.ndarray, num_classes: int, edges: np.ndarray | None) -> torch.Tensor:
    """(H, W) ids (-1: no class) -> (num_classes [+ 1], H, W) float one-hot [+ edges]."""
    t = torch.from_numpy(np.ascontiguousarray(ids))
    onehot = torch.nn.functional.one_hot(t.clamp(min=0), num_classes).permute(2, 0, 1).float()
    onehot = onehot * (t >= 0).float()  # don't-care pixels: all zeros
    if edges is not None:
        onehot = torch.cat([onehot, torch.from_numpy(np.ascontiguousarray(edges))[None]])
    return onehot


class LabelDataset(Dataset[dict[str, Any]]):
    """Label map -> photo pairs; indexable by ``i`` or ``(i, seed)`` like ``PairedDataset``."""

    def __init__(
        self,
        folder: Path,
        cfg: Any,
        *,
        train: bool = True,
    ):
        self.folder = folder
        self.cfg = cfg
        self.pairs = find_pairs(folder)
        self.palette = palette_array(cfg.palette)
        self.pipeline = label_pipeline(
            load_size=cfg.load_size, crop_size=cfg.crop_size, flip=cfg.flip, train=train
        )

    def __len__(self) -> int:
        return len(self.pairs)

    def source(self, index: int) -> Path:
        a_path, b_path = self.pairs[index]
        return b_path if (b_path is not None and self.cfg.direction == "b2a") else a_path

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, index_seed(key))
        cfg = self.cfg
        label, photo = split_pair(*self.pairs[index], cfg.direction)
        if label.size != photo.size:
            raise DataError(f"{self.source(index)}: label map and photo differ in size")
        ids, instance = label_ids(
            label,
            palette=self.palette,
            num_classes=cfg.num_classes,
            tolerance=cfg.colour_tolerance,
            max_unknown=cfg.max_unknown,
            dont_care=cfg.dont_care,
            instances=cfg.instance_edges,
            source=str(self.source(index)),
        )
        self.pipeline.set_random_seed(seed)
        extra = {"instance": instance.astype(np.int32)} if instance is not None else {}
        out = self.pipeline(image=np.asarray(photo), mask=ids.astype(np.int32), **extra)
        ids = out["mask"].astype(np.int64)
        edges = instance_edges(out["instance"]) if instance is not None else None
        return {
            "input": encode(ids, cfg.num_classes, edges),
            "target": transforms.to_tensor(out["image"]),
            "labels": torch.from_numpy(ids),
            "path": str(self.source(index)),
        }


# ---------------------------------------------------------------------------- finalize
def finalize_labels(cfg: Label2ImageConfig) -> Label2ImageConfig:
    """Resolve the label format, the palette and the class count from ``--palette`` or
    the training label maps (once, before training; a resumed run keeps its own)."""
    from translate.data import palette as pal
    from translate.data.paired import split_folder

    if cfg.vgg_weights is not None and not Path(cfg.vgg_weights).is_file():
        # checked here, not in the config: `run` must load a checkpoint without the file
        raise ConfigError(f"vgg_weights: {cfg.vgg_weights}: no such file")
    if cfg.palette:
        colours = pal.resolve_palette(cfg.palette)
        fmt = "index" if cfg.labels == "index" else "colour"
        if cfg.labels == "auto":
            fmt = detect_format(cfg)
    else:
        fmt = cfg.labels if cfg.labels != "auto" else detect_format(cfg)
        folder = split_folder(cfg.data, "train")
        assert folder is not None  # split_folder returns the root for "train"
        if fmt == "colour":
            import numpy as np

            sources = label_sources(folder, cfg.direction, limit=ESTIMATE_MAX_MAPS)
            maps = (np.asarray(im.convert("RGB")) for _, im in sources)
            try:
                colours = pal.estimate_palette(maps, num_classes=cfg.num_classes)
            except ValueError as exc:
                raise DataError(f"{folder}: cannot estimate the label colours: {exc}") from exc
            log.info("estimated %d label colours: %s", len(colours), colours)
        else:
            n = cfg.num_classes or largest_id(cfg, folder) + 1
            colours = pal.default_palette(n)
    n = cfg.num_classes or len(colours)
    if fmt == "colour" and n != len(colours):
        raise ConfigError(f"num_classes: {n} differs from the palette's {len(colours)} colours")
    if len(colours) < n:
        colours = colours + pal.default_palette(n)[len(colours) :]
    if cfg.dont_care >= n and fmt == "colour":
        raise ConfigError(f"dont_care: {cfg.dont_care} is not one of the {n} palette classes")
    final = dataclasses.replace(
        cfg, labels=fmt, palette=tuple(pal.to_hex(c) for c in colours[:n]), num_classes=n
    )
    check_label_maps(final)  # every map, now: not a colour found mid-training
    return final


def detect_format(cfg: Label2ImageConfig) -> str:
    from translate.data.paired import split_folder
    from translate.data.palette import is_index_image

    folder = split_folder(cfg.data, "train")
    assert folder is not None
    _, first = next(label_sources(folder, cfg.direction))
    return "index" if is_index_image(first) else "colour"


def largest_id(cfg: Label2ImageConfig, folder: Path) -> int:
    import numpy as np

    from translate.data.palette import INSTANCE_DIVISOR, is_index_image

    largest = 0
    for path, im in label_sources(folder, cfg.direction):
        if not is_index_image(im):
            raise DataError(f"{path}: a {im.mode} image among index label maps")
        ids = np.asarray(im).astype(np.int64)
        if cfg.instance_edges:
            ids = np.where(ids >= INSTANCE_DIVISOR, ids // INSTANCE_DIVISOR, ids)
        if cfg.dont_care >= 0:
            ids = ids[ids != cfg.dont_care]
        largest = max(largest, int(ids.max(initial=0)))
    return largest


def parse_label_maps(images: list[Image.Image], cfg: Label2ImageConfig) -> list[Any]:
    """PIL label maps -> [(ids (H, W) int64, -1 don't care; instance ids or None)]."""
    from translate.data.palette import label_ids, palette_array

    palette = palette_array(cfg.palette)
    parsed = []
    for i, image in enumerate(images):
        source = getattr(image, "filename", "") or (
            "label map" if len(images) == 1 else f"label map {i + 1}"
        )
        if min(image.size) < MIN_SIDE:
            raise DataError(
                f"{source}: {image.size[0]}x{image.size[1]} is too small to render; "
                f"label maps need at least {MIN_SIDE} pixels per side"
            )
        parsed.append(
            label_ids(
                image,
                palette=palette,
                num_classes=cfg.classes,
                tolerance=cfg.colour_tolerance,
                max_unknown=cfg.max_unknown,
                dont_care=cfg.dont_care,
                instances=cfg.instance_edges,
                source=str(source),
            )
        )
    return parsed
