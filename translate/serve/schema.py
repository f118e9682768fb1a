"""The OpenAPI schema as a contract: what a generated client or a fuzzer (schemathesis) needs.

FastAPI's schema of the routes is refined with what only the loaded models know:

- ``{name}`` of ``/v1/models/{name}/translate`` and ``.../sample`` is an enum of the served
  names, and each model also has its own concrete path (``/v1/models/pix2pix/translate``)
  declaring its options as typed query parameters (and multipart fields) with their defaults
  and choices, its real ``tile_size`` minimum, and for a generator ``n`` up to
  ``--max-samples``, ``seed`` 0 to 2^63-1, ``truncation`` from float32's smallest normal
  number, ``class`` an enum of its classes;
- request bodies are the accepted image types (``--formats``), non-empty, at most
  ``--max-upload-mb``;
- 200 responses are binary images with their media types and declared headers; 500 and 503
  (``Retry-After``) are documented; ``/v1/models`` and ``/readyz`` have typed bodies and
  ``/metrics`` its media type;
- ``/v1/models/{name}/drag`` (``translate.serve.dragging``) is declared for the served style
  generators only (its JSON body from the route's model), and left out when there are none.

A request the schema allows is one the server accepts (given an image of an allowed size);
one it forbids is refused with a 4xx. ``tests/test_serve_fuzz.py`` checks both with
schemathesis against a live server.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI

from translate.conditioning import codes
from translate.serve.config import OUTPUT_FORMATS, ServeConfig

#: PIL format names -> the media type a client sends.
INPUT_MEDIA_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "GIF": "image/gif",
}
BINARY = {"type": "string", "format": "binary"}
ERROR = {"$ref": "#/components/schemas/ErrorBody"}


def _header(
    description: str, schema: dict[str, Any] | None = None, *, required: bool = True
) -> dict[str, Any]:
    return {
        "description": description,
        "required": required,
        "schema": schema or {"type": "string"},
    }


def _image_response(description: str, extra_headers: dict[str, Any]) -> dict[str, Any]:
    media = sorted({media for _, media in OUTPUT_FORMATS.values()})
    return {
        "description": description,
        "content": {m: {"schema": BINARY} for m in media},
        "headers": {
            "X-Model": _header("the model's name"),
            "X-Processing-Time-Ms": _header("milliseconds from arrival to answer"),
            "X-Image-Size": _header("WIDTHxHEIGHT of the image returned"),
            "Content-Disposition": _header("inline, with a file name"),
            **extra_headers,
        },
    }


def _param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


def _option_schema(option: dict[str, Any]) -> dict[str, Any]:
    """A plugin option (``translate.serve.models.option_fields``) as a JSON schema."""
    choices, default = option["choices"], option["default"]
    if choices is not None and all(isinstance(c, bool) for c in choices):
        schema: dict[str, Any] = {"type": "boolean"}
        if len(choices) == 1:  # fixed (an ONNX export's)
            schema["enum"] = list(choices)
    elif choices is not None:
        schema = {"type": "string", "enum": [str(c) for c in choices]}
    else:
        schema = {
            "int": {"type": "integer"},
            "float": {"type": "number"},
        }.get(option["type"], {"type": "string"})
    if default is not None:
        schema["default"] = default
    return schema


def _format_param() -> dict[str, Any]:
    return _param(
        "format",
        {"type": "string", "enum": list(OUTPUT_FORMATS), "default": "png"},
        "output format (or send Accept)",
    )


def _errors(config: ServeConfig, codes: Sequence[int]) -> dict[str, Any]:
    texts = {
        400: "empty, corrupt or malformed upload",
        404: "unknown model",
        408: "the body did not arrive within the read timeout",
        413: "upload or image too large, or over the memory budget",
        415: "not an image, or a format that is not accepted",
        422: "bad parameter or option (one line naming it)",
        500: "internal error (the server logs why; no detail is sent)",
        503: "busy (queue or upload memory full), deadline passed, or shutting down",
    }
    out: dict[str, Any] = {}
    for code in codes:
        out[str(code)] = {
            "description": texts[code],
            "content": {"application/json": {"schema": ERROR}},
        }
    out["503"]["headers"] = {
        "Retry-After": _header("seconds to wait", {"type": "string", "pattern": "^[0-9]+$"})
    }
    return out


def _request_body(config: ServeConfig, fields: dict[str, Any]) -> dict[str, Any]:
    media = [INPUT_MEDIA_TYPES[f] for f in config.formats if f in INPUT_MEDIA_TYPES]
    raw = {**BINARY, "minLength": 1, "maxLength": config.max_upload_bytes}
    return {
        "required": True,
        "description": "the image, as the raw body or a multipart field 'image' (other "
        "multipart fields are the model's options)",
        "content": {
            **{m: {"schema": raw} for m in media},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    # no length bounds here: schemathesis would mutate the field to break
                    # them, and the image hooks (translate.serve.fuzzing) would put a valid
                    # image back; the whole body's limit is the upload limit
                    "properties": {"image": BINARY, **fields},
                    "required": ["image"],
                    "additionalProperties": False,
                },
                "encoding": {"image": {"contentType": ", ".join(media)}},
            },
        },
    }


def _translate_op(model: Any, config: ServeConfig, generic: dict[str, Any]) -> dict[str, Any]:
    """The operation of one translating model's concrete path."""
    t = model.translator
    req = t.requirements
    need = max(req.minimum, req.multiple_of)
    options = _fixed(
        model, [o for o in _options(model) if o["name"] not in ("format", "tile_size")]
    )
    op = copy.deepcopy(generic)
    op["operationId"] = f"translate_{model.name}"
    op["summary"] = f"Translate one image with {model.name} ({model.plugin_name})"
    op["parameters"] = [
        _format_param(),
        _param(
            "tile_size",
            {"anyOf": [{"type": "integer", "enum": [0]}, {"type": "integer", "minimum": need}]},
            f"tile side for large images: 0 never tiles, else at least {need} (rounded down to "
            f"a multiple of {req.multiple_of}); default: the model's",
        ),
        _param(
            "tile_overlap",
            {"type": "integer", "minimum": 0},
            f"overlap of tiles (at most the tile less {req.multiple_of}; more is reduced to "
            "that); default a quarter of the tile",
        ),
        *(_param(o["name"], _option_schema(o), o["help"]) for o in options),
    ]
    fields = {o["name"]: _option_schema(o) for o in options}
    if codes(t.conditions):  # many answers per input (translate.serve.work)
        op["parameters"] += _multimodal_params(config)
        if t.code_encoder is not None:
            fields["style"] = BINARY
    op["requestBody"] = _request_body(config, fields)
    return op


