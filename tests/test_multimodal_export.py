"""ONNX export of the multimodal families (bicyclegan, munit): the code is a graph input, and
the reference encoder (bicyclegan's E, munit's style encoder) is its own graph beside the
translator (``translate.loading.code_encoder``), so ``translate run model.onnx --samples K`` and
``--style-from ref.png`` give what the checkpoint gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.test_multimodal_run import TINY as BICYCLE
from translate.cli.main import app
from translate.engine.loop import prepare
from translate.loading.code_encoder import encoder_path
from translate.testing import make_paired, make_unpaired

runner = CliRunner()
MUNIT = dict(
    load_size=36, crop_size=32, base_channels=4, n_res=1, mlp_dim=16, disc_channels=4,
    disc_layers=2, disc_scales=2,
)  # fmt: skip


def tiny_run(family: str, root: Path) -> Path:
    opts = dict(max_steps=1, progress=False, run_dir=root / "run", device="cpu")
    if family == "bicyclegan":
        data = make_paired(root / "data", n_train=2, n_val=1)
        prepare(family, data=data, **BICYCLE, **opts).run()
    else:
        data = make_unpaired(root / "data", n=2)
        prepare(family, domain_a=data / "A", domain_b=data / "B", **MUNIT, **opts).run()
    return root / "run"


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_encoder_path_is_beside_the_model() -> None:
    assert encoder_path("out/shoes.onnx") == Path("out/shoes.encoder.onnx")
    assert encoder_path("a.b.ONNX") == Path("a.b.encoder.onnx")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["bicyclegan", "munit"])
def test_onnx_samples_and_style_from_match_the_checkpoint(family: str, tmp_path: Path) -> None:
    run = tiny_run(family, tmp_path)
    model = tmp_path / "m.onnx"
    r = runner.invoke(app, ["export", str(run), "-o", str(model)])
    assert r.exit_code == 0, r.output
    assert encoder_path(model).is_file() and "m.encoder.onnx" in r.output  # parity line
    rng = np.random.default_rng(0)
    image, ref = tmp_path / "in" / "img.png", tmp_path / "ref.png"
    image.parent.mkdir()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(image)
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(ref)  # resized
    for args in (["--samples", "2", "--seed", "3"], ["--style-from", str(ref)]):
        outs = {}
        for name, source in (("torch", run), ("onnx", model)):
            out = tmp_path / f"{name}{len(args)}"
            r = runner.invoke(app, ["run", str(image), "-c", str(source), *args, "-o", str(out)])
            assert r.exit_code == 0, r.output
            outs[name] = {p.name: pixels(p) for p in out.iterdir()}
        assert outs["torch"].keys() == outs["onnx"].keys() and outs["torch"], outs.keys()
        for name, want in outs["torch"].items():
            assert np.abs(outs["onnx"][name] - want).max() <= 1, (args, name)
    # without its encoder beside it, the ONNX file refuses --style-from in one line
    encoder_path(model).rename(tmp_path / "elsewhere.onnx")
    r = runner.invoke(
        app, ["run", str(image), "-c", str(model), "--style-from", str(ref), "-o", str(tmp_path)]
    )
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "--style-from:" in r.output and ".encoder.onnx beside it" in r.output
    # the encoder alone is no translator
    r = runner.invoke(app, ["run", str(image), "-c", str(tmp_path / "elsewhere.onnx")])
    assert r.exit_code == 2 and "the code encoder of a" in r.output, r.output
    # --encoder exports it alone
    alone = tmp_path / "alone.onnx"
    r = runner.invoke(app, ["export", str(run), "-o", str(alone), "--encoder"])
    assert r.exit_code == 0 and alone.is_file() and not encoder_path(alone).exists(), r.output


def test_export_keeps_an_existing_side_graph_unless_overwrite(tmp_path: Path) -> None:
    """The model's file is new but the encoder it would write beside it exists: refused in one
    line before anything is written (it was silently replaced), replaced with --overwrite."""
    run = tiny_run("bicyclegan", tmp_path)
    model = tmp_path / "m.onnx"
    encoder_path(model).write_bytes(b"an earlier export's encoder")
    r = runner.invoke(app, ["export", str(run), "-o", str(model)])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert f"{encoder_path(model)}: exists; pass --overwrite to replace it" in r.output
    assert encoder_path(model).read_bytes() == b"an earlier export's encoder"
    assert not model.exists()
    r = runner.invoke(app, ["export", str(run), "-o", str(model), "--overwrite"])
    assert r.exit_code == 0, r.output
    assert model.is_file() and encoder_path(model).read_bytes()[:4] != b"an e"
