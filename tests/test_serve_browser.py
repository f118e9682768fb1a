"""The web page of ``translate serve`` in a real browser: headless Chromium picks a model,
uploads an image, and the rendered result must be the model's output (size and pixels); the
super-resolution before/after comparison (with the API key asked for by the page); and
``/docs`` rendering offline. The browser has no way out (a dead proxy for every host but
loopback), so anything the pages tried to load from the internet would fail.

Chromium is driven through chromedriver's W3C WebDriver HTTP API with httpx (no extra
package). Without chromium / chromedriver the test is skipped, except under CI (``CI`` set),
where ``.ci/run`` installs them and their absence is a failure.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from tests.conftest import TINY_CYCLEGAN_OPTIONS  # noqa: E402
from translate.engine.loop import prepare  # noqa: E402
from translate.inference.translator import Translator  # noqa: E402
from translate.serve.process import ServerProcess, free_port  # noqa: E402
from translate.testing import make_unpaired  # noqa: E402

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C WebDriver element key
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--window-size=1200,900",
    "--proxy-server=http://127.0.0.1:9",  # offline: only loopback (never proxied) answers
]


def find_browser() -> tuple[str, str]:
    chromium = next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
    )
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    reason = "chromium and chromium-driver are needed (apt-get install chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(f"CI: {reason}; .ci/run should have installed them")
    pytest.skip(reason)


class WebDriver:
    """The few W3C WebDriver commands this test needs, over HTTP to chromedriver."""

    def __init__(self, chromium: str, driver: str, log: Path) -> None:
        self.port = free_port()
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [driver, f"--port={self.port}"], stdout=out, stderr=subprocess.STDOUT
            )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.http.get("/status").json()["value"]["ready"]:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"chromedriver did not start: {log.read_text()}")
            time.sleep(0.1)
        options = {"binary": chromium, "args": CHROMIUM_ARGS}
        caps = {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}
        self.session = self._call("POST", "/session", {"capabilities": caps})["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        res = self.http.request(method, path, json=body)
        value = res.json()["value"]
        if res.status_code != 200:
            raise RuntimeError(f"webdriver {path}: {value}")
        return value

    def cmd(self, method: str, path: str, body: dict | None = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    def js(self, script: str, *args: Any) -> Any:
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css: str) -> str:
        return self.cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def wait_for(self, script: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(script)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for: {script}")

    def quit(self) -> None:
        try:
            self.cmd("DELETE", "")
        finally:
            self.http.close()
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CycleGAN (instance norm: even one step gives a clearly non-flat output)."""
    root = tmp_path_factory.mktemp("page")
    data = make_unpaired(root / "data")
    return prepare(
        "cyclegan",
        domain_a=data / "A",
        domain_b=data / "B",
        **TINY_CYCLEGAN_OPTIONS,
        max_steps=1,
        progress=False,
        run_dir=root / "run",
    ).run()


PNG_OF = """
const pngOf = (img) => {  // the pixels of an <img> as drawn, as a PNG data URL
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  canvas.getContext("2d").drawImage(img, 0, 0);
  return canvas.toDataURL("image/png");
};
"""
OUTPUT_PIXELS = (
    PNG_OF
    + """
const img = document.getElementById("output");
const link = document.getElementById("download");
const box = img.getBoundingClientRect();
return {
  png: pngOf(img),
  shown: [box.width, box.height],
  input: [document.getElementById("input").naturalWidth,
          document.getElementById("input").naturalHeight],
  download: link.hidden ? null : link.download,
  href: link.href,
  status: document.getElementById("status").textContent,
};
"""
)


