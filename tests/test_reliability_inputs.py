"""Nothing lost, one clear line: the bad values and outputs of issue 32's drill (rows 5, 8-15),
one test per row, on real files made here. Rows 1-4, 6, 7, 12 are in ``test_reliability.py``.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.test_reliability import cli_process, temporaries, wait_for
from tests.test_reliability import trained as trained
from tests.test_run_files import error_line
from translate.cli.main import app
from translate.testing import make_single

runner = CliRunner()

TOO_BIG = str(2**64)


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dcgan run of one step on tiny 16x16 images."""
    from translate.engine.loop import prepare

    root = tmp_path_factory.mktemp("dcgan")
    data = make_single(root / "data", n=4, size=16)
    opts = dict(image_size=16, latent_dim=8, base_channels=8, batch_size=2, max_steps=1)
    prepare("dcgan", data=data, run_dir=root / "run", progress=False, device="cpu", **opts).run()
    return root / "run"


# ---------------------------------------------------------------------------- outputs
def test_row05_output_with_a_trailing_slash_is_a_folder(
    trained: tuple[Path, Path], dcgan_run: Path, tmp_path: Path
) -> None:
    """``-o out/multi.tif/`` means a folder, whatever its suffix: ``run`` writes the output
    inside it, ``sample`` writes a folder of PNGs instead of a grid file."""
    _, run_dir = trained
    image = tmp_path / "in.png"
    Image.new("RGB", (32, 32), (200, 40, 40)).save(image)
    folder = tmp_path / "out" / "multi.tif"
    result = runner.invoke(app, ["run", str(image), "-c", str(run_dir), "-o", f"{folder}/"])
    assert result.exit_code == 0, result.output
    assert folder.is_dir() and sorted(p.name for p in folder.iterdir()) == ["in.png"]
    without = tmp_path / "single.tif"  # no slash: still the one-file form
    result = runner.invoke(app, ["run", str(image), "-c", str(run_dir), "-o", str(without)])
    assert result.exit_code == 0 and without.is_file(), result.output
    grid = tmp_path / "grid.png"
    result = runner.invoke(app, ["sample", str(dcgan_run), "-n", "3", "-o", f"{grid}/"])
    assert result.exit_code == 0, result.output
    assert grid.is_dir() and len(list(grid.glob("sample_*.png"))) == 3


def only_line(result: object, *needles: str, code: int = 2) -> str:
    """The whole output is one ``error:`` line (click's boxed panel was six)."""
    line = error_line(result, *needles, code=code)
    assert result.output.strip() == line, result.output  # type: ignore[attr-defined]
    return line


