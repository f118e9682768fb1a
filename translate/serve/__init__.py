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

__all__ = [
    "LoadSettings",
    "ModelSource",
    "ServeConfig",
    "create_app",
    "load_models",
    "require_extra",
    "serve",
]

#: The modules of the ``serve`` extra (import name -> distribution), checked before starting.
EXTRA_MODULES = {
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "python_multipart": "python-multipart",
    "prometheus_client": "prometheus-client",
    "fastapi_offline": "fastapi-offline",
}


def require_extra() -> None:
    """A one-line ``ConfigError`` naming the ``serve`` extra when any of its packages is
    missing (instead of an ImportError traceback at the first import)."""
    import importlib

    from translate.errors import ConfigError

    missing = []
    for module, dist in EXTRA_MODULES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(dist)
    if missing:
        raise ConfigError(
            f"translate serve needs the serve extra ({', '.join(missing)} missing): "
            'pip install "translate[serve]" (from a clone: pip install -e ".[serve]")'
        )


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from translate.serve.app import create_app

        return create_app
    if name in ("serve", "load_models"):
        from translate.serve import server

        return getattr(server, name)
    raise AttributeError(f"module 'translate.serve' has no attribute {name!r}")
