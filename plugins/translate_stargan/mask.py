"""StarGAN's mask vector: one model trained on two labelled datasets at once (Choi et al. 2018,
Sec. 3.2, CelebA's attributes and RaFD's expressions).

The label of every image is ``c~ = [c_1, c_2, m]``: the first dataset's labels (``n1``
entries: attributes or a one-hot), the second's (``n2``, a one-hot over its folders), and the
mask ``m``, a one-hot of which dataset labelled the image; the other dataset's entries are
zero ("unknown"). G takes the whole vector. D's classification head predicts the ``n1 + n2``
labels, and its loss for an image counts only its own dataset's part, as the paper's: L_cls
over c_1 for a first-dataset image (binary cross-entropy summed over attributes, or
cross-entropy), over c_2 (cross-entropy) for a second-dataset one. A target label keeps the
image's mask and draws that dataset's labels; the reconstruction returns to the full source
label, mask included.

At inference the label input is the ``n1 + n2`` names (``--to``); ``MaskAppended`` sets the
mask from it (any second-dataset entry on: the second dataset, else the first) and zeroes the
other dataset's entries, so ``run``, ``serve`` and the ONNX export take names as for one
dataset.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["MaskAppended", "classification_loss", "random_targets", "with_mask"]


def with_mask(c1: Tensor, c2: Tensor, second: Tensor) -> Tensor:
    """``[c_1 * (1 - s), c_2 * s, 1 - s, s]`` for ``second`` = s in {0, 1} per image (B,)."""
    s = second.to(c1.dtype).view(-1, 1)
    return torch.cat([c1 * (1 - s), c2 * s, 1 - s, s], 1)


def _parts(label: Tensor, n1: int, n2: int) -> tuple[Tensor, Tensor, Tensor]:
    """(c_1, c_2, whether each image is the second dataset's) of full labels (B, n1 + n2 + 2)."""
    return label[:, :n1], label[:, n1 : n1 + n2], label[:, n1 + n2 + 1] > 0.5


def classification_loss(
    logits: Tensor, label: Tensor, n1: int, n2: int, *, multi_label: bool
) -> Tensor:
    """Eqs. 2-3 with the mask: each image's loss on its own dataset's labels only, averaged
    over the batch. ``logits`` (B, n1 + n2); ``label`` (B, n1 + n2 + 2)."""
    logits = logits.float()
    c1, c2, second = _parts(label, n1, n2)
    first = ~second
    total = logits.new_zeros(())
    if first.any():
        l1, t1 = logits[first, :n1], c1[first]
        if multi_label:
            total = total + F.binary_cross_entropy_with_logits(l1, t1, reduction="sum")
        else:
            total = total + F.cross_entropy(l1, t1.argmax(1), reduction="sum")
    if second.any():
        total = total + F.cross_entropy(logits[second, n1:], c2[second].argmax(1), reduction="sum")
    return total / logits.shape[0]


def random_targets(label: Tensor, n1: int, n2: int, *, multi_label: bool) -> Tensor:
    """Target labels: the image's mask kept; the second dataset's one-hot drawn uniformly; the
    first's drawn uniformly too, or for attributes taken from another first-dataset image of the
    batch (the authors' code)."""
    c1, _, second = _parts(label, n1, n2)
    b = label.shape[0]
    if multi_label:
        rows = torch.nonzero(~second).flatten()
        t1 = c1.clone()
        if len(rows) > 1:
            shift = int(torch.randint(1, len(rows), ()).item())
            t1[rows] = c1[rows.roll(shift)]
    else:
        t1 = F.one_hot(torch.randint(0, n1, (b,), device=label.device), n1).to(label.dtype)
    t2 = F.one_hot(torch.randint(0, n2, (b,), device=label.device), n2).to(label.dtype)
    return with_mask(t1, t2, second)


class MaskAppended(nn.Module):
    """G(x, label) for a label over the ``n1 + n2`` names: the mask is the second dataset's when
    any of its entries is on, else the first's; the other dataset's entries are zeroed."""

    def __init__(self, generator: nn.Module, n1: int, n2: int) -> None:
        super().__init__()
        self.generator, self.n1, self.n2 = generator, n1, n2
        self.train(generator.training)

    def forward(self, x: Tensor, label: Tensor) -> Tensor:
        label = label.to(x.dtype)
        c1, c2 = label[:, : self.n1], label[:, self.n1 :]
        second = (c2.sum(1) > 0).to(x.dtype)
        return self.generator(x, with_mask(c1, c2, second))
