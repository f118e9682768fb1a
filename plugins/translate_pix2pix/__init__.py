"""pix2pix (Isola et al. 2017): paired image-to-image translation with a conditional GAN.

Registered through the ``translate.plugins`` entry point as ``pix2pix``. Importing this package
is cheap; networks and torch load when the plugin is used.
"""

from translate_pix2pix.plugin import Pix2PixConfig, Pix2PixInference, Pix2PixPlugin, plugin

__all__ = ["Pix2PixConfig", "Pix2PixInference", "Pix2PixPlugin", "plugin"]
