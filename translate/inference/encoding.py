"""Encoding images into a generating model's latents, and reconstructing them (BiGAN's E).

A plugin that ``encodes`` (bigan: Donahue et al. 2017; ALI: Dumoulin et al. 2017) has an encoder
E mapping images to the latents its generator takes (``Plugin.encoder_module``). ``Encoder``
loads a checkpoint and runs E on PIL images of any size (each resized to the encoder's square
side, ``Plugin.encoder_size``): ``encode`` returns latents, ``reconstruct`` the images
G(E(x)). ``save_latents`` writes latents as ``.npy`` (an (N, *latent_shape) float32 array in
the order of the inputs) or ``.safetensors`` (tensor ``latents``, the input file names in its
metadata ``files``, JSON), atomically and never over a file unless asked. What ``translate
encode`` does; ``translate run`` on such a model returns G(E(x)) through ``as_reconstruction``;
``export_encoder`` writes E as ONNX (``translate export --encoder``), checked like any export.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.nn import functional as F

from translate.errors import ConfigError, OutputError, refuse_existing

__all__ = [
    "LATENT_SUFFIXES",
    "Encoder",
    "Reconstruction",
    "as_reconstruction",
    "export_encoder",
    "save_latents",
]

LATENT_SUFFIXES = (".npy", ".safetensors")
#: Images encoded per forward pass.
CHUNK = 256


def _refuse(loaded: Any) -> None:
    plugin = loaded.plugin
    if not (getattr(plugin, "generates", False) and getattr(plugin, "encodes", False)):
        raise ConfigError(
            f"{loaded.source}: plugin {plugin.name} has no encoder (bigan has one: it maps images "
            "to latents)"
        )
    if not hasattr(loaded, "models"):
        raise ConfigError(
            f"{loaded.source}: encoding runs on a checkpoint on torch (the ONNX exports are the "
            "generator and, with --encoder, the encoder, each on its own)"
        )


class Reconstruction(nn.Module):
    """x (B, 3, H, W) in [-1, 1] -> G(E(x)) (B, 3, H, W): resized to the encoder's side S
    (bilinear, antialiased), encoded, generated, resized back to H x W."""

    def __init__(self, encoder: nn.Module, generator: nn.Module, size: int) -> None:
        super().__init__()
        self.encoder, self.generator, self.size = encoder, generator, size
        self.train(generator.training)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        side = (self.size, self.size)
        small = x if (h, w) == side else F.interpolate(x, side, mode="bilinear", antialias=True)
        y = self.generator(self.encoder(small))
        return y if (h, w) == side else F.interpolate(y, (h, w), mode="bilinear").clamp(-1, 1)


def as_reconstruction(loaded: Any) -> Any:
    """``loaded`` (a ``LoadedModel`` of an encoding plugin) with G(E(x)) as its module: what
    ``translate run`` applies to images."""
    _refuse(loaded)
    plugin, cfg = loaded.plugin, loaded.plugin_cfg
    encoder = plugin.encoder_module(loaded.models, cfg)
    module = Reconstruction(encoder, loaded.module, plugin.encoder_size(cfg))
    return dataclasses.replace(loaded, module=module)


class Encoder:
    """E of a loaded checkpoint (``translate.loading.load_module``) of an encoding plugin."""

    def __init__(self, loaded: Any) -> None:
        _refuse(loaded)
        self.loaded, self.plugin, self.plugin_cfg = loaded, loaded.plugin, loaded.plugin_cfg
        self.module = self.plugin.encoder_module(loaded.models, self.plugin_cfg)
        self.size = int(self.plugin.encoder_size(self.plugin_cfg))
        self.latent_shape = tuple(self.plugin.latent_shape(self.plugin_cfg))

    @classmethod
    def from_checkpoint(cls, path: Path | str, *, device: str = "cpu") -> Encoder:
        from translate.loading import load_module

        return cls(load_module(path, device=device))

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def tensor(self, images: Sequence[Image.Image]) -> Tensor:
        """PIL images -> (N, 3, S, S) in [-1, 1], each resized to the encoder's side."""
        from translate.inference.image_io import pil_to_tensor

        side = (self.size, self.size)
        sized = [im.convert("RGB").resize(side, Image.Resampling.BICUBIC) for im in images]
        return pil_to_tensor(sized)

    @torch.no_grad()
    def encode(self, images: Sequence[Image.Image]) -> Tensor:
        """Latents (N, *latent_shape), float32 on the CPU, in the order of ``images``."""
        if not images:
            raise ConfigError("images: nothing to encode")
        x = self.tensor(images)
        out = [
            self.module(x[i : i + CHUNK].to(self.device)).float().cpu()
            for i in range(0, len(x), CHUNK)
        ]
        return torch.cat(out)

    @torch.no_grad()
    def reconstruct(self, images: Sequence[Image.Image]) -> list[Image.Image]:
        """G(E(x)) of each image, at the model's size (``translate run`` resizes back)."""
        z = self.encode(images).to(self.device)
        return self.plugin.postprocess(self.loaded.module(z).float().cpu(), self.plugin_cfg)


def save_latents(
    latents: Tensor, files: Sequence[Path], out: Path, *, overwrite: bool = False
) -> Path:
    """Write ``latents`` (N, ...) for the input ``files`` to ``out`` (``.npy`` or
    ``.safetensors``), atomically; never over an existing file unless ``overwrite``."""
    from translate.atomic import atomic_path

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in LATENT_SUFFIXES:
        raise ConfigError(f"--out: {out} should end in .npy or .safetensors")
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; give a file name ending in {suffix}")
    refuse_existing([out], overwrite=overwrite)
    array = latents.detach().float().cpu().contiguous()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, array.numpy())
        else:
            from safetensors.torch import save_file

            names = json.dumps([str(Path(f).name) for f in files])
            save_file({"latents": array}, str(tmp), metadata={"files": names})
    return out


def export_encoder(checkpoint: Path | str, out: Path | str, *, opset: int | None = None) -> Any:
    """Export the encoder E of an encoding plugin (bigan): images (B, 3, S, S) in [-1, 1] ->
    latents (B, *latent_shape), checked against PyTorch; metadata ``part`` = encoder."""
    from translate.loading import load_module
    from translate.loading.onnx_export import export_loaded

    encoder = Encoder(load_module(checkpoint, device="cpu"))
    loaded = dataclasses.replace(encoder.loaded, module=encoder.module)
    shape = (3, encoder.size, encoder.size)
    extra = {
        "part": "encoder",
        "encoder_input": json.dumps(list(shape)),
        "encoder_latent_shape": json.dumps(list(encoder.latent_shape)),
    }
    return export_loaded(loaded, Path(out), opset=opset, input_shape=shape, metadata_extra=extra)
