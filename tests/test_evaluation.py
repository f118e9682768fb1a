"""translate eval for every plugin: FID/KID/LPIPS through the real code path (feature networks
with random weights saved to files), the protocols, and the HTML report in a real browser."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.test_cli import assert_user_error
from translate.cli.main import app
from translate.config import config_to_dict
from translate.registry import load_plugin
from translate.testing import make_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """torch-fidelity's FID Inception-v3 with random weights, saved as users save the real file."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    torch.manual_seed(0)
    with (
        mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}),
        mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None),
    ):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path_factory.mktemp("weights") / "pt_inception-random.pth"
    torch.save(net.state_dict(), path)
    return path


def photos(n: int, seed: int, size: int = 48) -> list[Image.Image]:
    """Smooth random colour fields: one distribution of images."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        low = rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)
        out.append(Image.fromarray(low).resize((size, size), Image.Resampling.BICUBIC))
    return out


def noisy(images: list[Image.Image], sigma: float, seed: int = 1) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(
            np.clip(np.asarray(im, np.float64) + rng.normal(0, sigma, (*im.size, 3)), 0, 255)
            .round()
            .astype(np.uint8)
        )
        for im in images
    ]


# ------------------------------------------------------------------ metrics
def test_fid_is_zero_on_itself_and_grows_with_noise(inception_weights: Path) -> None:
    from translate.metrics.fidelity import InceptionFeatures, fid

    features = InceptionFeatures(inception_weights)
    base = photos(5, seed=0)
    f0 = features(base)
    assert f0.shape == (5, 2048)
    assert abs(fid(f0, f0)) < 1e-3 * max(1.0, float(f0.var(0).sum()))
    scores = [fid(f0, features(noisy(base, sigma))) for sigma in (8, 32, 96)]
    assert scores == sorted(scores) and scores[0] > 0, scores


def test_fid_equals_the_reference_formula_on_the_same_features() -> None:
    """pytorch-fid's computation (scipy sqrtm of the covariance product) on fixed features."""
    from scipy import linalg

    from translate.metrics.fidelity import fid

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(40, 6, generator=gen, dtype=torch.float64)
    b = torch.randn(50, 6, generator=gen, dtype=torch.float64) * 1.5 + 0.3
    mu1, mu2 = a.mean(0).numpy(), b.mean(0).numpy()
    s1, s2 = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    assert fid(a, b) == pytest.approx(expected, rel=1e-6)


def test_kid_is_unbiased() -> None:
    from translate.metrics.fidelity import kid

    gen = torch.Generator().manual_seed(0)
    same_a, same_b = (torch.randn(200, 16, generator=gen) for _ in range(2))
    shifted = torch.randn(200, 16, generator=gen) + 0.5
    k_same, k_diff = kid(same_a, same_b), kid(same_a, shifted)
    assert abs(k_same) < 0.05 * k_diff, (k_same, k_diff)  # ~0 (can be below 0: unbiased)
    assert k_diff > 0


def test_kid_equals_the_unbiased_mmd_with_the_cubic_kernel_by_hand() -> None:
    """KID (Binkowski et al. 2018, Eq. 3 with k(x, y) = (x.y / d + 1) ** 3): the unbiased MMD^2
    written out; with subsets as large as the sets every subset is the whole set."""
    from translate.metrics.fidelity import kid

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(7, 4, generator=gen, dtype=torch.float64) * 0.7 + 0.4
    x, y = x[:6], y[:6]  # the subset size is min(len(x), len(y)): equal sizes, m = 6

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a @ b.T / a.shape[1] + 1) ** 3

    m = len(x)
    off = 1 - torch.eye(m, dtype=torch.float64)
    expected = (
        (k(x, x) * off).sum() / (m * (m - 1))
        + (k(y, y) * off).sum() / (m * (m - 1))
        - 2 * k(x, y).mean()
    )
    assert kid(x, y, subsets=3) == pytest.approx(float(expected), rel=1e-9)


