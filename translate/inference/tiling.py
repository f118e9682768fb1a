"""Overlapping tiles with feathered blending, shared by every plugin and backend.

A large image is padded to the module's size multiple (as for an untiled run) and cut into
tiles of ``tile`` x ``tile`` input pixels that overlap by at least ``overlap`` pixels and start
at multiples of the module's ``multiple_of`` (strided networks are only shift-equivariant by
their total stride). Each tile is run and added into an output buffer on the CPU with a weight
window that is zero on the outer quarter of each overlap (where the tile's receptive field is
cut by its border) and ramps linearly across the rest. The weights of the tiles covering a
pixel sum to one, so there is no division by a weight image and no seam: where two tiles meet,
one fades out exactly as the other fades in. For a convolutional network whose receptive field
fits in a quarter of the overlap, the tiled output equals the untiled one to float precision.

Memory: only one tile is on the device at a time, and the network's activations are those of
one tile. What grows with the image is the input and the output buffer, both float32 on the CPU
(12 bytes per pixel and output pixel for RGB).

Caveat, instance normalisation: a generator with instance norm (CycleGAN's ResNet) normalises
each feature map by its own mean and variance, and on a tile these are the tile's statistics,
not the image's. Tiles of a dark and a bright region therefore come out with shifted
brightness/contrast relative to an untiled run. The feathered overlap hides the *seams* (the
shift changes smoothly instead of at an edge); larger tiles reduce the shift itself (their
statistics are closer to the image's), and a wider overlap spreads it more gently. Hence the
large default (1024-pixel tiles, a quarter overlap), and a warning when such a model is tiled.
Batch-norm generators in eval mode and norm-free ones have no such effect. A U-Net's receptive
field spans the whole tile (its bottleneck is 1x1 at 256 pixels), so its tiled output also
departs from the untiled one, smoothly; large tiles again keep that small.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from translate.errors import ConfigError
from translate.loading.model import padded_size
from translate.plugin import SizeRequirements

log = logging.getLogger(__name__)

#: ``tile_size=None`` ("auto") tiles images of more input pixels than this.
AUTO_TILE_PIXELS = 1024 * 1024
#: Tile side used by the auto rule (rounded down to the module's multiple).
AUTO_TILE_SIZE = 1024


def pad_to(x: Tensor, req: SizeRequirements) -> Tensor:
    """Pad (B, C, H, W) on the bottom/right to a size the module accepts."""
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, req) - h, padded_size(w, req) - w
    if ph == 0 and pw == 0:
        return x
    # reflect padding needs the pad to be smaller than the side; replicate the rest
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


@dataclass(frozen=True)
class TileSpec:
    """Validated tile geometry in input pixels: ``tile`` a multiple of the module's."""

    tile: int
    overlap: int


