"""Label maps -> class ids: palettes, nearest-colour parsing, palette estimation, previews
(label2image, and any plugin that reads label maps).

numpy only (no torch): ``finalize_config`` runs this before any network exists.

A label map arrives in one of two encodings:

* **index** (single-channel PNG: modes ``L``, ``P``, ``I``, ``I;16``): each pixel *is* a class
  id. A ``P`` (palette) PNG counts as an index map (VOC / Cityscapes style) unless the model was
  trained on colour maps and every colour the image uses matches the model's palette; then its
  colours are what counts (an editor saved a colour map with a palette).
* **colour** (RGB): each class has a colour; a pixel gets the class of the nearest palette
  colour. Lossy files (the CMP facades maps are JPEGs) have ringing and chroma blends along class
  borders, so a few far-off pixels are expected and snap to their nearest colour; a map with
  more than ``max_unknown`` of its pixels farther than ``tolerance`` from every palette colour is
  refused (it is probably not a label map of this model).

``estimate_palette`` finds the class colours of a set of noisy colour maps from their *flat*
pixels only (those whose 5x5 neighbourhood varies by less than ``FLAT_RANGE`` per channel):
blends sit on borders, so they drop out, and what remains are tight clusters around the true
colours. On the 400 CMP facades training maps this gives exactly their 12 colours.

Errors are ``DataError`` s whose message starts with the image's source (its file name when it
came from a file) and fits on one line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from translate.errors import ConfigError, DataError

#: Single-channel modes whose pixel values are class ids.
INDEX_MODES = frozenset({"L", "P", "I", "I;16", "I;16B", "I;16L"})
#: Colour of "no class" (don't-care pixels) in previews and sample grids.
DONT_CARE_COLOUR = (128, 128, 128)
#: A flat pixel's 5x5 neighbourhood varies by less than this in every channel.
FLAT_RANGE = 24
#: Cluster radius of the palette estimation (RGB Euclidean): well above JPEG noise on flat
#: regions (a few levels), well below the distance between distinct class colours.
CLUSTER_RADIUS = 40.0
#: A colour map with more unknown pixels than this, border or not, is refused.
MAX_UNKNOWN_ANYWHERE = 0.5
#: Cityscapes ``*_instanceIds`` convention: id = class * 1000 + instance for "things".
INSTANCE_DIVISOR = 1000


# ---------------------------------------------------------------------------- colours
def parse_colour(text: str) -> tuple[int, int, int]:
    """``#rrggbb``, ``rrggbb``, ``r,g,b`` or ``r g b`` -> (r, g, b); ValueError otherwise."""
    s = text.strip()
    hexa = s[1:] if s.startswith("#") else s
    if len(hexa) == 6 and all(c in "0123456789abcdefABCDEF" for c in hexa):
        return int(hexa[0:2], 16), int(hexa[2:4], 16), int(hexa[4:6], 16)
    parts = s.replace(",", " ").split()
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        rgb = tuple(int(p) for p in parts)
        if all(0 <= v <= 255 for v in rgb):
            return rgb  # type: ignore[return-value]
    raise ValueError(f"{text!r} is not a colour (use #rrggbb or r,g,b)")


def to_hex(colour: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in colour))


def read_palette_file(path: Path) -> list[tuple[int, int, int]]:
    """Colours from a JSON file (a list of ``[r, g, b]`` or hex strings, or ``{"colours":
    [...]}``) or a text file with one colour per line (``#rrggbb`` or ``r g b``, optionally
    followed by a class name; blank lines are skipped)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"palette: cannot read {path} ({exc.__class__.__name__})") from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
            if isinstance(data, dict):
                data = data.get("colours", data.get("colors"))
            if not isinstance(data, list):
                raise ValueError("expected a list of colours")
            return [
                parse_colour(c) if isinstance(c, str) else parse_colour(",".join(map(str, c)))
                for c in data
            ]
        colours = []
        for line in text.splitlines():
            words = line.replace(",", " ").split()
            if not words:
                continue
            if words[0].startswith("#") or (len(words[0]) == 6 and not words[0].isdigit()):
                colours.append(parse_colour(words[0]))
            else:
                colours.append(parse_colour(" ".join(words[:3])))
        return colours
    except ValueError as exc:
        raise ConfigError(f"palette: {path}: {exc}") from None


def resolve_palette(spec: Sequence[str]) -> list[tuple[int, int, int]]:
    """The ``--palette`` values: one file, or colours in class-id order."""
    if len(spec) == 1 and Path(spec[0]).is_file():
        colours = read_palette_file(Path(spec[0]))
    else:
        try:
            colours = [parse_colour(s) for s in spec]
        except ValueError as exc:
            hint = "" if len(spec) != 1 else " (or a palette file that does not exist)"
            raise ConfigError(f"palette: {exc}{hint}") from None
    if not colours:
        raise ConfigError("palette: no colours given")
    duplicates = {to_hex(c) for c in colours if colours.count(c) > 1}
    if duplicates:
        raise ConfigError(f"palette: colour {sorted(duplicates)[0]} is given twice")
    return colours


def default_palette(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct colours for index-map models (the PASCAL VOC colour map: bits of the
    class id spread over the high bits of r, g, b); class 0 is black."""
    colours = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours.append((r, g, b))
    return colours


