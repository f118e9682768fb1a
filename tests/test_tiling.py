"""Tiling: geometry, blending weights, agreement with untiled runs, memory bound, errors."""

from __future__ import annotations

import itertools
import logging
import math

import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from translate.errors import ConfigError
from translate.inference.backends import TorchBackend
from translate.inference.tiling import (
    blend_weights,
    resolve_tiles,
    run_tiled,
    should_tile,
    tile_starts,
)
from translate.inference.translator import Translator
from translate.nn import ResnetGenerator
from translate.plugin import PluginBase, SizeRequirements


def psnr(a: Tensor, b: Tensor) -> float:
    """PSNR in dB for images in [-1, 1] (peak-to-peak 2)."""
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(4 / mse)


class _RGB(PluginBase):
    name = "test"
    config_cls = dict
    dataset_kind = "single"


def make_translator(
    module: nn.Module, req: SizeRequirements, **kw: object
) -> tuple[Translator, list[tuple[int, ...]]]:
    """A Translator over ``module`` whose backend records every input shape it sees."""
    seen: list[tuple[int, ...]] = []

    class Recording(TorchBackend):
        def __call__(self, x: Tensor) -> Tensor:
            seen.append(tuple(x.shape))
            # the translator hands float32 tiles; a float64 test network takes them in float64
            return super().__call__(x.to(torch.get_default_dtype()))

    translator = Translator(
        Recording(module.eval(), torch.device("cpu")),
        plugin=_RGB(),
        plugin_cfg=None,
        requirements=req,
        meta={"plugin": "test"},
        opts=None,
        in_channels=3,
        **kw,  # type: ignore[arg-type]
    )
    return translator, seen


def resnet(norm: str = "batch") -> nn.Module:
    """A small random ResNet generator (receptive field radius 28 pixels) with outputs that
    span a good part of [-1, 1], so that PSNR figures mean something."""
    torch.manual_seed(0)
    g = ResnetGenerator(in_channels=3, out_channels=3, base_channels=8, n_blocks=2, norm=norm)
    with torch.no_grad():
        g.head[1].weight.mul_(8)
    if norm == "batch":  # non-trivial running statistics, as after training
        for m in g.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return g.eval()


def smooth_image(h: int, w: int, seed: int = 0) -> Tensor:
    """(1, 3, h, w) in [-1, 1]: gradients, stripes and noise (a photo-like mix)."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([torch.sin(6 * xx + c) * torch.cos(4 * yy - c) for c in range(3)])
    return (0.8 * base + 0.2 * torch.rand(3, h, w, generator=gen) * 2 - 0.2).clamp(-1, 1)[None]


# ---------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("size", [64, 65, 100, 200, 417, 960, 961, 1000])
@pytest.mark.parametrize(("tile", "overlap"), [(64, 16), (64, 0), (128, 48), (64, 40)])
def test_tiles_cover_the_image_and_weights_sum_to_one(size: int, tile: int, overlap: int) -> None:
    starts = tile_starts(size, tile, overlap)
    length = min(tile, size)
    assert starts[0] == 0 and starts[-1] + length == size
    assert all(s >= 0 and s + length <= size for s in starts)  # every tile inside the image
    for a, b in itertools.pairwise(starts):
        assert a + length - b >= overlap  # neighbours share at least the overlap
    total = torch.zeros(size)
    for s, w in zip(starts, blend_weights(size, starts, tile), strict=True):
        assert w.min() > 0
        total[s : s + length] += w
    assert torch.allclose(total, torch.ones(size), atol=1e-6)


def test_auto_rule_and_explicit_sizes() -> None:
    assert should_tile(1024, 1024, None) is None  # exactly 1 megapixel: one pass
    assert should_tile(1025, 1024, None) == 1024
    assert should_tile(4096, 4096, 0) is None  # 0: never
    assert should_tile(300, 200, 256) == 256 and should_tile(256, 200, 256) is None
    assert should_tile(300, 200, 0, max_side=256) == 256  # a backend limit forces tiles
    req = SizeRequirements(multiple_of=32, minimum=32)
    spec = resolve_tiles(300, None, req)
    assert (spec.tile, spec.overlap) == (288, 72)  # rounded down to the multiple


def test_model_too_large_for_a_tile_is_one_line() -> None:
    req = SizeRequirements(multiple_of=256, minimum=256)
    with pytest.raises(ConfigError, match="at least 256x256") as info:
        resolve_tiles(128, None, req)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="tile_overlap"):
        resolve_tiles(256, 256, req)
    with pytest.raises(ConfigError, match="too small"):  # refused when the Translator is made
        make_translator(nn.Identity(), req, tile_size=100)


# ---------------------------------------------------------------------------- agreement
def test_tiled_matches_untiled_for_a_convolutional_model() -> None:
    """A fully convolutional ResNet generator without instance norm (batch norm in eval mode):
    overlapping feathered tiles reproduce the untiled output (>= 40 dB PSNR)."""
    req = SizeRequirements(multiple_of=4, minimum=8)
    x = smooth_image(200, 310)
    whole, _ = make_translator(resnet(), req, tile_size=0)
    tiled, seen = make_translator(resnet(), req, tile_size=96, tile_overlap=48)
    a, b = whole.translate_tensor(x), tiled.translate_tensor(x)
    assert a.shape == b.shape == (1, 3, 200, 310)
    assert a.std() > 0.1  # a meaningful image, not a constant
    assert psnr(a, b) >= 40, psnr(a, b)
    # only one tile at a time reaches the model, never the image
    assert len(seen) > 4 and all(s[0] == 1 and max(s[2:]) <= 96 for s in seen)


def bounded_net() -> nn.Module:
    """A strided convolutional network (multiple of 2) whose output pixels see at most 6
    input pixels away: within a quarter of a 32-pixel overlap."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(8, 3, 3, padding=1),
        nn.Tanh(),
    )
    with torch.no_grad():  # outputs spanning a good part of [-1, 1]
        net[5].weight.mul_(8)
    return net.eval()


