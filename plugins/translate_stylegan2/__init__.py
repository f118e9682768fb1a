"""StyleGAN2 (Karras et al. 2020) with adaptive discriminator augmentation (ADA, Karras et al.
2020b): unconditional image generation from a style-based generator.

Registered through the ``translate.plugins`` entry point as ``stylegan2``. Importing this
package is cheap; networks and torch load when the plugin is used.
"""

from translate_stylegan2.plugin import StyleGAN2Config, StyleGAN2Inference, StyleGAN2Plugin, plugin

__all__ = ["StyleGAN2Config", "StyleGAN2Inference", "StyleGAN2Plugin", "plugin"]
