"""Text-to-image GANs: StackGAN (Zhang et al. 2017) and, with ``--generator gigagan``,
GigaGAN's generator blocks at small scale (Kang et al. 2023).

Registered through the ``translate.plugins`` entry point as ``stackgan``. Importing this
package is cheap; networks and torch load when the plugin is used.
"""

from translate_stackgan.plugin import StackGANConfig, StackGANPlugin, plugin

__all__ = ["StackGANConfig", "StackGANPlugin", "plugin"]
