"""TransGAN (Jiang et al. 2021): a GAN whose generator and discriminator are transformers,
without convolutions.

Registered through the ``translate.plugins`` entry point as ``transgan``. Importing this
package is cheap; networks and torch load when the plugin is used.
"""

from translate_transgan.plugin import TransGANConfig, TransGANPlugin, plugin

__all__ = ["TransGANConfig", "TransGANPlugin", "plugin"]
