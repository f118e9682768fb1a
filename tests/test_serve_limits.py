"""``translate serve`` under load and abuse, against a real process on 127.0.0.1: the memory
budget, read timeouts, variants loaded once, client disconnects, the API key, the bind check,
``/metrics``.

One server (module fixture) with an API key, a small memory budget (``--max-memory +40M``),
one worker and a 1 s read timeout serves a tiny pix2pix and a tiny CycleGAN from a folder that
a test moves away after start.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from tests.conftest import TINY_CYCLEGAN_OPTIONS, TINY_PIX2PIX_OPTIONS  # noqa: E402
from translate.engine.loop import prepare  # noqa: E402
from translate.inference.translator import Translator  # noqa: E402
from translate.registry import discover  # noqa: E402
from translate.serve.process import ServerProcess  # noqa: E402
from translate.testing import make_paired, make_unpaired  # noqa: E402

KEY = "s3cret-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
BUDGET = 40 * 1024 * 1024  # --max-memory +40M: a quarter for uploads, the rest for work
READ_TIMEOUT = 1.0
ALLOWED_ORIGIN = "http://allowed.example"
MAX_CONNECTIONS = 12


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("limits")
    out = {
        "pix2pix": prepare(
            "pix2pix",
            data=make_paired(root / "paired"),
            **TINY_PIX2PIX_OPTIONS,
            max_steps=1,
            progress=False,
            run_dir=root / "pix2pix",
        ).run()
    }
    if "cyclegan" in discover():
        unpaired = make_unpaired(root / "unpaired")
        out["cyclegan"] = prepare(
            "cyclegan",
            domain_a=unpaired / "A",
            domain_b=unpaired / "B",
            **TINY_CYCLEGAN_OPTIONS,
            max_steps=1,
            progress=False,
            run_dir=root / "cyclegan",
        ).run()
    return out


@pytest.fixture(scope="module")
def server(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    args = ["-c", f"pix2pix={checkpoints['pix2pix']}"]
    copy = None
    if "cyclegan" in checkpoints:  # a copy, which a test moves away after start
        copy = Path(shutil.copytree(checkpoints["cyclegan"], tmp_path_factory.mktemp("c") / "ck"))
        args += ["-c", f"cyclegan={copy}"]
    args += ["--threads", "1", "--workers", "1", "--max-batch", "4", "--queue-size", "8"]
    args += ["--max-memory", "+40M", "--read-timeout", str(READ_TIMEOUT)]
    args += ["--cors-origin", ALLOWED_ORIGIN, "--max-connections", str(MAX_CONNECTIONS)]
    with ServerProcess(args, env={"TRANSLATE_API_KEY": KEY}) as proc:
        proc.cyclegan_copy = str(copy) if copy else None  # type: ignore[attr-defined]
        yield proc


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Any:
    with httpx.Client(base_url=server.url, timeout=60, headers=AUTH) as c:
        yield c


def translate(client: Any, model: str, data: bytes, **params: Any) -> Any:
    return client.post(f"/v1/models/{model}/translate", content=data, params=params)


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name + (f"{{{want}}}" if want else "")) + r" ([0-9.e+-]+)$"
    values = [float(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE)]
    return values[0] if values else 0.0


# ---------------------------------------------------------------------------- memory budget
def test_memory_budget_queues_work_and_refuses_what_never_fits(
    server: ServerProcess, client: Any
) -> None:
    """Three 512x512 requests (about 16 MiB each, in 64-pixel tiles: slow) against a 30 MiB
    work budget: they run one at a time (no batch of two, which the budget cannot hold) and
    the later ones wait in the queue; none is refused. An image that alone needs more than the
    budget is a 413 naming the budget; the server lives on."""
    stats = client.get("/readyz").json()
    work = stats["memory_budget"]
    assert 0.7 * BUDGET <= work <= BUDGET  # uploads keep a quarter
    data = [png(noise(512, 512, seed=i)) for i in range(3)]

    async def fire() -> list[Any]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120, headers=AUTH) as c:
            return await asyncio.gather(
                *(
                    c.post("/v1/models/pix2pix/translate", content=d, params={"tile_size": 64})
                    for d in data
                )
            )

    responses = asyncio.run(fire())
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
    assert [r.headers["x-batch-size"] for r in responses] == ["1", "1", "1"]
    assert max(float(r.headers["x-queue-time-ms"]) for r in responses) > 50  # one waited
    after = client.get("/readyz").json()
    assert 0 < after["memory_reserved_peak"] <= work and after["memory_reserved"] == 0
    big = png(Image.new("RGB", (1024, 1024), (90, 10, 200)))  # a few KB, 1 MP untiled
    res = translate(client, "pix2pix", big, tile_size=0)
    assert res.status_code == 413, res.text
    assert "memory budget" in res.json()["error"]
    assert res.json()["detail"]["budget_bytes"] == work
    assert translate(client, "pix2pix", png(noise(32, 32))).status_code == 200


# ---------------------------------------------------------------------------- timeouts
def _raw(server: ServerProcess, payload: bytes) -> tuple[bytes, float]:
    """Send ``payload`` and read until the server closes: (what came back, seconds)."""
    started = time.monotonic()
    with socket.create_connection((server.host, server.port), timeout=15) as sock:
        sock.sendall(payload)
        received = b""
        while chunk := sock.recv(65536):  # a server that never closes fails by timeout
            received += chunk
    return received, time.monotonic() - started


def test_slow_body_gets_408_and_is_closed(server: ServerProcess) -> None:
    head = (
        "POST /v1/models/pix2pix/translate HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Length: 5000\r\n\r\n"
    ).encode()
    received, took = _raw(server, head + b"\x89PNG")
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b"connection: close" in received.lower() and b"not received within" in received
    assert READ_TIMEOUT <= took < READ_TIMEOUT + 5


def test_slow_headers_are_closed(server: ServerProcess) -> None:
    received, took = _raw(server, b"POST /v1/models/pix2pix/trans")  # then nothing
    assert received == b""
    assert READ_TIMEOUT <= took < READ_TIMEOUT + 5


def test_connections_beyond_the_limit_get_503(server: ServerProcess) -> None:
    idle = [socket.create_connection((server.host, server.port)) for _ in range(MAX_CONNECTIONS)]
    try:
        with httpx.Client(base_url=server.url, timeout=10) as fresh:
            assert fresh.get("/healthz").status_code == 503
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


# ---------------------------------------------------------------------------- variants, paths
def test_variant_loaded_at_start_survives_a_moved_checkpoint(
    server: ServerProcess, client: Any, tmp_path: Path, one_thread: None
) -> None:
    # one thread, as the server runs (--threads 1): float sums split by thread count can move
    # a pixel by one level, and this compares exactly
    if server.cyclegan_copy is None:
        pytest.skip("cyclegan plugin not installed")
    moved = tmp_path / "moved"
    shutil.move(server.cyclegan_copy, moved)  # the folder the server read is gone
    source = noise(40, 36, seed=9)
    res = translate(client, "cyclegan", png(source), direction="b2a")
    assert res.status_code == 200, res.text
    want = Translator.from_checkpoint(moved, device="cpu", options={"direction": "b2a"})
    got = np.asarray(Image.open(io.BytesIO(res.content)).convert("RGB"), dtype=np.int16)
    np.testing.assert_array_equal(got, np.asarray(want([source])[0], dtype=np.int16))
    log = server.log()
    assert log.count("loading the variant") == 1 + 1  # cyclegan b2a, pix2pix dropout: at start
    assert log.index("loading the variant") < log.index("Application startup complete")
    # errors never show the server's paths
    for text in (client.get("/v1/models").text, res.headers.get("content-disposition", "")):
        assert str(moved.parent) not in text and server.cyclegan_copy not in text


# ---------------------------------------------------------------------------- disconnects
def test_client_disconnect_is_one_line_without_traceback(server: ServerProcess) -> None:
    before = server.log()
    with socket.create_connection((server.host, server.port)) as sock:
        sock.sendall(
            b"POST /v1/models/pix2pix/translate HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {KEY}\r\n".encode()
            + b"Content-Length: 100000\r\n\r\n\x89PNG\r\n"
        )
        time.sleep(0.2)
    deadline = time.monotonic() + 10
    while "went away" not in server.log()[len(before) :]:
        assert time.monotonic() < deadline, server.log()[len(before) :]
        time.sleep(0.05)
    new = server.log()[len(before) :]
    lines = [line for line in new.splitlines() if "pix2pix/translate" in line or "went" in line]
    assert len(lines) == 1 and '"status": 499' in lines[0], new
    assert "went away during the upload" in lines[0]
    assert "Traceback" not in new and "ERROR" not in new


# ---------------------------------------------------------------------------- auth, CORS
def test_api_key_guards_everything_but_health_and_docs(server: ServerProcess) -> None:
    data = png(noise(32, 32))
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        res = anon.post("/v1/models/pix2pix/translate", content=data)
        assert res.status_code == 401 and "API key" in res.json()["error"]
        assert res.headers["www-authenticate"].startswith("Bearer")
        for path in ("/v1/models", "/readyz", "/metrics"):
            assert anon.get(path).status_code == 401, path
        wrong = {"Authorization": "Bearer not-the-key"}
        assert anon.get("/v1/models", headers=wrong).status_code == 401
        assert anon.get("/healthz").json() == {"status": "ok"}
        for path in ("/", "/docs", "/openapi.json", "/static/app.js"):
            assert anon.get(path).status_code == 200, path
        schema = anon.get("/openapi.json").json()
        assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert schema["paths"]["/v1/models/{name}/translate"]["post"]["security"]
        ok = anon.post("/v1/models/pix2pix/translate", content=data, headers=AUTH)
        assert ok.status_code == 200
        # CORS: only the --cors-origin origins are invited (test_serve: none by default)
        cross = anon.get("/v1/models", headers={**AUTH, "Origin": "https://evil.example"})
        assert cross.status_code == 200 and "access-control-allow-origin" not in cross.headers
        mine = anon.get("/v1/models", headers={**AUTH, "Origin": ALLOWED_ORIGIN})
        assert mine.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        preflight = anon.options(  # a browser's preflight carries no key
            "/v1/models/pix2pix/translate",
            headers={
                "Origin": ALLOWED_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


def test_binding_beyond_loopback_needs_a_key(checkpoints: dict[str, Path]) -> None:
    cmd = [sys.executable, "-m", "translate.cli", "serve", "-c", str(checkpoints["pix2pix"])]
    env = {k: v for k, v in os.environ.items() if k != "TRANSLATE_API_KEY"}
    proc = subprocess.run(
        [*cmd, "--host", "0.0.0.0", "--port", "9"], capture_output=True, text=True, env=env,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--host 0.0.0.0" in lines[0] and "--api-key" in lines[0]
    assert "--allow-unauthenticated" in lines[0] and "Traceback" not in proc.stderr


def test_bad_limit_options_are_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tests.test_cli import assert_user_error
    from translate.cli.main import app

    runner = CliRunner()
    for args, needle in (
        (["--max-memory", "lots"], "--max-memory"),
        (["--read-timeout", "0"], "read_timeout"),
        (["--max-connections", "0"], "--max-connections"),  # the option's own range (CLI)
    ):
        assert_user_error(runner.invoke(app, ["serve", *args, "-c", str(tmp_path)]), needle)


# ---------------------------------------------------------------------------- metrics
def test_metrics_counters_move(client: Any) -> None:
    before = client.get("/metrics").text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")
    assert translate(client, "pix2pix", png(noise(32, 32, seed=3))).status_code == 200
    assert translate(client, "nope", png(noise(8, 8))).status_code == 404
    assert translate(client, "pix2pix", b"not an image").status_code == 415
    after = client.get("/metrics").text
    for labels, step in (
        ({"model": "pix2pix", "status": "200"}, 1),
        ({"model": "unknown", "status": "404"}, 1),  # unknown names share one label
        ({"model": "pix2pix", "status": "415"}, 1),
    ):
        assert (
            metric(after, "translate_requests_total", **labels)
            - metric(before, "translate_requests_total", **labels)
            == step
        ), labels
    assert (
        metric(after, "translate_batch_size_count")
        >= metric(before, "translate_batch_size_count") + 1
    )
    assert metric(after, "translate_request_seconds_count", model="pix2pix") >= 2
    for gauge in ("translate_queue_depth", "translate_pixels_in_flight"):
        assert f"\n{gauge} " in after
    assert metric(after, "translate_memory_budget_bytes") > 0


# ---------------------------------------------------------------------------- the pool's budget
def test_pool_runs_only_what_fits_the_budget() -> None:
    import threading

    from translate.serve.pool import InferencePool, OverBudget

    gate = threading.Event()
    batches: list[list[int]] = []

    def run(key: Any, items: Any) -> list[Any]:
        gate.wait(10)
        batches.append(list(items))
        return list(items)

    pool = InferencePool(run, workers=2, queue_size=8, max_batch=4, memory_budget=100)
    with pytest.raises(OverBudget, match="memory budget"):
        pool.submit("a", 99, cost=101)
    first = pool.submit("a", 0, cost=60, pixels=10)
    deadline = time.monotonic() + 10
    while pool.stats()["running"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    # a second worker is idle, but 60 + 60 > 100: both wait, and never share a batch
    rest = [pool.submit("a", i, cost=60, pixels=10) for i in (1, 2)]
    time.sleep(0.1)
    stats = pool.stats()
    assert stats["running"] == 1 and stats["queued"] == 2 and stats["memory_reserved"] == 60
    assert stats["pixels_in_flight"] == 10
    gate.set()
    assert [f.result(10).value for f in (first, *rest)] == [0, 1, 2]
    assert sorted(map(tuple, batches)) == [(0,), (1,), (2,)]
    assert pool.stats()["memory_reserved_peak"] == 60 and pool.stats()["memory_reserved"] == 0
    assert pool.shutdown(timeout=10)


# ---------------------------------------------------------------------------- waiting for a result
class _FakeRequest:
    """What ``await_result`` reads of a request: ``receive`` (http.disconnect when the client
    leaves; otherwise it blocks, as uvicorn's does after the body)."""

    def __init__(self, leaves_after: float | None) -> None:
        self.leaves_after = leaves_after

    async def receive(self) -> dict:
        if self.leaves_after is None:
            await asyncio.sleep(3600)
        await asyncio.sleep(self.leaves_after or 0)
        return {"type": "http.disconnect"}


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_request_cost_grows_with_the_square_of_the_sr_factor(scale: int) -> None:
    """An x``scale`` model writes scale**2 output pixels per input pixel: the price of a
    request, by hand, is input + scale**2 * output bytes per pixel + the activations of the
    piece run at once (the whole padded image here)."""
    from translate.plugin import SizeRequirements
    from translate.serve.budget import INPUT_BYTES_PER_PIXEL, OUTPUT_BYTES_PER_PIXEL, RequestCost

    cost = RequestCost(
        scale=scale,
        activation_bpp=100.0,
        tile_size=None,
        tile_overlap=None,
        requirements=SizeRequirements(multiple_of=8, scale=scale),
        max_side=None,
    )
    w, h = 30, 20  # padded to 32 x 24 for the network
    expected = w * h * (INPUT_BYTES_PER_PIXEL + scale * scale * OUTPUT_BYTES_PER_PIXEL)
    assert cost.bytes(w, h) == int(expected + 32 * 24 * 100.0)


def test_deadline_and_client_gone_drop_the_queued_job() -> None:
    import threading

    from translate.serve.admission import ClientGone, DeadlinePassed, await_result
    from translate.serve.pool import InferencePool

    gate = threading.Event()
    ran: list[int] = []

    def run(key: Any, items: Any) -> list[Any]:
        gate.wait(10)
        ran.extend(items)
        return list(items)

    pool = InferencePool(run, workers=1, queue_size=8, max_batch=1)
    pool.submit("a", 0)  # keeps the worker busy until the gate opens
    queued = pool.submit("a", 1)
    started = time.perf_counter()
    with pytest.raises(DeadlinePassed, match="queued"):
        asyncio.run(await_result(_FakeRequest(None), queued, time.perf_counter() + 0.3, pool))
    assert 0.25 < time.perf_counter() - started < 5 and queued.cancelled()
    gone = pool.submit("a", 2)
    with pytest.raises(ClientGone, match="queued"):
        asyncio.run(await_result(_FakeRequest(0.05), gone, time.perf_counter() + 30, pool))
    assert gone.cancelled()
    kept = pool.submit("a", 3)
    gate.set()
    assert (
        asyncio.run(await_result(_FakeRequest(None), kept, time.perf_counter() + 30, pool)).value
        == 3
    )
    assert pool.shutdown(timeout=10)
    assert ran == [0, 3]  # the jobs whose waiters left were never run


def test_messages_to_clients_never_carry_model_paths(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from translate.serve.app import Scrubber
    from translate.serve.config import ModelSource

    folder = tmp_path / "runs" / "facades"
    relative = os.path.relpath(folder)
    served = [
        SimpleNamespace(name="facades", source=ModelSource("facades", "checkpoint", relative)),
        SimpleNamespace(name="x4", source=ModelSource("x4", "model", "superres-x4")),
    ]
    scrub = Scrubber(served)  # type: ignore[arg-type]
    message = f"{folder}/meta.json: bad plugin_config; also {relative}/model.safetensors"
    assert scrub(message) == (
        "<model facades>/meta.json: bad plugin_config; also <model facades>/model.safetensors"
    )
    assert scrub({"where": [str(folder)], "n": 3}) == {"where": ["<model facades>"], "n": 3}
    assert scrub("superres-x4 is fine") == "superres-x4 is fine"  # a shipped name is no path
