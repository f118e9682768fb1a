"""Generators saved by pytorch-CycleGAN-and-pix2pix (``latest_net_G.pth``, ``..._net_G_A.pth``).

The reference implementation (Zhu, Park, Isola et al., BSD licence) saves a bare
``state_dict`` of its generator: ``unet_128`` / ``unet_256`` (a recursively nested
``UnetSkipConnectionBlock``) or ``resnet_6blocks`` / ``resnet_9blocks`` (one flat
``nn.Sequential``), with batch, instance or no normalisation, with or without dropout. Our
``UnetGenerator`` and ``ResnetGenerator`` have the same layers in the same order under other
names, so importing is a renaming of tensors:

* the reference's layer names are generated here from the architecture (below), ours are read
  from our module; both list convolutions and norms in application order and are zipped;
* the reference gives a convolution no bias when ``--norm none`` (its ``use_bias`` is only true
  for instance norm); ours keeps one, which is set to zero (the same function);
* checkpoints saved before PyTorch 0.4 carry ``running_mean`` / ``running_var`` for instance
  norm layers that have none; those are dropped, as the reference's own loader does.

The architecture is read from the key names and shapes (U-Net depth, ResNet blocks, norm, width,
and ResNet dropout, which shifts layer indices); the flags of ``translate import reference``
are checked against it, so a wrong ``--netG`` is one line instead of a "size mismatch". Dropout
in a U-Net leaves no trace in the keys, and inference does not use it (eval mode). Files are
read with ``torch.load(weights_only=True)``: loading never runs code.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from translate.engine.checkpoint import check_finite
from translate.errors import CheckpointError, ConfigError

NET_GS = ("unet_128", "unet_256", "resnet_6blocks", "resnet_9blocks")
NORMS = ("batch", "instance", "none")
MODELS = {"pix2pix": "pix2pix", "cycle_gan": "cyclegan"}  # reference --model -> our plugin
_UNET_DEPTH = {"unet_128": 7, "unet_256": 8}
_RESNET_BLOCKS = {"resnet_6blocks": 6, "resnet_9blocks": 9}
_LEGACY = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class ReferenceArch:
    """A reference generator's architecture (the ``--netG``/``--norm``/... it was trained with)."""

    net_g: str
    norm: str
    dropout: bool | None  # None: not visible in the weights (U-Net)
    ngf: int
    in_channels: int
    out_channels: int

    def describe(self) -> str:
        drop = {True: ", dropout", False: ", no dropout", None: ""}[self.dropout]
        return f"{self.net_g}, {self.norm} norm, ngf {self.ngf}{drop}"


# ---------------------------------------------------------------------------- layouts
def _unet_layers(depth: int) -> list[tuple[str, str]]:
    """(module path, "conv" | "norm") of a reference U-Net, in application order."""
    blocks = ["model"]  # level 0 is UnetGenerator.model; level 1 its submodule at index 1, ...
    for level in range(1, depth):
        blocks.append(f"{blocks[-1]}.model.{1 if level == 1 else 3}")
    down: list[list[tuple[str, str]]] = []
    up: list[list[tuple[str, str]]] = []
    for level, b in enumerate(blocks):
        if level == 0:  # downconv, submodule, uprelu, upconv, tanh
            down.append([(f"{b}.model.0", "conv")])
            up.append([(f"{b}.model.3", "conv")])
        elif level == depth - 1:  # downrelu, downconv, uprelu, upconv, upnorm
            down.append([(f"{b}.model.1", "conv")])
            up.append([(f"{b}.model.3", "conv"), (f"{b}.model.4", "norm")])
        else:  # downrelu, downconv, downnorm, submodule, uprelu, upconv, upnorm[, dropout]
            down.append([(f"{b}.model.1", "conv"), (f"{b}.model.2", "norm")])
            up.append([(f"{b}.model.5", "conv"), (f"{b}.model.6", "norm")])
    return [layer for group in down + up[::-1] for layer in group]


def _resnet_layers(n_blocks: int, dropout: bool) -> list[tuple[str, str]]:
    """(module path, "conv" | "norm") of a reference ResNet generator, in application order."""
    layers = [("model.1", "conv"), ("model.2", "norm")]  # pad, conv 7x7, norm, relu
    layers += [("model.4", "conv"), ("model.5", "norm"), ("model.7", "conv"), ("model.8", "norm")]
    second = 6 if dropout else 5  # pad, conv, norm, relu, [dropout], pad, conv, norm
    for j in range(n_blocks):
        b = f"model.{10 + j}.conv_block"
        layers += [(f"{b}.1", "conv"), (f"{b}.2", "norm")]
        layers += [(f"{b}.{second}", "conv"), (f"{b}.{second + 1}", "norm")]
    t = 10 + n_blocks  # convT, norm, relu, convT, norm, relu, pad, conv 7x7, tanh
    layers += [(f"model.{t}", "conv"), (f"model.{t + 1}", "norm")]
    layers += [(f"model.{t + 3}", "conv"), (f"model.{t + 4}", "norm"), (f"model.{t + 7}", "conv")]
    return layers


def reference_layers(net_g: str, *, dropout: bool = False) -> list[tuple[str, str]]:
    """The reference generator's convolutions and norm layers, in application order."""
    if net_g in _UNET_DEPTH:
        return _unet_layers(_UNET_DEPTH[net_g])
    if net_g in _RESNET_BLOCKS:
        return _resnet_layers(_RESNET_BLOCKS[net_g], dropout)
    raise ConfigError(f"netG: {net_g!r} is not one of {', '.join(NET_GS)}")


