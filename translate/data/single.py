"""One folder of images, each item a single augmented image: the ``single`` dataset kind.

For plugins that derive both their input and their target from one image (colourisation from
a grayscale copy, denoising from a noised copy, ...). Layout, for ``root`` and a split:
``root/<split>/`` when it exists, else ``root`` itself for ``train`` (no ``val`` then). Every
file's header is checked up front. Augmentation is the paired pipeline's geometry (optionally a
centred square first, ``center_crop``; then resize to
``load_size``, random ``crop_size`` crop, flip; evaluation resizes to ``crop_size``), seeded per
sample so a resumed run sees the same crops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from translate.data import transforms
from translate.data.images import image_size, list_images, load_rgb, to_array
from translate.data.paired import index_seed, split_folder


class SingleDataset(Dataset[dict[str, Any]]):
    """Items: ``{"image": (3, S, S) in [-1, 1], "path": str}``.

    Indexable by ``i`` or by ``(i, seed)`` (from ``ResumableSampler``) for reproducible
    augmentation.
    """

    def __init__(
        self,
        folder: Path,
        *,
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        train: bool = True,
        files: list[Path] | None = None,
        center_crop: int = 0,
    ):
        self.folder = Path(folder)
        self.center_crop = center_crop  # a centred square first (transforms.center_square)
        self.files = list_images(self.folder) if files is None else list(files)
        for path in self.files:  # fail on a non-image before training starts
            image_size(path)
        self.pipeline = transforms.paired_pipeline(
            load_size=load_size, crop_size=crop_size, flip=flip, train=train, extra_images=0
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, index_seed(key))
        path = self.files[index]
        array = transforms.center_square(to_array(load_rgb(path)), self.center_crop)
        (image,) = transforms.apply(self.pipeline, seed, array)
        return {"image": transforms.to_tensor(image), "path": str(path)}


def build_single(cfg: Any, split: str) -> SingleDataset | None:
    """The dataset of ``split`` from a config's ``data``, ``load_size``, ``crop_size`` and
    ``flip`` (``SingleDataConfig``); None when the folder has no such split."""
    folder = split_folder(Path(cfg.data), split)
    if folder is None:
        return None
    return SingleDataset(
        folder,
        load_size=cfg.load_size,
        crop_size=cfg.crop_size,
        flip=cfg.flip,
        train=split == "train",
    )


def build_generation(cfg: Any, split: str) -> SingleDataset | None:
    """A generating plugin's images of ``split`` (dcgan, stylegan2): ``cfg.data`` resized to
    ``cfg.image_size`` squares, flipped when ``cfg.flip``; None when there is no such split."""
    folder = split_folder(Path(cfg.data), split)
    if folder is None:
        return None
    size = cfg.image_size
    return SingleDataset(
        folder, load_size=size, crop_size=size, flip=cfg.flip, train=split == "train"
    )
