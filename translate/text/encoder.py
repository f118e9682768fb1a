"""Text encoders behind one interface: a caption batch -> (sentence, words, mask).

* ``GRUTextEncoder`` -- the built-in encoder: a word embedding learned over the captions'
  vocabulary and a bidirectional GRU (AttnGAN's text encoder, Xu et al. 2018, Sec. 3.3, with a
  GRU for its LSTM): each word's feature is the two directions' hidden states concatenated,
  the sentence's the two final states. The backward direction reads each caption reversed
  within its own length (no packing), so padding never reaches a caption's features and the
  network exports to ONNX as one graph.
* precomputed embeddings (the original StackGAN release's char-CNN-RNN vectors): the batch
  carries the sentence vector; its "words" are that one vector.
* ``translate.text.clip.CLIPTextEncoder`` -- a CLIP text tower from a local folder (the
  ``clip`` extra); it reads the batch's caption texts and tokenizes them itself.
* ``ImageEncoder`` -- a small CNN giving region features and a global feature in the same
  space, DAMSM's image side (``translate.text.damsm``), used only to pretrain the text encoder.

``text_features`` is the one call a text-conditioned plugin makes; ``encode_prompts`` turns
user prompts into the sentence vectors a generator takes (``translate sample --prompt``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from translate.text.captions import encode_token_batch

__all__ = [
    "GRUTextEncoder",
    "ImageEncoder",
    "PromptEncoder",
    "encode_prompts",
    "pack_text",
    "text_features",
    "unpack_text",
]


class GRUTextEncoder(nn.Module):
    """tokens (B, L) int64 (0 pads) and lengths (B,) -> words (B, L, D), sentence (B, D),
    mask (B, L) bool (True on words), D = ``dim`` (two directions of ``dim // 2``)."""

    def __init__(self, *, vocab_size: int, dim: int = 256, word_dim: int = 300) -> None:
        super().__init__()
        if dim % 2 or dim < 2:
            raise ValueError(f"text_dim: must be even (two GRU directions), got {dim}")
        self.dim = dim
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.forward_rnn = nn.GRU(word_dim, dim // 2, batch_first=True)
        self.backward_rnn = nn.GRU(word_dim, dim // 2, batch_first=True)

    def forward(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, length = tokens.shape
        steps = torch.arange(length, device=tokens.device).expand(b, length)
        lengths = lengths.to(tokens.device).long().clamp(1, length).view(b, 1)
        mask = steps < lengths  # (B, L)
        # position t of the reversed caption reads word len-1-t (padding stays in place)
        rev = torch.where(mask, lengths - 1 - steps, steps)
        x = self.embed(tokens)  # (B, L, W)
        fwd, _ = self.forward_rnn(x)
        bwd_rev, _ = self.backward_rnn(torch.gather(x, 1, rev[..., None].expand_as(x)))
        bwd = torch.gather(bwd_rev, 1, rev[..., None].expand_as(bwd_rev))
        words = torch.cat([fwd, bwd], 2) * mask[..., None]  # (B, L, D)
        last = (lengths - 1)[..., None].expand(b, 1, fwd.shape[2])
        # each direction's state after its caption's last word: fwd at len-1, bwd at word 0
        sentence = torch.cat([torch.gather(fwd, 1, last)[:, 0], bwd[:, 0]], 1)
        return words, sentence, mask


class ImageEncoder(nn.Module):
    """images (B, 3, S, S) in [-1, 1] -> regions (B, R, D) (a (S/4)^2 grid) and a global
    feature (B, D): DAMSM's image encoder at toy scale (AttnGAN uses Inception-v3's mixed_6e
    regions and its last pooled feature, Sec. 3.3)."""

    def __init__(self, *, dim: int = 256, base_channels: int = 32) -> None:
        super().__init__()
        c = base_channels
        self.trunk = nn.Sequential(
            nn.Conv2d(3, c, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 2 * c, 4, 2, 1),
            nn.LeakyReLU(0.2),
        )
        self.regions = nn.Conv2d(2 * c, dim, 1)
        self.glob = nn.Linear(2 * c, dim)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(images)
        regions = self.regions(h).flatten(2).transpose(1, 2)  # (B, R, D)
        return regions, self.glob(h.mean((2, 3)))


def text_features(
    encoder: nn.Module | None, batch: Mapping[str, Any], device: torch.device | str | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """(sentence (B, D), words (B, L, D), mask (B, L)) of a caption batch: the encoder's on the
    batch's ``tokens``/``length`` (``GRUTextEncoder``) or ``caption`` texts (an encoder that
    ``reads_text``: ``translate.text.clip``), or the batch's precomputed ``embedding`` (encoder
    None) as a sentence of one word."""
    if encoder is None:
        sentence = batch["embedding"].float()
        if device is not None:
            sentence = sentence.to(device)
        mask = torch.ones(sentence.shape[0], 1, dtype=torch.bool, device=sentence.device)
        return sentence, sentence[:, None], mask
    if getattr(encoder, "reads_text", False):
        words, sentence, mask = encoder.encode_text(list(batch["caption"]), device)
        return sentence, words, mask
    dev = device if device is not None else next(encoder.parameters()).device
    words, sentence, mask = encoder(batch["tokens"].to(dev), torch.as_tensor(batch["length"]))
    return sentence, words, mask


def encode_prompts(
    encoder: nn.Module, vocabulary: Sequence[str], prompts: Sequence[str], *, max_words: int
) -> tuple[Tensor, Tensor, Tensor]:
    """``text_features`` of free-text prompts (words outside the vocabulary are unknown;
    an encoder that ``reads_text`` tokenizes them itself)."""
    if getattr(encoder, "reads_text", False):
        return text_features(encoder, {"caption": list(prompts)})
    tokens, lengths = encode_token_batch(prompts, vocabulary, max_words)
    return text_features(encoder, {"tokens": tokens, "length": lengths})


def pack_text(sentence: Tensor, words: Tensor, mask: Tensor) -> Tensor:
    """One (B, D + L * D + L) vector per caption: sentence, words, mask (1.0 on words), the
    single input a generator that attends to words takes (an ONNX input of its own)."""
    b = sentence.shape[0]
    return torch.cat([sentence, words.reshape(b, -1), mask.to(sentence.dtype)], 1)


def unpack_text(packed: Tensor, dim: int) -> tuple[Tensor, Tensor, Tensor]:
    """``pack_text``'s inverse: (sentence (B, D), words (B, L, D), mask (B, L) bool)."""
    b, n = packed.shape
    length = (n - dim) // (dim + 1)
    words = packed[:, dim : dim + length * dim].reshape(b, length, dim)
    return packed[:, :dim], words, packed[:, dim + length * dim :] > 0.5


class PromptEncoder(nn.Module):
    """tokens (B, L) int64 and lengths (B,) int64 -> the generator's text vector (B, T): the
    sentence vector, or with ``packed`` ``pack_text`` of sentence, words and mask (a generator
    that attends to words, GigaGAN's). What ``Plugin.text_encoder`` gives: ``translate sample
    --prompt`` encodes by it (``encode``), and ``translate export`` writes it as its own ONNX
    graph (``translate.loading.text_encoder``) with ``vocabulary`` and ``max_words`` as
    metadata, so a prompt is tokenised without the checkpoint. An encoder that ``reads_text``
    (the CLIP tower: its own tokenizer, weights in the user's folder) encodes prompts but is
    not ``exportable``."""

    def __init__(
        self, encoder: nn.Module, *, vocabulary: Sequence[str], max_words: int, packed: bool
    ) -> None:
        super().__init__()
        self.encoder, self.packed = encoder, packed
        self.vocabulary, self.max_words = list(vocabulary), int(max_words)
        self.exportable = not getattr(encoder, "reads_text", False)

    def _vector(self, words: Tensor, sentence: Tensor, mask: Tensor) -> Tensor:
        return pack_text(sentence, words, mask) if self.packed else sentence

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        return self._vector(*self.encoder(tokens, lengths))

    def encode(self, prompts: Sequence[str]) -> Tensor:
        """The text vectors (B, T) of free-text prompts (unknown words -> ``<unk>``)."""
        sentence, words, mask = encode_prompts(
            self.encoder, self.vocabulary, prompts, max_words=self.max_words
        )
        return self._vector(words, sentence, mask)
