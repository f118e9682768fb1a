"""Datasets (paired, unpaired, single, labels), augmentation pipelines and the image pool.

``build_dataset(kind, cfg, split)`` is what ``PluginBase.build_dataset`` calls: every kind has a
default, built from the config fields ``translate.data.configs.DATA_FIELDS`` lists. It returns
None for a split that the data folder does not have (e.g. no ``val/``). Items (dicts, collated
into batches of the same keys):

- ``paired``: ``input``, ``target`` (3, S, S) in [-1, 1], ``path``;
- ``labels``: the same, the label map (``input``) resized nearest-neighbour;
- ``unpaired``: ``A``, ``B`` (3, S, S) in [-1, 1], ``path_a``, ``path_b``;
- ``single``: ``image`` (3, S, S) in [-1, 1], ``path``.

Datasets are indexed with ``(index, augmentation_seed)`` by the training sampler (and with a
plain ``index`` elsewhere).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def build_dataset(kind: str, cfg: Any, split: str) -> Any:
    """Dataset of ``kind`` for ``split`` from the standard data fields of ``cfg``."""
    if kind in ("paired", "labels"):
        from translate.data.paired import LabelMapDataset, PairedDataset, split_folder

        folder = split_folder(Path(cfg.data), split)
        if folder is None:
            return None
        dataset = LabelMapDataset if kind == "labels" else PairedDataset
        return dataset(
            folder,
            direction=cfg.direction,
            load_size=cfg.load_size,
            crop_size=cfg.crop_size,
            flip=cfg.flip,
            train=split == "train",
        )
    if kind == "unpaired":
        from translate.data.unpaired import build_unpaired

        return build_unpaired(cfg, split)
    if kind == "single":
        from translate.data.single import build_single

        return build_single(cfg, split)
    raise ValueError(f"unknown dataset kind {kind!r}")
