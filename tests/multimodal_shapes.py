"""Synthetic data whose modes are known, for the multimodal learning tests: A is a grey shape
(square or disc) on black, B the same shape in one of four colours; a colour rule and a mask
IoU judge the outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = np.array([[230, 40, 40], [40, 200, 60], [50, 80, 235], [240, 220, 40]], np.float64)
GREY = 128


def shape_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    r = int(rng.integers(size // 5, size // 3))
    cy, cx = (int(v) for v in rng.integers(r, size - r, 2))
    yy, xx = np.mgrid[:size, :size]
    if rng.integers(2):
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return (abs(yy - cy) <= r) & (abs(xx - cx) <= r)


def grey(mask: np.ndarray) -> np.ndarray:
    return np.where(mask[..., None], GREY, 0).astype(np.uint8).repeat(3, 2)


def coloured(mask: np.ndarray, colour: int) -> np.ndarray:
    return np.where(mask[..., None], COLOURS[colour], 0).astype(np.uint8)


def make_shapes(root: Path, *, n: int = 64, size: int = 32, seed: int = 0, paired: bool = True):
    """paired: side-by-side A|B PNGs in root/train (and 4 in root/val); unpaired: root/A and
    root/B (independent shapes and colours). Returns root."""
    rng = np.random.default_rng(seed)
    if paired:
        for split, count in (("train", n), ("val", 4)):
            (root / split).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                mask = shape_mask(rng, size)
                pair = np.concatenate([grey(mask), coloured(mask, i % 4)], 1)
                Image.fromarray(pair).save(root / split / f"{i:03d}.png")
        return root
    for d in ("A", "B"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(grey(shape_mask(rng, size))).save(root / "A" / f"{i:03d}.png")
        Image.fromarray(coloured(shape_mask(rng, size), i % 4)).save(root / "B" / f"{i:03d}.png")
    return root


def judge(output: Image.Image, mask: np.ndarray) -> tuple[int, float]:
    """(the colour index nearest to the output's mean colour inside the mask, the IoU of the
    output's bright pixels with the mask)."""
    rgb = np.asarray(output.convert("RGB"), np.float64)
    inside = rgb[mask].mean(0)
    colour = int(np.argmin(((COLOURS - inside) ** 2).sum(1)))
    bright = rgb.max(2) > 80
    iou = float((bright & mask).sum() / max(1, (bright | mask).sum()))
    return colour, iou


def judge_translator(translator, *, inputs: int = 8, k: int = 8, size: int = 32) -> dict:
    """A trained model judged on held-out grey shapes (``inputs`` of them, drawn by a fixed
    seed): per input, how many of the 4 colours its K samples cover and each sample's mask
    IoU; and, per colour c, the colour of the translation in the code of a c-coloured
    reference (``--style-from``) and its IoU."""
    from translate.inference.multimodal import style_code, translate_samples

    rng = np.random.default_rng(123)
    covered, ious = [], []
    for s in range(inputs):
        mask = shape_mask(rng, size)
        outs = translate_samples(translator, [Image.fromarray(grey(mask))], k, seed=s)[0]
        judged = [judge(o, mask) for o in outs]
        covered.append(len({c for c, _ in judged}))
        ious.append([round(i, 3) for _, i in judged])
    mask = shape_mask(rng, size)
    style = []
    for c in range(len(COLOURS)):
        code = style_code(translator, Image.fromarray(coloured(shape_mask(rng, size), c)))
        out = translate_samples(translator, [Image.fromarray(grey(mask))], 1, code=code)[0][0]
        style.append(judge(out, mask))
    return {"covered": covered, "ious": ious, "style": style}
