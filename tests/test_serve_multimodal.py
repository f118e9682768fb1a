"""The service's translate route for a model with a code input (bicyclegan's z): ``samples`` K
outputs side by side, reproducible by ``seed``; a ``style`` image (multipart field) gives the
translation in its code; bad values are one-line 422s naming the field; ``GET /v1/models`` and
the OpenAPI schema declare them (``translate.serve.work``)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from tests.test_multimodal_run import TINY
from translate.engine.loop import prepare
from translate.inference.multimodal import grid, style_code, translate_samples
from translate.serve.app import create_app
from translate.serve.config import ServeConfig
from translate.serve.server import load_models
from translate.testing import make_paired


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("serve-bicycle")
    data = make_paired(root / "data", n_train=2, n_val=1)
    opts = dict(TINY, max_steps=1, progress=False, run_dir=root / "run", device="cpu")
    prepare("bicyclegan", data=data, **opts).run()
    (model,) = load_models(checkpoints=[f"bike={root / 'run'}"])
    with torch.no_grad():  # one step of training leaves E's codes near 0 for any image
        model.translator.code_encoder.encoder.mu.weight.mul_(1000.0)
    return model


@pytest.fixture(scope="module")
def client(served):
    with TestClient(create_app([served], ServeConfig(max_samples=8, access_log=False))) as c:
        yield c


def encoded(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


IMAGE = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
STYLE = Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))


def pixels(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB"), dtype=np.int16)


def post(client: TestClient, params: dict | None = None, style: bytes | None = None):
    if style is None:
        return client.post("/v1/models/bike/translate", params=params, content=encoded(IMAGE))
    files = {"image": ("in.png", encoded(IMAGE), "image/png"),
             "style": ("ref.png", style, "image/png")}  # fmt: skip
    return client.post("/v1/models/bike/translate", params=params, files=files)


def test_samples_are_the_runs_samples_side_by_side(client: TestClient, served) -> None:
    res = post(client, {"samples": 4, "seed": 3})
    assert res.status_code == 200, res.text
    assert res.headers["X-Samples"] == "4" and res.headers["X-Image-Size"] == "128x32"
    want = grid(translate_samples(served.translator, [IMAGE], 4, seed=3)[0])
    assert np.array_equal(pixels(res.content), np.asarray(want, dtype=np.int16))
    again = post(client, {"samples": 2, "seed": 3})  # sample s is the same for any K > s
    assert np.array_equal(pixels(again.content), pixels(res.content)[:, :64])
    other = post(client, {"samples": 2, "seed": 4})
    assert not np.array_equal(pixels(other.content), pixels(again.content))
    plain = post(client)  # no samples: one output, the zero code, no X-Samples
    assert plain.status_code == 200 and "X-Samples" not in plain.headers
    assert pixels(plain.content).shape == (32, 32, 3)


def test_a_style_image_gives_the_translation_in_its_code(client: TestClient, served) -> None:
    res = post(client, None, style=encoded(STYLE))
    assert res.status_code == 200, res.text
    t = served.translator
    want = translate_samples(t, [IMAGE], 1, code=style_code(t, STYLE))[0][0]
    assert np.array_equal(pixels(res.content), np.asarray(want, dtype=np.int16))
    plain = post(client)  # the zero code: the style image's code is not ignored
    assert not np.array_equal(pixels(plain.content), pixels(res.content))


@pytest.mark.parametrize(
    ("params", "style", "status", "message"),
    [
        ({"samples": 0}, None, 422, "samples: must be from 1 to 8 (this server's limit), got 0"),
        ({"samples": 9}, None, 422, "samples: must be from 1 to 8"),
        ({"samples": "two"}, None, 422, "samples"),
        ({"seed": -1}, None, 422, "seed"),
        (
            {"samples": 2},
            "red",
            422,
            "style: gives one output, in the style image's code; leave out samples",
        ),
        ({"seed": 2}, "red", 422, "leave out seed"),
        (None, "corrupt", 415, "style: not an image"),
        (None, "tiny", 400, "style: the reference is 2x2; this model needs at least 32x32"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_field(
    client: TestClient, params: dict | None, style: str | None, status: int, message: str
) -> None:
    body = {
        None: None,
        "red": encoded(STYLE),
        "corrupt": b"not an image at all",
        "tiny": encoded(Image.new("RGB", (2, 2))),
    }[style]
    res = post(client, params, style=body)
    assert res.status_code == status, res.text
    assert message in res.json()["error"], res.json()


def test_a_model_without_a_code_refuses_samples(tmp_path: Path) -> None:
    from tests.conftest import TINY_PIX2PIX_OPTIONS

    data = make_paired(tmp_path / "data", n_train=2, n_val=1)
    opts = dict(TINY_PIX2PIX_OPTIONS, max_steps=1, progress=False, run_dir=tmp_path / "run")
    prepare("pix2pix", data=data, **opts).run()
    (model,) = load_models(checkpoints=[f"p2p={tmp_path / 'run'}"])
    with TestClient(create_app([model], ServeConfig(access_log=False))) as client:
        res = client.post("/v1/models/p2p/translate", params={"samples": 2}, content=encoded(IMAGE))
        assert res.status_code == 422
        assert res.json()["error"] == (
            "samples: model 'p2p' (plugin pix2pix) takes no code; it gives one answer per input"
        )
        assert client.get("/v1/models").json()["models"][0]["code"] is None


def test_listing_and_schema_declare_samples_seed_and_style(client: TestClient) -> None:
    (listed,) = client.get("/v1/models").json()["models"]
    assert listed["code"] == {"name": "z", "dim": 8, "style_image": True}
    op = client.get("/openapi.json").json()["paths"]["/v1/models/bike/translate"]["post"]
    params = {p["name"]: p["schema"] for p in op["parameters"]}
    assert params["samples"] == {"type": "integer", "minimum": 1, "maximum": 8}
    assert params["seed"]["minimum"] == 0
    form = op["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert form["style"] == {"type": "string", "format": "binary"}


@pytest.mark.slow
def test_an_onnx_export_serves_samples_and_a_style_image(served, tmp_path: Path) -> None:
    """The exported translator takes the code as an input and its encoder is the graph beside
    it: the service of the .onnx file answers as the checkpoint's Translator does."""
    from translate.export.onnx import export_onnx
    from translate.inference.translator import Translator

    run = Path(served.source.location)
    model = export_onnx(run, tmp_path / "bike.onnx").path
    (onnx_model,) = load_models(onnx=[f"bike={model}"])
    assert onnx_model.code_info() == {"name": "z", "dim": 8, "style_image": True}
    t = Translator.from_checkpoint(run, device="cpu")
    with TestClient(create_app([onnx_model], ServeConfig(max_samples=8, access_log=False))) as c:
        res = post(c, {"samples": 4, "seed": 3})
        assert res.status_code == 200 and res.headers["X-Samples"] == "4", res.text
        want = grid(translate_samples(t, [IMAGE], 4, seed=3)[0])
        assert np.abs(pixels(res.content) - np.asarray(want, dtype=np.int16)).max() <= 1
        res = post(c, None, style=encoded(STYLE))
        assert res.status_code == 200, res.text
        want = translate_samples(t, [IMAGE], 1, code=style_code(t, STYLE))[0][0]
        assert np.abs(pixels(res.content) - np.asarray(want, dtype=np.int16)).max() <= 1
