"""label2image: semantic label maps -> photos (SPADE, Park et al. 2019; pix2pixHD's global
generator, Wang et al. 2018).

Registered through the ``translate.plugins`` entry point as ``label2image``. Importing this
package is cheap; networks and torch load when the plugin is used.
"""

from translate_label2image.plugin import Label2ImageConfig, Label2ImagePlugin, plugin

__all__ = ["Label2ImageConfig", "Label2ImagePlugin", "plugin"]
