"""Same pixels everywhere: ``translate run``, ``translate serve`` (the app in-process) and the
Python API (``Translator``) give byte-identical images for the shipped ``superres-x4`` and a
tiny trained pix2pix, because all three take their precision from one function
(``translate.engine.device.inference_precision``, default fp32), as does the export's parity
reference.

The CPU is made to claim native bf16 (``cpu_has_native_bf16``), so a default that followed the
hardware (``--amp auto``, what ``translate run`` did before) is caught on any machine."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import TINY_PIX2PIX
from translate.cli.main import app
from translate.engine import device as device_mod
from translate.engine.device import DEFAULT_AMP, inference_precision
from translate.errors import ConfigError
from translate.inference.translator import Translator
from translate.shipped import resolve_model

runner = CliRunner()


@pytest.fixture(autouse=True)
def _bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every CPU here 'has' native bf16: ``auto`` would pick bf16."""
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: True)


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from translate.testing import make_paired

    root = tmp_path_factory.mktemp("same-pixels")
    data = make_paired(root / "facades", n_train=4, n_val=1)
    args = ["train", "pix2pix", "--data", str(data), "--run-dir", str(root / "run")]
    result = runner.invoke(app, [*args, *TINY_PIX2PIX, "--max-steps", "3", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return root / "run"


def photo(path: Path, size: tuple[int, int]) -> Path:
    """A smooth, non-square image: gradients plus a little noise (bf16 rounds such values)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    noise = np.random.default_rng(0).integers(0, 24, (h, w, 3))
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], -1) + noise
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(path)
    return path


def via_run(image: Path, out: Path, *extra: str) -> np.ndarray:
    result = runner.invoke(app, ["run", str(image), "-o", str(out), "--device", "cpu", *extra])
    assert result.exit_code == 0, result.output
    return np.asarray(Image.open(out / f"{image.stem}.png"))


def via_serve(image: Path, *checkpoints: str) -> np.ndarray:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from translate.serve import LoadSettings
    from translate.serve.app import create_app
    from translate.serve.config import ServeConfig
    from translate.serve.server import load_models

    (served,) = load_models(checkpoints=list(checkpoints), settings=LoadSettings(device="cpu"))
    with TestClient(create_app([served], ServeConfig(access_log=False))) as client:
        res = client.post(f"/v1/models/{served.name}/translate", content=image.read_bytes())
    assert res.status_code == 200, res.text
    return np.asarray(Image.open(io.BytesIO(res.content)))


def via_api(image: Path, checkpoint: Path, **kwargs: str) -> np.ndarray:
    translator = Translator.from_checkpoint(checkpoint, device="cpu", **kwargs)
    return np.asarray(translator([Image.open(image)])[0])


def assert_same(*arrays: np.ndarray) -> None:
    first = arrays[0]
    for other in arrays[1:]:
        assert other.shape == first.shape
        diff = np.abs(other.astype(int) - first.astype(int))
        assert other.tobytes() == first.tobytes(), f"{(diff > 0).sum()} values differ"


def test_the_default_is_fp32_whatever_the_hardware() -> None:
    cpu = torch.device("cpu")
    assert DEFAULT_AMP == "none" and inference_precision(None, cpu) == "none"
    assert inference_precision("auto", cpu) == "bf16"  # the patched CPU has native bf16
    with pytest.raises(ConfigError, match="fp16 inference needs a CUDA device"):
        inference_precision("fp16", cpu)


@pytest.mark.slow  # trains a tiny pix2pix first (about 5-15 s on a shared CPU)
def test_run_serve_and_api_agree_for_a_trained_pix2pix(pix2pix_run: Path, tmp_path: Path) -> None:
    image = photo(tmp_path / "labels.png", (40, 36))
    ran = via_run(image, tmp_path / "out", "-c", str(pix2pix_run))
    served = via_serve(image, f"facades={pix2pix_run}")
    api = via_api(image, pix2pix_run)
    assert_same(ran, served, api)
    # the check can fail: bf16 (what --amp auto picks here) moves pixels
    assert via_api(image, pix2pix_run, amp="bf16").tobytes() != api.tobytes()


def test_run_serve_and_api_agree_for_the_shipped_model(tmp_path: Path) -> None:
    image = photo(tmp_path / "small.png", (24, 20))
    ran = via_run(image, tmp_path / "out")  # no model given: the shipped default
    served = via_serve(image, f"sr={resolve_model(None)}")
    api = via_api(image, resolve_model(None))
    assert ran.shape == (80, 96, 3)  # x4
    assert_same(ran, served, api)
