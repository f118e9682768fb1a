"""The CLI as a user drives it: train, run, resume, Ctrl-C, and each bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from tests.conftest import TINY_PIX2PIX
from translate.cli.main import app

runner = CliRunner()


def train(data: Path, run_dir: Path, *extra: str) -> object:
    return runner.invoke(
        app,
        ["train", "pix2pix", "--data", str(data), "--run-dir", str(run_dir), *TINY_PIX2PIX, *extra],
    )


def assert_user_error(result: object, *needles: str) -> None:
    """Exit code 2, one 'error:' line naming the problem, no traceback."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert "Traceback" not in result.output


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "run", "plugins"):
        assert command in result.output


def test_every_config_field_is_an_option() -> None:
    import dataclasses

    from translate_pix2pix import Pix2PixConfig

    from translate.config import GANConfig, TrainConfig

    result = runner.invoke(app, ["train", "pix2pix", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for cls in (Pix2PixConfig, TrainConfig, GANConfig):
        for f in dataclasses.fields(cls):
            assert "--" + f.name.replace("_", "-") in result.output, f.name


def test_train_writes_run_then_run_translates_any_size(paired_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = train(paired_data, run_dir, "--max-steps", "4", "--sample-every", "2")
    assert result.exit_code == 0, result.output
    assert (run_dir / "checkpoints" / "LATEST").read_text().strip() == "step_0000004"
    assert (run_dir / "samples" / "step_0000002.png").is_file()
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {"D_loss", "G_adv", "G_L1", "lr", "steps_per_s"} <= set(records[0])
    meta = json.loads((run_dir / "checkpoints" / "step_0000004" / "meta.json").read_text())
    assert meta["plugin"] == "pix2pix" and meta["plugin_config"]["unet_depth"] == 5

    # inputs of any size: 45x27 is padded to the U-Net's multiple and cropped back
    odd = tmp_path / "odd.png"
    Image.fromarray(np.full((27, 45, 3), 200, np.uint8)).save(odd)
    out = tmp_path / "result.png"
    ran = runner.invoke(app, ["run", str(odd), "--checkpoint", str(run_dir), "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    assert Image.open(out).size == (45, 27)

    # a folder of inputs into an output folder; the paper's test-time mode is an option
    out_dir = tmp_path / "outs"
    ran = runner.invoke(
        app,
        [
            "run",
            str(paired_data / "val"),
            "-c",
            str(run_dir),
            "-o",
            str(out_dir),
            "--test-time-dropout",
        ],
    )
    assert ran.exit_code == 0, ran.output
    assert sorted(p.name for p in out_dir.iterdir()) == ["000.png", "001.png"]


def test_resume_continues_exactly(paired_data: Path, tmp_path: Path) -> None:
    """Stopping at step 2 and resuming gives bit-identical weights to an uninterrupted run:
    optimiser, LR schedule, RNG (dropout), data order and augmentation are all restored."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train(paired_data, straight, "--max-steps", "4").exit_code == 0
    first = train(paired_data, split, "--max-steps", "4", "--checkpoint-every", "2")
    assert first.exit_code == 0
    # throw away steps 3-4 of the second run and resume from its step-2 checkpoint
    import shutil

    shutil.rmtree(split / "checkpoints" / "step_0000004")
    (split / "checkpoints" / "LATEST").write_text("step_0000002\n")
    resumed = runner.invoke(app, ["train", "pix2pix", "--resume", str(split), "--no-progress"])
    assert resumed.exit_code == 0, resumed.output
    a = load_file(straight / "checkpoints" / "step_0000004" / "model.safetensors")
    b = load_file(split / "checkpoints" / "step_0000004" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] == b[key]).all(), key


def test_resume_refuses_model_changes(paired_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert train(paired_data, run_dir, "--max-steps", "2").exit_code == 0
    result = runner.invoke(app, ["train", "pix2pix", "--resume", str(run_dir), "--unet-depth", "6"])
    assert_user_error(result, "--unet-depth", "when resuming")


def test_ctrl_c_saves_and_resumes(paired_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "translate.cli",
        "train",
        "pix2pix",
        "--data",
        str(paired_data),
        "--run-dir",
        str(run_dir),
        "--max-steps",
        "100000",
        "--checkpoint-every",
        "100000",
        *TINY_PIX2PIX,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        metrics.exists() and metrics.read_text().count("\n") >= 3
    ):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted at step" in err and "--resume" in err
    latest = (run_dir / "checkpoints" / "LATEST").read_text().strip()
    step = int(latest.split("_")[1])
    assert step >= 3
    resumed = runner.invoke(
        app,
        [
            "train",
            "pix2pix",
            "--resume",
            str(run_dir),
            "--max-steps",
            str(step + 2),
            "--no-progress",
        ],
    )
    assert resumed.exit_code == 0, resumed.output
    records = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert records[-1]["step"] == step + 2


# ---------------------------------------------------------------------------- bad input
def test_missing_data_folder(tmp_path: Path) -> None:
    assert_user_error(
        train(tmp_path / "nope", tmp_path / "run"), str(tmp_path / "nope"), "does not exist"
    )


def test_empty_data_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert_user_error(train(tmp_path / "empty", tmp_path / "run"), "empty", "no images found")


def test_missing_required_option(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "pix2pix", "--run-dir", str(tmp_path / "r")])
    assert_user_error(result, "data", "required")


def test_non_image_file(paired_data: Path, tmp_path: Path) -> None:
    bad = paired_data / "train" / "zz_notes.png"
    bad.write_text("this is not an image")
    assert_user_error(train(paired_data, tmp_path / "run"), "zz_notes.png", "not a readable image")


def test_corrupt_image_is_skipped(
    paired_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A body damaged past its header (met mid-training) skips the sample: one warning."""
    victim = paired_data / "train" / "000.png"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # header intact, pixel data cut off
    result = train(paired_data, tmp_path / "run", "--max-steps", "20")
    assert result.exit_code == 0, result.output
    warned = [r.getMessage() for r in caplog.records if "skipped a sample" in r.getMessage()]
    assert len(warned) == 1 and "000.png" in warned[0] and "corrupt" in warned[0]


def test_pair_of_different_sizes(tmp_path: Path) -> None:
    for side, size in (("A", (32, 32)), ("B", (40, 32))):
        (tmp_path / "d" / side).mkdir(parents=True)
        Image.new("RGB", size).save(tmp_path / "d" / side / "x.png")
    assert_user_error(train(tmp_path / "d", tmp_path / "run"), "x.png", "differs from its pair")


def test_checkpoint_from_another_plugin(paired_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert train(paired_data, run_dir, "--max-steps", "1").exit_code == 0
    meta_path = run_dir / "checkpoints" / "step_0000001" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["plugin"] = "cyclegan"
    meta_path.write_text(json.dumps(meta))
    result = runner.invoke(app, ["train", "pix2pix", "--resume", str(run_dir)])
    assert_user_error(result, "from plugin 'cyclegan', not 'pix2pix'")


def test_truncated_checkpoint(paired_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert train(paired_data, run_dir, "--max-steps", "1").exit_code == 0
    weights = run_dir / "checkpoints" / "step_0000001" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    image = paired_data / "val" / "000.png"
    result = runner.invoke(app, ["run", str(image), "--checkpoint", str(run_dir)])
    assert_user_error(result, "model.safetensors", "truncated or corrupt")
    result = runner.invoke(app, ["train", "pix2pix", "--resume", str(run_dir)])
    assert_user_error(result, "model.safetensors", "truncated or corrupt")


def test_run_bad_inputs(paired_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert train(paired_data, run_dir, "--max-steps", "1").exit_code == 0
    image = paired_data / "val" / "000.png"
    assert_user_error(
        runner.invoke(app, ["run", str(tmp_path / "x.png"), "-c", str(run_dir)]), "no such file"
    )
    assert_user_error(
        runner.invoke(app, ["run", str(image), "-c", str(tmp_path / "none")]),
        "checkpoint not found",
    )
    assert_user_error(
        runner.invoke(app, ["run", str(image), "-c", str(run_dir), "--direction", "a2b"]),
        "--direction",
        "--test-time-dropout",
    )
    text = tmp_path / "notes.png"
    text.write_text("hello")
    assert_user_error(runner.invoke(app, ["run", str(text), "-c", str(run_dir)]), "notes.png")


def test_module_entry_point_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "translate.cli", "--version"],
        capture_output=True,
        text=True,
        env={**os.environ},
        check=True,
    )
    assert out.stdout.startswith("translate ")


@pytest.mark.parametrize("amp", ["bf16"])
def test_bf16_autocast_trains(paired_data: Path, tmp_path: Path, amp: str) -> None:
    result = train(paired_data, tmp_path / "run", "--max-steps", "2", "--amp", amp)
    assert result.exit_code == 0, result.output


def test_fp16_on_cpu_is_refused(paired_data: Path, tmp_path: Path) -> None:
    result = train(paired_data, tmp_path / "run", "--device", "cpu", "--amp", "fp16")
    assert_user_error(result, "fp16 needs a CUDA device")


def test_gradient_penalty_with_batch_norm_is_refused(paired_data: Path, tmp_path: Path) -> None:
    result = train(paired_data, tmp_path / "run", "--gan-loss", "wgan-gp")
    assert_user_error(result, "wgan-gp", "batch norm", "--norm instance")
    ok = train(
        paired_data,
        tmp_path / "run2",
        "--gan-loss",
        "wgan-gp",
        "--norm",
        "instance",
        "--max-steps",
        "2",
    )
    assert ok.exit_code == 0, ok.output
    records = [
        json.loads(x) for x in (tmp_path / "run2" / "metrics.jsonl").read_text().splitlines()
    ]
    assert "gp" in records[-1]
