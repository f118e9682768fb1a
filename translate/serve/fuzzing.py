"""Schemathesis hooks for fuzzing ``translate serve``: request bodies that are real images.

The schema (``translate.serve.schema``) says a body is a PNG, JPEG, WebP, BMP or TIFF file; a
JSON schema cannot say what makes bytes a valid PNG, so schemathesis would send random bytes
(rightly refused, 415) and never reach a model. Loaded as schemathesis hooks, this module
registers a strategy per image media type that draws small real images (sizes, modes and
colours drawn by Hypothesis), so that every schema-valid request is one the server must
accept::

    SCHEMATHESIS_HOOKS=translate.serve.fuzzing schemathesis run http://127.0.0.1:8000/openapi.json

Negative cases (schema-invalid requests) are still schemathesis' own.
"""

from __future__ import annotations

import io

import schemathesis
from hypothesis import strategies as st
from PIL import Image

#: media type -> PIL format
FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/webp": "WEBP",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
}
#: The largest side drawn: small, so that a fuzzing run spends its time on requests.
MAX_SIDE = 48


@st.composite
def images(draw: st.DrawFn, fmt: str) -> bytes:
    """One encoded image of format ``fmt``: 1..MAX_SIDE pixels a side, RGB, grey or RGBA."""
    w = draw(st.integers(1, MAX_SIDE))
    h = draw(st.integers(1, MAX_SIDE))
    modes = ["RGB", "L"] if fmt == "JPEG" else ["RGB", "L", "RGBA"]
    mode = draw(st.sampled_from(modes))
    seed = draw(st.integers(0, 255))
    image = Image.effect_noise((w, h), 32 + seed % 64).convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def register() -> None:
    """Register the image strategies with schemathesis (done on import)."""
    for media, fmt in FORMATS.items():
        schemathesis.openapi.media_type(media, images(fmt))


register()
