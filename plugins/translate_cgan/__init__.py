"""Class-conditional GANs (Mirza and Osindero 2014; AC-GAN, Odena et al. 2017; the projection
discriminator, Miyato and Koyama 2018): generate images of a chosen class.

Registered through the ``translate.plugins`` entry point as ``cgan``. Importing this package is
cheap; networks and torch load when the plugin is used.
"""

from translate_cgan.plugin import CGANConfig, CGANPlugin, plugin

__all__ = ["CGANConfig", "CGANPlugin", "plugin"]
