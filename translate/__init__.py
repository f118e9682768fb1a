"""translate: image-to-image translation with GANs.

Importing this package is cheap (no torch import); the heavy entry points are loaded lazily:
``translate.train(...)``, ``translate.Translator`` and ``translate.Sampler`` (generating models).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from translate.engine.loop import train
    from translate.inference.sampling import Sampler
    from translate.inference.translator import Translator

__all__ = ["Sampler", "Translator", "__version__", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from translate.engine.loop import train

        return train
    if name == "Translator":
        from translate.inference.translator import Translator

        return Translator
    if name == "Sampler":
        from translate.inference.sampling import Sampler

        return Sampler
    raise AttributeError(f"module 'translate' has no attribute {name!r}")