# ---------------------------------------------------------------------------- reading
def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A weights file's tensors (``.pth``/``.pt``/``.ckpt``/``.bin`` via ``torch.load`` with
    ``weights_only=True``, or ``.safetensors``), one-line errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            with warnings.catch_warnings():  # torch's multi-line "pickle protocol 4"
                warnings.simplefilter("ignore", UserWarning)  # warning: our line says it
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle's UnpicklingError, zip errors, safetensors' own
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        if "Unsupported operand" in str(exc):  # FRAME (149) etc.: pickle protocol 4 or 5
            raise CheckpointError(
                f"{path}: a pickle of protocol 4 or newer, which PyTorch's safe loader cannot "
                "read (and the unsafe one would run code); re-save it with torch.save() "
                "(protocol 2) or as .safetensors"
            ) from None
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path}: refused: the file holds objects other than tensors (not loaded for "
                "safety)"
            ) from None
        raise CheckpointError(f"{path}: not a readable weights file ({text})") from None
    # the containers other projects save their weights in (the same list as spandrel's)
    wrappers = ("model_state_dict", "state_dict", "params_ema", "params-ema", "params", "model")
    for wrapper in (*wrappers, "net"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
            break
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    check_finite(state, path)  # NaN weights would run, to a black image
    return dict(state)


def _drop_legacy(state: Mapping[str, Tensor], layers: list[tuple[str, str]], norm: str):
    """Without the instance-norm statistics of pre-0.4 checkpoints (which nothing uses)."""
    if norm == "batch":
        return dict(state)
    norms = {p for p, kind in layers if kind == "norm"}
    return {
        k: v
        for k, v in state.items()
        if not (k.rsplit(".", 1)[0] in norms and k.rsplit(".", 1)[1] in _LEGACY)
    }


def detect(state: Mapping[str, Tensor]) -> ReferenceArch | None:
    """The reference architecture a state dict was saved from, or None when it is not one."""
    kernels = {
        k[: -len(".weight")] for k, v in state.items() if k.endswith(".weight") and v.dim() == 4
    }
    for net_g in NET_GS:
        for dropout in (False, True) if net_g in _RESNET_BLOCKS else (None,):
            layers = reference_layers(net_g, dropout=bool(dropout))
            convs = [p for p, kind in layers if kind == "conv"]
            if set(convs) != kernels:
                continue
            norms = [p for p, kind in layers if kind == "norm"]
            if any(f"{p}.weight" in state for p in norms):
                norm = "batch"
            else:
                norm = "instance" if f"{convs[0]}.bias" in state else "none"
            first, last = state[f"{convs[0]}.weight"], state[f"{convs[-1]}.weight"]
            # a ConvTranspose2d weight is (in, out, k, k): the U-Net's last layer is one
            out_ch = last.shape[1] if net_g in _UNET_DEPTH else last.shape[0]
            return ReferenceArch(
                net_g, norm, dropout, int(first.shape[0]), int(first.shape[1]), int(out_ch)
            )
    return None


def looks_like_reference(state: Mapping[str, Tensor]) -> bool:
    return bool(state) and all(re.match(r"model\.\d|model\.model\.", k) for k in state)


# ---------------------------------------------------------------------------- mapping
def _our_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d)
    return [(name, m) for name, m in net.named_modules() if isinstance(m, kinds)]


def map_state_dict(
    state: Mapping[str, Tensor], arch: ReferenceArch, net: nn.Module, *, source: Path
) -> dict[str, Tensor]:
    """The reference tensors under our generator's names (plus zero biases where the reference
    has none); every reference tensor is used exactly once, or a CheckpointError says which
    one does not fit."""
    layers = reference_layers(arch.net_g, dropout=bool(arch.dropout))
    state = _drop_legacy(state, layers, arch.norm)
    theirs = [(p, kind) for p, kind in layers if kind == "conv" or arch.norm == "batch"]
    ours = _our_layers(net)
    hint = f"not a reference {arch.describe()} generator"
    if len(theirs) != len(ours):  # pragma: no cover - both come from the same architecture
        raise CheckpointError(f"{source}: {hint} ({len(theirs)} layers, ours {len(ours)})")
    mine = net.state_dict()
    out: dict[str, Tensor] = {}
    used: set[str] = set()
    for (prefix, kind), (name, module) in zip(theirs, ours, strict=True):
        if (kind == "norm") != isinstance(module, nn.BatchNorm2d):  # pragma: no cover
            raise CheckpointError(f"{source}: {hint} (layer {prefix})")
        for param in module.state_dict():
            key, target = f"{prefix}.{param}", f"{name}.{param}"
            if key in state:
                value = state[key]
            elif param == "bias" and kind == "conv":  # reference --norm none / batch: no bias
                value = torch.zeros_like(mine[target])
            elif param == "num_batches_tracked":  # absent from very old files; unused in eval
                value = mine[target]
            else:
                raise CheckpointError(f"{source}: {hint} (no {key})")
            if value.shape != mine[target].shape:
                raise CheckpointError(
                    f"{source}: {key} has shape {tuple(value.shape)}, a {arch.describe()} "
                    f"generator needs {tuple(mine[target].shape)}"
                )
            out[target] = value.to(mine[target].dtype)
            used.add(key)
    extra = sorted(set(state) - used)
    if extra:
        raise CheckpointError(f"{source}: {hint} (unexpected {extra[0]})")
    return out
