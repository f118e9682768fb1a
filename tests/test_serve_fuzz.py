"""The OpenAPI schema is a contract, checked by a real API fuzzer: schemathesis (all phases,
all checks) against a live ``translate serve`` of tiny translating (pix2pix, cyclegan) and
generating (dcgan, cgan) models, with real images as bodies (``translate.serve.fuzzing``).
No server error, no timeout, every response and status as the schema says, every schema-valid
request accepted, every schema-invalid one refused. And the schema itself, read in-process:
names as enums, options typed, real limits."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("schemathesis")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from tests.conftest import TINY_CYCLEGAN_OPTIONS, TINY_PIX2PIX_OPTIONS  # noqa: E402
from tests.test_cgan import tiny_run  # noqa: E402
from tests.test_serve_sampling import tiny_dcgan_run  # noqa: E402
from translate.engine.loop import prepare  # noqa: E402
from translate.export.onnx import export_onnx  # noqa: E402
from translate.inference.sampling import MIN_TRUNCATION, SEED_RANGE  # noqa: E402
from translate.serve.app import create_app  # noqa: E402
from translate.serve.config import ServeConfig  # noqa: E402
from translate.serve.process import ServerProcess  # noqa: E402
from translate.serve.server import load_models, warm_up  # noqa: E402
from translate.testing import make_paired, make_unpaired  # noqa: E402

MAX_SAMPLES = 8


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny runs, trained in seconds: two translating, two generating (one with classes)."""
    root = tmp_path_factory.mktemp("fuzz")
    unpaired = make_unpaired(root / "unpaired")
    common = dict(max_steps=1, progress=False)
    runs = {
        "pix2pix": prepare("pix2pix", data=make_paired(root / "paired"), **TINY_PIX2PIX_OPTIONS,
                           run_dir=root / "pix2pix", **common).run(),
        "cyclegan": prepare("cyclegan", domain_a=unpaired / "A", domain_b=unpaired / "B",
                            **TINY_CYCLEGAN_OPTIONS, run_dir=root / "cyclegan", **common).run(),
        "faces": tiny_dcgan_run(root / "dcgan"),
        "shapes": tiny_run(root / "cgan", make_unpaired(root / "shapes", n=4, size=16)),
    }  # fmt: skip
    # an ONNX export: its options are fixed (test_time_dropout takes only its exported value)
    runs["fast"] = export_onnx(runs["pix2pix"], root / "pix2pix.onnx").path
    return runs


def sources(runs: dict[str, Path]) -> list[str]:
    """``serve`` arguments for ``runs``."""
    return [
        arg
        for name, path in runs.items()
        for arg in ("--onnx" if path.suffix == ".onnx" else "-c", f"{name}={path}")
    ]


def schema_of(runs: dict[str, Path]) -> dict[str, Any]:
    served = load_models(
        checkpoints=[f"{n}={p}" for n, p in runs.items() if p.suffix != ".onnx"],
        onnx=[f"{n}={p}" for n, p in runs.items() if p.suffix == ".onnx"],
    )
    translators = [m for m in served if hasattr(m, "translator")]
    generators = [m for m in served if not hasattr(m, "translator")]
    for model in translators:
        warm_up(model)
    cfg = ServeConfig(max_samples=MAX_SAMPLES, access_log=False)
    with TestClient(create_app(translators, cfg, generators=generators)) as c:
        return c.get("/openapi.json").json()


