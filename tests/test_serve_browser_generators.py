"""The web page's generator views in a real browser (headless Chromium, driven as in
``tests/test_serve_browser.py``, whose browser fixture and helpers these tests share): a
StyleGAN2 point drag, the K samples of a multimodal model, and the Generate panel with a
stackgan prompt."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from tests.test_serve_browser import (  # noqa: E402
    DONE,
    ELEMENT,
    OUTPUT_PIXELS,
    PNG_OF,
    WebDriver,
)
from translate.inference.translator import Translator  # noqa: E402
from translate.serve.process import ServerProcess  # noqa: E402


@pytest.fixture(scope="module")
def stylegan2_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 16 px stylegan2 (two steps): a style generator the page can drag."""
    from tests.test_editing import tiny_stylegan2

    return tiny_stylegan2(tmp_path_factory.mktemp("drag-page"))


def click_at(browser: WebDriver, css: str, dx: float, dy: float) -> None:
    """A mouse click at (dx, dy) from the centre of the element ``css`` (W3C actions)."""
    target = {ELEMENT: browser.find(css)}
    pointer = [
        {"type": "pointerMove", "origin": target, "x": int(dx), "y": int(dy), "duration": 0},
        {"type": "pointerDown", "button": 0},
        {"type": "pointerUp", "button": 0},
    ]
    source = {"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}}
    browser.cmd("POST", "/actions", {"actions": [{**source, "actions": pointer}]})


DRAG_PAGE = """
const s = window.dragState;
return {image: document.getElementById("drag-image").src, handles: s.handles,
        targets: s.targets, frames: s.frames, status: document.getElementById("drag-status")
        .textContent, state: document.body.dataset.drag,
        box: document.getElementById("drag-overlay").getBoundingClientRect().width};
"""


def _png_pixels(url: str) -> np.ndarray:
    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def test_page_drags_a_point_of_a_stylegan2_image(browser: WebDriver, stylegan2_run: Path) -> None:
    """Sample seed 1, click a handle and its target on the image, Drag: the image is redrawn
    at every step while the drag runs, ends changed, and the handle has moved from where it
    was clicked (the tracked point, drawn by the page)."""
    args = ["-c", f"sg={stylegan2_run}", "--threads", "1", "--no-access-log"]
    with ServerProcess(args) as server:
        browser.get(f"{server.url}/")
        browser.wait_for("return document.body.dataset.drag === 'idle'")
        browser.js("document.getElementById('drag-seed').value = '1'")
        browser.cmd("POST", f"/element/{browser.find('#drag-sample')}/click", {})
        state = browser.wait_for(
            "const s = document.body.dataset.drag; return s === 'ready' || s === 'error' ? s : ''"
        )
        sampled = browser.js(DRAG_PAGE)
        assert state == "ready", sampled["status"]
        # 16 px drawn at box px: pixel (5, 5) -> its centre; the target 6 px to the right
        browser.js("document.getElementById('drag-stage').scrollIntoView({block: 'center'})")
        box = sampled["box"]
        step = box / 16
        centre = box / 2
        click_at(browser, "#drag-overlay", 5.5 * step - centre, 5.5 * step - centre)
        click_at(browser, "#drag-overlay", 11.5 * step - centre, 5.5 * step - centre)
        clicked = browser.js(DRAG_PAGE)
        assert clicked["handles"] == [[5, 5]] and clicked["targets"] == [[11, 5]]
        browser.js(
            "document.getElementById('drag-steps').value = '20';"
            "document.getElementById('drag-lr').value = '0.1';"
        )
        browser.cmd("POST", f"/element/{browser.find('#drag-run')}/click", {})
        state = browser.wait_for(
            "const s = document.body.dataset.drag; return s === 'done' || s === 'error' ? s : ''"
        )
        page = browser.js(DRAG_PAGE)
    assert state == "done", page["status"]
    assert page["frames"] >= 2  # the image was redrawn while the drag ran
    before, after = _png_pixels(sampled["image"]), _png_pixels(page["image"])
    assert before.shape == after.shape == (16, 16, 3)
    assert np.abs(after - before).max() > 10  # the image changed
    assert page["handles"] != [[5, 5]] and page["targets"] == [[11, 5]]  # the handle moved
    assert f"{page['frames']} steps" in page["status"]


def test_page_shows_the_samples_of_a_multimodal_model(browser: WebDriver, tmp_path: Path) -> None:
    """A model with a code (munit's style): the page asks for samples and a seed, and shows
    the K outputs side by side, those ``translate run --samples K --seed S --grid`` gives."""
    from tests.test_multimodal_export import tiny_run
    from translate.inference.multimodal import grid, translate_samples

    run = tiny_run("munit", tmp_path / "munit")
    source = Image.fromarray(np.random.default_rng(5).integers(0, 256, (32, 32, 3), np.uint8))
    upload = tmp_path / "edge.png"
    source.save(upload)
    with ServerProcess(["-c", f"styles={run}", "--threads", "1", "--no-access-log"]) as server:
        browser.get(f"{server.url}/")
        browser.wait_for("return document.body.dataset.state === 'idle'")
        browser.wait_for("return document.getElementById('samples') !== null")
        browser.js(
            "document.getElementById('samples').value = '3';"
            "document.getElementById('seed').value = '5';"
        )
        assert browser.js("return document.getElementById('style') !== null")  # a style box
        browser.cmd("POST", f"/element/{browser.find('#file')}/value", {"text": str(upload)})
        state = browser.wait_for(DONE)
        page = browser.js(OUTPUT_PIXELS)
    assert state == "done", page["status"]
    assert "3 samples side by side" in page["status"]
    rendered = Image.open(io.BytesIO(base64.b64decode(page["png"].split(",", 1)[1])))
    t = Translator.from_checkpoint(run, device="cpu")
    want = np.asarray(grid(translate_samples(t, [source], 3, seed=5)[0]), np.int16)
    got = np.asarray(rendered.convert("RGB"), np.int16)
    assert got.shape == want.shape == (32, 96, 3)
    assert np.abs(got - want).max() <= 2
    assert np.abs(want[:, :32] - want[:, 32:64]).max() > 2  # the samples differ


# ---------------------------------------------------------------------------- text to image
@pytest.fixture(scope="module")
def stackgan_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny stackgan (16 px, two steps) on captioned shapes: a text-conditioned generator."""
    from translate_stackgan import StackGANConfig

    from tests.conftest import train_tiny
    from tests.test_stackgan import TINY
    from translate.text.synthetic import make_captioned_shapes

    root = tmp_path_factory.mktemp("stackgan-page")
    make_captioned_shapes(root / "shapes", 8, size=16)
    return train_tiny("stackgan", StackGANConfig(data=root / "shapes", **TINY), root / "run")


SAMPLE_PAGE = (
    PNG_OF
    + """
const img = document.getElementById("sample-output");
const shown = (id) => document.getElementById(id).offsetParent !== null;
return {
  png: img.naturalWidth ? pngOf(img) : null,
  status: document.getElementById("sample-status").textContent,
  shown: {prompt: shown("sample-prompt"), classes: shown("sample-class"),
          translate: shown("form"), drop: shown("drop"), key: shown("key-form")},
  download: document.getElementById("sample-download").download,
  requests: performance.getEntriesByType("resource").map((e) => e.name)
    .filter((url) => url.includes("/sample?")),
};
"""
)
SAMPLE_DONE = (
    "const s = document.body.dataset.sample; return s === 'done' || s === 'error' ? s : ''"
)


def generate(browser: WebDriver, prompt: str) -> dict[str, Any]:
    """Type ``prompt`` into the page's prompt box (what was there cleared), press Generate,
    and return the page once the grid is drawn."""
    box = browser.find("#sample-prompt")
    browser.cmd("POST", f"/element/{box}/clear", {})
    browser.cmd("POST", f"/element/{box}/value", {"text": prompt})
    browser.js("document.body.dataset.sample = 'idle'")  # a fresh result is awaited
    browser.cmd("POST", f"/element/{browser.find('#sample-run')}/click", {})
    state = browser.wait_for(SAMPLE_DONE)
    page = browser.js(SAMPLE_PAGE)
    assert state == "done", page["status"]
    return page


@pytest.mark.slow  # 13 s: training the model, the server, two requests
def test_page_generates_the_images_of_a_prompt(browser: WebDriver, stackgan_run: Path) -> None:
    """A text-to-image model served alone: the page shows its Generate panel with a prompt box
    (and no translate form); a typed prompt, n = 3 and seed 7 send one sample request with
    that prompt, n and seed, and draw the grid ``translate sample --prompt ... -n 3 --seed 7``
    draws; then another prompt, the same way. (Two steps of training leave the prompts' images
    2 levels apart: the request itself shows which prompt was sent.)"""
    from urllib.parse import parse_qs, urlsplit

    from translate.inference.sampling import Sampler, grid

    args = ["-c", f"shapes={stackgan_run}", "--threads", "1", "--no-access-log"]
    pages = {}
    with ServerProcess(args) as server:
        browser.get(f"{server.url}/")
        browser.wait_for("return document.body.dataset.sample === 'idle'")
        browser.js(
            "document.getElementById('sample-n').value = '3';"
            "document.getElementById('sample-seed').value = '7';"
        )
        for prompt in ("a red circle", "a blue square"):
            pages[prompt] = generate(browser, prompt)
    sampler = Sampler.from_checkpoint(stackgan_run)
    want = {p: np.asarray(grid(sampler(3, seed=7, prompt=p)), np.int16) for p in pages}
    assert not np.array_equal(want["a red circle"], want["a blue square"])
    for k, (prompt, page) in enumerate(pages.items()):
        assert page["shown"] == {
            "prompt": True, "classes": False, "translate": False, "drop": False, "key": False,
        }  # fmt: skip
        assert len(page["requests"]) == k + 1  # one request per Generate
        query = parse_qs(urlsplit(page["requests"][-1]).query)
        assert urlsplit(page["requests"][-1]).path == "/v1/models/shapes/sample"
        assert query == {"n": ["3"], "seed": ["7"], "prompt": [prompt]}
        assert f'3 images of "{prompt}" from shapes' in page["status"]
        assert page["download"] == "shapes-samples.png"
        got = _png_pixels(page["png"])
        assert got.shape == want[prompt].shape == (32, 32, 3)  # 2 x 2 tiles of 16 px
        assert got.std() > 5.0  # not blank
        assert np.abs(got - want[prompt]).max() <= 2, f"{prompt!r}: not that prompt's images"