def test_lpips_feeds_the_network_images_in_minus_one_to_one(lpips_weights: Path) -> None:
    """LPIPS's networks take [-1, 1] (Zhang et al. 2018, the lpips package): the metric on two
    PIL images equals the package's network on x / 127.5 - 1, not on [0, 1] or [0, 255]."""
    from translate.metrics.perceptual import LPIPSMetric

    metric = LPIPSMetric(lpips_weights)
    a, b = photos(2, seed=5)

    def tensor(im: Image.Image, lo: float) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(im, dtype=np.float32)).permute(2, 0, 1)[None]
        return x / 255.0 * (1 - lo) + lo  # [lo, 1]

    with torch.no_grad():
        right = float(metric.net(tensor(a, -1.0), tensor(b, -1.0)).flatten()[0])
        wrong = float(metric.net(tensor(a, 0.0), tensor(b, 0.0)).flatten()[0])
    assert metric(a, b) == pytest.approx(right, rel=1e-5)
    assert abs(right - wrong) > 1e-3 * right  # the range matters to the figure


def test_lpips_is_zero_for_identical_images(lpips_weights: Path) -> None:
    from translate.metrics.perceptual import LPIPSMetric

    metric = LPIPSMetric(lpips_weights)
    a, b = photos(2, seed=3)
    assert metric(a, a) == pytest.approx(0.0, abs=1e-7)
    assert metric(a, b) > metric(a, noisy([a], 4)[0]) > 0


def test_weights_holding_code_are_refused(tmp_path: Path) -> None:
    import pickle

    from translate.errors import ConfigError
    from translate.metrics.fidelity import InceptionFeatures

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pth"
    bad.write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(ConfigError, match="refused: the file holds objects other than tensors"):
        InceptionFeatures(bad)


# ------------------------------------------------------------------ protocols through the CLI
def tiny_checkpoint(name: str, root: Path) -> Path:
    """Train ``name``'s tiny contract config for one step; the run folder."""
    import translate

    plugin = load_plugin(name)
    data = make_dataset(plugin.dataset_kind, root / "data")
    options = {
        k: v
        for k, v in config_to_dict(plugin.tiny_config(data)).items()
        if v is not None and v != ()
    }
    cfg_fields = {f.name for f in dataclasses.fields(plugin.config_cls)}
    options = {k: v for k, v in options.items() if k in cfg_fields}
    translate.train(name, **options, max_steps=1, progress=False, run_dir=root / "run", amp="none")
    return root / "run"


