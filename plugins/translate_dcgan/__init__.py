"""DCGAN (Radford et al. 2016): unconditional image generation from noise.

Registered through the ``translate.plugins`` entry point as ``dcgan``. Importing this package
is cheap; networks and torch load when the plugin is used.
"""

from translate_dcgan.plugin import DCGANConfig, DCGANPlugin, plugin

__all__ = ["DCGANConfig", "DCGANPlugin", "plugin"]
