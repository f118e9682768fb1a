"""BiGAN (Donahue et al. 2017) and ALI (Dumoulin et al. 2017): a generator with an encoder
learnt by the same adversarial game, so images map back to latents.

Registered through the ``translate.plugins`` entry point as ``bigan``. Importing this package
is cheap; networks and torch load when the plugin is used.
"""

from translate_bigan.plugin import BiGANConfig, BiGANPlugin, plugin

__all__ = ["BiGANConfig", "BiGANPlugin", "plugin"]