EVAL_DATA = {  # where each plugin's test images are, in the tiny datasets
    "pix2pix": "val",
    "label2image": "val",
    "cyclegan": ".",
    "superres": "val",
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    out = {}
    for name in ("pix2pix", "cyclegan", "label2image", "superres"):
        root = tmp_path_factory.mktemp(name)
        run = tiny_checkpoint(name, root)
        data = root / "data" / EVAL_DATA[name]
        if not data.is_dir() or not any(data.iterdir()):
            data = root / "data"
        out[name] = (run, data)
    return out


@pytest.mark.parametrize("name", ["pix2pix", "cyclegan", "label2image", "superres"])
def test_eval_every_plugin_through_the_cli(
    name: str, checkpoints: dict, inception_weights: Path, lpips_weights: Path, tmp_path: Path
) -> None:
    run, data = checkpoints[name]
    plain = runner.invoke(app, ["eval", name, "-c", str(run), "--data", str(data)])
    assert plain.exit_code == 0, plain.output
    assert "skipped" in plain.output  # no weights: the weight-free metrics only, and a note
    report = tmp_path / "report"
    args = [
        "eval", name, "-c", str(run), "--data", str(data), "--report", str(report),
        "--inception-weights", str(inception_weights), "--lpips-weights", str(lpips_weights),
    ]  # fmt: skip
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    record = json.loads((report / "metrics.json").read_text())
    (folder,) = record["folders"]
    expected = {
        "pix2pix": {"L1", "PSNR", "SSIM", "LPIPS", "FID", "KID"},
        "label2image": {"L1", "PSNR", "SSIM", "LPIPS", "FID", "KID"},
        "cyclegan": {"cycle L1", "FID A2B", "KID A2B", "FID B2A", "KID B2A"},
        "superres": {"PSNR", "SSIM", "bicubic PSNR", "LPIPS"},
    }[name]
    assert expected <= set(folder["means"]), folder["means"]
    assert folder["images"] == len(folder["rows"]) > 0
    assert record["meta"]["plugin"] == name
    page = (report / "index.html").read_text()
    assert page.count("<img class='thumb'") >= 2 * folder["images"]
    for row in folder["rows"]:
        assert row["image"] in page


def test_eval_needs_existing_weight_files(checkpoints: dict, tmp_path: Path) -> None:
    run, data = checkpoints["pix2pix"]
    missing = tmp_path / "nope.pth"
    result = runner.invoke(
        app, ["eval", "pix2pix", "-c", str(run), "--data", str(data), "--inception-weights",
              str(missing)],
    )  # fmt: skip
    assert_user_error(result, str(missing), "pt_inception-2015-12-05")


def test_report_page_renders_rows_in_chromium(
    checkpoints: dict, tmp_path: Path, lpips_weights: Path, browser: Any
) -> None:
    run, data = checkpoints["pix2pix"]
    report = tmp_path / "report"
    args = ["eval", "pix2pix", "-c", str(run), "--data", str(data), "--report", str(report),
            "--lpips-weights", str(lpips_weights)]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    n = len(json.loads((report / "metrics.json").read_text())["folders"][0]["rows"])
    browser.get((report / "index.html").as_uri())
    rows = browser.wait_for("return document.querySelectorAll('table.images tr').length")
    assert rows == n + 1  # header + one row per image
    loaded = browser.wait_for(
        "const imgs = [...document.querySelectorAll('img.thumb')];"
        "return imgs.length && imgs.every(i => i.complete && i.naturalWidth > 0) && imgs.length"
    )
    assert loaded == 3 * n  # input | output | target, all decoded by the browser
    assert "LPIPS" in browser.js("return document.querySelector('table.summary').innerText")


# ------------------------------------------------------------------ during training
def test_eval_every_logs_figures_and_keeps_the_best(paired_data: Path, tmp_path: Path) -> None:
    from tests.conftest import TINY_PIX2PIX

    run = tmp_path / "run"
    args = ["train", "pix2pix", "--data", str(paired_data), "--run-dir", str(run), *TINY_PIX2PIX,
            "--max-steps", "4", "--eval-every", "2", "--keep-best", "L1", "--amp", "none",
            "--keep-checkpoints", "1"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval_L1" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert {"eval_PSNR", "eval_SSIM"} <= set(evals[0])
    best = json.loads((run / "checkpoints" / "best" / "best.json").read_text())
    winner = min(evals, key=lambda r: r["eval_L1"])
    assert best == {"metric": "L1", "value": winner["eval_L1"], "step": winner["step"]}
    meta = json.loads((run / "checkpoints" / "best" / "meta.json").read_text())
    assert meta["step"] == winner["step"]  # a real checkpoint of that step, kept past pruning
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == ["step_0000004"]


def test_keep_best_names_an_unknown_metric(paired_data: Path, tmp_path: Path) -> None:
    from tests.conftest import TINY_PIX2PIX

    run = tmp_path / "r"
    args = ["train", "pix2pix", "--data", str(paired_data), "--run-dir", str(run), *TINY_PIX2PIX,
            "--max-steps", "2", "--eval-every", "1", "--keep-best", "FDI"]  # fmt: skip
    assert_user_error(runner.invoke(app, args), "keep_best", "FDI", "L1")


def test_report_keeps_the_earlier_images_when_writing_new_ones_fails(tmp_path: Path) -> None:
    """A report written over an earlier one: when an image cannot be written (here the second
    of two), the earlier report's images and page are left byte for byte and no temporary
    stays; a report that succeeds replaces them."""
    from translate.errors import OutputError
    from translate.evaluation import Evaluation, FolderResult
    from translate.evaluation_protocol import EvalItem
    from translate.report import write_report

    def evaluation(colour: str, broken: bool = False) -> Evaluation:
        items = [EvalItem(f"im{i}", {"output": Image.new("RGB", (8, 8), colour)}) for i in (0, 1)]
        rows = [{"image": it.name, "L1": 1.0} for it in items]
        if broken:
            bad = mock.MagicMock(size=(8, 8))
            bad.save.side_effect = OSError(28, "No space left on device")
            items[1].images["output"] = bad
        result = FolderResult(folder=tmp_path / "data", rows=rows, items=items)
        return Evaluation(model="m", meta={}, results=[result])

    report = tmp_path / "report"
    write_report(evaluation("red"), report)
    before = {p: p.read_bytes() for p in report.rglob("*") if p.is_file()}
    assert len(before) == 4  # two images, metrics.json, index.html
    with pytest.raises(OutputError, match="No space left on device"):
        write_report(evaluation("blue", broken=True), report)
    assert {p: p.read_bytes() for p in report.rglob("*") if p.is_file()} == before
    write_report(evaluation("blue"), report)
    image = report / "images" / "00" / "0000_output.png"
    assert Image.open(image).getpixel((0, 0)) == (0, 0, 255)
    assert "images/00/0000_output.png" in (report / "index.html").read_text()
