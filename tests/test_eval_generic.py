"""``translate eval`` for a plugin that defines no protocol: the generic one of its data kind
(``translate.evaluation_protocol.generic_protocol``). The example colorize plugin (``single``)
is evaluated from the CLI, and its figures equal L1/PSNR computed here from ``Translator``'s
outputs against the photos; the paired and unpaired protocols are checked on stand-in models
whose outputs are known."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.test_example_colorize import TINY, installed  # noqa: F401 (the fixture)
from translate.cli.main import app
from translate.errors import PluginError
from translate.evaluation_protocol import generic_protocol
from translate.testing import make_paired, make_single, make_unpaired

runner = CliRunner()


@dataclass
class Stub:
    name: str
    dataset_kind: str


@pytest.mark.slow  # trains the example one step, then evaluates it twice (CLI and API)
def test_colorize_is_evaluated_with_the_generic_single_protocol(
    installed: None,  # noqa: F811
    tmp_path: Path,
) -> None:
    from translate.evaluation import evaluate
    from translate.inference.translator import Translator
    from translate.metrics import l1, psnr

    photos = make_single(tmp_path / "photos", n=4, size=32)
    run_dir = tmp_path / "run"
    args = ["train", "colorize", "--data", str(photos), *TINY, "--max-steps", "1"]
    trained = runner.invoke(app, [*args, "--no-progress", "--run-dir", str(run_dir)])
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(app, ["eval", "colorize", "-c", str(run_dir), "--data", str(photos)])
    assert result.exit_code == 0, result.output
    assert "generic single protocol" in result.output and "PSNR" in result.output
    # the figures are those of the model's outputs against the photos themselves
    (folder,) = evaluate("colorize", [photos], checkpoint=run_dir, device="cpu").results
    files = sorted(p for p in photos.rglob("*.png"))
    images = [Image.open(p).convert("RGB") for p in files]
    outputs = Translator.from_checkpoint(run_dir, device="cpu")(images)
    by_name = {row["image"]: row for row in folder.rows}
    for path, image, output in zip(files, images, outputs, strict=True):
        a, b = np.asarray(output.convert("RGB")), np.asarray(image)
        assert by_name[path.name]["L1"] == pytest.approx(l1(a, b), abs=1e-6)
        assert by_name[path.name]["PSNR"] == pytest.approx(psnr(a, b), abs=1e-4)


def test_the_paired_protocol_follows_the_direction(tmp_path: Path) -> None:
    data = make_paired(tmp_path / "pairs", n_train=1, n_val=2)

    @dataclass(frozen=True)
    class Cfg:
        direction: str = "b2a"

    def identity(images: list[Image.Image]) -> list[Image.Image]:
        return images

    evalset = generic_protocol(Stub("x", "paired"), identity, data, Cfg())
    assert len(evalset.items) == 2 and "generic paired protocol" in evalset.notes[0]
    for item in evalset.items:
        pair = np.asarray(Image.open(data / "val" / item.name).convert("RGB")).astype(float)
        a, b = pair[:, :32], pair[:, 32:]
        # b2a: the input is the right half, the target the left one; identity outputs the input
        assert np.array_equal(np.asarray(item.images["input"]), b.astype(np.uint8))
        assert item.metrics["L1"] == pytest.approx(np.abs(a - b).mean() / 255, abs=1e-6)
    outputs, targets = evalset.distributions[""]
    assert len(outputs) == len(targets) == 2


def test_the_unpaired_protocol_compares_translations_with_the_other_domain(
    tmp_path: Path,
) -> None:
    data = make_unpaired(tmp_path / "u", n=3, size=16)

    def invert(images: list[Image.Image]) -> list[Image.Image]:
        return [Image.fromarray(255 - np.asarray(im)) for im in images]

    evalset = generic_protocol(Stub("x", "unpaired"), invert, data, None)
    fakes, real = evalset.distributions[""]
    a_dir, b_dir = (data / "A", data / "B")
    first_a = np.asarray(Image.open(sorted(a_dir.iterdir())[0]).convert("RGB"))
    assert np.array_equal(np.asarray(fakes[0]), 255 - first_a)  # translated A images ...
    assert len(real) == len(list(b_dir.iterdir()))  # ... against the real B images
    assert all(not item.metrics for item in evalset.items)  # no targets, no per-image figures


def test_a_kind_without_a_generic_protocol_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(PluginError) as info:
        generic_protocol(Stub("seg", "labels"), lambda x: x, tmp_path, None)
    assert "define evaluate()" in str(info.value) and "\n" not in str(info.value)
