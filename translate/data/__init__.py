"""Datasets (paired, unpaired, single, labels), augmentation pipelines and the image pool.

``build_dataset(kind, cfg, split)`` is what ``PluginBase.build_dataset`` calls. It returns
None for a split that the data folder does not have (e.g. no ``val/``).
"""

from __future__ import annotations

from typing import Any


def build_dataset(kind: str, cfg: Any, split: str) -> Any:
    """Dataset of ``kind`` for ``split`` from the standard data fields of ``cfg``."""
    if kind == "paired":
        from translate.data.paired import PairedDataset, split_folder

        folder = split_folder(cfg.data, split)
        if folder is None:
            return None
        return PairedDataset(
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
    raise NotImplementedError(
        f"no default dataset for kind {kind!r}; the plugin must implement build_dataset"
    )
