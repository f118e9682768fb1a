"""The core's text conditioning (``translate.text``): captioned-image data, the bidirectional
GRU encoder, DAMSM's losses by hand and the shapes rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from translate.errors import DataError
from translate.text.captions import (
    CaptionedImages,
    all_captions,
    build_vocabulary,
    encode_tokens,
    tokenize,
)
from translate.text.damsm import retrieval_accuracy, sentence_loss, word_scores
from translate.text.encoder import GRUTextEncoder, encode_prompts
from translate.text.synthetic import make_captioned_shapes, read_shape


def test_vocabulary_and_tokens() -> None:
    assert tokenize("A red, red Circle!") == ["a", "red", "red", "circle"]
    vocab = build_vocabulary(["a red circle", "a blue circle"])
    assert vocab[:4] == ["<pad>", "<unk>", "a", "circle"]  # most frequent first
    tokens, n = encode_tokens("a purple circle", vocab, 5)
    assert n == 3 and tokens.tolist() == [2, 1, 3, 0, 0]  # unknown word -> 1, padding 0


def test_captioned_folder(tmp_path) -> None:
    made = make_captioned_shapes(tmp_path, 4, size=16)
    vocab = build_vocabulary(all_captions(tmp_path))
    data = CaptionedImages(tmp_path, size=16, vocabulary=vocab, max_words=8, train=False)
    item = data[(1, 7)]
    assert item["image"].shape == (3, 16, 16) and item["tokens"].shape == (8,)
    colour, shape = made[1]
    assert colour in item["caption"] and shape in item["caption"]
    assert data[(1, 7)]["caption"] == item["caption"]  # seeded: a resume sees the same caption


def test_missing_caption_is_one_line(tmp_path) -> None:
    make_captioned_shapes(tmp_path, 2, size=16)
    (tmp_path / "shape_0001.txt").unlink()
    with pytest.raises(DataError, match=r"shape_0001.png: no caption file shape_0001.txt"):
        CaptionedImages(tmp_path, size=16, vocabulary=["<pad>", "<unk>"])


def test_precomputed_embeddings(tmp_path) -> None:
    make_captioned_shapes(tmp_path, 2, size=16)
    emb = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    np.savez(tmp_path / "emb.npz", embeddings=emb, filenames=np.array(["shape_0000", "shape_0001"]))
    data = CaptionedImages(
        tmp_path, size=16, vocabulary=["<pad>", "<unk>"], embeddings=tmp_path / "emb.npz"
    )
    vec = data[(1, 5)]["embedding"]
    assert any(torch.equal(vec, torch.from_numpy(emb[1, k])) for k in range(3))
    np.savez(tmp_path / "bad.npz", embeddings=emb[:1], filenames=np.array(["shape_0000"]))
    with pytest.raises(DataError, match=r"shape_0001\.png: no embeddings for it"):
        CaptionedImages(tmp_path, size=16, vocabulary=[], embeddings=tmp_path / "bad.npz")


def test_gru_encoder_reads_each_caption_within_its_length() -> None:
    """Padding never changes a caption's features; the backward direction is a GRU over the
    caption reversed (planted bug: reversing the padded sequence -> the pads reach it)."""
    torch.manual_seed(0)
    enc = GRUTextEncoder(vocab_size=10, dim=8, word_dim=6).eval()
    short = torch.tensor([[3, 4, 5, 0, 0, 0]])
    words, sentence, mask = enc(short, torch.tensor([3]))
    words2, sentence2, _ = enc(short[:, :3], torch.tensor([3]))
    assert torch.allclose(sentence, sentence2, atol=1e-6)
    assert torch.allclose(words[:, :3], words2, atol=1e-6) and words[:, 3:].abs().max() == 0
    assert mask.tolist() == [[True, True, True, False, False, False]]
    x = enc.embed(torch.tensor([[5, 4, 3]]))
    back, h = enc.backward_rnn(x)
    assert torch.allclose(sentence[0, 4:], h[0, 0], atol=1e-6)
    assert torch.allclose(words[0, :3, 4:], back[0].flip(0), atol=1e-6)
    prompt = encode_prompts(enc, ["<pad>", "<unk>", "", "a", "b", "c"], ["a b c"], max_words=6)[0]
    assert torch.allclose(prompt, sentence, atol=1e-6)


def test_sentence_loss_by_hand() -> None:
    """Two pairs: scores gamma3 * cos; the loss is both directions' cross-entropy."""
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    v = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    c = 1 / math.sqrt(2)
    cos = [[c, 0.0], [c, 1.0]]  # cos[i][j]: caption i, image j
    g = 10.0
    rows = -(g * cos[0][0] - math.log(math.exp(g * cos[0][0]) + math.exp(g * cos[0][1])))
    rows += -(g * cos[1][1] - math.log(math.exp(g * cos[1][0]) + math.exp(g * cos[1][1])))
    cols = -(g * cos[0][0] - math.log(math.exp(g * cos[0][0]) + math.exp(g * cos[1][0])))
    cols += -(g * cos[1][1] - math.log(math.exp(g * cos[0][1]) + math.exp(g * cos[1][1])))
    assert float(sentence_loss(s, v, g)) == pytest.approx((rows + cols) / 2, rel=1e-5)


def test_word_scores_by_hand() -> None:
    """One region: every word's context is that region, so R = log(sum exp(g2 cos))/g2 over the
    caption's words only (the masked word is left out)."""
    words = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [9.0, 9.0]]])
    mask = torch.tensor([[True, True, False]])
    region = torch.tensor([[[1.0, 0.0]]])
    cos = [1.0, 1 / math.sqrt(2)]
    expected = math.log(sum(math.exp(5 * c) for c in cos)) / 5
    assert float(word_scores(words, mask, region)[0, 0]) == pytest.approx(expected, rel=1e-5)


def test_retrieval_accuracy_by_hand() -> None:
    image = torch.eye(16)
    sentence = torch.eye(16)
    sentence[3] = image[5]  # caption 3 finds image 5: 15 of 16
    assert retrieval_accuracy(sentence, image) == pytest.approx(15 / 16)
    assert retrieval_accuracy(F.normalize(torch.ones(16, 16)), image) <= 1 / 16


def test_shape_rule_reads_the_drawings(tmp_path) -> None:
    from PIL import Image

    made = make_captioned_shapes(tmp_path, 32, size=32, seed=3)
    got = [read_shape(Image.open(tmp_path / f"shape_{i:04d}.png")) for i in range(32)]
    assert got == made
    assert read_shape(Image.new("RGB", (32, 32), "white")) == ("none", "none")


def test_read_shape_ignores_stray_specks(tmp_path) -> None:
    """A generated square with a few stray pixels away from it is still a square (the specks
    would stretch the bounding box: fill 0.25, a cross, without the largest component)."""
    import random

    from translate.text.synthetic import draw_shape

    image = draw_shape("blue", "square", 32, random.Random(0))  # rows 7-24, columns 13-30
    for xy in ((0, 0), (31, 31), (0, 31), (31, 0)):
        image.putpixel(xy, (255, 0, 255))  # magenta: far from white, away from the square
    assert read_shape(image) == ("blue", "square")
