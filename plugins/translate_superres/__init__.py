"""superres: single-image super-resolution x2/x3/x4 (SRGAN, Ledig et al. 2017; ESRGAN, Wang et
al. 2018), PSNR-oriented pixel training then GAN fine-tuning.

Registered through the ``translate.plugins`` entry point as ``superres``. Importing this package
is cheap; networks and torch load when the plugin is used.
"""

from translate_superres.plugin import SuperResConfig, SuperResPlugin, plugin

__all__ = ["SuperResConfig", "SuperResPlugin", "plugin"]
