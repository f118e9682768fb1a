"""Synthetic captioned shapes: "a red circle", "a blue square" ... (4 colours x 4 shapes) at
random positions and sizes on a white background, with a simple rule that reads an image's
colour and shape back. The learning tests and ``translate eval`` of a text-to-image model on
this data use the rule as the prompt accuracy (chance 1/16).

``make_captioned_shapes`` also writes ``captioned_shapes.json`` (``MANIFEST``) in the folder it
fills: ``{"kind": "captioned_shapes", "labels": {stem: [colour, shape]}}``. The file is how
``translate eval`` knows a folder is this synthetic set (and each image's true colour and
shape, whatever its captions say); a folder of real captioned images has none.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from translate.errors import DataError

__all__ = [
    "COLOURS",
    "MANIFEST",
    "SHAPES",
    "STACKGAN_SHAPES_MODEL",
    "draw_shape",
    "make_captioned_shapes",
    "read_labels",
    "read_shape",
]

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 30),
    "blue": (30, 60, 220),
    "yellow": (230, 210, 20),
}
SHAPES = ("circle", "square", "triangle", "cross")
TEMPLATES = ("a {c} {s}", "a {s} that is {c}", "one {c} {s} on white", "the {s} is {c}")
BACKGROUND = (255, 255, 255)
#: The marker of a captioned-shapes folder: each image's (colour, shape).
MANIFEST = "captioned_shapes.json"
#: A CPU-sized stackgan on this set at 32 px (widths 32, text 64-d, c_hat and z 16-d, DAMSM
#: 200 steps): the learning tests (``tests/test_stackgan_learning.py``) and
#: ``benchmarks/stackgan_shapes.py``.
STACKGAN_SHAPES_MODEL = {
    "image_size": 32, "latent_dim": 16, "condition_dim": 16, "text_dim": 64, "word_dim": 32,
    "g_channels": 32, "d_channels": 32, "d_text_dim": 32, "pretrain_steps": 200,
    "pretrain_batch": 32, "flip": False,
}  # fmt: skip


def draw_shape(colour: str, shape: str, size: int, rng: random.Random) -> Image.Image:
    """One ``shape`` of ``colour``, its side 40-60% of the image, at a random position."""
    image = Image.new("RGB", (size, size), BACKGROUND)
    pen = ImageDraw.Draw(image)
    side = rng.randint(int(0.4 * size), int(0.6 * size))
    x, y = rng.randint(1, size - side - 1), rng.randint(1, size - side - 1)
    fill = COLOURS[colour]
    box = (x, y, x + side - 1, y + side - 1)
    if shape == "circle":
        pen.ellipse(box, fill=fill)
    elif shape == "square":
        pen.rectangle(box, fill=fill)
    elif shape == "triangle":
        pen.polygon([(x + side / 2, y), (x, y + side - 1), (x + side - 1, y + side - 1)], fill=fill)
    else:  # a plus: two bars a third of the side wide
        t = side / 3
        pen.rectangle((x + t, y, x + 2 * t - 1, y + side - 1), fill=fill)
        pen.rectangle((x, y + t, x + side - 1, y + 2 * t - 1), fill=fill)
    return image


def make_captioned_shapes(
    root: Path,
    n: int,
    *,
    size: int = 32,
    seed: int = 0,
    pairs: list[tuple[str, str]] | None = None,
    templates: tuple[str, ...] = TEMPLATES,
) -> list[tuple[str, str]]:
    """``n`` images ``root/shape_0000.png`` with captions ``.txt`` (each of ``templates``, one
    a line), colour and shape cycling through ``pairs`` (default: all 16). Returns each image's
    (colour, shape)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    pairs = pairs or [(c, s) for c in COLOURS for s in SHAPES]
    made = []
    for i in range(n):
        colour, shape = pairs[i % len(pairs)]
        draw_shape(colour, shape, size, rng).save(root / f"shape_{i:04d}.png")
        captions = [t.format(c=colour, s=shape) for t in templates]
        (root / f"shape_{i:04d}.txt").write_text("\n".join(captions) + "\n")
        made.append((colour, shape))
    labels = {f"shape_{i:04d}": list(pair) for i, pair in enumerate(made)}
    tmp = root / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"kind": "captioned_shapes", "labels": labels}, indent=1) + "\n")
    tmp.replace(root / MANIFEST)
    return made


def read_labels(folder: Path) -> dict[str, tuple[str, str]] | None:
    """``{stem: (colour, shape)}`` of a captioned-shapes folder (its ``MANIFEST``), or None
    for a folder without one; one line for a manifest that is not ours."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        labels = {str(k): (str(c), str(s)) for k, (c, s) in data["labels"].items()}
        bad = next((p for p in labels.values() if p[0] not in COLOURS or p[1] not in SHAPES), None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{path}: not a captioned-shapes manifest ({exc})") from None
    if data.get("kind") != "captioned_shapes" or bad is not None:
        raise DataError(f"{path}: not a captioned-shapes manifest (kind or label {bad})")
    return labels


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask (the mask itself when it has one)."""
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count <= 1:
        return mask
    sizes = ndimage.sum_labels(mask, labels, range(1, count + 1))
    return labels == 1 + int(np.argmax(sizes))


def read_shape(image: Image.Image) -> tuple[str, str]:
    """(colour, shape) of an image by rule: the foreground is what differs from white by more
    than 100 in some channel; its colour is the nearest prototype to its mean; its shape comes
    from the share of its bounding box it fills (square ~1, circle ~0.79, plus ~0.56, triangle
    ~0.5) and the widths of its top and bottom rows (a triangle's top is narrow). An image
    without foreground reads as ("none", "none").

    The foreground is its largest 8-connected component: a generated image's stray specks
    (a few pixels away from the shape) would otherwise stretch the bounding box and make any
    shape read as a cross."""
    a = np.asarray(image.convert("RGB"), dtype=np.float32)
    fg = np.abs(a - np.array(BACKGROUND, np.float32)).max(2) > 100
    if fg.sum() < 4:
        return "none", "none"
    fg = largest_component(fg)
    mean = a[fg].mean(0)
    colour = min(COLOURS, key=lambda c: float(((mean - np.array(COLOURS[c])) ** 2).sum()))
    ys, xs = np.nonzero(fg)
    box = fg[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    fill = box.mean()
    h = box.shape[0]
    band = max(1, h // 5)
    top, bottom = box[:band].sum(1).mean(), box[-band:].sum(1).mean()
    if fill > 0.9:
        shape = "square"
    elif top < 0.6 * bottom:
        shape = "triangle"
    elif fill > 0.67:
        shape = "circle"
    else:
        shape = "cross"
    return colour, shape
