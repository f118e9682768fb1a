"""The service's DragGAN endpoint, ``POST /v1/models/{name}/drag``, in-process (TestClient) on a
tiny stylegan2: the streamed lines (the start, every step, the last with the latent), the same
drag as ``translate.inference.dragging.drag`` computes, the latent a drag ends on as the next
one's start, bad bodies as one-line 422s naming the field, the route declared in the OpenAPI
schema for style generators only, and a drag whose client leaves cancelled in the pool."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from tests.test_editing import tiny_stylegan2
from translate.inference.dragging import drag
from translate.inference.editing import editable
from translate.loading import load
from translate.serve.app import create_app
from translate.serve.config import ServeConfig
from translate.serve.sampling import ServedGenerator
from translate.serve.server import load_models


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_stylegan2(tmp_path_factory.mktemp("serve-drag"))


@pytest.fixture(scope="module")
def generator(run: Path) -> ServedGenerator:
    (served,) = load_models(checkpoints=[f"sg={run}"])
    assert isinstance(served, ServedGenerator)
    served.warm_up()
    return served


def client(generator: ServedGenerator, **config: Any) -> TestClient:
    return TestClient(
        create_app([], ServeConfig(access_log=False, **config), generators=[generator])
    )


def lines(res: Any) -> list[dict[str, Any]]:
    assert res.status_code == 200, res.text
    assert res.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in res.text.splitlines()]


def pixels(url: str) -> np.ndarray:
    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def test_drag_streams_every_step_and_ends_where_drag_ends(
    generator: ServedGenerator, run: Path
) -> None:
    body = {"seed": 2, "handles": [[5, 5]], "targets": [[11, 5]], "steps": 6, "lr": 0.02}
    with client(generator) as c:
        listing = c.get("/v1/models").json()["generators"][0]
        got = lines(c.post("/v1/models/sg/drag", json=body))
    assert listing["drag"] == {"resolution": 16, "max_steps": 1000, "max_points": 16}
    *steps, last = got
    assert [s["step"] for s in steps] == list(range(last["step"] + 1))  # the start, each step
    assert steps[0]["points"] == [[5.0, 5.0]] and last["done"] is True
    # the same drag in-process: the same steps, points and image
    gen = editable(load(run))
    want = drag(gen, gen.map(gen.draw(2)), torch.tensor([[5.0, 5.0]]),
                torch.tensor([[11.0, 5.0]]), steps=6, lr=0.02)  # fmt: skip
    assert last["step"] == want.steps and last["points"] == want.points.tolist()
    expected = ((want.image[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255)
    assert np.abs(pixels(last["image"]) - expected).max() <= 1
    assert np.abs(pixels(last["image"]) - pixels(steps[0]["image"])).max() > 0  # it changed
    latent = np.frombuffer(base64.b64decode(last["latent"]), "<f4").reshape(want.latent.shape)
    assert np.allclose(latent, want.latent.numpy(), atol=1e-6)


def test_no_points_is_the_start_image_and_a_latent_starts_the_next_drag(
    generator: ServedGenerator,
) -> None:
    """The page's Sample: no points, one image; a drag from the latent of a drag's last
    line starts from that drag's image."""
    with client(generator) as c:
        (start, last) = lines(c.post("/v1/models/sg/drag", json={"seed": 4}))
        assert start["step"] == 0 and last["step"] == 0 and last["image"] == start["image"]
        edit = {"seed": 4, "handles": [[3, 3]], "targets": [[8, 8]], "steps": 3, "lr": 0.05}
        first = lines(c.post("/v1/models/sg/drag", json=edit))
        again = lines(c.post("/v1/models/sg/drag", json={"latent": first[-1]["latent"]}))
    assert np.abs(pixels(again[0]["image"]) - pixels(first[-1]["image"])).max() <= 1
    assert np.abs(pixels(again[0]["image"]) - pixels(start["image"])).max() > 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"seed": 1, "handles": [[16, 3]], "targets": [[3, 3]]},
         "handles[0]: (16, 3) is outside the 16x16 image"),
        ({"seed": 1, "handles": [[1, 1]], "targets": []}, "1 handles but 0 targets"),
        ({"handles": [[1, 1]], "targets": [[2, 2]]}, "give exactly one of seed and latent"),
        ({"seed": 1, "latent": "AAAA"}, "give exactly one of seed and latent"),
        ({"latent": "AAAA"}, "latent: expected 6 x 16 float32"),
        ({"latent": "%%%"}, "latent: not base64"),
        ({"seed": 1, "mask": base64.b64encode(b"not an image").decode()}, "mask: not an image"),
        ({"seed": 1, "steps": 0}, "body.steps: Input should be greater than or equal to 1"),
        ({"seed": 1, "steps": 1001}, "body.steps"),
        ({"seed": 1, "lr": 0}, "body.lr"),
        ({"seed": -1}, "body.seed"),
        ({"seed": 1, "handles": [[1, 2, 3]], "targets": [[1, 1]]}, "body.handles.0"),
        ({"seed": 1, "every": 2}, "body.every: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_bad_bodies_are_one_line_422s(
    generator: ServedGenerator, body: dict[str, Any], message: str
) -> None:
    with client(generator) as c:
        res = c.post("/v1/models/sg/drag", json=body)
    assert res.status_code == 422, res.text
    assert message in res.json()["error"] and "\n" not in res.json()["error"]