# ---------------------------------------------------------------------------- bad values
def test_row09_seed_of_2_64_and_every_int_option_out_of_range(
    trained: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    """A seed of 2**64 was an overflow traceback: now one line, on the command line and in a
    config file; and every integer option of every command is range-checked the same way."""
    import typer

    from translate.config import GANConfig, TrainConfig, field_types
    from translate.registry import load_plugin

    data, run_dir = trained
    train = ["train", "pix2pix", "--data", str(data), "--run-dir", str(tmp_path / "new")]
    only_line(runner.invoke(app, [*train, "--seed", TOO_BIG]), "seed:", "out of range")
    config = tmp_path / "options.json"
    config.write_text(json.dumps({"seed": 2**64}))
    only_line(runner.invoke(app, [*train, "--config", str(config)]), "seed:", "out of range")
    only_line(
        runner.invoke(app, ["sample", str(run_dir), "-o", str(tmp_path / "s"), "--seed", TOO_BIG]),
        "--seed",
    )
    # every int field of the generated training options
    plugin = load_plugin("pix2pix")
    for cls in (plugin.config_cls, TrainConfig, GANConfig):
        for name, tp in field_types(cls).items():
            if tp in (int, int | None):
                flag = "--" + name.replace("_", "-")
                only_line(runner.invoke(app, [*train, flag, TOO_BIG]), f"{name}:", "out of range")
    assert not (tmp_path / "new").exists()
    # every int option declared by a command (run, sample, export, eval, compress, serve)
    command = typer.main.get_command(app)
    checked = 0
    for name, sub in command.commands.items():  # type: ignore[attr-defined]
        for param in sub.params:
            if param.type_descriptor.annotation is not int:
                continue
            flag = next(o for o in param.opts if o.startswith("-"))
            result = runner.invoke(app, [name, flag, TOO_BIG])
            only_line(result, flag.lstrip("-")[:2])
            checked += 1
    assert checked >= 15, checked


def test_row14_option_errors_are_one_line_and_eval_takes_plugin_options(
    trained: tuple[Path, Path],
) -> None:
    """A bad choice, an unknown option, a missing argument: one ``error:`` line each (not a
    boxed panel); ``eval`` parses the plugin's run options as ``run`` does."""
    data, run_dir = trained
    train = ["train", "pix2pix", "--data", str(data)]
    only_line(
        runner.invoke(app, [*train, "--direction", "b2x"]),
        "error: --direction: 'b2x' is not one of 'a2b', 'b2a'",
    )
    only_line(runner.invoke(app, ["sample"]), "missing argument RUN")
    only_line(runner.invoke(app, ["sample", str(run_dir)]), "missing option --out")
    only_line(runner.invoke(app, ["export", str(run_dir), "--opset", "x"]), "--opset:")
    only_line(runner.invoke(app, ["--bogus"]), "unknown option --bogus")
    only_line(runner.invoke(app, ["serve", "--prot", "1"]), "did you mean --port?")
    evaluate = ["eval", "pix2pix", "-c", str(run_dir), "-d", str(data)]
    # pix2pix has no --direction at run time: our unknown-option line, with its options
    only_line(
        runner.invoke(app, [*evaluate, "--direction", "b2a"]),
        "unknown option --direction",
        "--test-time-dropout",
    )
    plain = runner.invoke(app, evaluate)
    dropout = runner.invoke(app, [*evaluate, "--test-time-dropout"])
    assert plain.exit_code == 0 and dropout.exit_code == 0, dropout.output
    means = [line for r in (plain, dropout) for line in r.output.splitlines() if "mean" in line]
    assert len(means) == 2 and means[0] != means[1], means  # the option reached the model


@pytest.mark.slow
def test_row08_sample_a_million_streams_and_stops_cleanly_on_ctrl_c(
    dcgan_run: Path, tmp_path: Path
) -> None:
    """``-n 1000000`` into a folder: files appear a chunk at a time (before, nothing was
    written until all million were held in memory: 12.4 GB), and Ctrl-C stops with exit 130,
    one line saying how many were written, every written file complete, no temporaries."""
    out = tmp_path / "many"
    proc = cli_process("sample", str(dcgan_run), "-n", "1000000", "-o", str(out), cwd=tmp_path)
    try:
        wait_for(lambda: len(list(out.glob("sample_*.png"))) >= 300, 60, "the first chunks")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    written = int(errors[0].split("wrote ")[1].split(" of ")[0])
    files = sorted(out.glob("sample_*.png"))
    assert len(files) == written >= 300
    assert (
        files[0].name == "sample_000000.png" and files[-1].name == f"sample_{written - 1:06d}.png"
    )
    assert temporaries(out) == []
    for path in files[-3:]:
        assert Image.open(path).size == (16, 16)  # complete files


def tiny_onnx(path: Path, *, shape: list, **metadata: str) -> Path:
    """An ONNX file with translate's metadata: an Identity graph (what goes in comes out)."""
    import onnx
    from onnx import helper

    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])],
        "g",
        [vi("input", onnx.TensorProto.FLOAT, shape)],
        [vi("output", onnx.TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    md = dict(
        producer="translate", plugin="not-installed", multiple_of="4", minimum="4", scale="1",
        input_channels="3", plugin_config="{}",
    )  # fmt: skip
    md.update(metadata)
    helper.set_model_props(model, md)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    ("shape", "metadata", "needles"),
    [
        (["n", 3, "h", "w"], {"multiple_of": "0"}, ["'multiple_of'", "at least 1, got 0"]),
        (["n", 3, "h", "w"], {"scale": "-4"}, ["'scale'", "at least 1, got -4"]),
        (["n", 3, "h", "w"], {"minimum": "four"}, ["'minimum'", "an integer, got 'four'"]),
        (["n", 3, "h"], {}, ["graph input 'input' has shape (?, 3, ?)", "(N, 3, H, W)"]),
        (["n", 4, "h", "w"], {}, ["shape (?, 4, ?, ?)", "'input_channels'"]),
    ],
    ids=["multiple_of=0", "scale=-4", "minimum=four", "rank-3", "4-channels"],
)
def test_row10_onnx_metadata_and_graph_input_are_validated(
    tmp_path: Path, shape: list, metadata: dict, needles: list[str]
) -> None:
    image = tmp_path / "in.png"
    Image.new("RGB", (8, 8), (10, 200, 30)).save(image)
    good = tiny_onnx(tmp_path / "good.onnx", shape=["n", 3, "h", "w"])
    ran = runner.invoke(app, ["run", str(image), "-c", str(good), "-o", str(tmp_path / "ok")])
    assert ran.exit_code == 0, ran.output  # the file is fine otherwise
    bad = tiny_onnx(tmp_path / "bad.onnx", shape=shape, **metadata)
    out = tmp_path / "out"
    only_line(runner.invoke(app, ["run", str(image), "-c", str(bad), "-o", str(out)]), *needles)
    assert not out.exists()


def test_row11_nan_weights_are_refused_at_import_and_load(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    """A reference checkpoint with a NaN weight: ``import reference``, ``run`` on the file and
    ``run`` on one of our checkpoints given such weights all refuse it in one line (before, it
    was imported and ran to a black image)."""
    import torch
    from safetensors.torch import load_file, save_file

    from tests.reference_layout import reference_state_dict

    state = reference_state_dict("resnet_6blocks", "batch", ngf=2)
    state["model.10.conv_block.1.weight"][0, 0, 0, 0] = float("nan")
    file = tmp_path / "facades" / "latest_net_G_A.pth"
    file.parent.mkdir()
    torch.save(state, file)
    out = tmp_path / "imported"
    imported = runner.invoke(app, ["import", "reference", str(file), "-o", str(out)])
    only_line(imported, "latest_net_G_A.pth", "model.10.conv_block.1.weight", "NaN or infinite")
    assert not out.exists()
    image = tmp_path / "in.png"
    Image.new("RGB", (32, 32), (90, 90, 200)).save(image)
    ran = runner.invoke(app, ["run", str(image), "-c", str(file), "-o", str(tmp_path / "o")])
    error_line(ran, "NaN or infinite")
    # one of our checkpoints whose weights were damaged the same way
    _, run_dir = trained
    weights = run_dir / "checkpoints" / "step_0000002" / "model.safetensors"
    tensors = load_file(str(weights))
    key = next(k for k in tensors if k.startswith("G.") and tensors[k].is_floating_point())
    tensors[key] = torch.full_like(tensors[key], float("inf"))
    save_file(tensors, str(weights))
    ran = runner.invoke(app, ["run", str(image), "-c", str(run_dir), "-o", str(tmp_path / "o")])
    error_line(ran, "model.safetensors", key, "NaN or infinite")
    assert not (tmp_path / "o").exists()


def test_row15_protocol_4_pickle_is_our_one_line_without_torch_warning(tmp_path: Path) -> None:
    """A .pth pickled with protocol 4 printed PyTorch's multi-line UserWarning before our
    (wrong) 'objects other than tensors' line; now one line of ours saying what it is. A
    legacy (pre-zip) file PyTorch reads safely imports silently."""
    import warnings

    import torch

    from tests.reference_layout import reference_state_dict

    state = reference_state_dict("resnet_6blocks", "batch", ngf=2)
    p4 = tmp_path / "p4_net_G_A.pth"
    torch.save(state, p4, pickle_protocol=4)
    legacy = tmp_path / "legacy_net_G_A.pth"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refused = runner.invoke(app, ["import", "reference", str(p4), "-o", str(tmp_path / "a")])
        done = runner.invoke(app, ["import", "reference", str(legacy), "-o", str(tmp_path / "b")])
    assert [str(w.message)[:60] for w in caught if w.category is UserWarning] == []
    only_line(refused, "p4_net_G_A.pth", "protocol 4 or newer", "re-save it")
    assert done.exit_code == 0 and "Warning" not in done.output, done.output


def test_row13_label_colour_outside_the_palette_is_found_when_scanning(tmp_path: Path) -> None:
    """A label map (the last of 6) with a region in a colour the --palette lacks: one line
    naming the file and the colour before any step is trained, and no run folder made."""
    import numpy as np

    from tests.test_label2image import TINY_FLAGS
    from translate.data.palette import to_hex
    from translate.testing import LABEL_COLOURS, make_labels

    data = make_labels(tmp_path / "data")
    last = data / "train" / "005.png"
    pair = np.asarray(Image.open(last).convert("RGB")).copy()
    pair[4:20, 4:20] = (255, 0, 255)  # the label half: a colour of no class
    Image.fromarray(pair).save(last)
    palette = [arg for c in LABEL_COLOURS for arg in ("--palette", to_hex(c))]
    run_dir = tmp_path / "run"
    result = runner.invoke(
        app,
        ["train", "label2image", "--data", str(data), *palette, "--max-steps", "1",
         "--run-dir", str(run_dir), *TINY_FLAGS],
    )  # fmt: skip
    only_line(result, "005.png", "(255, 0, 255)", "far from every palette colour")
    assert not run_dir.exists()