def _multimodal_params(config: ServeConfig) -> list[dict[str, Any]]:
    from translate.fields import SEED_MAX

    limit = min(config.max_samples, 64)
    return [
        _param(
            "samples",
            {"type": "integer", "minimum": 1, "maximum": limit},
            f"K translations (1 to {limit}) with codes drawn from N(0, I), side by side in one "
            "image (header X-Samples); default: one, with the zero code",
        ),
        _param(
            "seed",
            {"type": "integer", "minimum": 0, "maximum": SEED_MAX},
            "same seed, same codes (sample s is the same for any samples > s); default: random",
        ),
    ]


def _fixed(model: Any, options: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An ONNX export's options are baked in, but for those that pick a conditioning input's
    value: each of the others takes only the value it was exported with."""
    if model.source.kind != "onnx" or model.translator.opts is None:
        return options
    from translate.config import config_to_dict

    own = config_to_dict(model.translator.opts)
    free = model.condition_options
    return [
        o
        if o["name"] in free or o["name"] not in own
        else {**o, "choices": [own[o["name"]]], "default": own[o["name"]]}
        for o in options
    ]


def _options(model: Any) -> list[dict[str, Any]]:
    from translate.serve.models import option_fields

    return option_fields(model.translator.plugin, model.translator.plugin_cfg)


def _sample_params(generator: Any, config: ServeConfig, *, with_class: bool) -> list[Any]:
    from translate.inference.sampling import MIN_TRUNCATION, SEED_RANGE
    from translate.serve.sampling import DEFAULT_SAMPLES

    params = [
        _param(
            "n",
            {"type": "integer", "minimum": 1, "maximum": config.max_samples,
             "default": min(DEFAULT_SAMPLES, config.max_samples)},
            "how many images (at most the server's --max-samples)",
        ),
        _param(
            "seed",
            {"type": "integer", "minimum": SEED_RANGE[0], "maximum": SEED_RANGE[1]},
            "same seed, same images (0 to 2^63-1); default: random",
        ),
        _param(
            "truncation",
            {"type": "number", "minimum": MIN_TRUNCATION}
            if not getattr(getattr(generator, "sampler", None), "own_truncation", False)
            else {"type": "number"},
            "truncation trick: latents from N(0, 1) truncated to [-T, T], or the plugin's "
            "own (StyleGAN's psi in W, whose range the plugin checks); default: none",
        ),
        _format_param(),
    ]  # fmt: skip
    if with_class and generator is not None and generator.sampler.classes:
        params.insert(
            2,
            _param(
                "class",
                {"type": "string", "enum": list(generator.sampler.classes)},
                "class to draw; default: random per image",
            ),
        )
    if getattr(generator, "texts", False):  # a text-conditioned model (stackgan)
        from translate.text.prompts import MAX_PROMPT

        params.append(
            _param(
                "prompt",
                {"type": "string", "minLength": 1, "maxLength": MAX_PROMPT, "pattern": r"\S"},
                "the text to draw, e.g. 'a red circle'; default: random text vectors",
            )
        )
    return params


MODEL_LIST = {
    "type": "object",
    "required": ["models"],
    "properties": {
        "models": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "plugin", "source", "options", "limits"],
                "properties": {
                    "name": {"type": "string"},
                    "plugin": {"type": "string"},
                    "source": {"type": "string", "enum": ["model", "checkpoint", "onnx"]},
                    "step": {"type": ["integer", "null"]},
                    "backend": {"type": "string"},
                    "device": {"type": "string"},
                    "scale": {"type": "integer"},
                    "multiple_of": {"type": "integer"},
                    "minimum": {"type": "integer"},
                    "options": {"type": "array", "items": {"type": "object"}},
                    "defaults": {"type": "object"},
                    "code": {"type": ["object", "null"]},
                    "limits": {"type": "object"},
                },
            },
        },
        "generators": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "plugin", "latent_shape", "classes", "limits"],
                "properties": {
                    "name": {"type": "string"},
                    "plugin": {"type": "string"},
                    "source": {"type": "string"},
                    "step": {"type": ["integer", "null"]},
                    "device": {"type": "string"},
                    "latent_shape": {"type": "array", "items": {"type": "integer"}},
                    "classes": {"type": "array", "items": {"type": "string"}},
                    "codes": {"type": "array", "items": {"type": "object"}},
                    "parameters": {"type": "array", "items": {"type": "string"}},
                    "limits": {"type": "object"},
                    "drag": {"type": ["object", "null"]},
                },
            },
        },
    },
}
READY = {
    "type": "object",
    "required": ["status", "models", "generators", "queued", "running", "stuck"],
    "properties": {
        "status": {"type": "string", "enum": ["ready"]},
        "models": {"type": "array", "items": {"type": "string"}},
        "generators": {"type": "array", "items": {"type": "string"}},
        "workers": {"type": "integer"},
        "queue_size": {"type": "integer"},
        "queued": {"type": "integer"},
        "running": {"type": "integer"},
        "stuck": {"type": "integer"},
        "completed": {"type": "integer"},
        "rejected": {"type": "integer"},
    },
}


def install(
    app: FastAPI, models: Sequence[Any], generators: Sequence[Any], config: ServeConfig
) -> None:
    """Refine ``app``'s OpenAPI schema (``app.openapi``) as the module docstring says."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        refine(schema, models, generators, config)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def refine(
    schema: dict[str, Any], models: Sequence[Any], generators: Sequence[Any], config: ServeConfig
) -> None:
    paths: dict[str, Any] = schema["paths"]
    names = [m.name for m in models]
    samplers = [g.name for g in generators]
    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}

    translate = paths.pop("/v1/models/{name}/translate")["post"]
    translate["responses"] = {
        "200": _image_response(
            "the translated image",
            {
                "X-Queue-Time-Ms": _header("milliseconds waiting for a worker"),
                "X-Batch-Size": _header("images translated together"),
                "X-Samples": _header(  # sent only when several samples were asked for
                    "a model with a code: how many outputs, side by side", required=False
                ),
            },
        ),
        **_errors(config, (400, 404, 408, 413, 415, 422, 500, 503)),
    }
    translate["requestBody"] = _request_body(config, {})
    if names:
        generic = copy.deepcopy(translate)
        generic["parameters"] = [
            {**name_param, "schema": {"type": "string", "enum": names},
             "description": "a served model (GET /v1/models)"},
            _format_param(),
        ]  # fmt: skip
        generic["description"] = (
            "Tiling and the model's options: see the model's own path "
            "(/v1/models/NAME/translate) or GET /v1/models."
        )
        paths["/v1/models/{name}/translate"] = {"post": generic}
        for model in models:
            paths[f"/v1/models/{model.name}/translate"] = {
                "post": _translate_op(model, config, translate)
            }

    sample = paths.pop("/v1/models/{name}/sample")["get"]
    sample["responses"] = {
        "200": _image_response(
            "the samples tiled row by row (about sqrt(n) columns)",
            {"X-Samples": _header("how many images", {"type": "string", "pattern": "^[0-9]+$"})},
        ),
        **_errors(config, (404, 413, 422, 500, 503)),
    }
    if samplers:
        generic = copy.deepcopy(sample)
        generic["parameters"] = [
            {**name_param, "schema": {"type": "string", "enum": samplers},
             "description": "a served generating model (GET /v1/models)"},
            *_sample_params(None, config, with_class=False),
        ]  # fmt: skip
        paths["/v1/models/{name}/sample"] = {"get": generic}
        for g in generators:
            op = copy.deepcopy(sample)
            op["operationId"] = f"sample_{g.name}"
            op["summary"] = f"New images from {g.name} ({g.plugin_name}), as one grid image"
            op["parameters"] = _sample_params(g, config, with_class=True)
            paths[f"/v1/models/{g.name}/sample"] = {"get": op}

    drag = paths.pop("/v1/models/{name}/drag")["post"]
    draggable = [g.name for g in generators if getattr(g, "drag", None)]
    if draggable:  # the style generators (stylegan2): translate.serve.dragging
        drag["parameters"] = [
            {**name_param, "schema": {"type": "string", "enum": draggable},
             "description": "a served style generator (GET /v1/models: its drag limits)"},
        ]  # fmt: skip
        drag["responses"] = {
            "200": drag["responses"]["200"],
            **_errors(config, (404, 413, 422, 500, 503)),
        }
        paths["/v1/models/{name}/drag"] = {"post": drag}

    listing = paths["/v1/models"]["get"]
    listing["responses"]["200"]["content"]["application/json"]["schema"] = MODEL_LIST
    ready = paths["/readyz"]["get"]
    ready["responses"]["200"]["content"]["application/json"]["schema"] = READY
    ready["responses"]["503"] = {
        "description": "not ready: starting, shutting down, or a worker stuck",
        "content": {"application/json": {"schema": ERROR}},
    }
    health = paths["/healthz"]["get"]
    health["responses"]["200"]["content"]["application/json"]["schema"] = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["ok"]}},
    }
    paths["/metrics"]["get"]["responses"] = {
        "200": {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    }