def test_page_uploads_an_image_and_shows_the_result(
    browser: WebDriver, checkpoint: Path, tmp_path: Path
) -> None:
    source = Image.fromarray(np.random.default_rng(3).integers(0, 256, (37, 53, 3), dtype=np.uint8))
    upload = tmp_path / "photo.png"
    source.save(upload)
    args = ["-c", f"first={checkpoint}", "-c", f"second={checkpoint}", "--threads", "1"]
    with ServerProcess([*args, "--no-access-log"]) as server:
        browser.get(f"{server.url}/")
        browser.wait_for("return document.body.dataset.state === 'idle'")
        names = browser.js(
            "return [...document.querySelectorAll('#model option')].map(o => o.value)"
        )
        assert names == ["first", "second"]
        browser.cmd("POST", f"/element/{browser.find('#model option[value=second]')}/click", {})
        # the model's options appear as selects; CycleGAN's direction: pick b2a
        browser.cmd(
            "POST", f"/element/{browser.find('select[name=direction] option[value=b2a]')}/click", {}
        )
        # choosing the file starts the translation (as a drop does)
        browser.cmd("POST", f"/element/{browser.find('#file')}/value", {"text": str(upload)})
        state = browser.wait_for(
            "const s = document.body.dataset.state; return s === 'done' || s === 'error' ? s : ''"
        )
        page = browser.js(OUTPUT_PIXELS)
    assert state == "done", page["status"]
    assert "second" in page["status"]  # the model picked on the page answered
    rendered = Image.open(io.BytesIO(base64.b64decode(page["png"].split(",", 1)[1])))
    b2a = Translator.from_checkpoint(checkpoint, device="cpu", options={"direction": "b2a"})
    expected = b2a([source])[0]
    assert rendered.size == expected.size == (53, 37)
    assert page["input"] == [53, 37] and page["shown"][0] > 0 and page["shown"][1] > 0
    got = np.asarray(rendered.convert("RGB"), dtype=np.int16)
    want = np.asarray(expected, dtype=np.int16)
    assert got.std() > 5.0  # not blank (a flat or empty canvas fails here)
    assert np.abs(got - want).max() <= 2  # what the model computes, as the browser drew it
    a2b = np.asarray(Translator.from_checkpoint(checkpoint, device="cpu")([source])[0], np.int16)
    assert np.abs(got - a2b).max() > 2  # the direction picked on the page took effect
    assert page["download"] == "photo-second.png" and page["href"].startswith("blob:")


# ---------------------------------------------------------------------------- super-resolution
SR_KEY = "page-test-key"


@pytest.fixture(scope="module")
def sr_server() -> Any:
    """The shipped 4x super-resolution model, behind an API key."""
    args = ["--model", "superres-x4", "--threads", "1", "--no-access-log"]
    with ServerProcess(args, api_key=SR_KEY) as server:
        yield server


COMPARE = """
const box = (id) => { const r = document.getElementById(id).getBoundingClientRect();
                      return [Math.round(r.width), Math.round(r.height)]; };
const after = document.getElementById("after");
return {
  before: box("before"), after: box("after"), stage: box("stage"),
  natural: [document.getElementById("before").naturalWidth, after.naturalWidth],
  clip: getComputedStyle(after).clipPath,
  info: document.getElementById("compare-info").textContent,
  status: document.getElementById("status").textContent,
  hidden: document.getElementById("compare").hidden,
};
"""


def test_super_resolution_page_compares_at_one_scale(
    browser: WebDriver, sr_server: ServerProcess, tmp_path: Path
) -> None:
    upload = tmp_path / "small.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(
        upload
    )
    browser.get(f"{sr_server.url}/")
    # the API wants a key: the page asks for it, then lists the models
    browser.wait_for("return !document.getElementById('key-form').hidden")
    browser.cmd("POST", f"/element/{browser.find('#key')}/value", {"text": SR_KEY})
    browser.cmd("POST", f"/element/{browser.find('#key-form button')}/click", {})
    browser.wait_for("return document.body.dataset.state === 'idle'")
    browser.cmd("POST", f"/element/{browser.find('#file')}/value", {"text": str(upload)})
    state = browser.wait_for(
        "const s = document.body.dataset.state; return s === 'done' || s === 'error' ? s : ''"
    )
    page = browser.js(COMPARE)
    assert state == "done", page["status"]
    assert "24x20 -> 96x80" in page["status"] and " ms" in page["status"]
    assert not page["hidden"] and "x4" in page["info"]
    assert page["natural"] == [24, 96]  # the input itself, and the 4x output
    # both drawn at the same display size (the input enlarged to the output's)
    assert page["before"] == page["after"] == page["stage"] and page["after"][0] > 96
    assert "50%" in page["clip"]
    browser.js(
        "const s = document.getElementById('split'); s.value = 20;"
        "s.dispatchEvent(new Event('input'));"
    )
    assert "20%" in browser.js(COMPARE)["clip"]
    browser.js(
        "const z = document.getElementById('zoom'); z.value = '2';"
        "z.dispatchEvent(new Event('change'));"
    )
    zoomed = browser.js(COMPARE)
    assert zoomed["stage"] == [192, 160] and zoomed["before"] == zoomed["after"] == [192, 160]