def test_a_mask_keeps_the_region_outside_it(generator: ServedGenerator) -> None:
    """A mask image (white: may change) reaches DragGAN's mask term: with the whole image
    masked out the drag changes the image less than without a mask."""
    buf = io.BytesIO()
    Image.new("L", (40, 40), 0).save(buf, "PNG")
    keep_all = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    body = {"seed": 2, "handles": [[5, 5]], "targets": [[11, 5]], "steps": 5, "lr": 0.05}
    with client(generator) as c:
        free = lines(c.post("/v1/models/sg/drag", json=body))
        kept = lines(c.post("/v1/models/sg/drag", json={**body, "mask": keep_all}))
    change = [np.abs(pixels(r[-1]["image"]) - pixels(r[0]["image"])).mean() for r in (free, kept)]
    assert change[1] < change[0], change


def test_drag_is_declared_for_style_generators_only(generator: ServedGenerator) -> None:
    with client(generator) as c:
        schema = c.get("/openapi.json").json()
        unknown = c.post("/v1/models/nope/drag", json={"seed": 1})
    op = schema["paths"]["/v1/models/{name}/drag"]["post"]
    assert op["parameters"][0]["schema"]["enum"] == ["sg"]
    assert "application/x-ndjson" in op["responses"]["200"]["content"]
    assert {"404", "413", "422", "503"} <= set(op["responses"])
    body = op["requestBody"]["content"]["application/json"]["schema"]
    ref = body["$ref"].rsplit("/", 1)[-1]
    fields = schema["components"]["schemas"][ref]["properties"]
    assert {"seed", "latent", "handles", "targets", "mask", "steps", "lr"} == set(fields)
    assert fields["steps"]["maximum"] == 1000 and fields["steps"]["minimum"] == 1
    assert unknown.status_code == 404
    with TestClient(create_app([], ServeConfig(access_log=False))) as c:
        assert "/v1/models/{name}/drag" not in c.get("/openapi.json").json()["paths"]


@pytest.mark.slow
def test_a_drag_whose_client_leaves_or_deadline_passes_is_cancelled(run: Path) -> None:
    """A real server: closing the stream after two lines cancels the drag in the pool (at its
    next layer), as a translation whose client left; a drag past --request-timeout ends its
    stream with an error line and is cancelled too. Both would run 1000 steps otherwise."""
    import time

    import httpx

    from translate.serve.process import ServerProcess

    def wait_for(check: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.1)

    # 16 pairs that never arrive: 1000 steps take far longer than the 2 s deadline
    pairs = [[float(i % 4), float(i // 4)] for i in range(16)]
    body = {"seed": 1, "handles": pairs, "targets": [[15.0, 15.0]] * 16, "steps": 1000, "lr": 1e-7}
    args = ["-c", f"sg={run}", "--workers", "1", "--threads", "1", "--no-access-log"]
    with ServerProcess([*args, "--request-timeout", "2"]) as server:
        url = f"{server.url}/v1/models/sg/drag"
        with httpx.Client(timeout=30) as c:
            with c.stream("POST", url, json=body) as res:
                assert res.status_code == 200
                lines = res.iter_lines()
                first = json.loads(next(lines))
                assert first.get("step") == 0, first
                second = json.loads(next(lines))
                assert second.get("step") == 1, second
            wait_for(lambda: c.get(f"{server.url}/readyz").json().get("cancelled") == 1)
            wait_for(lambda: c.get(f"{server.url}/readyz").json()["running"] == 0)
            started = time.monotonic()
            last = json.loads(c.post(url, json=body).text.splitlines()[-1])
            assert "deadline of 2 s passed" in last.get("error", ""), last
            assert time.monotonic() - started < 6
            wait_for(lambda: c.get(f"{server.url}/readyz").json().get("cancelled") == 2)
