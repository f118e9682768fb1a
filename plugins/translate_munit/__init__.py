"""MUNIT (Huang et al. 2018): unpaired multimodal translation, an image split into a content
code shared by both domains and a style code of its own.

Registered through the ``translate.plugins`` entry point as ``munit``. Importing this package
is cheap; networks and torch load when the plugin is used.
"""

from translate_munit.config import MUNITConfig, MUNITInference
from translate_munit.plugin import MUNITPlugin, plugin

__all__ = ["MUNITConfig", "MUNITInference", "MUNITPlugin", "plugin"]
