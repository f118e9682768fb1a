"""CUT and FastCUT (Park et al. 2020): unpaired image-to-image translation with one generator
and a patch-wise contrastive loss.

Registered through the ``translate.plugins`` entry point as ``cut``. Importing this package is
cheap; networks and torch load when the plugin is used.
"""

from translate_cut.config import CUTConfig
from translate_cut.plugin import CUTPlugin, plugin

__all__ = ["CUTConfig", "CUTPlugin", "plugin"]
