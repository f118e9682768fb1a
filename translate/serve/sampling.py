"""Served generating models (dcgan, cgan): ``GET /v1/models/{name}/sample`` returns a grid of
new images.

A checkpoint of a generating plugin is loaded as a ``Sampler`` (``translate sample``'s) instead
of a ``Translator``. A request names ``n`` (at most ``--max-samples``), and optionally ``seed``,
``class``, ``truncation`` and ``code`` (repeated ``NAME=VALUE``: InfoGAN's codes, as ``translate
sample --code``; the model's list under ``codes`` in ``GET /v1/models``); it runs in the
inference pool like a translation, priced by its work: ``n`` times the bytes one sample needs,
measured at start (the generator's live module outputs for one latent, as
``translate.serve.budget`` measures translators, times its slack, plus the sample's float and
PIL copies and its share of the grid), so the pool's memory budget bounds sampling exactly as
it bounds translation.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from translate.conditioning import code_values, to_json
from translate.errors import ConfigError
from translate.serve.admission import QueryInt, QueryNumber, await_result, single_values
from translate.serve.budget import (
    ACTIVATION_SLACK,
    FALLBACK_ACTIVATION_BYTES_PER_PIXEL,
    _peak_output_bytes,
)
from translate.serve.config import OUTPUT_FORMATS, ModelSource, ServeConfig
from translate.serve.images import ApiError, encode, output_format
from translate.serve.pool import InferencePool, OverBudget, PoolClosed

#: Bytes per output pixel of a sample besides activations: its float32 tensor (12), the
#: uint8 PIL image (4) and its place in the grid (3) and the encoded grid (3, at worst).
SAMPLE_BYTES_PER_PIXEL = 12 + 4 + 3 + 3
#: Samples per request when the request does not say (at most the server's limit).
DEFAULT_SAMPLES = 16
#: The query parameter that picks a class (a class-conditional model, cgan).
CLASS_PARAMETER = "class"


class _Draw(torch.nn.Module):
    """``_Draw(n)`` draws n samples through the sampler, so that hooks on the generator's
    modules (a child of this one) see every activation, whatever the generator's inputs."""

    def __init__(self, sampler: Any, generator: torch.nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.draw = sampler.sample_tensor

    def forward(self, n: int) -> torch.Tensor:
        return self.draw(n, seed=0)


@dataclass(frozen=True)
class SampleRequest:
    """One request's parameters, checked."""

    n: int
    seed: int | None
    class_name: str | None
    truncation: float | None
    format: str
    codes: tuple[str, ...] = ()
    prompt: str | None = None


@dataclass
class ServedGenerator:
    """A generating model under its URL name."""

    source: ModelSource
    sampler: Any  # translate.inference.sampling.Sampler
    sample_bytes: int = 0  # measured by ``warm_up``
    drag: dict[str, int] | None = None  # a style generator's drag limits (serve.dragging)

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def plugin_name(self) -> str:
        return str(self.sampler.plugin.name)

    def warm_up(self) -> None:
        """Draw samples once (the first request is not slow) and measure one sample's price:
        the generator's live module outputs while it draws one image, times the slack."""
        sampler = self.sampler
        image = sampler.sample_tensor(2, seed=0)  # (2, C, H, W)
        pixels = int(image.shape[-1] * image.shape[-2])
        generator = getattr(sampler, "module", None)
        if generator is not None:
            activations = _peak_output_bytes(_Draw(sampler, generator), 1) * ACTIVATION_SLACK
        else:  # a runtime whose tensors cannot be hooked
            activations = pixels * FALLBACK_ACTIVATION_BYTES_PER_PIXEL
        self.sample_bytes = int(activations + pixels * SAMPLE_BYTES_PER_PIXEL)

    def price(self, n: int) -> int:
        return n * self.sample_bytes

    def check(
        self,
        *,
        n: int,
        seed: int | None,
        class_name: str | None,
        truncation: float | None,
        format: str,
        max_samples: int,
        codes: tuple[str, ...] = (),
        prompt: str | None = None,
    ) -> SampleRequest:
        """The request's parameters, or a ``ConfigError`` (422) naming the bad one."""
        from translate.inference.sampling import check_seed, check_truncation

        if not 1 <= n <= max_samples:
            raise ConfigError(f"n: must be from 1 to {max_samples} (this server's limit), got {n}")
        check_seed(seed)
        if not getattr(self.sampler, "own_truncation", False):  # else the plugin checks it
            check_truncation(truncation)
        if class_name is not None:
            if not self.sampler.classes:
                raise ConfigError(
                    f"class: model {self.name!r} ({self.plugin_name}) is unconditional; it has "
                    "no classes"
                )
            self.sampler.class_index(class_name)  # unknown class: one line, did-you-mean
        fixed = code_values(self.sampler.conditions, list(codes))  # unknown code, out of range
        if prompt is not None:  # a text-conditioned model: empty, too long, no text encoder
            from translate.text.prompts import prompt_vector

            prompt_vector(self.sampler.loaded, self.sampler.conditions, prompt, fixed)
        return SampleRequest(n, seed, class_name, truncation, format, tuple(codes), prompt)

    @property
    def parameters(self) -> list[str]:
        """The query parameters of this model's sample endpoint."""
        return [
            "n",
            "seed",
            *([CLASS_PARAMETER] if self.sampler.classes else []),
            "truncation",
            "format",
            *(["code"] if self.sampler.conditions else []),  # NAME=VALUE (infogan's codes)
            *(["prompt"] if self.texts else []),
        ]

    @property
    def texts(self) -> bool:
        """Whether the model is text-conditioned (a ``prompt`` input: stackgan)."""
        from translate.text.prompts import PROMPT_OPTION

        return any(c.option == PROMPT_OPTION for c in self.sampler.conditions)

    def check_parameters(self, names: Any) -> None:
        """Refuse (422) a query parameter the endpoint does not know, as translate does."""
        # class on an unconditional model: check() says why
        unknown = [k for k in names if k not in (*self.parameters, CLASS_PARAMETER)]
        if unknown:
            raise ConfigError(
                f"query parameter {unknown[0]!r} is not known to model {self.name!r} "
                f"(plugin {self.plugin_name}); its parameters: {', '.join(self.parameters)}"
            )

    def render(self, request: SampleRequest) -> tuple[bytes, tuple[int, int]]:
        """The samples as one grid image, encoded; and the grid's size."""
        from translate.inference.sampling import grid

        images = self.sampler(
            request.n,
            seed=request.seed,
            truncation=request.truncation,
            class_name=request.class_name,
            codes=list(request.codes),
            prompt=request.prompt,
        )
        sheet = grid(images)
        return encode(sheet, request.format), sheet.size

    def describe(self, *, max_samples: int) -> dict[str, Any]:
        """What ``GET /v1/models`` lists for this model (under ``generators``)."""
        meta = self.sampler.loaded.meta
        return {
            "name": self.name,
            "plugin": self.plugin_name,
            "source": self.source.kind,
            "step": meta.get("step"),
            "device": str(self.sampler.device),
            "latent_shape": list(self.sampler.latent_shape),
            "classes": list(self.sampler.classes),
            "codes": [to_json(c) for c in self.sampler.conditions],
            "parameters": self.parameters,  # of its sample endpoint: "prompt" if it takes text
            "limits": {"max_samples": max_samples},
            "drag": self.drag,
        }


def generates(ref: Any) -> bool:
    """Whether an identified model (``ModelRef``) is a checkpoint of a generating plugin, or
    the ONNX export of one (its metadata has a ``latent_shape``)."""
    if ref.kind == "onnx":
        return "latent_shape" in ref.meta
    from translate.errors import PluginError
    from translate.registry import load_plugin

    try:
        plugin = load_plugin(ref.plugin)
    except PluginError:
        return False
    return bool(getattr(plugin, "generates", False))


@dataclass(frozen=True)
class SampleWork:
    """A sampling request in the inference pool."""

    request: SampleRequest


@dataclass(frozen=True)
class SampleKey:
    """The pool's batch key of a sampling request: unique, so each runs as its own batch."""

    model: str
    token: int


_tokens = itertools.count()


def add_sample_route(
    app: FastAPI,
    samplers: Mapping[str, ServedGenerator],
    translators: Mapping[str, Any],
    config: ServeConfig,
    error_responses: Mapping[int | str, dict[str, Any]],
) -> None:
    """Register ``GET /v1/models/{name}/sample`` on ``app``."""

    @app.get(
        "/v1/models/{name}/sample",
        summary="New images from a generating model (dcgan, cgan), as one grid image",
        response_class=Response,
        responses={
            200: {
                "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
                "description": "the samples tiled row by row (about sqrt(n) columns); headers "
                "X-Model, X-Samples, X-Image-Size",
            },
            **error_responses,
        },
    )
    async def sample_images(
        request: Request,
        name: str,
        n: Annotated[
            QueryInt | None,
            Query(description="how many images, 1 to the server's max_samples (default 16)"),
        ] = None,
        seed: Annotated[QueryInt | None, Query(description="same seed, same images")] = None,
        class_name: Annotated[
            str | None,
            Query(alias="class", description="class to draw (cgan); default: random per image"),
        ] = None,
        truncation: Annotated[
            QueryNumber | None,
            Query(description="truncation trick: latents from N(0, 1) truncated to [-T, T]"),
        ] = None,
        format: Annotated[
            str | None, Query(description="png (default), jpeg or webp; or send Accept")
        ] = None,
        code: Annotated[
            list[str] | None,
            Query(
                description="an input fixed by name, NAME=VALUE, repeatable (InfoGAN: c=3, "
                "c1=0.5; the model's under codes in GET /v1/models); default: drawn per image"
            ),
        ] = None,
        prompt: Annotated[
            str | None,
            Query(
                description="text to draw (a text-conditioned model, stackgan), e.g. 'a red circle'"
            ),
        ] = None,
    ) -> Response:
        started = time.perf_counter()
        generator = samplers.get(name)
        if generator is None:
            known = [*translators, *samplers]
            if name in translators:
                raise ApiError(404, f"model {name!r} translates images; it does not generate them")
            raise ApiError(404, f"unknown model {name!r}", {"models": known})
        generator.check_parameters(request.query_params.keys())
        single_values(request, repeatable=("code",))  # code=NAME=VALUE, one per code
        fmt = output_format(format, request.headers.get("accept", ""))
        n = min(DEFAULT_SAMPLES, config.max_samples) if n is None else n
        sample = generator.check(
            n=n, seed=seed, class_name=class_name, truncation=truncation, format=fmt,
            max_samples=config.max_samples, codes=tuple(code or ()), prompt=prompt,
        )  # fmt: skip
        pool: InferencePool | None = request.app.state.pool
        if pool is None:
            raise PoolClosed("the server is not ready")
        key = SampleKey(name, next(_tokens))  # one request per batch
        try:
            future = pool.submit(key, SampleWork(sample), cost=generator.price(n))
        except OverBudget as exc:
            raise ApiError(
                413,
                f"n={n}: the samples need {exc.cost} bytes, over the memory budget "
                f"({exc.budget} bytes); ask for fewer",
                {"needs_bytes": exc.cost, "budget_bytes": exc.budget},
            ) from None
        done = await await_result(request, future, started + config.request_timeout, pool)
        content, (w, h) = done.value
        total_ms = (time.perf_counter() - started) * 1000
        return Response(
            content,
            media_type=OUTPUT_FORMATS[fmt][1],
            headers={
                "X-Model": name,
                "X-Samples": str(n),
                "X-Processing-Time-Ms": f"{total_ms:.1f}",
                "X-Image-Size": f"{w}x{h}",
                "Content-Disposition": f'inline; filename="{name}-samples.{fmt}"',
            },
        )
