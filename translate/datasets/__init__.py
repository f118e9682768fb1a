"""Data to train on: ``translate datasets list|fetch|demo``.

``catalog``: the standard datasets and their official release locations; ``download``: an
HTTP download with resume, progress and a checksum, into the user cache, then extracted;
``demo``: a small synthetic paired set written offline in about a second (the quick start's).
"""

from __future__ import annotations

from translate.datasets.catalog import CATALOG, DatasetEntry, find_dataset
from translate.datasets.demo import write_demo
from translate.datasets.download import datasets_dir, download, fetch

__all__ = [
    "CATALOG",
    "DatasetEntry",
    "datasets_dir",
    "download",
    "fetch",
    "find_dataset",
    "write_demo",
]
