"""StarGAN (Choi et al. 2018): multi-domain image-to-image translation with one generator.

Registered through the ``translate.plugins`` entry point as ``stargan``. Importing this package
is cheap; networks and torch load when the plugin is used.
"""

from translate_stargan.plugin import StarGANConfig, StarGANInference, StarGANPlugin, plugin

__all__ = ["StarGANConfig", "StarGANInference", "StarGANPlugin", "plugin"]
