"""The service's sampling endpoint for generating models: GET /v1/models/{name}/sample returns
a grid of samples (reproducible with a seed, of the asked class), bounded by --max-samples and
priced against the memory budget like a translation."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from tests.test_cgan import tiny_run
from translate.inference.sampling import Sampler, grid
from translate.serve.app import create_app
from translate.serve.config import ServeConfig
from translate.serve.sampling import ServedGenerator
from translate.serve.server import load_models
from translate.testing import make_unpaired


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> ServedGenerator:
    root = tmp_path_factory.mktemp("serve-cgan")
    run = tiny_run(root, make_unpaired(root / "shapes", n=4, size=16))  # classes A, B; 16x16
    (served,) = load_models(checkpoints=[f"shapes={run}"])
    assert isinstance(served, ServedGenerator)  # a generating checkpoint is served for sampling
    served.warm_up()
    assert served.sample_bytes > 16 * 16 * 3 * 4  # activations and copies, measured
    return served


def client(generator: ServedGenerator, **config: int) -> TestClient:
    cfg = ServeConfig(max_samples=config.pop("max_samples", 16), access_log=False)
    app = create_app([], cfg, generators=[generator], **config)
    return TestClient(app)


def png(res) -> Image.Image:
    assert res.status_code == 200, res.text
    assert res.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(res.content))


def test_samples_are_a_reproducible_grid_of_the_asked_class(generator: ServedGenerator) -> None:
    with client(generator) as c:
        url = "/v1/models/shapes/sample"
        a = png(c.get(url, params={"n": 4, "seed": 3, "class": "B"}))
        assert a.size == (32, 32)  # 2 x 2 samples of 16 x 16
        b = png(c.get(url, params={"n": 4, "seed": 3, "class": "B"}))
        assert np.array_equal(np.asarray(a), np.asarray(b))
        other = png(c.get(url, params={"n": 4, "seed": 3, "class": "A"}))
        assert not np.array_equal(np.asarray(a), np.asarray(other))
        # exactly what translate sample / the Python API draws
        sampler = Sampler.from_checkpoint(generator.sampler.loaded.source)
        expected = grid(sampler(4, seed=3, class_name="B"))
        assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(expected))
        res = c.get(url, params={"n": 5, "truncation": 0.5, "format": "jpeg"})
        assert res.status_code == 200 and res.headers["content-type"] == "image/jpeg"
        assert res.headers["x-samples"] == "5" and res.headers["x-image-size"] == "48x32"
        listing = c.get("/v1/models").json()
        (entry,) = listing["generators"]
        assert entry["classes"] == ["A", "B"] and entry["limits"]["max_samples"] == 16


def assert_error(res, status: int, needle: str) -> None:
    assert res.status_code == status, res.text
    message = res.json()["error"]
    assert needle in message and "\n" not in message, message


def test_bad_requests_are_one_line_errors(generator: ServedGenerator) -> None:
    with client(generator, max_samples=8) as c:
        url = "/v1/models/shapes/sample"
        assert_error(c.get(url, params={"n": 9}), 422, "n: must be from 1 to 8")
        assert_error(c.get(url, params={"n": 0}), 422, "n: must be from 1 to 8")
        assert_error(c.get(url, params={"class": "b"}), 422, "did you mean 'B'")
        assert_error(c.get(url, params={"truncation": -1}), 422, "truncation: must be > 0")
        assert_error(c.get(url, params={"format": "gif"}), 422, "format: 'gif'")
        assert_error(c.get("/v1/models/nope/sample"), 404, "unknown model 'nope'")
        res = c.post("/v1/models/shapes/translate", content=b"x")
        assert_error(res, 404, "generates images from noise")


def test_memory_budget_bounds_the_samples(generator: ServedGenerator) -> None:
    """The price grows with n: under a budget that fits 4 samples, 4 pass and 16 are 413."""
    budget = generator.price(4) * 4 // 3  # split_budget keeps 3/4 for running work
    with client(generator, memory_budget=budget + 8) as c:
        url = "/v1/models/shapes/sample"
        assert png(c.get(url, params={"n": 4})).size == (32, 32)
        assert_error(c.get(url, params={"n": 16}), 413, "n=16: the samples need")


def test_serve_page_and_health_still_answer(generator: ServedGenerator, tmp_path: Path) -> None:
    with client(generator) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").json()["status"] == "ready"
        assert c.get("/").status_code == 200


def test_an_onnx_export_is_served_for_sampling(generator: ServedGenerator, tmp_path: Path) -> None:
    """`serve --onnx` of a cgan export (latent and class one-hot as inputs) samples in ONNX
    Runtime what the checkpoint samples, within a grey level."""
    from translate.export.onnx import export_onnx

    exported = export_onnx(generator.sampler.loaded.source, tmp_path / "cgan.onnx").path
    (served,) = load_models(onnx=[f"shapes={exported}"])
    assert isinstance(served, ServedGenerator) and served.sampler.backend.kind == "onnx"
    served.warm_up()
    with client(served) as c:
        got = png(c.get("/v1/models/shapes/sample", params={"n": 4, "seed": 3, "class": "B"}))
    expected = grid(
        Sampler.from_checkpoint(generator.sampler.loaded.source)(4, seed=3, class_name="B")
    )
    diff = np.abs(np.asarray(got.convert("RGB"), np.int16) - np.asarray(expected, np.int16))
    assert diff.max() <= 1


def served_samples(run_dir: Path, params: dict, codes: list[str] | None = None) -> tuple:
    """Serve ``run_dir`` in-process (TestClient), request ``/sample`` with ``params`` (and
    repeated ``code``s); the response's grid as an array and the listing's generator entry."""
    (served,) = load_models(checkpoints=[f"m={run_dir}"])
    served.warm_up()
    app = create_app([], ServeConfig(max_samples=8, access_log=False), generators=[served])
    with TestClient(app) as c:
        res = c.get("/v1/models/m/sample", params={**params, "code": codes or []})
        assert res.status_code == 200, res.text
        (entry,) = c.get("/v1/models").json()["generators"]
    return np.asarray(Image.open(io.BytesIO(res.content)).convert("RGB")), entry
