"""What a browser loads by itself: the web page and ``/docs``, both with every asset served
from the package, so they work on a machine without internet access.

``/docs`` is FastAPI's Swagger UI page pointed at local copies of Swagger UI's script and style
sheet, which the ``fastapi-offline`` distribution ships (MIT; part of the ``serve`` extra).
With an API key the OpenAPI schema declares bearer auth, so ``/docs`` has an Authorize button.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from translate.serve.security import is_open

STATIC = Path(__file__).resolve().parent / "static"
SWAGGER_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
DOCS_ASSETS_URL = "/docs-assets"


def add_pages(app: FastAPI, *, bearer_auth: bool) -> None:
    """Mount ``/`` (the page), ``/static``, ``/docs`` and its assets on ``app``."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=SWAGGER_ASSETS), name="docs-assets")
    if bearer_auth:
        _declare_bearer(app)


def _declare_bearer(app: FastAPI) -> None:
    """Make the schema say that every operation but the open ones needs the bearer token."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "--api-key"}
        }
        for path, operations in schema.get("paths", {}).items():
            if is_open(path):
                continue
            for operation in operations.values():
                operation["security"] = [{"bearer": []}]
                operation.setdefault("responses", {})["401"] = {
                    "description": "missing or wrong API key"
                }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
