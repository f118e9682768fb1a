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
        assert_error(
            c.get(url, params={"truncation": -1}),
            422,
            "truncation: must be a finite number of at least",
        )
        assert_error(c.get(url, params={"format": "gif"}), 422, "format: 'gif'")
        # the GET that hung the server (about 1/T resampling rounds): a 422 now, and a tiny
        # T above the bound is drawn in constant time
        assert_error(c.get(url, params={"truncation": 1e-300}), 422, "1.17549e-38")
        png(c.get(url, params={"n": 8, "truncation": 1e-30}))
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


def tiny_dcgan_run(root: Path) -> Path:
    """A dcgan run (unconditional) of two steps on 16x16 images (seconds)."""
    from translate.engine.loop import prepare
    from translate.testing import make_single

    return prepare(
        "dcgan",
        data=make_single(root / "data", n=4, size=16),
        image_size=16,
        latent_dim=8,
        base_channels=8,
        max_steps=2,
        batch_size=2,
        progress=False,
        run_dir=root / "run",
    ).run()


@pytest.fixture(scope="module")
def unconditional(tmp_path_factory: pytest.TempPathFactory) -> ServedGenerator:
    run = tiny_dcgan_run(tmp_path_factory.mktemp("serve-dcgan"))
    (served,) = load_models(checkpoints=[f"faces={run}"])
    served.warm_up()
    return served


@pytest.mark.parametrize("seed", [str(2**64), str(2**63), "-1", "9" * 400])
def test_seeds_outside_their_range_are_a_422_naming_it(
    generator: ServedGenerator, seed: str
) -> None:
    """Before: 500 (``Overflow when unpacking long long`` in the worker, two tracebacks)."""
    with client(generator) as c:
        res = c.get("/v1/models/shapes/sample", params={"seed": seed})
        assert_error(res, 422, "is out of range (0 to 2^63-1)")
        assert res.json()["error"].startswith("seed: ")
        for edge in (0, 2**63 - 1):
            png(c.get("/v1/models/shapes/sample", params={"seed": edge, "n": 1}))


def test_errors_name_the_query_parameter_and_no_server_path(
    unconditional: ServedGenerator,
) -> None:
    """``class`` on an unconditional model: before, ``--class: /srv/.../step_0000002 is
    unconditional`` (the CLI flag and the checkpoint's path)."""
    location = str(Path(unconditional.source.location).resolve())
    with client(unconditional) as c:
        res = c.get("/v1/models/faces/sample", params={"class": "7"})
        assert_error(res, 422, "class: model 'faces' (dcgan) is unconditional")
        assert "--class" not in res.text and location not in res.text and "/" not in res.text
        for params in ({"truncation": "0"}, {"seed": "x"}, {"n": "-1"}, {"format": "gif"}):
            assert location not in c.get("/v1/models/faces/sample", params=params).text


def test_unknown_query_parameters_are_a_422(generator: ServedGenerator) -> None:
    """As translate answers an unknown option; before, ``?clas=B`` drew random classes. So
    are a parameter given twice and numbers not written plainly (schemathesis found
    ``n=4&n=0.0`` taken as 0.0 -> 0: what the schema calls invalid must be refused)."""
    with client(generator) as c:
        url = "/v1/models/shapes/sample"
        assert_error(c.get(f"{url}?n=2&n=3"), 422, "query parameter 'n': given 2 times")
        for bad in ("n=0.0", "n=1_0", "seed=+1", "truncation=inf", "truncation=nan", "n=null"):
            assert_error(c.get(f"{url}?{bad}"), 422, f"query.{bad.split('=')[0]}: ")
        png(c.get(url, params={"n": 1, "truncation": "5e-1"}))
        res = c.get("/v1/models/shapes/sample", params={"clas": "B"})
        assert_error(res, 422, "query parameter 'clas' is not known to model 'shapes'")
        assert "n, seed, class, truncation, format" in res.json()["error"]


def test_generating_models_are_labelled_in_metrics_log_and_readiness(
    generator: ServedGenerator, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: ``model="unknown"`` in /metrics and the access log; /readyz without them."""
    cfg = ServeConfig(max_samples=4, access_log=True)
    with TestClient(create_app([], cfg, generators=[generator])) as c:
        with caplog.at_level("INFO", logger="translate.serve.access"):
            png(c.get("/v1/models/shapes/sample", params={"n": 1}))
        metrics = c.get("/metrics").text
        assert 'translate_requests_total{model="shapes",status="200"} 1.0' in metrics
        assert 'model="unknown"' not in metrics
        (line,) = [r.getMessage() for r in caplog.records if "/sample" in r.getMessage()]
        assert '"model": "shapes"' in line
        ready = c.get("/readyz").json()
        assert ready["generators"] == ["shapes"] and ready["models"] == []


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
