"""``translate run`` for a multimodal model (a code input declared once by the plugin:
bicyclegan's z): ``--samples K`` writes K outputs, reproducible by ``--seed``; ``--grid`` puts
them in one row; ``--style-from`` uses the encoder's code of a reference; bad values get one
line and exit code 2; the ONNX backend gives the same samples (the code is a graph input)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from translate.cli.main import app
from translate.engine.loop import prepare
from translate.inference.translator import Translator
from translate.testing import make_paired

runner = CliRunner()
TINY = dict(
    load_size=36, crop_size=32, unet_depth=5, base_channels=8, encoder_channels=8,
    encoder_blocks=2, disc_channels=8, disc_layers=2,
)  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bicycle")
    data = make_paired(root / "data", n_train=2, n_val=1)
    opts = dict(TINY, max_steps=1, progress=False, run_dir=root / "run", device="cpu")
    prepare("bicyclegan", data=data, **opts).run()
    return root / "run"


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "img.png"
    path.parent.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


def run(*args: object) -> object:
    return runner.invoke(app, ["run", *(str(a) for a in args)])


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int16)


def test_samples_are_reproducible_by_seed(run_dir: Path, image: Path, tmp_path: Path) -> None:
    r = run(image, "-c", run_dir, "--samples", 3, "--seed", 5, "-o", tmp_path / "a")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["img_s0.png", "img_s1.png", "img_s2.png"]
    again = run(image, "-c", run_dir, "--samples", 2, "--seed", 5, "-o", tmp_path / "b")
    assert again.exit_code == 0, again.output
    for name in ("img_s0.png", "img_s1.png"):  # same seed, same codes (sample s for any K > s)
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other = run(image, "-c", run_dir, "--samples", 1, "--seed", 6, "-o", tmp_path / "c")
    assert other.exit_code == 0
    assert not np.array_equal(pixels(tmp_path / "a/img_s0.png"), pixels(tmp_path / "c/img_s0.png"))
    a0, a1 = pixels(tmp_path / "a/img_s0.png"), pixels(tmp_path / "a/img_s1.png")
    assert not np.array_equal(a0, a1), "two codes gave the same output"


def test_grid_is_one_row(run_dir: Path, image: Path, tmp_path: Path) -> None:
    r = run(image, "-c", run_dir, "--samples", 3, "--seed", 1, "--grid", "-o", tmp_path / "g")
    assert r.exit_code == 0, r.output
    sheet = Image.open(tmp_path / "g" / "img.png")
    assert sheet.size == (96, 32)
    single = run(image, "-c", run_dir, "--samples", 3, "--seed", 1, "-o", tmp_path / "s")
    assert single.exit_code == 0
    middle = np.asarray(sheet, dtype=np.int16)[:, 32:64]
    assert np.array_equal(middle, pixels(tmp_path / "s/img_s1.png"))


def test_style_from_uses_the_encoders_code(run_dir: Path, image: Path, tmp_path: Path) -> None:
    ref = tmp_path / "ref.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(ref)
    r = run(image, "-c", run_dir, "--style-from", ref, "-o", tmp_path / "o")
    assert r.exit_code == 0, r.output
    t = Translator.from_checkpoint(run_dir, device="cpu")
    x = t.plugin.preprocess([Image.open(ref)], t.plugin_cfg)
    with torch.no_grad():
        mu = t.code_encoder(x)
    want = t.with_codes({"z": mu})(Image.open(image).convert("RGB"))[0]
    assert np.abs(pixels(tmp_path / "o/img.png") - np.asarray(want, dtype=np.int16)).max() <= 1


def test_a_reference_is_encoded_at_the_training_size(run_dir: Path) -> None:
    """A reference of any size is resized (bicubic) to the training crop, as the papers' test
    code loads it, on either backend (the exported encoder is one fixed size)."""
    from translate.inference.image_io import pil_to_tensor
    from translate.inference.multimodal import style_code

    t = Translator.from_checkpoint(run_dir, device="cpu")
    with torch.no_grad():  # E's mean head scaled up: codes differ visibly between inputs
        t.code_encoder.encoder.mu.weight.mul_(100.0)
    rng = np.random.default_rng(3)
    ref = Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    with torch.no_grad():
        want = t.code_encoder(pil_to_tensor([ref.resize((32, 32), Image.Resampling.BICUBIC)]))
        assert torch.equal(style_code(t, ref), want)
        padded = t.code_encoder(pil_to_tensor([ref.crop((0, 0, 64, 64))]))
    assert (padded - want).abs().max() > 1e-3  # the size matters: the check can fail


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--samples", "0"], "--samples: must be an integer from 1 to 64"),
        (["--samples", "2", "--seed", "-1"], "--seed: must be an integer from 0 to 2**64 - 1"),
        (["--grid"], "--grid: applies with --samples"),
        (["--style-from", "TINY", "--samples", "2"], "--style-from: gives one output"),
        (["--style-from", "TINY"], "--style-from: the reference is 4x4"),
    ],
)
def test_bad_values_get_one_line(
    run_dir: Path, image: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (4, 4)).save(tiny)
    args = [str(tiny) if a == "TINY" else a for a in args]
    r = run(image, "-c", run_dir, *args, "-o", tmp_path / "o")
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_samples_on_a_model_without_a_code(tmp_path: Path, image: Path) -> None:
    from tests.conftest import TINY_PIX2PIX_OPTIONS

    data = make_paired(tmp_path / "data", n_train=2, n_val=1)
    opts = dict(TINY_PIX2PIX_OPTIONS, max_steps=1, progress=False, run_dir=tmp_path / "run")
    prepare("pix2pix", data=data, **opts).run()
    r = run(image, "-c", tmp_path / "run", "--samples", 2, "-o", tmp_path / "o")
    assert r.exit_code == 2 and "--samples:" in r.output and "takes no code" in r.output


@pytest.mark.slow
def test_onnx_backend_gives_the_same_samples(run_dir: Path, image: Path, tmp_path: Path) -> None:
    base = ["--samples", 2, "--seed", 3]
    assert run(image, "-c", run_dir, *base, "-o", tmp_path / "t").exit_code == 0
    r = run(image, "-c", run_dir, *base, "--backend", "onnx", "-o", tmp_path / "x")
    assert r.exit_code == 0, r.output
    for name in ("img_s0.png", "img_s1.png"):
        assert np.abs(pixels(tmp_path / "t" / name) - pixels(tmp_path / "x" / name)).max() <= 1


@pytest.mark.slow
def test_eval_reports_diversity_only_with_lpips_weights(
    run_dir: Path, lpips_weights: Path, tmp_path: Path
) -> None:
    import json

    data = run_dir.parent / "data"
    plain = runner.invoke(app, ["eval", "bicyclegan", "-c", str(run_dir), "--data", str(data)])
    assert plain.exit_code == 0, plain.output
    assert "diversity (LPIPS between samples) skipped" in plain.output
    report = tmp_path / "report"
    args = ["eval", "bicyclegan", "-c", run_dir, "--data", data, "--report", report,
            "--lpips-weights", lpips_weights]  # fmt: skip
    r = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    (folder,) = json.loads((report / "metrics.json").read_text())["folders"]
    assert {"L1", "LPIPS", "diversity"} <= set(folder["means"])
    assert folder["means"]["diversity"] > 0


def test_diversity_is_zero_for_equal_samples(lpips_weights: Path, tmp_path: Path) -> None:
    from translate.evaluation import EvalItem, EvalSet, MetricWeights, score

    rng = np.random.default_rng(0)
    a, b = (Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(2))
    same = EvalItem("same", {"s0": a, "s1": a.copy(), "s2": a.copy()}, samples=("s0", "s1", "s2"))
    apart = EvalItem("apart", {"s0": a, "s1": b}, samples=("s0", "s1"))
    result = score(EvalSet([same, apart]), tmp_path, MetricWeights(lpips=lpips_weights), "cpu")
    assert result.rows[0]["diversity"] == pytest.approx(0.0, abs=1e-6)
    assert result.rows[1]["diversity"] > 0
