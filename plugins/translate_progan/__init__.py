"""ProGAN (Karras et al. 2018, "Progressive Growing of GANs"): unconditional generation by
networks that grow from 4x4, each new resolution faded in.

Registered through the ``translate.plugins`` entry point as ``progan``. Importing this package
is cheap; networks and torch load when the plugin is used.
"""

from translate_progan.plugin import ProGANConfig, ProGANPlugin, growth_at, plugin

__all__ = ["ProGANConfig", "ProGANPlugin", "growth_at", "plugin"]
