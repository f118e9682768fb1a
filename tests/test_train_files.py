"""``translate train`` and checkpoints against damaged files, full disks and killed runs:
the training rows of the real-world matrix (README, Errors), through the CLI."""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import TINY_PIX2PIX
from tests.test_run_files import bomb_png, dead_pid, error_line, snapshot
from translate.cli.main import app
from translate.testing import make_paired

runner = CliRunner()


def train(data: Path, run_dir: Path, *extra: str) -> object:
    return runner.invoke(
        app,
        ["train", "pix2pix", "--data", str(data), "--run-dir", str(run_dir), *TINY_PIX2PIX, *extra],
    )


def steps_logged(run_dir: Path) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


def test_truncated_jpeg_mid_training_is_skipped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = make_paired(tmp_path / "data", n_train=3, n_val=1)
    pair = np.asarray(Image.open(data / "train" / "000.png"))
    buf = io.BytesIO()
    Image.fromarray(pair).save(buf, "JPEG", quality=95)
    cut = data / "train" / "003.jpg"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # header fine, body cut
    before = snapshot(data)
    run_dir = tmp_path / "run"
    result = train(data, run_dir, "--max-steps", "6", "--batch-size", "2")
    assert result.exit_code == 0, result.output  # the run goes on: no step lost
    warned = [r.getMessage() for r in caplog.records if "skipped a sample" in r.getMessage()]
    assert len(warned) == 1 and "003.jpg" in warned[0], warned  # once per file
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[-1]["skipped_samples"] >= 1  # counted in the metrics
    assert snapshot(data) == before


def test_bomb_header_in_training_data_is_one_line(tmp_path: Path) -> None:
    data = make_paired(tmp_path / "data", n_train=2, n_val=1)
    (data / "train" / "bomb.png").write_bytes(bomb_png())
    error_line(train(data, tmp_path / "run", "--max-steps", "1"), "bomb.png", "too large")


def test_after_kill_stale_temporaries_go_and_metrics_are_cut(tmp_path: Path) -> None:
    """What ``kill -9`` leaves (half-written checkpoint folders, steps logged after the last
    checkpoint) is cleaned when the run resumes."""
    data = make_paired(tmp_path / "data", n_train=2, n_val=1)
    run_dir = tmp_path / "run"
    assert train(data, run_dir, "--max-steps", "2").exit_code == 0
    root = run_dir / "checkpoints"
    pid = dead_pid()
    stale = [root / f".step_0000004.tmp-{pid}", root / f".tmp-step_0000004-{pid}"]
    for folder in stale:
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    alive = root / f".step_0000009.tmp-{os.getppid()}"  # a live process's save in progress
    alive.mkdir()
    with open(run_dir / "metrics.jsonl", "a") as fh:  # steps 3-4 logged, then killed
        fh.write('{"step": 3, "G_L1": 1.0}\n{"step": 4, "G_L1": 1.0}\n{"step": 5, "G_')
    result = runner.invoke(app, ["train", "pix2pix", "--resume", str(run_dir), "--max-steps", "4"])
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in stale) and alive.is_dir()
    assert steps_logged(run_dir) == [1, 2, 3, 4]


def test_meta_field_of_the_wrong_type_is_one_line(tmp_path: Path) -> None:
    data = make_paired(tmp_path / "data", n_train=2, n_val=1)
    run_dir = tmp_path / "run"
    assert train(data, run_dir, "--max-steps", "1").exit_code == 0
    meta_path = run_dir / "checkpoints" / "step_0000001" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "models": 5}))
    Image.new("RGB", (32, 32)).save(tmp_path / "in.png")
    before = snapshot(run_dir)
    ran = runner.invoke(app, ["run", str(tmp_path / "in.png"), "-c", str(run_dir)])
    error_line(ran, "meta.json", "'models'", "a list of model names")
    resumed = runner.invoke(app, ["train", "pix2pix", "--resume", str(run_dir)])
    error_line(resumed, "meta.json", "'models'")
    assert snapshot(run_dir) == before


class _RunsCode:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch pwned",))


def test_trainer_state_that_would_run_code_is_refused(tmp_path: Path) -> None:
    data = make_paired(tmp_path / "data", n_train=2, n_val=1)
    run_dir = tmp_path / "run"
    assert train(data, run_dir, "--max-steps", "1").exit_code == 0
    trainer = run_dir / "checkpoints" / "step_0000001" / "trainer.pt"
    trainer.write_bytes(pickle.dumps({"step": _RunsCode()}))
    before = snapshot(run_dir)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        resumed = runner.invoke(app, ["train", "pix2pix", "--resume", str(run_dir)])
    finally:
        os.chdir(cwd)
    error_line(resumed, "trainer.pt", "refused: the file holds objects other than tensors")
    assert not (tmp_path / "pwned").exists()
    assert snapshot(run_dir) == before


def test_checkpoint_files_follow_the_umask(tmp_path: Path) -> None:
    data = make_paired(tmp_path / "data", n_train=2, n_val=1)
    run_dir = tmp_path / "run"
    old = os.umask(0o022)
    try:
        assert train(data, run_dir, "--max-steps", "1").exit_code == 0
    finally:
        os.umask(old)
    folder = run_dir / "checkpoints" / "step_0000001"
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
    assert modes == {"model.safetensors": 0o644, "meta.json": 0o644, "trainer.pt": 0o644}
