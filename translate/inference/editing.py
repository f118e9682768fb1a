"""The editable-generator protocol: what inference-time optimisation (GAN inversion,
``translate.inference.inversion``; DragGAN point dragging, ``translate.inference.dragging``)
needs from a generator, and its two implementations.

- ``StyleEditable``: a style-based generator (StyleGAN2, Karras et al. 2020) that has
  ``mapping(z, psi) -> ws (B, num_ws, w_dim)`` and ``synthesis(ws, noise_mode,
  return_features=...)`` with per-layer ``noise_const`` buffers: the latent is w (or w+, one w
  per layer), the noise maps can be optimised too, block k's features are at 4 * 2**k px.
- ``LatentEditable``: any other generator from noise (dcgan, progan): the latent is z itself
  (``map`` is the identity, one "layer"), no noise maps, no features (inversion only).

``editable(loaded)`` picks one for a model ``translate.loading.load`` returned. The generator is
deep-copied, put in eval mode and frozen, so optimising a latent never changes the model.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from translate.errors import ConfigError

__all__ = ["Editable", "LatentEditable", "StyleEditable", "editable"]


class Editable(Protocol):
    #: "w" (a style generator: the latent is w, or w+ with one w per layer) or "z"
    space: str
    resolution: int
    #: how many per-layer latents w+ has (1 for a z-space generator)
    num_ws: int
    device: torch.device

    def draw(self, seed: int) -> Tensor:
        """The latent z (1, ...) of ``seed`` (the same seed, the same latent)."""
        ...

    def map(self, z: Tensor) -> Tensor:
        """z -> the latent optimised: ws (B, num_ws, w_dim), or z itself."""
        ...

    def mean_and_std(self, samples: int = 10000, seed: int = 123) -> tuple[Tensor, float]:
        """Where inversion starts (w_avg, or z = 0) and the latent's spread (the projector's
        w_std = sqrt(E ||w - w_avg||^2), the scale of its latent noise)."""
        ...

    def synthesize(self, latent: Tensor) -> Tensor:
        """The latent (as ``map`` returns) -> image (B, 3, R, R) in about [-1, 1]."""
        ...

    def features(self, latent: Tensor, block: int) -> tuple[Tensor, Tensor]:
        """(image, feature map of ``block``); raises ``ConfigError`` where there are none."""
        ...

    def noise_buffers(self) -> list[Tensor]:
        """The per-layer noise maps (empty for a z-space generator)."""
        ...

    def set_noise(self, buffers: list[Tensor]) -> None:
        """Replace the noise maps (e.g. with tensors that require grad, to optimise them)."""
        ...

    def feature_blocks(self) -> list[int]:
        """The resolution of each block's feature map (empty when there are none)."""
        ...


class StyleEditable:
    """A StyleGAN2-like generator ``G`` (``mapping``, ``synthesis``) as an ``Editable``."""

    space = "w"

    def __init__(self, G: nn.Module) -> None:  # noqa: N803
        self.G = copy.deepcopy(G).eval().requires_grad_(False)
        self.device = next(self.G.parameters()).device
        self.resolution = int(self.G.synthesis.resolution)
        self.num_ws = int(self.G.synthesis.num_ws)
        self.z_dim = int(self.G.mapping.z_dim)
        self.layers = [m for m in self.G.synthesis.modules() if hasattr(m, "noise_const")]

    def draw(self, seed: int) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(1, self.z_dim, generator=gen).to(self.device)

    def map(self, z: Tensor) -> Tensor:
        with torch.no_grad():
            return self.G.mapping(z.to(self.device)).float()

    def mean_and_std(self, samples: int = 10000, seed: int = 123) -> tuple[Tensor, float]:
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(samples, self.z_dim, generator=gen).to(self.device)
        with torch.no_grad():
            w = torch.cat([self.G.mapping(c)[:, :1] for c in z.split(1000)])
        mean = w.mean(0, keepdim=True)
        return mean.expand(-1, self.num_ws, -1).clone(), float(
            ((w - mean).square().sum() / samples).sqrt()
        )

    def synthesize(self, latent: Tensor) -> Tensor:
        return self.G.synthesis(latent, "const")

    def features(self, latent: Tensor, block: int) -> tuple[Tensor, Tensor]:
        image, feats = self.G.synthesis(latent, "const", return_features=True)
        return image, feats[block]

    def noise_buffers(self) -> list[Tensor]:
        return [layer.noise_const for layer in self.layers]

    def set_noise(self, buffers: list[Tensor]) -> None:
        """Replace the noise maps (e.g. with tensors that require grad, to optimise them)."""
        for layer, buf in zip(self.layers, buffers, strict=True):
            layer.noise_const = buf

    def feature_blocks(self) -> list[int]:
        return [int(r) for r in self.G.synthesis.resolutions]


class LatentEditable:
    """Any generator ``module(z) -> image`` from noise of ``latent_shape`` as an ``Editable``:
    inversion optimises z (no w, no noise maps, no features)."""

    space = "z"
    num_ws = 1

    def __init__(self, module: nn.Module, latent_shape: tuple[int, ...]) -> None:
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        self.device = next(self.module.parameters()).device
        self.latent_shape = tuple(latent_shape)
        with torch.no_grad():
            self.resolution = int(self.synthesize(self.draw(0)).shape[-1])

    def draw(self, seed: int) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(1, *self.latent_shape, generator=gen).to(self.device)

    def map(self, z: Tensor) -> Tensor:
        return z.to(self.device).float()

    def mean_and_std(self, samples: int = 10000, seed: int = 123) -> tuple[Tensor, float]:
        size = 1
        for s in self.latent_shape:
            size *= s
        return torch.zeros(1, *self.latent_shape, device=self.device), float(size) ** 0.5

    def synthesize(self, latent: Tensor) -> Tensor:
        return self.module(latent)

    def features(self, latent: Tensor, block: int) -> tuple[Tensor, Tensor]:
        raise ConfigError("this generator exposes no feature maps (dragging needs stylegan2)")

    def noise_buffers(self) -> list[Tensor]:
        return []

    def set_noise(self, buffers: list[Tensor]) -> None:
        if buffers:
            raise ValueError("a z-space generator has no noise maps")

    def feature_blocks(self) -> list[int]:
        return []


def editable(loaded: Any) -> StyleEditable | LatentEditable:
    """The ``Editable`` of a loaded PyTorch generating model: its style generator (an
    inference module with ``G.mapping`` and ``G.synthesis``), else its z -> image module."""
    module = getattr(loaded, "module", None)
    plugin = loaded.plugin
    if module is None or not getattr(plugin, "generates", False):
        raise ConfigError(
            f"{loaded.source}: editing needs a generating model run in PyTorch (a checkpoint "
            f"of stylegan2, dcgan, progan...), not {plugin.name}"
        )
    G = getattr(module, "G", None)
    if G is not None and hasattr(G, "mapping") and hasattr(G, "synthesis"):
        return StyleEditable(G)
    if getattr(plugin, "condition_inputs", None) and plugin.condition_inputs(loaded.plugin_cfg):
        raise ConfigError(f"{loaded.source}: editing a conditional generator is not supported")
    return LatentEditable(module, tuple(plugin.latent_shape(loaded.plugin_cfg)))
