"""The living example of docs/plugins.md, ``examples/translate-colorize``, used as a plugin
author's users would: installed as its own distribution, listed by ``translate plugins``,
trained, run, exported and served from the command line (its contract test runs in
``test_plugin_contract.py``, parametrised over every discovered plugin, and in its own tests).

Without the package installed the test is skipped, except under CI (``CI`` set), where it
fails: ``.ci/run`` installs it (``pip install -e examples/translate-colorize``).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from translate.cli.main import app
from translate.registry import discover
from translate.testing import make_single

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "translate-colorize"
INSTALL = "pip install -e examples/translate-colorize"
TINY = ["--load-size", "36", "--crop-size", "32", "--unet-depth", "5", "--base-channels", "8",
        "--disc-channels", "8", "--disc-layers", "2"]  # fmt: skip


@pytest.fixture
def installed() -> None:
    info = discover().get("colorize")
    if info is None or info.distribution != "translate-colorize":
        reason = f"the example plugin is not installed ({INSTALL})"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {reason}; .ci/run should have installed it")
        pytest.skip(reason)


def test_readme_plugin_snippet_is_the_example_verbatim() -> None:
    # the README's "Writing a plugin" code is cut from the example, so it cannot rot
    readme = (EXAMPLE.parent.parent / "README.md").read_text()
    section = readme.split("## Writing a plugin", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "no python snippet in the README's 'Writing a plugin' section"
    source = (EXAMPLE / "translate_colorize" / "plugin.py").read_text()
    for block in blocks:
        assert block in source, block
    pyproject = (EXAMPLE / "pyproject.toml").read_text()
    for block in re.findall(r"```toml\n(.*?)```", section, re.S):
        assert block in pyproject, block


def test_guide_step_and_entry_point_are_the_example() -> None:
    # docs/plugins.md shows the example's entry point and step (dedented): compared line by line
    guide = (EXAMPLE.parent.parent / "docs" / "plugins.md").read_text()

    def lines(text: str) -> str:
        return "\n".join(line.strip() for line in text.splitlines() if line.strip())

    source = lines((EXAMPLE / "translate_colorize" / "plugin.py").read_text())
    steps = [b for b in re.findall(r"```python\n(.*?)```", guide, re.S) if "ctx.optimize" in b]
    assert steps and all(lines(b) in source for b in steps)
    pyproject = lines((EXAMPLE / "pyproject.toml").read_text())
    tomls = re.findall(r"```toml\n(.*?)```", guide, re.S)
    assert tomls and all(lines(b) in pyproject for b in tomls)


def test_installed_example_lists_trains_runs_exports_and_serves(
    installed: None, tmp_path: Path
) -> None:
    from translate.inference.translator import Translator
    from translate.serve.process import ServerProcess

    httpx = pytest.importorskip("httpx")
    runner = CliRunner()
    listing = runner.invoke(app, ["plugins"])
    assert listing.exit_code == 0, listing.output
    assert "colorize" in listing.output and "translate-colorize" in listing.output

    photos = make_single(tmp_path / "photos", n=4, size=40)
    run_dir = tmp_path / "run"
    trained = runner.invoke(
        app,
        ["train", "colorize", "--data", str(photos), *TINY, "--max-steps", "2", "--no-progress",
         "--run-dir", str(run_dir)],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert (run_dir / "checkpoints" / "LATEST").is_file()

    # run: a colour photo in, a colour photo of the same (odd) size out
    photo = Image.open(photos / "000.png").crop((0, 0, 37, 29))
    photo.save(tmp_path / "in.png")
    out = tmp_path / "out.png"
    # fp32 (run's default is --amp auto) so the pixels can be compared with the service's
    ran = runner.invoke(
        app, ["run", str(tmp_path / "in.png"), "-c", str(run_dir), "-o", str(out), "--amp", "none"]
    )
    assert ran.exit_code == 0, ran.output
    result = Image.open(out)
    assert (result.size, result.mode) == ((37, 29), "RGB")

    # export: a one-channel (luminance) input, checked against PyTorch by the exporter
    onnx_path = tmp_path / "colorize.onnx"
    exported = runner.invoke(app, ["export", str(run_dir), "--out", str(onnx_path)])
    assert exported.exit_code == 0, exported.output
    from translate.export.onnx import read_metadata

    md = read_metadata(onnx_path)
    assert (md["plugin"], md["input_channels"], md["output_channels"]) == ("colorize", "1", "3")

    # serve: the HTTP answer is what translate run wrote
    body = (tmp_path / "in.png").read_bytes()
    with ServerProcess(["-c", f"colorize={run_dir}", "--threads", "1"]) as server:
        response = httpx.post(f"{server.url}/v1/models/colorize/translate", content=body)
        assert response.status_code == 200, response.text
        served = np.asarray(Image.open(io.BytesIO(response.content)))
    assert (served == np.asarray(result)).all()
    expected = Translator.from_checkpoint(run_dir, device="cpu")(photo)[0]
    assert (np.asarray(expected) == served).all()
