"""Neural-network building blocks: generators, discriminators, blocks, norms and initialisation.

Networks are pure ``nn.Module`` s with keyword-only constructors; they never read options or move
themselves to a device. See each module for the paper it implements:

* ``UnetGenerator`` -- pix2pix U-Net (Isola et al. 2017), ``translate.nn.unet``;
* ``ResnetGenerator`` -- Johnson et al. 2016 / CycleGAN (Zhu et al. 2017), ``translate.nn.resnet``;
* ``PatchDiscriminator``, ``PixelDiscriminator``, ``MultiscaleDiscriminator`` -- PatchGAN
  (Isola et al. 2017) and pix2pixHD (Wang et al. 2018), ``translate.nn.patchgan``;
* ``ResnetBlock``, ``SelfAttention2d`` (SAGAN, Zhang et al. 2019) -- ``translate.nn.blocks``;
* ``DCGANGenerator``, ``DCGANDiscriminator`` -- Radford et al. 2016, ``translate.nn.dcgan``;
* ``norm_layer`` -- batch / instance / no normalisation, ``translate.nn.norms``;
* ``init_weights`` -- DCGAN-style initialisation schemes, ``translate.nn.init``.
"""

from __future__ import annotations

from translate.nn.blocks import ResnetBlock, SelfAttention2d
from translate.nn.init import init_weights
from translate.nn.norms import NormKind, norm_layer, uses_bias
from translate.nn.patchgan import MultiscaleDiscriminator, PatchDiscriminator, PixelDiscriminator
from translate.nn.resnet import ResnetGenerator
from translate.nn.unet import UnetGenerator

__all__ = [
    "MultiscaleDiscriminator",
    "NormKind",
    "PatchDiscriminator",
    "PixelDiscriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "SelfAttention2d",
    "UnetGenerator",
    "init_weights",
    "norm_layer",
    "uses_bias",
]
