"""``translate serve``: the HTTP translation service (FastAPI + uvicorn, extra ``serve``).

``serve(...)`` loads the models and runs uvicorn; ``create_app(models, config)`` builds the
FastAPI app alone (to embed or test it). Importing this package is cheap: FastAPI, uvicorn and
torch load when these are called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from translate.serve.config import ModelSource, ServeConfig
from translate.serve.models import LoadSettings

if TYPE_CHECKING:  # pragma: no cover
    from translate.serve.app import create_app
    from translate.serve.server import load_models, serve

__all__ = ["LoadSettings", "ModelSource", "ServeConfig", "create_app", "load_models", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from translate.serve.app import create_app

        return create_app
    if name in ("serve", "load_models"):
        from translate.serve import server

        return getattr(server, name)
    raise AttributeError(f"module 'translate.serve' has no attribute {name!r}")