def resolve_tiles(
    tile_size: int, overlap: int | None, req: SizeRequirements, *, max_side: int | None = None
) -> TileSpec:
    """Check a requested tile size against the module and round it down to its multiple.

    ``overlap=None`` picks a quarter of the tile (rounded to the multiple where possible).
    A module whose minimum input exceeds the tile is a ConfigError (one line).
    """
    if tile_size < 1:
        raise ConfigError(f"tile_size: must be positive, got {tile_size}")
    if max_side is not None:
        tile_size = min(tile_size, max_side)
    need = max(req.minimum, req.multiple_of)
    if tile_size < need:
        raise ConfigError(
            f"tile_size: the model needs inputs of at least {need}x{need} pixels "
            f"(minimum {req.minimum}, multiple of {req.multiple_of}); a {tile_size}-pixel tile "
            f"is too small for it"
        )
    m = req.multiple_of
    tile = tile_size // m * m
    if overlap is None:  # a quarter of the tile, but never so much that starts cannot advance
        overlap = min(tile // 4, tile - m)
        if overlap == 0:
            log.warning(
                "tile_size: %d-pixel tiles of a model whose sizes are multiples of %d cannot "
                "overlap; seams may show (use tiles of at least %d pixels)",
                tile,
                m,
                2 * m,
            )
    if not 0 <= overlap <= tile - m:
        raise ConfigError(
            f"tile_overlap: must be in [0, {tile - m}] for {tile}-pixel tiles of a model whose "
            f"sizes are multiples of {m}"
        )
    return TileSpec(tile=tile, overlap=overlap)


def tile_starts(size: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``[0, size)``, spread evenly, every
    one inside the image, neighbours sharing at least ``overlap`` pixels.

    Starts are multiples of ``align`` (the module's ``multiple_of``): a network with stride-2
    stages is only shift-equivariant for shifts by its total stride, so a tile at an unaligned
    offset would see its input on a different sampling grid than the whole image does.
    ``size`` and ``tile`` must be multiples of ``align``.
    """
    if size <= tile:
        return [0]
    max_step = (tile - overlap) // align  # in units of align
    if max_step < 1:
        raise ConfigError(
            f"tile_overlap: {overlap} leaves less than {align} pixels between tile starts"
        )
    span = (size - tile) // align
    n = -(-span // max_step) + 1
    return [align * round(i * span / (n - 1)) for i in range(n)]


def _ramp(overlap: int) -> Tensor:
    """Weights rising across an overlap of ``overlap`` pixels: zero on the outer quarter (the
    tile's border, where its receptive field reaches past the tile), then linear to one. The
    neighbour's mirrored ramp complements it: the two sum to one across the overlap."""
    margin = overlap // 4
    j = torch.arange(overlap, dtype=torch.float64)
    return ((j - margin + 1) / (overlap - 2 * margin + 1)).clamp(0, 1)


def blend_weights(size: int, starts: list[int], tile: int) -> list[Tensor]:
    """One 1-D window per tile (length ``min(tile, size)``): ramps (``_ramp``) across each
    overlap with a neighbour, flat elsewhere, normalised so that the windows sum to one."""
    length = min(tile, size)
    raw: list[Tensor] = []
    for i, start in enumerate(starts):
        w = torch.ones(length, dtype=torch.float64)
        if i > 0:  # rise across the overlap with the previous tile
            ov = starts[i - 1] + length - start
            if ov > 0:
                w[:ov] = torch.minimum(w[:ov], _ramp(ov))
        if i + 1 < len(starts):  # fall across the overlap with the next tile
            ov = start + length - starts[i + 1]
            if ov > 0:
                w[-ov:] = torch.minimum(w[-ov:], _ramp(ov).flip(0))
        raw.append(w.clamp_min(1e-6))  # never all zero where tiles overlap thrice
    total = torch.zeros(size, dtype=torch.float64)
    for start, w in zip(starts, raw, strict=True):
        total[start : start + length] += w
    return [(w / total[s : s + length]).float() for s, w in zip(starts, raw, strict=True)]


def _scaled(w: Tensor, scale: int) -> Tensor:
    return w.repeat_interleave(scale) if scale > 1 else w


def run_tiled(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    spec: TileSpec,
    req: SizeRequirements,
    *,
    on_tile: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Apply ``fn`` to ``x`` tile by tile and blend the results.

    The image is first padded to the module's multiple exactly as for an untiled run, then
    cut into tiles at offsets that are multiples of it, so away from tile borders every tile
    computes what the untiled run computes.

    Args:
        fn: the module call on one tile, (1, C, t, t) CPU float32 -> (1, C', t*s, t*s) CPU
            float32 (it may move the tile to a device and back).
        x: (1, C, H, W) CPU float input.
        spec: tile geometry from ``resolve_tiles``.
        req: the module's size requirements.
        on_tile: called with (done, total) after each tile (progress).

    Returns:
        (1, C', H * scale, W * scale) float32 on the CPU.
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"run_tiled expects one image (1, C, H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    xp = pad_to(x, req)  # (1, C, H', W'), multiples of req.multiple_of
    hp, wp = xp.shape[-2:]
    s, m = req.scale, req.multiple_of
    ys = tile_starts(hp, spec.tile, spec.overlap, m)
    xs = tile_starts(wp, spec.tile, spec.overlap, m)
    wy, wx = blend_weights(hp, ys, spec.tile), blend_weights(wp, xs, spec.tile)
    th, tw = min(spec.tile, hp), min(spec.tile, wp)
    out: Tensor | None = None
    total, done = len(ys) * len(xs), 0
    for y0, wyi in zip(ys, wy, strict=True):
        for x0, wxi in zip(xs, wx, strict=True):
            y = fn(xp[..., y0 : y0 + th, x0 : x0 + tw])  # (1, C', th*s, tw*s)
            if tuple(y.shape[-2:]) != (th * s, tw * s):
                raise ValueError(f"tile output {tuple(y.shape)} is not {s}x its input")
            if out is None:
                out = torch.zeros(1, y.shape[1], hp * s, wp * s, dtype=torch.float32)
            weight = _scaled(wyi, s)[:, None] * _scaled(wxi, s)[None, :]
            out[..., y0 * s : (y0 + th) * s, x0 * s : (x0 + tw) * s] += y.float() * weight
            done += 1
            if on_tile is not None:
                on_tile(done, total)
    assert out is not None  # at least one tile
    return out[..., : h * s, : w * s]


def should_tile(
    h: int, w: int, tile_size: int | None, *, max_side: int | None = None
) -> int | None:
    """The tile size to use for an (h, w) input, or None for one untiled pass.

    ``tile_size``: None is the auto rule (tile at ``AUTO_TILE_SIZE`` when the image has more
    than ``AUTO_TILE_PIXELS`` pixels), 0 never tiles, N tiles when a side exceeds N.
    ``max_side``: the largest side the backend accepts (a TensorRT profile); larger inputs are
    always tiled at that size.
    """
    if tile_size is None:
        chosen = AUTO_TILE_SIZE if h * w > AUTO_TILE_PIXELS else None
    elif tile_size == 0:
        chosen = None
    else:
        chosen = tile_size if max(h, w) > tile_size else None
    if max_side is not None and max(h, w) > max_side:
        chosen = min(chosen or max_side, max_side)
    return chosen
