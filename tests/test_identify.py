"""A model path is identified once (``translate.loading.identify``): ``translate run -c`` and
``translate export`` ask the file system what the path is one time, then pass the ``ModelRef``
down to the option parser and the loader."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import translate.engine.checkpoint as ckpt
import translate.loading.identify as identify_module
from tests import test_run_files
from translate.cli.main import app
from translate.loading import load_module
from translate.loading.identify import ModelRef, identify

run_dir = test_run_files.run_dir  # the tiny pix2pix run (a module-scoped fixture)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of ``identify`` (wherever it was imported to) and of ``meta.json`` reads."""
    calls = {"identify": 0, "read_meta": 0}
    original, read_meta = identify_module.identify, ckpt.read_meta

    def counting_identify(path):
        calls["identify"] += 1
        return original(path)

    def counting_read_meta(folder):
        calls["read_meta"] += 1
        return read_meta(folder)

    for module in list(sys.modules.values()):
        if getattr(module, "identify", None) is original:
            monkeypatch.setattr(module, "identify", counting_identify)
        if getattr(module, "read_meta", None) is read_meta:
            monkeypatch.setattr(module, "read_meta", counting_read_meta)
    return calls


def test_identify_describes_a_run_folder(run_dir: Path) -> None:
    ref = identify(run_dir)
    assert (ref.kind, ref.plugin, ref.source) == ("checkpoint", "pix2pix", run_dir)
    assert (ref.location / ckpt.META).is_file() and ref.meta["plugin"] == "pix2pix"
    loaded = load_module(ref)
    assert loaded.source == ref.location and loaded.plugin.name == "pix2pix"


def test_translate_run_identifies_the_checkpoint_once(run_dir, tmp_path, counted) -> None:
    from PIL import Image

    Image.new("RGB", (40, 24), (120, 30, 200)).save(tmp_path / "a.png")
    ran = CliRunner().invoke(
        app, ["run", str(tmp_path / "a.png"), "-c", str(run_dir), "-o", str(tmp_path / "out")]
    )
    assert ran.exit_code == 0, ran.output
    assert (tmp_path / "out" / "a.png").is_file()
    # once: not again by the option parser (plugin_name) nor by the loader (load_checkpoint)
    assert counted == {"identify": 1, "read_meta": 1}


def test_a_model_ref_is_not_identified_again(run_dir, counted) -> None:
    ref = identify(run_dir)
    assert isinstance(ref, ModelRef)
    load_module(ref)
    assert counted == {"identify": 1, "read_meta": 1}


def test_serve_identifies_each_model_once(run_dir, counted) -> None:
    """``translate serve -c RUN``: whether the model generates and how it loads come from one
    identification (the server used to read the plugin twice: to decide, then to load)."""
    from translate.serve.models import LoadSettings
    from translate.serve.server import load_models

    served = load_models(checkpoints=[str(run_dir)], settings=LoadSettings(device="cpu"))
    assert [m.name for m in served] == ["pix2pix"]
    assert counted == {"identify": 1, "read_meta": 1}
