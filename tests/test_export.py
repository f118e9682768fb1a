"""ONNX export: parity with PyTorch, metadata round trip, the cache, EMA weights, bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import TINY_CYCLEGAN_OPTIONS, TINY_PIX2PIX_OPTIONS
from tests.test_cli import assert_user_error
from translate.cli.main import app
from translate.config import GANConfig
from translate.engine import checkpoint as ckpt
from translate.engine.loop import prepare
from translate.errors import CheckpointError, ConfigError, DataError
from translate.export.onnx import (
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    ExportError,
    export_onnx,
    read_metadata,
)
from translate.inference.translator import Translator
from translate.loading import onnx_export
from translate.registry import discover
from translate.testing import make_paired, make_unpaired

runner = CliRunner()


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny pix2pix run (U-Net depth 5: inputs padded to multiples of 32), one step."""
    root = tmp_path_factory.mktemp("p2p")
    trainer = prepare(
        "pix2pix",
        data=make_paired(root / "data"),
        **TINY_PIX2PIX_OPTIONS,
        max_steps=1,
        progress=False,
        run_dir=root / "run",
    )
    trainer.run()
    return root / "run"


@pytest.fixture(scope="module")
def pix2pix_onnx(pix2pix_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(pix2pix_run, tmp_path_factory.mktemp("onnx") / "model.onnx").path


def odd_image(h: int = 29, w: int = 45, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_metadata_round_trip(pix2pix_run: Path, pix2pix_onnx: Path) -> None:
    md = read_metadata(pix2pix_onnx)
    assert md["producer"] == "translate" and md["plugin"] == "pix2pix"
    assert (md["multiple_of"], md["minimum"], md["scale"]) == ("32", "32", "1")
    assert md["value_range"] == "[-1,1]" and md["precision"] == "fp32"
    assert (md["input_channels"], md["output_channels"]) == ("3", "3")
    assert md["step"] == "1" and md["ema"] == "[]" and md["instance_norm"] == "false"
    assert md["inference_options"] == '{"test_time_dropout": false}'
    for key in ("plugin_version", "translate_version", "torch_version", "opset"):
        assert md[key]

    # dynamic batch, height and width, declared as multiples of the U-Net's 32
    model = onnx.load(str(pix2pix_onnx), load_external_data=False)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == 3
    assert all(d.dim_param for d in (dims[0], dims[2], dims[3]))

    # running it needs no flags: plugin, padding and scale come from the metadata
    on_onnx = Translator.from_onnx(pix2pix_onnx, device="cpu")
    on_torch = Translator.from_checkpoint(pix2pix_run, device="cpu")
    assert on_onnx.requirements == on_torch.requirements
    assert on_onnx.name == on_torch.name == "pix2pix (step 1)"
    assert on_onnx.module is None and on_onnx.backend.providers == ["CPUExecutionProvider"]
    x = torch.rand(3, 3, 45, 70) * 2 - 1  # any batch and size
    diff = (on_onnx.translate_tensor(x) - on_torch.translate_tensor(x)).abs().max()
    assert diff <= FP32_TOLERANCE
    image = odd_image()
    a, b = (np.asarray(t(image)[0], np.int16) for t in (on_onnx, on_torch))
    assert a.shape == (29, 45, 3) and np.abs(a - b).max() <= 1


def test_cli_export_then_run_the_onnx_file(pix2pix_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["export", str(pix2pix_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "max |diff|" in result.output and "tolerance 1e-04" in result.output
    image = tmp_path / "in.png"
    odd_image().save(image)
    ran = runner.invoke(app, ["run", str(image), "-c", str(out), "-o", str(tmp_path / "o.png")])
    assert ran.exit_code == 0, ran.output
    assert "onnxruntime" in ran.output
    assert Image.open(tmp_path / "o.png").size == (45, 29)
    # an earlier export is kept: one line without --overwrite, replaced with it
    before = out.read_bytes()
    again = runner.invoke(app, ["export", str(pix2pix_run), "--out", str(out)])
    assert_user_error(again, f"{out}: exists; pass --overwrite to replace it")
    assert out.read_bytes() == before
    replaced = runner.invoke(app, ["export", str(pix2pix_run), "--out", str(out), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    # an .onnx file is not a torch model
    bad = runner.invoke(app, ["run", str(image), "-c", str(out), "--backend", "torch"])
    assert_user_error(bad, "runs on --backend onnx")


def test_run_backend_onnx_exports_once_to_the_user_cache(
    pix2pix_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first ``--backend onnx`` run says it exports and caches in the user cache directory,
    never in the checkpoint folder; the second run reuses the file."""
    cache = tmp_path / "user-cache"
    monkeypatch.setenv("TRANSLATE_CACHE_DIR", str(cache))
    folder = ckpt.resolve_checkpoint(pix2pix_run)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    image = tmp_path / "in.png"
    odd_image().save(image)
    outputs = {}
    for backend in ("torch", "onnx", "onnx"):
        out = tmp_path / f"{backend}.png"
        caplog.clear()
        ran = runner.invoke(
            app, ["run", str(image), "-c", str(pix2pix_run), "-o", str(out), "--backend", backend]
        )
        assert ran.exit_code == 0, ran.output
        outputs[backend] = np.asarray(Image.open(out), np.int16)
        cached = sorted(cache.rglob("*.onnx"))
        exported = [r.getMessage() for r in caplog.records if "exporting" in r.getMessage()]
        if backend == "onnx":
            assert len(cached) == 1
            if "stamp" in outputs:  # second run reuses the export, silently
                assert cached[0].stat().st_mtime_ns == outputs["stamp"]
                assert not exported
            else:
                assert exported == [f"exporting {folder} to ONNX once (cached at {cached[0]})"]
            outputs["stamp"] = cached[0].stat().st_mtime_ns
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing written there
    assert not list(cache.rglob(".*tmp*"))  # written atomically
    assert np.abs(outputs["torch"] - outputs["onnx"]).max() <= 1


def test_test_time_dropout_is_refused(pix2pix_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    result = runner.invoke(
        app, ["export", str(pix2pix_run), "--out", str(out), "--test-time-dropout"]
    )
    assert_user_error(result, "--test-time-dropout", "cannot export")
    assert not out.exists()


def test_not_an_onnx_file(pix2pix_run: Path, tmp_path: Path) -> None:
    image = tmp_path / "in.png"
    odd_image().save(image)
    fake = tmp_path / "model.onnx"
    fake.write_text("hello, I am not a protobuf\n")
    result = runner.invoke(app, ["run", str(image), "-c", str(fake)])
    assert_user_error(result, "model.onnx: not an ONNX model (")

    # a real ONNX model, but not one of ours: no metadata to run it by
    node = helper.make_node("Identity", ["input"], ["output"])
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        [node],
        "g",
        [vi("input", onnx.TensorProto.FLOAT, [1, 3, 4, 4])],
        [vi("output", onnx.TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), str(foreign))
    with pytest.raises(CheckpointError, match="without translate metadata"):
        Translator.from_onnx(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        Translator.from_onnx(tmp_path / "missing.onnx")


def test_wrong_channel_count_is_one_line(pix2pix_run: Path, pix2pix_onnx: Path) -> None:
    for translator in (
        Translator.from_checkpoint(pix2pix_run, device="cpu"),
        Translator.from_onnx(pix2pix_onnx, device="cpu"),
    ):
        with pytest.raises(DataError, match="4 channels, but the model takes 3") as info:
            translator.translate_tensor(torch.zeros(1, 4, 32, 32))
        assert "\n" not in str(info.value)


def test_fp16_export(pix2pix_run: Path, tmp_path: Path) -> None:
    result = export_onnx(pix2pix_run, tmp_path / "half.onnx", fp16=True)
    assert result.tolerance == FP16_TOLERANCE
    # ONNX Runtime's CPU provider runs fp16 graphs (casting where it has no fp16 kernel)
    assert result.checked_with == "CPUExecutionProvider", result.note
    md = read_metadata(result.path)
    assert md["precision"] == "fp16"
    model = onnx.load(str(result.path))
    dtypes = {init.data_type for init in model.graph.initializer if len(init.dims) == 4}
    assert dtypes == {onnx.TensorProto.FLOAT16}
    half = Translator.from_onnx(result.path, device="cpu")
    full = Translator.from_checkpoint(pix2pix_run, device="cpu")
    x = torch.rand(1, 3, 40, 50) * 2 - 1
    assert (half.translate_tensor(x) - full.translate_tensor(x)).abs().max() <= FP16_TOLERANCE


def test_torchscript_exporter_escape_hatch(pix2pix_run: Path, tmp_path: Path) -> None:
    result = export_onnx(pix2pix_run, tmp_path / "ts.onnx", exporter="torchscript")
    assert result.metadata["exporter"] == "torchscript"
    assert max(d for _, d in result.checks) <= FP32_TOLERANCE
    with pytest.raises(ConfigError, match="exporter"):
        export_onnx(pix2pix_run, tmp_path / "x.onnx", exporter="magic")


def test_disagreement_with_pytorch_fails_loudly(
    pix2pix_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exporter that silently changes the model (as users report of other tools) is caught:
    the export raises and writes nothing."""
    real = onnx_export.export_proto

    def skewed(*args: object, **kwargs: object) -> onnx.ModelProto:
        proto = real(*args, **kwargs)
        init = next(
            i
            for i in proto.graph.initializer
            if len(i.dims) == 4 and i.data_type == onnx.TensorProto.FLOAT
        )  # a convolution's weights
        array = numpy_helper.to_array(init) + 0.05
        init.CopyFrom(numpy_helper.from_array(array.astype(np.float32), init.name))
        return proto

    monkeypatch.setattr(onnx_export, "export_proto", skewed)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="disagrees with PyTorch") as info:
        export_onnx(pix2pix_run, out, exporter="torchscript")  # the fast one; same check
    assert "\n" not in str(info.value) and info.value.exit_code == 3
    assert not out.exists() and not list(tmp_path.iterdir())


def test_ema_weights_are_preferred(pix2pix_run: Path, tmp_path: Path) -> None:
    """A checkpoint with ``ema.G.*`` tensors (built by hand): run and export use them; an EMA
    that stores parameters only keeps the plain buffers (batch-norm statistics)."""
    folder = ckpt.resolve_checkpoint(pix2pix_run)
    weights = ckpt.read_weights(folder)
    params = {
        n for n, _ in Translator.from_checkpoint(folder, device="cpu").module.named_parameters()
    }
    ema = {f"ema.G.{k}": 0.5 * weights[f"G.{k}"] for k in params}
    meta = ckpt.read_meta(folder)
    with_ema = ckpt.write_checkpoint(
        tmp_path / "ema", weights={**weights, **ema}, meta=meta, trainer_state=None
    )
    plain = Translator.from_checkpoint(folder, device="cpu")
    averaged = Translator.from_checkpoint(with_ema, device="cpu")
    assert averaged.meta["ema"] == ["G"] and plain.meta["ema"] == []
    state = averaged.module.state_dict()
    for k in params:
        assert torch.equal(state[k], ema[f"ema.G.{k}"])
    buffers = [k for k in state if k.endswith("running_mean")]
    assert buffers and all(torch.equal(state[k], weights[f"G.{k}"]) for k in buffers)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert not torch.allclose(plain.translate_tensor(x), averaged.translate_tensor(x))

    result = export_onnx(with_ema, tmp_path / "ema.onnx")
    assert result.metadata["ema"] == '["G"]'
    on_onnx = Translator.from_onnx(result.path, device="cpu")
    assert (on_onnx.translate_tensor(x) - averaged.translate_tensor(x)).abs().max() <= 1e-4


@pytest.mark.skipif("cyclegan" not in discover(), reason="cyclegan plugin not installed")
def test_inference_options_are_stored_and_checked(tmp_path: Path) -> None:
    """A plugin's inference option (CycleGAN's direction) is baked into the export, stored in
    the metadata, and a run asking for another value is refused in one line."""
    data = make_unpaired(tmp_path / "u")
    trainer = prepare(
        "cyclegan",
        domain_a=data / "A",
        domain_b=data / "B",
        **TINY_CYCLEGAN_OPTIONS,
        max_steps=1,
        progress=False,
        run_dir=tmp_path / "run",
    )
    folder = trainer.run()
    result = export_onnx(folder, tmp_path / "b2a.onnx", options={"direction": "b2a"})
    md = result.metadata
    assert md["direction"] == "b2a" and md["inference_options"] == '{"direction": "b2a"}'
    assert md["instance_norm"] == "true"
    on_onnx = Translator.from_onnx(result.path, device="cpu")
    b2a = Translator.from_checkpoint(folder, device="cpu", options={"direction": "b2a"})
    x = torch.rand(1, 3, 36, 44) * 2 - 1
    assert (on_onnx.translate_tensor(x) - b2a.translate_tensor(x)).abs().max() <= FP32_TOLERANCE
    assert Translator.from_onnx(result.path, options={"direction": "b2a"})
    with pytest.raises(ConfigError, match="exported with --direction b2a"):
        Translator.from_onnx(result.path, options={"direction": "a2b"})
    image = tmp_path / "in.png"
    odd_image().save(image)
    ran = runner.invoke(app, ["run", str(image), "-c", str(result.path), "--direction", "a2b"])
    assert_user_error(ran, "exported with --direction b2a")


GAN_FIELDS = {f.name for f in dataclasses.fields(GANConfig)}


@pytest.mark.skipif(
    not {"spectral_norm", "self_attention", "ema_decay"} <= GAN_FIELDS,
    reason="engine without architectural GAN transforms or EMA",
)
def test_engine_transforms_and_ema_export(tmp_path: Path) -> None:
    """A generator trained with spectral norm and a self-attention block (added by the engine,
    not the plugin) and an EMA: run rebuilds it from the checkpoint's gan_config, and export
    folds the spectral-norm parametrisation into plain weights, still matching PyTorch."""
    trainer = prepare(
        "pix2pix",
        data=make_paired(tmp_path / "data"),
        **TINY_PIX2PIX_OPTIONS,
        max_steps=2,
        progress=False,
        run_dir=tmp_path / "run",
        spectral_norm="both",
        self_attention="g",
        ema_decay=0.9,
    )
    folder = trainer.run()
    on_torch = Translator.from_checkpoint(folder, device="cpu")
    assert on_torch.meta["ema"] == ["G"]
    result = export_onnx(folder, tmp_path / "m.onnx")
    names = {init.name for init in onnx.load(str(result.path)).graph.initializer}
    assert not any("parametrizations" in n for n in names)
    x = torch.rand(1, 3, 64, 96) * 2 - 1
    on_onnx = Translator.from_onnx(result.path, device="cpu")
    assert (on_onnx.translate_tensor(x) - on_torch.translate_tensor(x)).abs().max() <= 1e-4


def test_metadata_holds_no_absolute_path_of_the_training_machine(
    pix2pix_run: Path, pix2pix_onnx: Path
) -> None:
    root = pix2pix_run.parent  # the training data lay in root / "data"
    md = read_metadata(pix2pix_onnx)
    leaks = {k: v for k, v in md.items() if str(root) in v or str(root.resolve()) in v}
    assert not leaks, leaks
    # the data folder is still named (its last component), and the config still loads
    assert json.loads(md["plugin_config"])["data"] == "data"
    assert Translator.from_onnx(pix2pix_onnx, device="cpu").plugin_cfg.data == Path("data")


def test_export_leaves_the_callers_spectral_norm_model_working() -> None:
    """Folding spectral norm for export works on a copy: the caller's model (which shares the
    parametrised layer classes with the copy) still runs, with the same output."""
    from torch import nn
    from torch.nn.utils.parametrizations import spectral_norm

    from translate.export.onnx import exportable_module

    torch.manual_seed(0)
    net = nn.Sequential(
        spectral_norm(nn.Conv2d(3, 4, 3)), nn.ReLU(), spectral_norm(nn.Conv2d(4, 3, 1))
    )
    net.eval()
    x = torch.rand(1, 3, 8, 8)
    before = net(x)
    from types import SimpleNamespace

    # what exportable_module reads of a loaded model
    loaded = SimpleNamespace(module=net, plugin=None, opts=None)
    folded = exportable_module(loaded)  # type: ignore[arg-type]
    assert not any(hasattr(m, "parametrizations") for m in folded.modules())
    assert torch.equal(folded(x), before)
    assert torch.equal(net(x), before)  # raised AttributeError: no 'weight'