def test_the_schema_declares_names_options_limits_and_responses(runs: dict[str, Path]) -> None:
    """What a generated client needs (before: a free-form {name}, no options, image/*)."""
    schema = schema_of(runs)
    paths = schema["paths"]
    generic = paths["/v1/models/{name}/translate"]["post"]
    (name,) = [p for p in generic["parameters"] if p["name"] == "name"]
    assert name["schema"]["enum"] == ["pix2pix", "cyclegan", "fast"]
    fast = {
        p["name"]: p["schema"] for p in paths["/v1/models/fast/translate"]["post"]["parameters"]
    }
    assert fast["test_time_dropout"] == {"type": "boolean", "enum": [False], "default": False}
    own = {
        p["name"]: p["schema"] for p in paths["/v1/models/pix2pix/translate"]["post"]["parameters"]
    }
    assert own["test_time_dropout"]["type"] == "boolean" and "enum" not in own["test_time_dropout"]
    sample = paths["/v1/models/{name}/sample"]["get"]
    assert next(p for p in sample["parameters"] if p["name"] == "name")["schema"]["enum"] == [
        "faces",
        "shapes",
    ]
    cyclegan = paths["/v1/models/cyclegan/translate"]["post"]
    params = {p["name"]: p["schema"] for p in cyclegan["parameters"]}
    assert params["direction"]["enum"] == ["a2b", "b2a"] and params["format"]["enum"] == [
        "png",
        "jpeg",
        "jpg",
        "webp",
    ]
    assert params["tile_size"]["anyOf"][1]["minimum"] >= 4
    body = cyclegan["requestBody"]["content"]
    assert set(body) == {
        "image/png", "image/jpeg", "image/webp", "image/bmp", "image/tiff", "multipart/form-data",
    }  # fmt: skip
    assert body["image/png"]["schema"]["minLength"] == 1
    assert "direction" in body["multipart/form-data"]["schema"]["properties"]
    ok = cyclegan["responses"]["200"]
    assert ok["content"]["image/png"]["schema"] == {"type": "string", "format": "binary"}
    assert {"X-Model", "X-Queue-Time-Ms", "X-Batch-Size", "X-Image-Size"} <= set(ok["headers"])
    assert "500" in cyclegan["responses"]
    assert "Retry-After" in cyclegan["responses"]["503"]["headers"]
    shapes = {
        p["name"]: p["schema"] for p in paths["/v1/models/shapes/sample"]["get"]["parameters"]
    }
    assert shapes["n"]["minimum"] == 1 and shapes["n"]["maximum"] == MAX_SAMPLES
    assert (shapes["seed"]["minimum"], shapes["seed"]["maximum"]) == SEED_RANGE
    assert shapes["truncation"]["minimum"] == MIN_TRUNCATION
    assert shapes["class"]["enum"] == ["A", "B"]
    faces = {p["name"] for p in paths["/v1/models/faces/sample"]["get"]["parameters"]}
    assert "class" not in faces and "requestBody" not in paths["/v1/models/faces/sample"]["get"]
    assert "X-Samples" in paths["/v1/models/faces/sample"]["get"]["responses"]["200"]["headers"]
    models = paths["/v1/models"]["get"]["responses"]["200"]["content"]["application/json"]
    assert "generators" in models["schema"]["properties"]
    ready = paths["/readyz"]["get"]["responses"]
    assert "stuck" in ready["200"]["content"]["application/json"]["schema"]["required"]
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]


def fuzz(url: str, where: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """The README's command: schemathesis with the image hooks, every check."""
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
        "--checks", "all", "--max-examples", "25", "--workers", "2",
        "--request-timeout", "60", "--no-color", *extra,
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "translate.serve.fuzzing"}
    # in ``where``: schemathesis keeps its example database in the working directory
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=where)


@pytest.mark.slow  # about 2 minutes: CI runs it in its slow phase (.ci/run)
def test_schemathesis_finds_no_issue_against_a_live_server(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    args = sources(runs)
    args += ["--threads", "1", "--max-samples", str(MAX_SAMPLES), "--no-access-log"]
    with ServerProcess(args) as server:
        result = fuzz(server.url, tmp_path)
        metrics = httpx.get(f"{server.url}/metrics").text
    out = result.stdout + result.stderr
    assert result.returncode == 0 and "No issues found" in out, out[-6000:]
    cases = re.search(r"(\d+) generated", out)  # "N generated, N passed[, K skipped]"
    assert cases and int(cases.group(1)) > 300, out[-2000:]
    # real images reached every model (the hooks): each answered 200 to some request
    for name in runs:
        ok = rf'translate_requests_total{{model="{name}",status="200"}} [1-9]'
        assert re.search(ok, metrics), (name, [m for m in metrics.splitlines() if name in m])
    assert "Traceback" not in server.log(), server.log()[-4000:]


def test_option_values_are_written_as_the_schema_says() -> None:
    """A boolean option is ``true`` or ``false`` and a number plain decimal text: ``yes``,
    ``1`` or ``0.0`` for an integer would be requests the schema calls invalid yet answered
    200 (config parsing alone takes them)."""
    from translate.errors import ConfigError
    from translate.serve.models import check_option_text

    fields = [
        {"name": "dropout", "type": "choice", "choices": [False, True]},
        {"name": "steps", "type": "int", "choices": None},
        {"name": "gain", "type": "float", "choices": None},
        {"name": "to", "type": "str", "choices": None},
    ]
    check_option_text(fields, {"dropout": "true", "steps": "-3", "gain": "1e-3", "to": "1_0"})
    for bad in ({"dropout": "yes"}, {"dropout": "1"}, {"dropout": "True"}, {"steps": "0.0"},
                {"steps": "1_000"}, {"gain": "inf"}, {"gain": "nan"}):  # fmt: skip
        with pytest.raises(ConfigError, match=f"^{next(iter(bad))}: must be"):
            check_option_text(fields, bad)
