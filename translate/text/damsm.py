"""DAMSM: the image-text matching losses that pretrain a text encoder (AttnGAN, Xu et al.
2018, "AttnGAN: Fine-Grained Text to Image Generation with Attentional Generative Adversarial
Networks", Sec. 3.3), and the caption -> image retrieval accuracy that measures it.

For a batch of M matching (caption, image) pairs, every caption Q is scored against every
image D and the posterior of its own image is maximised, in both directions:

* sentence level (Eq. 10-13): R(Q, D) = cos(sentence, global image feature);
* word level (Eq. 7-13): each word attends over the image's regions (similarities normalised
  over the words first, Eq. 8, then a softmax over regions sharpened by gamma1, Eq. 9), the
  region context c_i is compared with its word by cosine, and
  R(Q, D) = log(sum_i exp(gamma2 * cos(c_i, e_i)))^(1/gamma2) (Eq. 10);

P(D_i | Q_i) = softmax_j(gamma3 * R(Q_i, D_j)) (Eq. 11); the loss is
-log P(D_i | Q_i) - log P(Q_i | D_i) averaged over the batch (Eq. 12-13). AttnGAN's
gamma1, gamma2, gamma3 = 4, 5, 10 (its DAMSM config, ``TRAIN.SMOOTH``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["damsm_loss", "pretrain_text", "retrieval_accuracy", "sentence_loss", "word_loss"]

GAMMA1, GAMMA2, GAMMA3 = 4.0, 5.0, 10.0


def _both_ways(scores: Tensor) -> Tensor:
    """-log P(D_i | Q_i) - log P(Q_i | D_i), mean over i: cross-entropy of rows and columns."""
    target = torch.arange(scores.shape[0], device=scores.device)
    return F.cross_entropy(scores, target) + F.cross_entropy(scores.t(), target)


def sentence_loss(sentence: Tensor, image: Tensor, gamma3: float = GAMMA3) -> Tensor:
    """Sentence-level DAMSM (Eq. 10-13 with R = cosine): (M, D) captions, (M, D) images."""
    scores = gamma3 * F.normalize(sentence, dim=1) @ F.normalize(image, dim=1).t()
    return _both_ways(scores)


def word_scores(
    words: Tensor, mask: Tensor, regions: Tensor, gamma1: float = GAMMA1, gamma2: float = GAMMA2
) -> Tensor:
    """R(Q_i, D_j) (M, M) of word features (M, L, D) (``mask`` (M, L) marks words) against
    region features (M, R, D), Eq. 7-10."""
    s = torch.einsum("ild,jrd->ijlr", words, regions)  # word-region dot products
    s = s.masked_fill(~mask[:, None, :, None], float("-inf")).softmax(2)  # over words, Eq. 8
    alpha = (gamma1 * s).softmax(3)  # over regions, Eq. 9
    context = torch.einsum("ijlr,jrd->ijld", alpha, regions)
    cos = F.cosine_similarity(context, words[:, None], dim=3)  # (M, M, L)
    cos = cos.masked_fill(~mask[:, None, :], float("-inf"))
    return torch.logsumexp(gamma2 * cos, 2) / gamma2  # Eq. 10


def word_loss(words: Tensor, mask: Tensor, regions: Tensor, gamma3: float = GAMMA3) -> Tensor:
    """Word-level DAMSM (Eq. 11-13 over ``word_scores``)."""
    return _both_ways(gamma3 * word_scores(words, mask, regions))


def damsm_loss(
    text: tuple[Tensor, Tensor, Tensor], image: tuple[Tensor, Tensor]
) -> tuple[Tensor, dict[str, float]]:
    """The DAMSM loss L_w + L_s (Eq. 13 with both weights 1, AttnGAN's) of matching pairs:
    ``text`` = (sentence, words, mask), ``image`` = (regions, global)."""
    sentence, words, mask = text
    regions, glob = image
    lw, ls = word_loss(words, mask, regions), sentence_loss(sentence, glob)
    return lw + ls, {"damsm_word": lw.item(), "damsm_sentence": ls.item()}


@torch.no_grad()
def retrieval_accuracy(sentence: Tensor, image: Tensor, group: int = 16) -> float:
    """Caption -> image retrieval: for each group of ``group`` pairs, the share of captions
    whose own image has the highest cosine among the group's images (chance 1/group)."""
    hits, total = 0, 0
    for start in range(0, sentence.shape[0] - group + 1, group):
        s = F.normalize(sentence[start : start + group], dim=1)
        v = F.normalize(image[start : start + group], dim=1)
        hits += int(((s @ v.t()).argmax(1) == torch.arange(group, device=s.device)).sum())
        total += group
    if total == 0:
        raise ValueError(f"retrieval_accuracy: needs at least {group} pairs")
    return hits / total


def pretrain_text(
    text_encoder: nn.Module,
    image_encoder: nn.Module,
    batches: Callable[[int], dict[str, Any]],
    *,
    steps: int,
    lr: float = 2e-3,
    clip: float = 0.25,
    log: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Train both encoders with the DAMSM loss for ``steps`` batches (``batches(step)``: a
    caption batch, ``translate.text.captions``). Adam with beta1 0.5, 0.999, lr 0.002 and the
    text side's gradient norm clipped at 0.25, as AttnGAN's DAMSM training. Returns the last
    losses."""
    from translate.text.encoder import text_features

    params = [*text_encoder.parameters(), *image_encoder.parameters()]
    opt = torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))
    logs: dict[str, float] = {}
    text_encoder.train(), image_encoder.train()
    for step in range(steps):
        batch = batches(step)
        device = next(image_encoder.parameters()).device
        text = text_features(text_encoder, batch)
        loss, logs = damsm_loss(text, image_encoder(batch["image"].to(device)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(list(text_encoder.parameters()), clip)
        opt.step()
        if log is not None and (step % 50 == 0 or step == steps - 1):
            log(
                f"pretrain-text {step + 1}/{steps}: "
                + ", ".join(f"{k} {v:.3f}" for k, v in logs.items())
            )
    text_encoder.eval(), image_encoder.eval()
    return logs
