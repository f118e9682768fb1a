"""CycleGAN (Zhu et al. 2017): unpaired image-to-image translation with cycle consistency.

Registered through the ``translate.plugins`` entry point as ``cyclegan``. Importing this package
is cheap; networks and torch load when the plugin is used.
"""

from translate_cyclegan.plugin import CycleGANConfig, CycleGANInference, CycleGANPlugin, plugin

__all__ = ["CycleGANConfig", "CycleGANInference", "CycleGANPlugin", "plugin"]
