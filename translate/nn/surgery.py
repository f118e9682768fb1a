"""Generic transforms of networks that a plugin built: spectral norm, self-attention insertion.

The engine applies GAN-family stabilisers to whatever models a plugin returns, without the
plugin's cooperation, so these functions work on any ``nn.Module`` by walking its layers:

* ``apply_spectral_norm`` -- Miyato et al. 2018, "Spectral Normalization for Generative
  Adversarial Networks": every convolution, transposed convolution and linear layer gets a
  ``torch.nn.utils.parametrizations.spectral_norm`` (layers that already have one are kept;
  a network may name the layers its paper normalises with ``spectral_norm_layers()``).
* ``add_self_attention`` -- Zhang et al. 2019, SAGAN: a ``SelfAttention2d`` block (identity at
  initialisation, ``gamma = 0``) after one convolution per chain of layers.

A *chain* is the sequence of weighted layers (Conv2d, ConvTranspose2d, Linear) in registration
order, which for sequential networks is the order of the forward pass; a new chain starts at a
layer that reads the network's input channels again (each scale of a multi-scale discriminator).
Layers inside inserted blocks (the attention's projections) are not part of any chain.

Inserted blocks change the state-dict keys (``blocks.2.0`` becomes ``blocks.2.0.0`` plus
``blocks.2.0.1.*``), so a checkpoint trained with them is loaded into models transformed the same
way (``translate.engine.transforms.apply_gan_transforms``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from translate.nn.blocks import SelfAttention2d

__all__ = [
    "LayerSite",
    "add_self_attention",
    "apply_spectral_norm",
    "has_spectral_norm",
    "layer_chains",
    "raw_weight",
]

_CHAIN_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
_SN_LAYERS = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)
#: the target resolution of the attention block, as a downsampling factor (SAGAN: 32x32 maps of
#: 128x128 or 256x256 images, i.e. 1/4 to 1/8)
ATTENTION_FACTOR = 8


@dataclass
class LayerSite:
    """A weighted layer and where it hangs in the model."""

    parent: nn.Module
    name: str
    layer: nn.Module

    def replace(self, module: nn.Module) -> None:
        setattr(self.parent, self.name, module)


def raw_weight(layer: nn.Module) -> Tensor:
    """The trainable weight: ``original`` for a parametrised weight, else ``weight``."""
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight.original  # type: ignore[union-attr,return-value]
    return layer.weight  # type: ignore[return-value]


def has_spectral_norm(layer: nn.Module) -> bool:
    if not parametrize.is_parametrized(layer, "weight"):
        return False
    return any(
        type(p).__name__ == "_SpectralNorm"
        for p in layer.parametrizations.weight  # type: ignore[union-attr]
    )


def _in_width(layer: nn.Module) -> int:
    return layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels  # type: ignore[return-value]


def layer_chains(model: nn.Module) -> list[list[LayerSite]]:
    """The weighted layers of ``model`` in registration order, split into chains (see above)."""
    sites: list[LayerSite] = []
    skip: list[str] = []
    for path, module in model.named_modules():
        if any(path.startswith(prefix) for prefix in skip):
            continue
        if isinstance(module, SelfAttention2d):
            skip.append(path + ".")
            continue
        if isinstance(module, _CHAIN_LAYERS):
            skip.append(path + ".")  # e.g. the spectral-norm parametrisation's own modules
            parent_path, _, name = path.rpartition(".")
            sites.append(LayerSite(model.get_submodule(parent_path), name, module))
    if not sites:
        return []
    first_in = _in_width(sites[0].layer)
    chains: list[list[LayerSite]] = [[sites[0]]]
    for site in sites[1:]:
        if _in_width(site.layer) == first_in:
            chains.append([])
        chains[-1].append(site)
    return chains


def apply_spectral_norm(model: nn.Module) -> int:
    """Spectrally normalise every conv / transposed conv / linear layer; returns how many.

    A network whose paper normalises only some layers says which with a method
    ``spectral_norm_layers() -> Iterable[nn.Module]`` (SPADE: the residual blocks' convolutions,
    not the modulation convolutions); the others are left plain.
    """
    chooser = getattr(model, "spectral_norm_layers", None)
    layers = list(chooser()) if callable(chooser) else list(model.modules())
    count = 0
    for module in layers:
        if isinstance(module, _SN_LAYERS) and not has_spectral_norm(module):
            spectral_norm(module)
            count += 1
    return count


def _stride(layer: nn.Module) -> float:
    if isinstance(layer, nn.ConvTranspose2d):
        return 1.0 / layer.stride[0]
    if isinstance(layer, nn.Conv2d):
        return float(layer.stride[0])
    return 1.0


def add_self_attention(model: nn.Module, *, factor: int = ATTENTION_FACTOR) -> int:
    """Insert ``SelfAttention2d`` after one convolution of each chain of ``model``.

    The site is the first convolution whose output is downsampled by ``factor`` relative to the
    chain's input, or the first one at the chain's deepest resolution when it never gets that
    far. Returns the number of blocks inserted. Raises ``ValueError`` for a model without a
    downsampling convolution (attention over every pixel of a full-size image is out of reach)
    or with fewer than 8 channels at the site.
    """
    chains = [c for c in layer_chains(model) if any(isinstance(s.layer, nn.Conv2d) for s in c)]
    if not chains:
        raise ValueError("has no convolution to attach self-attention to")
    inserted = 0
    for chain in chains:
        scales, f = [], 1.0
        for site in chain:
            f *= _stride(site.layer)
            scales.append(f)
        deepest = max(scales)
        if deepest <= 1:
            raise ValueError(
                "never downsamples, so self-attention would span every pixel of the input; "
                "use a strided (e.g. patch) network"
            )
        target = min(float(factor), deepest)
        site = next(s for s, f in zip(chain, scales, strict=True) if f >= target)
        channels = site.layer.out_channels  # type: ignore[union-attr]
        if channels < 8:
            raise ValueError(f"has {channels} channels at the attention site; needs at least 8")
        site.replace(nn.Sequential(site.layer, SelfAttention2d(channels=int(channels))))
        inserted += 1
    return inserted