def test_tiles_overlap_as_asked_and_reproduce_a_bounded_receptive_field_exactly(
    float64: torch.dtype,
) -> None:
    """The module docstring's promise: when the receptive field fits in a quarter of the
    overlap, tiled equals untiled to float precision (tiles that merely touch, or a blend
    that trusts the tile borders, give errors of 1e-2 and more). The image is a whole number
    of tiles, so tiles that ignore the overlap would just touch. Each tile's position is read
    back from an input whose channels hold the pixel coordinates: neighbours share at least
    the requested 32 pixels.

    The network runs in float64 (the ``float64`` fixture), so the convolutions of a 64-pixel
    tile and of the whole image agree to ~1e-15 whatever kernels the CPU picks for each shape.
    What is left is derived, not measured: the blend gives a tile's border (zero weight by
    design) the floor weight 1e-6 (``blend_weights``), for at most 3 of the 4 tiles over a
    pixel, times |y_border - y| <= 2 (tanh outputs); and the float32 buffer: each term's
    output, weights (two axes and their product) and product rounded, 3 additions, and the
    whole image's one rounding, under 16 units of 2**-24 of |y| <= 1."""
    req = SizeRequirements(multiple_of=2, minimum=2)
    h, w = 128, 192
    x = smooth_image(h, w, seed=2)
    net = bounded_net()
    assert x.dtype == next(net.parameters()).dtype == float64
    whole, _ = make_translator(net, req, tile_size=0)
    tiled, seen = make_translator(net, req, tile_size=64, tile_overlap=32)
    a, b = whole.translate_tensor(x), tiled.translate_tensor(x)
    assert a.std() > 0.2 and all(max(s[2:]) <= 64 for s in seen)
    bound = 3 * 1e-6 * 2 + 16 * 2.0**-24  # 7.0e-6
    assert (a - b).abs().max() < bound, float((a - b).abs().max())

    origins: list[tuple[int, int]] = []

    class Corner(nn.Module):
        def forward(self, tile: Tensor) -> Tensor:
            origins.append((int(tile[0, 0, 0, 0]), int(tile[0, 1, 0, 0])))
            return tile

    yy, xx = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    coords = torch.stack([yy, xx, torch.zeros_like(yy)])[None]  # (1, 3, H, W)
    corner, _ = make_translator(Corner(), req, tile_size=64, tile_overlap=32)
    torch.testing.assert_close(corner.translate_tensor(coords), coords.float())
    for axis, size in ((0, h), (1, w)):
        starts = sorted({o[axis] for o in origins})
        assert starts[0] == 0 and starts[-1] + 64 == size
        assert all(a + 64 - b >= 32 for a, b in itertools.pairwise(starts)), starts


