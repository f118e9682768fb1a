"""Captioned images: a folder of images with same-stem ``.txt`` captions, or precomputed
sentence embeddings from a file; and the word vocabulary built from the captions.

Layout (``root/<split>/`` when it exists, else ``root`` for ``train``, as every dataset kind):
``bird_001.png`` beside ``bird_001.txt`` holding one caption per line (several per image, the
layout of the CUB and COCO caption releases). Each item draws one of its image's captions
(seeded per sample, so a resumed run sees the same ones), as StackGAN's training does
(Zhang et al. 2017, Sec. 4: one of the ten captions of an image per iteration).

Precomputed embeddings (the original release's char-CNN-RNN vectors, converted): a ``.npz``
file with ``embeddings`` (N, K, E) float, K captions of N images, and ``filenames`` (N,) the
images' stems; an image's captions then come from the file and no ``.txt`` is needed.

Items: ``{"image": (3, S, S) in [-1, 1], "tokens": (L,) int64 word indices (0 pads),
"length": int, "caption": str}`` plus ``"embedding": (E,) float32`` with precomputed
embeddings.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from translate.data.images import list_images
from translate.data.paired import index_seed
from translate.data.single import SingleDataset
from translate.errors import DataError

__all__ = [
    "PAD",
    "UNKNOWN",
    "CaptionedImages",
    "build_vocabulary",
    "caption_batches",
    "encode_token_batch",
    "encode_tokens",
    "read_captions",
    "tokenize",
]

PAD, UNKNOWN = "<pad>", "<unk>"  # indices 0 and 1 of every vocabulary
_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case words (letters and digits); punctuation is dropped."""
    return _WORD.findall(text.lower())


def read_captions(image: Path) -> list[str]:
    """The non-empty lines of ``image``'s same-stem ``.txt``; one line naming it otherwise."""
    path = image.with_suffix(".txt")
    if not path.is_file():
        raise DataError(f"{image}: no caption file {path.name} beside it (one caption a line)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read captions ({exc.__class__.__name__})") from None
    captions = [line.strip() for line in lines if tokenize(line)]
    if not captions:
        raise DataError(f"{path}: holds no caption (one caption a line)")
    return captions


def build_vocabulary(captions: Iterable[str], *, min_count: int = 1) -> list[str]:
    """The words of ``captions`` seen at least ``min_count`` times, most frequent first
    (ties by name), after ``PAD`` and ``UNKNOWN``."""
    counts = Counter(w for c in captions for w in tokenize(c))
    words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    return [PAD, UNKNOWN, *words]


def encode_tokens(caption: str, vocabulary: Sequence[str], max_words: int) -> tuple[Tensor, int]:
    """(max_words,) int64 word indices (unknown words -> 1, padding 0) and the length (at
    least 1: an empty caption is one unknown word)."""
    index = {w: i for i, w in enumerate(vocabulary)}
    ids = [index.get(w, 1) for w in tokenize(caption)][:max_words] or [1]
    tokens = torch.zeros(max_words, dtype=torch.long)
    tokens[: len(ids)] = torch.tensor(ids)
    return tokens, len(ids)


def encode_token_batch(
    captions: Sequence[str], vocabulary: Sequence[str], max_words: int
) -> tuple[Tensor, Tensor]:
    """``encode_tokens`` of each caption: tokens (B, max_words) int64 and lengths (B,) int64,
    what a text encoder (``GRUTextEncoder``, or its ONNX graph) takes."""
    pairs = [encode_tokens(c, vocabulary, max_words) for c in captions]
    return torch.stack([t for t, _ in pairs]), torch.tensor([n for _, n in pairs])


def load_embeddings(path: Path) -> dict[str, Any]:
    """``{stem: (K, E) float32 array}`` from a ``.npz`` of ``embeddings`` and ``filenames``."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            emb, names = data["embeddings"], data["filenames"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"{path}: expected a .npz with 'embeddings' (N, K, E) and 'filenames' (N,) ({exc})"
        ) from None
    if emb.ndim != 3 or len(names) != len(emb) or not np.isfinite(emb).all():
        raise DataError(
            f"{path}: 'embeddings' must be finite (N, K, E) with one 'filenames' entry per image; "
            f"got {emb.shape} and {len(names)} names"
        )
    return {Path(str(n)).stem: emb[i].astype("float32") for i, n in enumerate(names)}


class CaptionedImages(Dataset[dict[str, Any]]):
    """Images of ``folder`` with their captions (``.txt``) or precomputed embeddings."""

    def __init__(
        self,
        folder: Path,
        *,
        size: int,
        vocabulary: Sequence[str],
        max_words: int = 18,
        flip: bool = True,
        train: bool = True,
        embeddings: Path | None = None,
    ) -> None:
        self.images = SingleDataset(
            folder, load_size=size, crop_size=size, flip=flip, train=train, files=None
        )
        self.vocabulary, self.max_words = list(vocabulary), max_words
        files = self.images.files
        self.embeddings: list[Any] | None = None
        if embeddings is not None:
            table = load_embeddings(Path(embeddings))
            missing = [f for f in files if f.stem not in table]
            if missing:
                raise DataError(f"{missing[0]}: no embeddings for it in {embeddings}")
            self.embeddings = [table[f.stem] for f in files]
            # the caption text, when given, is for people (sample grids); the vectors condition
            self.captions = [
                read_captions(f) if f.with_suffix(".txt").is_file() else [f.stem] for f in files
            ]
        else:
            self.captions = [read_captions(f) for f in files]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, index_seed(key))
        item = self.images[(index, seed)]
        n = len(self.captions[index]) if self.embeddings is None else len(self.embeddings[index])
        k = random.Random(seed).randrange(n)
        caption = self.captions[index][k % len(self.captions[index])]
        tokens, length = encode_tokens(caption, self.vocabulary, self.max_words)
        out = {"image": item["image"], "tokens": tokens, "length": length, "caption": caption}
        if self.embeddings is not None:
            out["embedding"] = torch.from_numpy(self.embeddings[index][k].copy())
        return out


def all_captions(folder: Path) -> list[str]:
    """Every caption of the images of ``folder`` (what the vocabulary is built from)."""
    return [c for f in list_images(folder) for c in read_captions(f)]


def caption_batches(
    data: CaptionedImages, batch_size: int, *, seed: int = 0
) -> Callable[[int], dict[str, Tensor]]:
    """step -> ``batch_size`` items of ``data`` drawn at random (a generator seeded with
    ``seed``, drawn in step order), their images, tokens and lengths stacked: the batches of
    DAMSM pretraining (``translate.text.damsm.pretrain_text``)."""
    gen = torch.Generator().manual_seed(seed)

    def batches(step: int) -> dict[str, Tensor]:
        rows = torch.randint(0, len(data), (batch_size,), generator=gen).tolist()
        items = [data[(i, step * 7919 + i)] for i in rows]
        keys = ("image", "tokens", "length")
        return {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in keys}

    return batches
