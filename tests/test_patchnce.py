"""PatchNCE (CUT, Park et al. 2020) and the pieces CUT adds to the core networks: the loss
against a cross-entropy written out by hand, its minimum, its negatives, the heads, the
anti-aliased layers and the ResNet generator's features in the reference's layer numbering."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from translate.losses.patchnce import (
    MASKED_LOGIT,
    PatchNCEHeads,
    gather_patches,
    l2_normalize,
    multilayer_patchnce,
    patchnce_loss,
    sample_locations,
)
from translate.nn.antialias import BlurDownsample, BlurUpsample
from translate.nn.patchgan import PatchDiscriminator
from translate.nn.resnet import ResnetGenerator

TAU = 0.07


def unit_rows(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


def hand_patchnce(q: torch.Tensor, k: torch.Tensor, batch: int, tau: float) -> list[float]:
    """Eq. 2 for each query, with plain Python sums: the positive is the key at the query's
    location, the negatives the other keys of its own image (plus the masked own-location
    entry, exp(-10 / tau), which the official code keeps as a logit)."""
    s = q.shape[0] // batch
    losses = []
    for b in range(batch):
        for i in range(s):
            qi = q[b * s + i]
            pos = math.exp(float(qi @ k[b * s + i]) / tau)
            neg = sum(math.exp(float(qi @ k[b * s + j]) / tau) for j in range(s) if j != i)
            neg += math.exp(MASKED_LOGIT / tau)
            losses.append(-math.log(pos / (pos + neg)))
    return losses


# ---------------------------------------------------------------------------- the loss
def test_loss_is_the_cross_entropy_written_by_hand() -> None:
    q, k = unit_rows(2 * 3, 4, seed=1), unit_rows(2 * 3, 4, seed=2)  # B = 2, S = 3, D = 4
    got = patchnce_loss(q, k, batch_size=2, temperature=TAU)
    assert got.shape == (6,)
    np.testing.assert_allclose(got.numpy(), hand_patchnce(q, k, 2, TAU), rtol=1e-10)
    # and a value worked out on paper: S = 2, D = 2, q = k = e1 / e2 -> the positive logit is
    # 1 / tau, the one negative 0: loss = log(1 + exp(-1 / tau)) (+ the masked term)
    e = torch.eye(2, dtype=torch.float64)
    expected = math.log(1 + math.exp(-1 / TAU) + math.exp((MASKED_LOGIT - 1) / TAU))
    np.testing.assert_allclose(patchnce_loss(e, e, batch_size=1, temperature=TAU), expected)


def test_identical_features_give_the_minimum_over_permutations() -> None:
    key = unit_rows(4, 8, seed=3)  # one image, four locations
    best = float(patchnce_loss(key, key, batch_size=1, temperature=TAU).mean())
    for perm in itertools.permutations(range(4)):
        loss = float(patchnce_loss(key[list(perm)], key, batch_size=1, temperature=TAU).mean())
        if list(perm) == [0, 1, 2, 3]:
            assert loss == pytest.approx(best)
        else:
            assert loss > best + 1.0, perm  # a mismatched patch costs ~ its logit gap / tau


def test_negatives_come_from_the_same_image_only() -> None:
    q, k = unit_rows(3 * 4, 5, seed=4), unit_rows(3 * 4, 5, seed=5)  # B = 3, S = 4
    before = patchnce_loss(q, k, batch_size=3, temperature=TAU)
    q2, k2 = q.clone(), k.clone()
    q2[4:8], k2[4:8] = unit_rows(4, 5, seed=6), unit_rows(4, 5, seed=7)  # image 1 changes
    after = patchnce_loss(q2, k2, batch_size=3, temperature=TAU)
    torch.testing.assert_close(after[:4], before[:4], rtol=0, atol=0)  # image 0: unchanged
    torch.testing.assert_close(after[8:], before[8:], rtol=0, atol=0)  # image 2: unchanged
    assert not torch.allclose(after[4:8], before[4:8])
    # whereas another key of the same image is a negative: image 0's losses move
    k3 = k.clone()
    k3[1] = q[0]
    assert float(patchnce_loss(q, k3, batch_size=3, temperature=TAU)[0]) > float(before[0])


def test_keys_are_detached_and_queries_get_the_gradient() -> None:
    q = unit_rows(6, 4, seed=8).requires_grad_()
    k = unit_rows(6, 4, seed=9).requires_grad_()
    patchnce_loss(q, k, batch_size=2, temperature=TAU).mean().backward()
    assert k.grad is None and q.grad is not None and q.grad.abs().sum() > 0


def test_bad_arguments_are_refused() -> None:
    q = unit_rows(6, 4)
    with pytest.raises(ValueError, match="do not match"):
        patchnce_loss(q, q[:4], batch_size=2, temperature=TAU)
    with pytest.raises(ValueError, match="do not match"):
        patchnce_loss(q, q, batch_size=4, temperature=TAU)
    with pytest.raises(ValueError, match="temperature"):
        patchnce_loss(q, q, batch_size=2, temperature=0.0)


# ---------------------------------------------------------------------------- heads, sampling
def test_gather_patches_reads_the_sampled_locations() -> None:
    f = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)  # B, C, H, W
    ids = torch.tensor([7, 0, 19])  # (y, x) = (1, 2), (0, 0), (3, 4)
    got = gather_patches(f, ids)
    expected = torch.stack([f[b, :, y, x] for b in range(2) for y, x in ((1, 2), (0, 0), (3, 4))])
    torch.testing.assert_close(got, expected)


def test_locations_are_distinct_capped_and_shared_by_the_batch() -> None:
    feats = [torch.zeros(2, 3, 4, 4), torch.zeros(2, 5, 2, 2)]
    ids = sample_locations(feats, 6, generator=torch.Generator().manual_seed(0))
    assert [len(i) for i in ids] == [6, 4]  # 2x2 = 4 locations only
    assert all(len(set(i.tolist())) == len(i) for i in ids)
    assert ids[0].max() < 16 and ids[1].max() < 4


def test_heads_are_two_layer_mlps_with_unit_outputs() -> None:
    feats = [torch.randn(2, 3, 6, 6), torch.randn(2, 7, 3, 3)]
    heads = PatchNCEHeads.for_features(feats, units=5)
    assert heads.channels == (3, 7)
    (mlp, _) = heads.mlps
    assert [type(m) for m in mlp] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (mlp[0].in_features, mlp[0].out_features, mlp[2].out_features) == (3, 5, 5)
    ids = sample_locations(feats, 4)
    out = heads(feats, ids)
    assert [tuple(o.shape) for o in out] == [(8, 5), (8, 5)]
    for o, f, i, m in zip(out, feats, ids, heads.mlps, strict=True):
        torch.testing.assert_close(o.norm(dim=1), torch.ones(8))
        torch.testing.assert_close(o, l2_normalize(m(gather_patches(f, i))))


def test_multilayer_patchnce_is_the_mean_over_layers() -> None:
    torch.manual_seed(0)
    keys = [torch.randn(2, 3, 4, 4), torch.randn(2, 6, 2, 2)]
    queries = [k + 0.3 * torch.randn_like(k) for k in keys]
    heads = PatchNCEHeads.for_features(keys, units=8)
    torch.manual_seed(1)
    got = multilayer_patchnce(heads, queries, keys, num_patches=5, temperature=TAU)
    torch.manual_seed(1)
    ids = sample_locations(keys, 5)  # the same draws: drawn once, on the keys
    per_layer = [
        patchnce_loss(q, k, batch_size=2, temperature=TAU).mean()
        for q, k in zip(heads(queries, ids), heads(keys, ids), strict=True)
    ]
    torch.testing.assert_close(got, (per_layer[0] + per_layer[1]) / 2)


# ---------------------------------------------------------------------------- anti-aliasing
def test_blur_downsample_by_hand() -> None:
    x = torch.arange(16, dtype=torch.float64).reshape(1, 1, 4, 4) ** 2
    layer = BlurDownsample(1).double()
    got = layer(x)
    pad = np.pad(x[0, 0].numpy(), 1, mode="reflect")
    w = np.outer([1, 2, 1], [1, 2, 1]) / 16
    expected = [[(pad[y : y + 3, c : c + 3] * w).sum() for c in (0, 2)] for y in (0, 2)]
    np.testing.assert_allclose(got[0, 0].numpy(), expected)
    const = torch.full((2, 3, 5, 7), 0.3)
    torch.testing.assert_close(BlurDownsample(3)(const), torch.full((2, 3, 3, 4), 0.3))


def test_blur_upsample_interpolates_and_keeps_constants() -> None:
    const = torch.full((1, 2, 3, 5), -0.4)
    torch.testing.assert_close(BlurUpsample(2)(const), torch.full((1, 2, 6, 10), -0.4))
    # an impulse spreads with the binomial weights [1, 3, 3, 1] / 4 per axis (zero insertion,
    # then the filter): the centre pixel of a 3x3 zero map -> rows/cols 1..4 of the 6x6 output
    x = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    x[0, 0, 1, 1] = 1.0
    got = BlurUpsample(1).double()(x)[0, 0].numpy()
    row = np.array([0, 1, 3, 3, 1, 0]) / 4
    np.testing.assert_allclose(got, np.outer(row, row))


def test_antialiased_networks_keep_their_sizes_and_parameters() -> None:
    plain = ResnetGenerator(in_channels=3, out_channels=3, base_channels=8, n_blocks=2)
    smooth = ResnetGenerator(
        in_channels=3, out_channels=3, base_channels=8, n_blocks=2, antialias=True
    )
    x = torch.randn(1, 3, 20, 24)
    assert smooth(x).shape == x.shape
    count = [sum(p.numel() for p in g.parameters()) for g in (plain, smooth)]
    assert count[0] == count[1]  # Conv3x3 s1 replaces Conv3x3 s2 and ConvTranspose3x3
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in smooth.modules())
    d = PatchDiscriminator(in_channels=3, base_channels=8, norm="instance", antialias=True)
    assert d(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert sum(isinstance(m, BlurDownsample) for m in d.modules()) == 3


# ---------------------------------------------------------------------------- features
def test_encode_follows_the_reference_layer_numbering() -> None:
    g = ResnetGenerator(in_channels=3, out_channels=3, base_channels=4, antialias=True)
    names = [name for name, _ in g.flat_layers()]
    assert [names[i] for i in (0, 4, 8, 12, 16)] == [
        "stem.0",
        "down.0",
        "down.4",
        "blocks.0",
        "blocks.4",
    ]
    captured = {}
    for name in ("stem.0", "down.0", "down.4", "blocks.0", "blocks.4"):
        module = g.get_submodule(name)
        module.register_forward_hook(lambda m, i, o, name=name: captured.setdefault(name, o))
    called = []
    g.up.register_forward_pre_hook(lambda *_: called.append("up"))
    x = torch.randn(2, 3, 16, 16)
    feats = g.encode(x, [0, 4, 8, 12, 16])
    assert not called, "encode ran the decoder"
    assert [tuple(f.shape) for f in feats] == [
        (2, 3, 22, 22),
        (2, 8, 16, 16),
        (2, 16, 8, 8),
        (2, 16, 4, 4),
        (2, 16, 4, 4),
    ]
    for f, name in zip(feats, captured, strict=True):
        torch.testing.assert_close(f, captured[name])
    with pytest.raises(ValueError, match="increasing"):
        g.encode(x, [4, 0])


def test_encode_features_are_not_overwritten_by_inplace_relu() -> None:
    # no norm: the ReLU follows the convolution directly; the feature keeps its negatives
    g = ResnetGenerator(in_channels=3, out_channels=3, base_channels=4, n_blocks=1, norm="none")
    feat, _ = g.encode(torch.randn(1, 3, 8, 8), [1, 4])  # the stem's conv, then past its ReLU
    assert feat.min() < 0
