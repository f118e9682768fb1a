"""Structured (channel) pruning of the U-Net and ResNet generators.

Yu & Pool, "Self-Supervised GAN Compression" (NVIDIA 2020), prune whole channels of a trained
generator and then train the smaller one against the dense model. Removing whole filters, unlike
unstructured sparsity, makes every convolution genuinely narrower, so parameters, FLOPs, ONNX
size and latency all fall.

Every layer keeps the same fraction of its channels, so the pruned network is the *same class*
built with a smaller ``base_channels`` (all widths of both generators are multiples of it): a
checkpoint of the pruned model stays self-describing through its ordinary config. Which channels
survive is decided per layer from the trained weights:

* a channel followed by batch norm is ranked by ``|gamma|`` (Liu et al., "Learning Efficient
  Convolutional Networks through Network Slimming", ICCV 2017);
* otherwise by the L1 norm of its filter (Li et al., "Pruning Filters for Efficient ConvNets",
  ICLR 2017).

Spectrally normalised convolutions (Miyato et al. 2018) are pruned through their trainable
weight; the power iteration then re-estimates sigma of each smaller matrix.

Consistency: a U-Net decoder level reads ``cat([skip, h])``, so its input channels are the
survivors of the encoder level *and* of the decoder level below; the residual stream of the
ResNet (the last downsampling layer's output and every block's output, which are summed) keeps
one set of channels, ranked by the sum of its producers' importances. Survivors keep their order,
so pruning with the full width is the identity.

``prune_into(dense, small)`` copies the surviving weights of ``dense`` into ``small`` (built by
the caller with the pruned width) and raises ``PruneError`` for a network it does not understand.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from translate.nn.blocks import ResnetBlock
from translate.nn.init import _resync_spectral_norm  # the same power iteration as at init
from translate.nn.resnet import ResnetGenerator
from translate.nn.surgery import has_spectral_norm, raw_weight
from translate.nn.unet import UnetGenerator

__all__ = ["PruneError", "prunable", "prune_into", "pruned_width"]


class PruneError(ValueError):
    """The pruner does not understand this network (or the two networks do not match)."""


def prunable(model: nn.Module) -> bool:
    """Whether ``prune_into`` understands ``model``: a plain U-Net or ResNet generator, its
    convolutions optionally spectrally normalised (no inserted attention, which changes its
    layers)."""
    if type(model) not in (UnetGenerator, ResnetGenerator):
        return False
    allowed = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.InstanceNorm2d)
    for m in model.modules():
        if isinstance(m, parametrize.ParametrizationList):
            continue  # checked with the layer that holds it
        if parametrize.is_parametrized(m):
            names = set(m.parametrizations.keys())  # type: ignore[union-attr]
            if names != {"weight"} or len(m.parametrizations.weight) != 1:  # type: ignore[union-attr]
                return False
            if not has_spectral_norm(m):
                return False
        has_params = any(True for _ in m.parameters(recurse=False))
        if has_params and not isinstance(m, allowed):
            return False
    return True


def pruned_width(base_channels: int, keep: float) -> int:
    """The pruned ``base_channels`` for a keep ratio in (0, 1] (at least 1)."""
    if not 0 < keep <= 1:
        raise PruneError(f"keep must be in (0, 1], got {keep}")
    return max(1, round(base_channels * keep))


# ---------------------------------------------------------------------------- ranking
def _rank(conv: nn.Module, norm: nn.Module | None, count: int, *, transposed: bool) -> Tensor:
    return _top(_importance(conv, norm, transposed=transposed), count)


def _importance(conv: nn.Module, norm: nn.Module | None, *, transposed: bool) -> Tensor:
    """Per-output-channel importance (float64 on CPU)."""
    if isinstance(norm, nn.BatchNorm2d) and norm.weight is not None:
        return norm.weight.detach().abs().double().cpu()
    # conv (out, in, k, k); transposed (in, out, k, k). Under spectral norm the trainable
    # weight is ranked: it differs from the normalised one by one factor per layer, so the
    # ranking within a layer (and the stream's, normalised per layer) is the same
    w = raw_weight(conv).detach().double().cpu()
    dims = (0, 2, 3) if transposed else (1, 2, 3)
    return w.abs().sum(dim=dims)


def _top(importance: Tensor, count: int) -> Tensor:
    """Indices of the ``count`` most important channels, in their original order."""
    if count > importance.numel():
        raise PruneError(f"cannot keep {count} of {importance.numel()} channels")
    # stable: ties go to the earlier channel, so keeping every channel keeps the order
    order = torch.sort(-importance, stable=True).indices[:count]
    return torch.sort(order).values


# ---------------------------------------------------------------------------- copying
def _copy_conv(
    src: nn.Module, dst: nn.Module, out_idx: Tensor, in_idx: Tensor, *, transposed: bool
) -> None:
    w = raw_weight(src).detach()
    w = w[in_idx][:, out_idx] if transposed else w[out_idx][:, in_idx]
    _assign(raw_weight(dst), w, dst)
    if src.bias is not None:
        _assign(dst.bias, src.bias.detach()[out_idx], dst)
    if has_spectral_norm(src) != has_spectral_norm(dst):
        raise PruneError("one network is spectrally normalised and the other is not")
    if has_spectral_norm(src):
        _copy_spectral_norm(src, dst, out_idx, in_idx)


@torch.no_grad()
def _copy_spectral_norm(src: nn.Module, dst: nn.Module, out_idx: Tensor, in_idx: Tensor) -> None:
    """Spectral norm (Miyato et al. 2018) keeps power-iteration vectors ``u`` (one entry per
    output channel) and ``v`` (per input channel x kernel position) that define sigma: copy the
    survivors' entries; when channels were dropped, sigma of the smaller matrix differs, so the
    power iteration runs on from them."""
    sn_src = src.parametrizations.weight[0]  # type: ignore[union-attr,index]
    sn_dst = dst.parametrizations.weight[0]  # type: ignore[union-attr,index]
    kernel = raw_weight(src).shape[2:].numel()
    u, v = sn_src._u, sn_src._v  # (out,), (in * kh * kw,)
    _assign(sn_dst._u, u[out_idx], dst)
    _assign(sn_dst._v, v.view(-1, kernel)[in_idx].flatten(), dst)
    if sn_dst._u.numel() != u.numel() or sn_dst._v.numel() != v.numel():
        sn_dst._u.copy_(nn.functional.normalize(sn_dst._u, dim=0))
        sn_dst._v.copy_(nn.functional.normalize(sn_dst._v, dim=0))
        for _ in range(10):  # 15 iterations each: once, cheap; converged on small gaps too
            _resync_spectral_norm(dst)


def _copy_norm(src: nn.Module, dst: nn.Module, idx: Tensor) -> None:
    if isinstance(src, nn.BatchNorm2d):
        for name in ("weight", "bias", "running_mean", "running_var"):
            s, d = getattr(src, name), getattr(dst, name)
            if s is not None:
                _assign(d, s.detach()[idx], dst)
        if src.num_batches_tracked is not None:
            dst.num_batches_tracked.copy_(src.num_batches_tracked)


def _assign(target: Tensor, value: Tensor, where: nn.Module) -> None:
    if target.shape != value.shape:
        raise PruneError(
            f"pruned {type(where).__name__} expects {tuple(target.shape)}, got {tuple(value.shape)}"
        )
    with torch.no_grad():
        target.copy_(value)


def _layers(seq: nn.Module) -> tuple[nn.Module, nn.Module | None]:
    """The convolution and the (optional) norm layer of a small sequential block."""
    convs = [m for m in seq if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    norms = [m for m in seq if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.Identity))]
    if len(convs) != 1:
        raise PruneError(f"expected one convolution in {type(seq).__name__}, got {len(convs)}")
    return convs[0], (norms[0] if norms else None)


# ---------------------------------------------------------------------------- U-Net
def _prune_unet(dense: UnetGenerator, small: UnetGenerator) -> None:
    d = dense.depth
    if small.depth != d or len(small.encoder) != d:
        raise PruneError("U-Nets of different depth")
    arange = torch.arange
    enc: list[Tensor] = []  # surviving output channels of encoder level i
    prev = arange(dense.in_channels)
    for i in range(d):
        conv, norm = _layers(dense.encoder[i])
        sconv, snorm = _layers(small.encoder[i])
        keep = _rank(conv, norm, sconv.out_channels, transposed=False)
        _copy_conv(conv, sconv, keep, prev, transposed=False)
        if norm is not None and snorm is not None:
            _copy_norm(norm, snorm, keep)
        enc.append(keep)
        prev = keep
    # decoder[j] is level i = d - 1 - j; its input is enc[d-1] (innermost) or cat(enc[i], h)
    h = enc[d - 1]
    for j in range(d):
        i = d - 1 - j
        conv, norm = _layers(dense.decoder[j])
        sconv, snorm = _layers(small.decoder[j])
        in_idx = h if i == d - 1 else torch.cat([enc[i], conv.in_channels // 2 + h])
        if i == 0:
            out_idx = arange(dense.out_channels)
        else:
            out_idx = _rank(conv, norm, sconv.out_channels, transposed=True)
        _copy_conv(conv, sconv, out_idx, in_idx, transposed=True)
        if norm is not None and snorm is not None:
            _copy_norm(norm, snorm, out_idx)
        h = out_idx


# ---------------------------------------------------------------------------- ResNet
def _convs_norms(seq: nn.Sequential) -> list[tuple[nn.Module, nn.Module | None]]:
    """(conv, following norm) pairs of a sequential stage, in order."""
    pairs: list[tuple[nn.Module, nn.Module | None]] = []
    mods = list(seq)
    for k, m in enumerate(mods):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nxt = mods[k + 1] if k + 1 < len(mods) else None
            norm = nxt if isinstance(nxt, (nn.BatchNorm2d, nn.InstanceNorm2d)) else None
            pairs.append((m, norm))
    return pairs


def _prune_resnet(dense: ResnetGenerator, small: ResnetGenerator) -> None:
    if len(dense.blocks) != len(small.blocks) or len(dense.down) != len(small.down):
        raise PruneError("ResNet generators of different depth")
    for block in (*dense.blocks, *small.blocks):
        if not isinstance(block, ResnetBlock):
            raise PruneError(f"unexpected block {type(block).__name__} in the ResNet generator")
    stem, sstem = _convs_norms(dense.stem), _convs_norms(small.stem)
    down, sdown = _convs_norms(dense.down), _convs_norms(small.down)
    # the stage feeding the residual stream: the last downsampling layer (or the stem)
    producers = [*stem, *down]
    sproducers = [*sstem, *sdown]
    prev = torch.arange(dense.in_channels)
    for k, ((conv, norm), (sconv, snorm)) in enumerate(zip(producers, sproducers, strict=True)):
        if k == len(producers) - 1:
            # residual stream: one channel set for the producer and every block's output
            score = _normalised(_importance(conv, norm, transposed=False))
            for block in dense.blocks:
                c2, n2 = _convs_norms(block.body)[1]
                score = score + _normalised(_importance(c2, n2, transposed=False))
            keep = _top(score, sconv.out_channels)
        else:
            keep = _rank(conv, norm, sconv.out_channels, transposed=False)
        _copy_conv(conv, sconv, keep, prev, transposed=False)
        if norm is not None and snorm is not None:
            _copy_norm(norm, snorm, keep)
        prev = keep
    stream = prev
    for block, sblock in zip(dense.blocks, small.blocks, strict=True):
        (c1, n1), (c2, n2) = _convs_norms(block.body)
        (s1, sn1), (s2, sn2) = _convs_norms(sblock.body)
        hidden = _rank(c1, n1, s1.out_channels, transposed=False)
        _copy_conv(c1, s1, hidden, stream, transposed=False)
        _copy_conv(c2, s2, stream, hidden, transposed=False)
        for n, sn, idx in ((n1, sn1, hidden), (n2, sn2, stream)):
            if n is not None and sn is not None:
                _copy_norm(n, sn, idx)
    for (conv, norm), (sconv, snorm) in zip(
        _convs_norms(dense.up), _convs_norms(small.up), strict=True
    ):
        keep = _rank(conv, norm, sconv.out_channels, transposed=True)
        _copy_conv(conv, sconv, keep, prev, transposed=True)
        if norm is not None and snorm is not None:
            _copy_norm(norm, snorm, keep)
        prev = keep
    (head,) = [m for m in dense.head if isinstance(m, nn.Conv2d)]
    (shead,) = [m for m in small.head if isinstance(m, nn.Conv2d)]
    _copy_conv(head, shead, torch.arange(dense.out_channels), prev, transposed=False)


def _normalised(x: Tensor) -> Tensor:
    return x / x.sum().clamp_min(1e-12)


def prune_into(dense: nn.Module, small: nn.Module) -> nn.Module:
    """Copy the most important channels of the trained ``dense`` generator into ``small``, the
    same architecture built with a smaller ``base_channels``; returns ``small``.

    Raises:
        PruneError: either network is not a plain U-Net / ResNet generator, or they differ in
            anything but width.
    """
    if not prunable(dense) or type(small) is not type(dense) or not prunable(small):
        raise PruneError(
            f"the pruner understands plain U-Net and ResNet generators, not {type(dense).__name__}"
        )
    if (small.in_channels, small.out_channels) != (dense.in_channels, dense.out_channels):
        raise PruneError("generators with different input or output channels")
    if isinstance(dense, UnetGenerator):
        _prune_unet(dense, small)  # type: ignore[arg-type]
    else:
        _prune_resnet(dense, small)  # type: ignore[arg-type]
    return small