def test_tiling_scales_the_output_for_super_resolution() -> None:
    """scale > 1: tiles are placed at scale times their input position."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 12, 3, padding=1, padding_mode="reflect"),
        nn.PixelShuffle(2),
        nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect"),
        nn.Tanh(),
    )
    req = SizeRequirements(multiple_of=1, minimum=1, scale=2)
    x = smooth_image(90, 130, seed=1)
    whole, _ = make_translator(net, req, tile_size=0)
    tiled, _ = make_translator(net, req, tile_size=40, tile_overlap=12)
    a, b = whole.translate_tensor(x), tiled.translate_tensor(x)
    assert a.shape == b.shape == (1, 3, 180, 260)
    assert psnr(a, b) >= 40, psnr(a, b)


def test_run_tiled_is_exact_for_pointwise_models() -> None:
    """No receptive field beyond the pixel: tiling must change nothing (weights sum to 1)."""
    net = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Tanh()).eval()
    req = SizeRequirements()
    x = smooth_image(70, 90)
    with torch.no_grad():
        out = run_tiled(net, x, resolve_tiles(32, 10, req), req)
        assert torch.allclose(out, net(x), atol=1e-6)


def test_images_are_tiled_one_by_one_and_pil_sizes_round_trip() -> None:
    req = SizeRequirements(multiple_of=4, minimum=8)
    translator, seen = make_translator(resnet(), req, tile_size=64, tile_overlap=16)
    images = [Image.new("RGB", (150, 70), (200, 30, 30)), Image.new("RGB", (150, 70))]
    out = translator(images)
    assert [im.size for im in out] == [(150, 70), (150, 70)]
    assert all(s[0] == 1 and max(s[2:]) <= 64 for s in seen)


def test_instance_norm_caveat_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    req = SizeRequirements(multiple_of=4, minimum=8)
    translator, _ = make_translator(
        resnet("instance"), req, tile_size=64, tile_overlap=32, instance_norm=True
    )
    with caplog.at_level(logging.WARNING):
        translator.translate_tensor(smooth_image(80, 120))
    assert "instance-norm" in caplog.text and "brightness" in caplog.text


def test_brightness_shift_of_instance_norm_shrinks_with_larger_tiles() -> None:
    """Documented caveat, measured: per-tile statistics shift an instance-norm model's output
    (far below the 40 dB of a batch-norm model); larger tiles bring it closer to untiled."""
    req = SizeRequirements(multiple_of=4, minimum=8)
    x = smooth_image(200, 312)
    x[..., :, :100] = x[..., :, :100] * 0.3 - 0.6  # a dark region: tile statistics differ
    whole, _ = make_translator(resnet("instance"), req, tile_size=0)
    ref = whole.translate_tensor(x)
    scores = []
    for tile in (64, 128):
        tiled, _ = make_translator(resnet("instance"), req, tile_size=tile)
        scores.append(psnr(ref, tiled.translate_tensor(x)))
    assert scores[0] < scores[1] < 40, scores


def test_tile_starts_are_aligned_to_the_stride() -> None:
    """Offsets are multiples of the module's multiple (its total stride): a strided network
    sees every tile on the same sampling grid as the whole image."""
    for size, tile, overlap, align in [(312, 96, 24, 4), (1536, 512, 128, 256), (200, 64, 16, 8)]:
        starts = tile_starts(size, tile, overlap, align)
        assert all(s % align == 0 for s in starts) and starts[-1] + tile == size
        assert all(b - a <= tile - overlap for a, b in itertools.pairwise(starts))
    with pytest.raises(ConfigError, match="tile_overlap"):
        tile_starts(512, 256, 200, 256)