def palette_array(palette: Sequence[str]) -> np.ndarray:
    """Hex strings (as stored in the config) -> (K, 3) uint8."""
    return np.array([parse_colour(c) for c in palette], dtype=np.uint8).reshape(-1, 3)


# ---------------------------------------------------------------------------- estimation
def flat_mask(rgb: np.ndarray, radius: int = 2, max_range: int = FLAT_RANGE) -> np.ndarray:
    """(H, W) bool: pixels whose (2r+1)^2 neighbourhood varies by < ``max_range`` per channel."""
    x = rgb.astype(np.int16)
    h, w, _ = x.shape
    padded = np.pad(x, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    hi, lo = x.copy(), x.copy()
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            window = padded[dy : dy + h, dx : dx + w]
            np.maximum(hi, window, out=hi)
            np.minimum(lo, window, out=lo)
    return (hi - lo).max(axis=2) < max_range


def _pack(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...) int64 keys r << 16 | g << 8 | b."""
    c = rgb.astype(np.int64)
    return (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]


def _unpack(keys: np.ndarray) -> np.ndarray:
    return np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], axis=-1).astype(np.float64)


def estimate_palette(
    images: Iterable[np.ndarray],
    *,
    num_classes: int = 0,
    min_share: float = 0.001,
    radius: float = CLUSTER_RADIUS,
) -> list[tuple[int, int, int]]:
    """Class colours of (H, W, 3) uint8 colour label maps, most frequent first.

    Flat pixels only (see the module docstring); their colour histogram is clustered by
    seeding a centre at each colour farther than ``radius`` from every existing centre (most
    frequent first), then a few weighted k-means rounds that drop clusters below ``min_share``
    of the pixels. ``num_classes > 0`` keeps that many (the most frequent) and fails when
    fewer are found. ValueError when nothing is found.
    """
    counts: dict[int, int] = {}
    for rgb in images:
        keys, n = np.unique(_pack(rgb[flat_mask(rgb)]), return_counts=True)
        for k, c in zip(keys.tolist(), n.tolist(), strict=True):
            counts[k] = counts.get(k, 0) + c
    if not counts:
        raise ValueError("no flat regions in the label maps: are they label maps?")
    keys = np.fromiter(counts.keys(), np.int64, len(counts))
    weight = np.fromiter(counts.values(), np.float64, len(counts))
    order = np.argsort(-weight, kind="stable")
    colours, weight = _unpack(keys[order]), weight[order]
    total = weight.sum()
    centres: list[np.ndarray] = []
    for colour, w in zip(colours, weight, strict=True):
        if w < 1e-5 * total:
            break  # the rest is noise; k-means assigns it
        if not centres or ((np.array(centres) - colour) ** 2).sum(1).min() > radius * radius:
            centres.append(colour)
    c = np.array(centres)
    for _ in range(5):
        assign = ((colours[:, None, :] - c[None]) ** 2).sum(2).argmin(1)
        mass = np.bincount(assign, weights=weight, minlength=len(c))
        keep = np.flatnonzero(mass >= min_share * total)
        c = np.stack(
            [(colours[assign == k] * weight[assign == k, None]).sum(0) / mass[k] for k in keep]
        )
    assign = ((colours[:, None, :] - c[None]) ** 2).sum(2).argmin(1)
    mass = np.bincount(assign, weights=weight, minlength=len(c))
    ranked = [tuple(int(v) for v in np.round(c[k]).clip(0, 255)) for k in np.argsort(-mass)]
    if num_classes:
        if len(ranked) < num_classes:
            raise ValueError(
                f"found {len(ranked)} label colours, fewer than --num-classes {num_classes}"
            )
        ranked = ranked[:num_classes]
    return ranked  # type: ignore[return-value]


# ---------------------------------------------------------------------------- parsing
def _where(mask: np.ndarray) -> str:
    y, x = np.argwhere(mask)[0]
    return f"x={x}, y={y}"


def colours_to_ids(
    rgb: np.ndarray,
    palette: np.ndarray,
    *,
    tolerance: float,
    max_unknown: float,
    source: str,
) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) int64 ids of the nearest palette colours.

    A pixel farther than ``tolerance`` (RGB Euclidean) from every palette colour is unknown.
    Unknown pixels on class borders (not flat: JPEG ringing and chroma blends, up to a third
    of a CMP facades map) take the nearest colour; DataError when more than ``max_unknown`` of
    the pixels are unknown *and* flat (a region in a colour the palette lacks) or when more
    than ``MAX_UNKNOWN_ANYWHERE`` of all pixels are unknown (not a label map at all).
    """
    keys, inverse = np.unique(_pack(rgb).ravel(), return_inverse=True)
    inverse = inverse.reshape(-1)
    colours = _unpack(keys)  # (U, 3): distances per distinct colour, not per pixel
    d2 = ((colours[:, None, :] - palette[None].astype(np.float64)) ** 2).sum(2)
    nearest, dist = d2.argmin(1), np.sqrt(d2.min(1))
    far = (dist > tolerance)[inverse].reshape(rgb.shape[:2])
    if far.any():
        anywhere = float(far.mean())
        in_regions = far & flat_mask(rgb)
        share = float(in_regions.mean())
        if share > max_unknown or anywhere > MAX_UNKNOWN_ANYWHERE:
            where = in_regions if share > max_unknown else far
            y, x = np.argwhere(where)[0]
            colour = tuple(int(v) for v in rgb[y, x])
            d = dist[inverse[y * rgb.shape[1] + x]]
            what = (
                f"{share:.1%} of the pixels lie in regions"
                if share > max_unknown
                else f"{anywhere:.0%} of the pixels are"
            )
            raise DataError(
                f"{source}: {what} of colours far from every palette colour (e.g. {colour} "
                f"at x={x}, y={y}: {d:.0f} from the nearest, tolerance {tolerance:g}); "
                "is this a label map of this model?"
            )
    return nearest[inverse].reshape(rgb.shape[:2]).astype(np.int64)


def _p_image_is_colour_map(image: Image.Image, palette: np.ndarray, tolerance: float) -> bool:
    """Whether a ``P`` image's used palette entries all match the model's colours."""
    raw = image.getpalette() or []
    entries = np.array(raw, dtype=np.float64).reshape(-1, 3)
    used = np.unique(np.asarray(image))
    if len(entries) == 0 or used.max() >= len(entries):
        return False
    d2 = ((entries[used][:, None, :] - palette[None].astype(np.float64)) ** 2).sum(2)
    return bool(np.sqrt(d2.min(1)).max() <= tolerance)


def instance_edges(instance: np.ndarray) -> np.ndarray:
    """(H, W) ids -> (H, W) float32 boundary map: 1 where a 4-neighbour has another id
    (pix2pixHD's instance boundary map, Wang et al. 2018, Sec. 3.3)."""
    edge = np.zeros(instance.shape, dtype=bool)
    dx = instance[:, 1:] != instance[:, :-1]
    dy = instance[1:, :] != instance[:-1, :]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    return edge.astype(np.float32)


def label_ids(
    image: Image.Image,
    *,
    palette: np.ndarray,
    num_classes: int,
    tolerance: float,
    max_unknown: float,
    dont_care: int = -1,
    instances: bool = False,
    source: str = "label map",
) -> tuple[np.ndarray, np.ndarray | None]:
    """A PIL label map -> ((H, W) int64 class ids, -1 for don't-care; instance ids or None).

    With ``instances``, the map must be an integer instance-id map (Cityscapes
    ``*_instanceIds``: ``class * 1000 + instance`` for objects, the class id for the rest).
    """
    mode = image.mode
    if mode == "P" and not instances and _p_image_is_colour_map(image, palette, tolerance):
        image, mode = image.convert("RGB"), "RGB"
    if instances and mode not in INDEX_MODES:
        raise DataError(
            f"{source}: instance boundaries need an instance-id map (a single-channel PNG, "
            f"class * {INSTANCE_DIVISOR} + instance), not a {mode} image"
        )
    instance = None
    if mode in INDEX_MODES:
        raw = np.asarray(image).astype(np.int64)
        if instances:
            instance = raw
            raw = np.where(raw >= INSTANCE_DIVISOR, raw // INSTANCE_DIVISOR, raw)
        ids = raw
        bad = (ids >= num_classes) & (ids != dont_care)
        if bad.any():
            worst = int(ids[bad].max())
            raise DataError(
                f"{source}: label id {worst} at {_where(ids == worst)} is beyond the model's "
                f"{num_classes} classes (0-{num_classes - 1})"
                + ("" if dont_care >= 0 else "; set --dont-care ID at training for 'unlabelled'")
            )
    else:
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        ids = colours_to_ids(
            rgb, palette, tolerance=tolerance, max_unknown=max_unknown, source=source
        )
    if dont_care >= 0:
        ids = np.where(ids == dont_care, -1, ids)
    return ids, instance


def colourise(ids: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) ids (-1: don't care) -> (H, W, 3) uint8 preview."""
    table = np.concatenate([palette.astype(np.uint8), np.array([DONT_CARE_COLOUR], np.uint8)])
    return table[np.where(ids < 0, len(palette), ids)]


def is_index_image(image: Image.Image) -> bool:
    return image.mode in INDEX_MODES
