"""BicycleGAN (Zhu et al. 2017): many answers per paired input, a latent code z that the
generator takes and an encoder recovers.

Registered through the ``translate.plugins`` entry point as ``bicyclegan``. Importing this
package is cheap; networks and torch load when the plugin is used.
"""

from translate_bicyclegan.config import BicycleGANConfig
from translate_bicyclegan.plugin import BicycleGANPlugin, plugin

__all__ = ["BicycleGANConfig", "BicycleGANPlugin", "plugin"]
