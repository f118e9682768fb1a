"""State dicts laid out as pytorch-CycleGAN-and-pix2pix saves its generators, with random values.

Written from the reference's module structure (not from translate's mapping, which the tests
check against these): ``benchmarks/reference_import.py`` confirms that these keys and shapes
equal those of the reference's own ``define_G`` networks, for every generator type.
"""

from __future__ import annotations

from collections import OrderedDict

import torch


class _Layout:
    def __init__(self, norm: str, seed: int, legacy: bool) -> None:
        self.norm, self.legacy = norm, legacy
        self.gen = torch.Generator().manual_seed(seed)
        self.state: OrderedDict[str, torch.Tensor] = OrderedDict()
        # the reference gives convolutions a bias only with instance norm
        self.bias = norm == "instance"

    def rand(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self.gen) * 0.2

    def conv(self, key: str, c_in: int, c_out: int, k: int, *, bias: bool, transposed=False):
        shape = (c_in, c_out, k, k) if transposed else (c_out, c_in, k, k)
        self.state[f"{key}.weight"] = self.rand(*shape)
        if bias:
            self.state[f"{key}.bias"] = self.rand(c_out)

    def norm_layer(self, key: str, c: int) -> None:
        if self.norm == "batch":
            self.state[f"{key}.weight"] = 1 + self.rand(c)
            self.state[f"{key}.bias"] = self.rand(c)
            self.state[f"{key}.running_mean"] = self.rand(c)
            self.state[f"{key}.running_var"] = 0.5 + torch.rand(c, generator=self.gen)
            self.state[f"{key}.num_batches_tracked"] = torch.tensor(100)
        elif self.norm == "instance" and self.legacy:  # saved before PyTorch 0.4
            self.state[f"{key}.running_mean"] = torch.zeros(c)
            self.state[f"{key}.running_var"] = torch.ones(c)


def _unet_block(lay: _Layout, path: str, outer: int, inner: int, levels: list, c_in: int | None):
    """One UnetSkipConnectionBlock at ``path`` (its ``model`` Sequential), recursively."""
    (kind, *_), rest = levels[0], levels[1:]
    seq = f"{path}.model"
    c_in = outer if c_in is None else c_in
    if kind == "outermost":  # [downconv, submodule, uprelu, upconv, tanh]
        lay.conv(f"{seq}.0", c_in, inner, 4, bias=lay.bias)
        _unet_block(lay, f"{seq}.1", inner, rest[0][1], rest, None)
        lay.conv(f"{seq}.3", inner * 2, outer, 4, bias=True, transposed=True)
    elif kind == "innermost":  # [downrelu, downconv, uprelu, upconv, upnorm]
        lay.conv(f"{seq}.1", c_in, inner, 4, bias=lay.bias)
        lay.conv(f"{seq}.3", inner, outer, 4, bias=lay.bias, transposed=True)
        lay.norm_layer(f"{seq}.4", outer)
    else:  # [downrelu, downconv, downnorm, submodule, uprelu, upconv, upnorm, (dropout)]
        lay.conv(f"{seq}.1", c_in, inner, 4, bias=lay.bias)
        lay.norm_layer(f"{seq}.2", inner)
        _unet_block(lay, f"{seq}.3", inner, rest[0][1], rest, None)
        lay.conv(f"{seq}.5", inner * 2, outer, 4, bias=lay.bias, transposed=True)
        lay.norm_layer(f"{seq}.6", outer)


def _unet(lay: _Layout, depth: int, ngf: int) -> None:
    # (kind, inner channels) from the outermost block in: ngf, 2 ngf, 4 ngf, 8 ngf ... 8 ngf
    inner = [ngf, ngf * 2, ngf * 4, ngf * 8] + [ngf * 8] * (depth - 4)
    kinds = ["outermost"] + ["middle"] * (depth - 2) + ["innermost"]
    levels = list(zip(kinds, inner, strict=True))
    _unet_block(lay, "model", 3, inner[0], levels, 3)


def _resnet(lay: _Layout, n_blocks: int, ngf: int, dropout: bool) -> None:
    lay.conv("model.1", 3, ngf, 7, bias=lay.bias)  # model.0 is a ReflectionPad2d
    lay.norm_layer("model.2", ngf)
    i = 4
    for mult in (1, 2):  # two stride-2 convolutions, each: conv, norm, relu
        lay.conv(f"model.{i}", ngf * mult, ngf * mult * 2, 3, bias=lay.bias)
        lay.norm_layer(f"model.{i + 1}", ngf * mult * 2)
        i += 3
    dim = ngf * 4
    for _ in range(n_blocks):
        block = [("pad", None), ("conv", 1), ("norm", 1), ("relu", None)]
        block += [("drop", None)] if dropout else []
        block += [("pad", None), ("conv", 2), ("norm", 2)]
        for k, (what, _n) in enumerate(block):
            if what == "conv":
                lay.conv(f"model.{i}.conv_block.{k}", dim, dim, 3, bias=lay.bias)
            elif what == "norm":
                lay.norm_layer(f"model.{i}.conv_block.{k}", dim)
        i += 1
    for mult in (4, 2):  # two transposed convolutions, each: convT, norm, relu
        lay.conv(f"model.{i}", ngf * mult, ngf * mult // 2, 3, bias=lay.bias, transposed=True)
        lay.norm_layer(f"model.{i + 1}", ngf * mult // 2)
        i += 3
    lay.conv(f"model.{i + 1}", ngf, 3, 7, bias=True)  # pad, conv 7x7, tanh


def reference_state_dict(
    net_g: str,
    norm: str,
    *,
    dropout: bool = False,
    ngf: int = 4,
    seed: int = 0,
    legacy_instance_stats: bool = False,
) -> OrderedDict[str, torch.Tensor]:
    """``torch.save``-able state dict of the reference's ``define_G(3, 3, ngf, net_g, norm,
    dropout)``, random values (batch-norm statistics included)."""
    lay = _Layout(norm, seed, legacy_instance_stats)
    if net_g.startswith("unet"):
        _unet(lay, {"unet_128": 7, "unet_256": 8}[net_g], ngf)
    else:
        _resnet(lay, {"resnet_6blocks": 6, "resnet_9blocks": 9}[net_g], ngf, dropout)
    return lay.state
