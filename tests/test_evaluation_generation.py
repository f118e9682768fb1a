"""translate eval for the generating plugins: FID/KID of samples against the training images
(random-weight Inception, as in test_evaluation) and cgan's class accuracy by the user's
TorchScript classifier or a logistic regression fitted on the data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.test_cgan import tiny_run
from tests.test_cli import assert_user_error
from tests.test_evaluation import inception_weights as inception_weights_file
from tests.test_evaluation import tiny_checkpoint
from translate.cli.main import app
from translate.evaluation_generation import FittedClassifier
from translate.testing import make_unpaired

runner = CliRunner()


class Constant(torch.nn.Module):
    """A classifier that answers class ``index`` of ``k`` for every image."""

    def __init__(self, index: int, k: int) -> None:
        super().__init__()
        self.index, self.k = index, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], self.k)
        logits[:, self.index] = 1.0
        return logits


inception_weights = inception_weights_file  # the module-scoped fixture, here too


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cgan-eval")
    data = make_unpaired(root / "shapes", n=4, size=16)  # classes A and B
    return tiny_run(root, data), data


def test_cgan_class_accuracy_and_fid_of_samples(
    cgan_run: tuple[Path, Path],
    inception_weights: Path,
    tmp_path: Path,
) -> None:
    """A classifier that always says B: class B's samples are all right, A's all wrong; FID and
    KID compare the samples with the class folders' images."""
    run, data = cgan_run
    classifier = tmp_path / "always_b.pt"
    torch.jit.script(Constant(1, 2)).save(str(classifier))
    report = tmp_path / "report"
    result = runner.invoke(
        app,
        ["eval", "cgan", "-c", str(run), "--data", str(data), "--samples", "4",
         "--classifier", str(classifier), "--inception-weights", str(inception_weights),
         "--report", str(report)],
        env={"COLUMNS": "250"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (folder,) = json.loads((report / "metrics.json").read_text())["folders"]
    rows = {r["image"]: r["class_accuracy"] for r in folder["rows"]}
    assert rows == {"class A": 0.0, "class B": 1.0}
    assert folder["means"]["class_accuracy"] == 0.5
    assert folder["means"]["FID"] > 0 and "KID" in folder["means"]
    assert "worst class: A" in result.output


def test_classifier_errors_are_one_line(cgan_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = cgan_run
    wrong = tmp_path / "three.pt"
    torch.jit.script(Constant(0, 3)).save(str(wrong))
    result = runner.invoke(
        app, ["eval", "cgan", "-c", str(run), "--data", str(data), "--classifier", str(wrong)]
    )
    assert_user_error(result, str(wrong), "expected (B, 2)")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    result = runner.invoke(
        app, ["eval", "cgan", "-c", str(run), "--data", str(data), "--classifier", str(junk)]
    )
    assert_user_error(result, str(junk), "not a TorchScript classifier")
    junk_onnx = tmp_path / "junk.onnx"
    junk_onnx.write_bytes(b"not a model")
    result = runner.invoke(
        app, ["eval", "cgan", "-c", str(run), "--data", str(data), "--classifier", str(junk_onnx)]
    )
    assert_user_error(result, str(junk_onnx), "not an ONNX classifier")
    missing = data / "A"
    result = runner.invoke(app, ["eval", "cgan", "-c", str(run), "--data", str(missing)])
    assert_user_error(result, "no folder for class 'A'")


def test_onnx_classifier(cgan_run: tuple[Path, Path], tmp_path: Path) -> None:
    """The same protocol with an ONNX classifier (always class A)."""
    run, data = cgan_run
    path = tmp_path / "always_a.onnx"

    class Linear(torch.nn.Module):  # an exportable one: logits = (x.mean, 0) per image
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = x.mean((1, 2, 3))[:, None] + 1
            return torch.cat([m, m * 0], 1)

    torch.onnx.export(Linear(), (torch.rand(2, 3, 16, 16),), str(path), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "b"}})  # fmt: skip
    report = tmp_path / "report"
    result = runner.invoke(
        app,
        ["eval", "cgan", "-c", str(run), "--data", str(data), "--samples", "4",
         "--classifier", str(path), "--report", str(report)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (folder,) = json.loads((report / "metrics.json").read_text())["folders"]
    assert {r["image"]: r["class_accuracy"] for r in folder["rows"]} == {
        "class A": 1.0,
        "class B": 0.0,
    }


def test_fitted_classifier_separates_classes() -> None:
    """The default judge: fitted on the real images, it classifies new ones of each class."""
    rng = np.random.default_rng(0)

    def images(channel: int, n: int) -> list[Image.Image]:
        out = []
        for _ in range(n):
            a = rng.uniform(0, 90, (12, 12, 3))
            a[..., channel] += 150
            out.append(Image.fromarray(a.astype(np.uint8)))
        return out

    fitted = FittedClassifier(images(0, 10) + images(2, 10), [0] * 10 + [1] * 10, 2)
    assert fitted.real_accuracy == 1.0
    assert fitted.predict(images(0, 5)).tolist() == [0] * 5
    assert fitted.predict(images(2, 5)).tolist() == [1] * 5


def test_dcgan_fid_of_samples_against_the_folder(
    inception_weights: Path,
    tmp_path: Path,
) -> None:
    run = tiny_checkpoint("dcgan", tmp_path)
    report = tmp_path / "report"
    result = runner.invoke(
        app,
        ["eval", "dcgan", "-c", str(run), "--data", str(tmp_path / "data"), "--samples", "2",
         "--report", str(report), "--inception-weights", str(inception_weights)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (folder,) = json.loads((report / "metrics.json").read_text())["folders"]
    assert {"FID", "KID"} <= set(folder["means"])