# ---------------------------------------------------------------------------- /docs offline
def test_docs_render_offline(browser: WebDriver, sr_server: ServerProcess) -> None:
    browser.get(f"{sr_server.url}/docs")
    paths = browser.wait_for(
        "const p = [...document.querySelectorAll('.opblock-summary-path')]"
        ".map(e => e.textContent.trim()); return p.length ? p : null;"
    )
    assert "/v1/models/{name}/translate" in [p.replace("\u200b", "") for p in paths]
    assert browser.js("return typeof window.SwaggerUIBundle") == "function"  # its script ran
    # every resource came from the server itself, and the key is asked for (Authorize)
    resources = browser.js("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(r.startswith(sr_server.url) for r in resources), resources
    assert browser.js("return !!document.querySelector('.btn.authorize')")


# ---------------------------------------------------------------------------- StarGAN domains
DONE = "const s = document.body.dataset.state; return s === 'done' || s === 'error' ? s : ''"


@pytest.fixture(scope="module")
def stargan_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny StarGAN (domains A and B: the folders) and its ONNX export (label an input)."""
    from translate.export.onnx import export_onnx

    root = tmp_path_factory.mktemp("stargan-page")
    run = prepare(
        "stargan",
        data=make_unpaired(root / "data", n=2),
        load_size=32,
        crop_size=32,
        base_channels=8,
        resnet_blocks=1,
        disc_channels=8,
        disc_layers=3,
        max_steps=1,
        batch_size=2,
        progress=False,
        device="cpu",
        run_dir=root / "run",
    ).run()
    return run, export_onnx(run, root / "stargan.onnx").path


def test_page_offers_the_domains_of_a_stargan_model(
    browser: WebDriver, stargan_models: tuple[Path, Path], tmp_path: Path
) -> None:
    """The page's domain box lists the model's domains; the domain chosen there is the one the
    returned image was translated to (equal to the Translator's for that domain), for the
    checkpoint and for its ONNX export (whose label is an input the service feeds)."""
    run, exported = stargan_models
    source = Image.fromarray(np.random.default_rng(4).integers(0, 256, (28, 36, 3), np.uint8))
    upload = tmp_path / "face.png"
    source.save(upload)
    args = ["-c", f"ckpt={run}", "--onnx", f"onnx={exported}", "--threads", "1"]
    pages = {}
    with ServerProcess([*args, "--no-access-log"]) as server:
        browser.get(f"{server.url}/")
        browser.wait_for("return document.body.dataset.state === 'idle'")
        for name in ("onnx", "ckpt"):
            browser.cmd(
                "POST", f"/element/{browser.find(f'#model option[value={name}]')}/click", {}
            )
            choices = browser.wait_for(
                "const o = [...document.querySelectorAll('select[name=to] option')]"
                ".map(o => o.value); return o.length ? o : null;"
            )
            assert choices == ["A", "B"]
            browser.cmd(
                "POST", f"/element/{browser.find('select[name=to] option[value=B]')}/click", {}
            )
            browser.js("document.body.dataset.state = 'idle'")  # a fresh result is awaited
            if name == "onnx":  # choosing the file translates it
                file_input = browser.find("#file")
                browser.cmd("POST", f"/element/{file_input}/value", {"text": str(upload)})
            else:  # the same file again, with the other model
                browser.cmd("POST", f"/element/{browser.find('#submit')}/click", {})
            state = browser.wait_for(DONE)
            pages[name] = browser.js(OUTPUT_PIXELS)
            assert state == "done", pages[name]["status"]
            assert name in pages[name]["status"]
    to_b = Translator.from_checkpoint(run, device="cpu", options={"to": "B"})([source])[0]
    to_a = Translator.from_checkpoint(run, device="cpu", options={"to": "A"})([source])[0]
    want, other = (np.asarray(im, np.int16) for im in (to_b, to_a))
    assert np.abs(want - other).max() > 2  # the domains give different images
    for name, page in pages.items():
        rendered = Image.open(io.BytesIO(base64.b64decode(page["png"].split(",", 1)[1])))
        got = np.asarray(rendered.convert("RGB"), np.int16)
        assert got.shape == want.shape, name
        assert np.abs(got - want).max() <= 2, f"{name}: not the output for domain B"


# ---------------------------------------------------------------------------- DragGAN
