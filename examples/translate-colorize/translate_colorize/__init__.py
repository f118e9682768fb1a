"""translate-colorize: grayscale photo -> colour photo, registered as translate's ``colorize``.

Importing this package is cheap (no torch): ``translate plugins`` imports every plugin to list it.
"""

from translate_colorize.plugin import ColorizeConfig, ColorizePlugin, plugin

__all__ = ["ColorizeConfig", "ColorizePlugin", "plugin"]
