"""InfoGAN (Chen et al. 2016): generation from noise and named codes that the model learns to
mean something (a digit's class, its slant, its width), without labels.

Registered through the ``translate.plugins`` entry point as ``infogan``. Importing this package
is cheap; networks and torch load when the plugin is used.
"""

from translate_infogan.plugin import InfoGANConfig, InfoGANPlugin, plugin

__all__ = ["InfoGANConfig", "InfoGANPlugin", "plugin"]
