"""spandrel files (ESRGAN's RRDBNet and Real-ESRGAN's Compact, random weights) run like our
own models: the same output as spandrel's own call, tiling, ONNX export, the CLI, serve, eval."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.test_cli import assert_user_error
from translate.cli.main import app
from translate.export.onnx import export_onnx
from translate.inference.translator import Translator

spandrel = pytest.importorskip("spandrel")
from spandrel.architectures.Compact import Compact  # noqa: E402
from spandrel.architectures.ESRGAN import ESRGAN  # noqa: E402

runner = CliRunner()


def _esrgan() -> torch.nn.Module:
    return ESRGAN(num_filters=8, num_blocks=1, scale=4)  # RRDBNet, as in RealESRGAN_x4plus


def _compact() -> torch.nn.Module:
    return Compact(num_feat=8, num_conv=2, upscale=2)  # SRVGGNetCompact (realesr-*-x4v3)


ARCHS = {"esrgan": (_esrgan, 4), "compact": (_compact, 2)}


@pytest.fixture(params=sorted(ARCHS))
def sr_file(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, int]:
    build, scale = ARCHS[request.param]
    torch.manual_seed(0)
    net = build()
    with torch.no_grad():  # larger random weights than the default init: a visible output
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path / f"{request.param}_x{scale}.pth"
    torch.save({"params_ema": net.state_dict()}, path)  # Real-ESRGAN's file layout
    return path, scale


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def test_translator_matches_spandrel_tiled_and_onnx(sr_file: tuple[Path, int], tmp_path: Path):
    path, scale = sr_file
    descriptor = spandrel.ModelLoader().load_from_file(path)
    x = torch.rand(1, 3, 40, 52)  # [0, 1], spandrel's range
    want = descriptor(x)  # spandrel's own call
    model = Translator.from_checkpoint(path, device="cpu", tile_size=0)
    got = (model.translate_tensor(x * 2 - 1) + 1) / 2
    assert got.shape == (1, 3, 40 * scale, 52 * scale)
    assert float((got - want).abs().max()) <= 1e-5
    assert float(want.std()) > 0.01  # not a trivial output

    tiled = model.with_tiling(16, 8)
    got_tiled = (tiled.translate_tensor(x * 2 - 1) + 1) / 2
    assert _psnr(got_tiled, got) >= 40

    result = export_onnx(path, tmp_path / "sr.onnx")  # parity-checked against PyTorch
    assert result.metadata["plugin"] == "spandrel" and result.metadata["scale"] == str(scale)
    onnx = Translator.from_checkpoint(result.path, device="cpu", tile_size=0)
    assert onnx.name == model.name
    got_onnx = (onnx.translate_tensor(x * 2 - 1) + 1) / 2
    assert float((got_onnx - want).abs().max()) <= 1e-4


def test_cli_run_serve_and_eval_take_the_file(tmp_path: Path) -> None:
    torch.manual_seed(1)
    path = tmp_path / "RealESRGAN_x4plus.pth"
    torch.save({"params_ema": _esrgan().state_dict()}, path)
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(photo)
    ran = runner.invoke(app, ["run", str(photo), "-c", str(path), "-o", str(tmp_path / "o.png")])
    assert ran.exit_code == 0, ran.output
    assert "spandrel ESRGAN x4" in ran.output
    assert Image.open(tmp_path / "o.png").size == (64, 48)

    from translate.serve.models import LoadSettings, load_translator

    served = load_translator("checkpoint", str(path), LoadSettings(device="cpu"))
    assert served([Image.open(photo)])[0].size == (64, 48)

    hr = tmp_path / "set"
    hr.mkdir()
    Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(hr / "a.png")
    scored = runner.invoke(app, ["eval", "superres", "-c", str(path), "--data", str(hr)])
    assert scored.exit_code == 0, scored.output
    assert "bicubic PSNR" in scored.output


def test_files_translate_cannot_run_are_one_line(tmp_path: Path) -> None:
    grey = tmp_path / "grey.pth"
    torch.save(Compact(num_in_ch=1, num_out_ch=1, num_feat=4, num_conv=1).state_dict(), grey)
    photo = tmp_path / "p.png"
    Image.new("RGB", (8, 8)).save(photo)
    result = runner.invoke(app, ["run", str(photo), "-c", str(grey)])
    assert_user_error(result, "grey.pth", "1 -> 1 channel", "RGB")
    other = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"encoder.weight": torch.zeros(2, 2)}, str(other))
    result = runner.invoke(app, ["run", str(photo), "-c", str(other)])
    assert_user_error(result, "other.safetensors", "not a model translate knows")
    options = runner.invoke(app, ["run", str(photo), "-c", str(grey), "--direction", "b2a"])
    assert_user_error(options, "unknown option --direction", "a spandrel model's options: none")
