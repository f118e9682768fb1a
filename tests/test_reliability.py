"""Nothing lost, one clear line: the bad-input and fault drill of issue 32, one test per row.

Real files in ``tmp_path``, real signals to a real ``translate`` subprocess, a real full disk
(a small tmpfs, mounted when the test may; skipped otherwise). Each test names its row.
Rows 5, 8-15 are in ``test_reliability_inputs.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_PIX2PIX, TINY_PIX2PIX_OPTIONS
from tests.test_run_files import error_line, snapshot
from tests.test_train_files import train
from translate.cli.main import app
from translate.testing import make_paired

runner = CliRunner()


def temporaries(folder: Path) -> list[Path]:
    """Temporary files and folders (``.<name>.tmp-<pid>``) left anywhere under ``folder``."""
    return [p for p in folder.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]


@contextlib.contextmanager
def small_disk(where: Path, size_kib: int) -> Iterator[Path]:
    """A real filesystem of ``size_kib`` KiB at ``where`` (tmpfs); skips the test where
    mounting is not allowed (not root)."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(where)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def disk_usage_kib(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) // 1024


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, Path]:
    """(data, run): a tiny pix2pix run of two steps, checkpoint at step 2."""
    data = make_paired(tmp_path / "data", n_train=2, n_val=1)
    run_dir = tmp_path / "run"
    result = train(data, run_dir, "--max-steps", "2")
    assert result.exit_code == 0, result.output
    return data, run_dir


# ---------------------------------------------------------------------------- data lost
def test_row01_run_dir_existing_run_refused(trained: tuple[Path, Path]) -> None:
    data, run_dir = trained
    before = snapshot(run_dir)
    result = train(data, run_dir, "--max-steps", "1")
    error_line(result, str(run_dir), "already holds a run", "--resume", "--overwrite")
    assert snapshot(run_dir) == before  # nothing written over
    # --overwrite: the old run is replaced, and LATEST names a checkpoint that exists
    assert train(data, run_dir, "--max-steps", "1", "--overwrite").exit_code == 0
    root = run_dir / "checkpoints"
    assert (root / "LATEST").read_text().strip() == "step_0000001"
    assert sorted(p.name for p in root.glob("step_*")) == ["step_0000001"]
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").open()]
    assert steps == [1]


def test_row02_same_second_runs_get_their_own_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two trainings prepared in the same second (the clock is frozen): each gets its own
    folder the moment it is prepared, so neither writes into the other's."""
    import datetime as dt

    from translate.engine import setup
    from translate.engine.loop import prepare

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz: object = None) -> Frozen:  # type: ignore[override]
            return cls(2026, 12, 6, 21, 0, 0)

    monkeypatch.setattr(setup, "datetime", Frozen)
    monkeypatch.chdir(tmp_path)
    data = make_paired(tmp_path / "data", n_train=2, n_val=1)
    opts = dict(TINY_PIX2PIX_OPTIONS, data=data, max_steps=1, progress=False)
    first, second = prepare("pix2pix", **opts), prepare("pix2pix", **opts)
    assert first.run_dir != second.run_dir
    assert first.run_dir.is_dir() and second.run_dir.is_dir()  # claimed when prepared
    assert first.run_dir.name == "pix2pix-20261206-210000"
    assert second.run_dir.name == "pix2pix-20261206-210000-2"
    first.run(), second.run()
    for trainer in (first, second):
        lines = (trainer.run_dir / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["step"] for line in lines] == [1]  # its own steps only


def test_row03_compress_into_the_parent_run_refused(trained: tuple[Path, Path]) -> None:
    _, run_dir = trained
    before = snapshot(run_dir)
    result = runner.invoke(
        app, ["compress", str(run_dir), "--run-dir", str(run_dir), "--steps", "1"]
    )
    error_line(result, str(run_dir), "already holds a run")
    assert snapshot(run_dir) == before


def test_row04_resume_with_max_steps_below_the_current_step_refused(
    trained: tuple[Path, Path],
) -> None:
    _, run_dir = trained
    before = snapshot(run_dir)
    result = runner.invoke(app, ["train", "pix2pix", "--resume", str(run_dir), "--max-steps", "1"])
    error_line(result, "--max-steps 1", "step 2")
    assert snapshot(run_dir) == before


def test_runs_prints_a_long_run_path_on_one_line(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    """``translate runs RUN`` writes each summary line whole when its output is not a terminal
    (rich wrapped it at 80 columns: a long path broke the line, "step" and "2 of 2" apart)."""
    _, run_dir = trained
    deep = tmp_path / ("a-long-folder-name-" * 4) / "run"
    shutil.copytree(run_dir, deep)
    shown = runner.invoke(app, ["runs", str(deep)])
    assert shown.exit_code == 0, shown.output
    assert f"{deep}: pix2pix, step 2 of 2" in shown.output.splitlines(), shown.output


def test_row12_damaged_metrics_jsonl_is_skipped_with_one_warning(
    trained: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Invalid UTF-8 in a line and a last line cut short by a crash: ``translate runs`` (a run
    and a folder of runs) and ``--resume`` skip them with one warning each, no traceback."""
    _, run_dir = trained
    metrics = run_dir / "metrics.jsonl"
    good = metrics.read_bytes()
    metrics.write_bytes(good + b'{"step": 3, "G_L1": "\xff\xfe"}\n{"step": 4, "G_')
    for target in (run_dir, run_dir.parent):
        caplog.clear()
        shown = runner.invoke(app, ["runs", str(target)])
        assert shown.exit_code == 0 and "Traceback" not in shown.output, shown.output
        warned = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
        assert len(warned) == 1 and "skipped 2 unreadable lines" in warned[0], warned
    assert "step 2 of 2" in runner.invoke(app, ["runs", str(run_dir)]).output
    caplog.clear()
    resumed = runner.invoke(app, ["train", "pix2pix", "--resume", str(run_dir), "--max-steps", "3"])
    assert resumed.exit_code == 0, resumed.output
    assert metrics_steps(run_dir) == [1, 2, 3]  # the bad lines went with the cut
    assert metrics.read_bytes().startswith(good)


# ---------------------------------------------------------------------------- resources
def test_row07_disk_full_during_checkpoint_save(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """A real full disk: the run's folder on a tmpfs with room for about a third of a
    checkpoint more. One line, exit code 74, step 2's checkpoint and LATEST intact, no
    partial files."""
    _, source = trained
    shutil.rmtree(source / "samples")
    size = disk_usage_kib(source) + 1200  # a checkpoint is ~3.2 MB
    with small_disk(tmp_path / "disk", size) as disk:
        run_dir = disk / "run"
        shutil.copytree(source, run_dir)
        before = snapshot(run_dir / "checkpoints")
        result = runner.invoke(
            app, ["train", "pix2pix", "--resume", str(run_dir), "--max-steps", "3"]
        )
        line = error_line(result, "step_0000003", "No space left on device", code=74)
        assert line.startswith(f"error: {run_dir}"), line
        assert snapshot(run_dir / "checkpoints") == before
        assert (run_dir / "checkpoints" / "LATEST").read_text().strip() == "step_0000002"
        assert temporaries(run_dir) == []


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def metrics_steps(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line)["step"] for line in lines if line.endswith("}")]


def _as_foreground() -> None:
    """In the child before exec: Ctrl-C's default disposition, as a terminal's foreground
    process has it. A shell without job control starts background jobs with SIGINT ignored,
    and the ignore is inherited: a test suite started that way (``cmd &`` in a script) would
    otherwise send its Ctrl-C to a process that cannot hear it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli_process(*args: str, cwd: Path) -> subprocess.Popen:
    """A real ``translate`` process (one thread), receiving signals as from a terminal."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "translate", *args],
        cwd=cwd,
        env=env,
        preexec_fn=_as_foreground,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signame", "code"), [("SIGTERM", 143), ("SIGHUP", 129)], ids=["sigterm", "sighup"]
)
def test_row06_sigterm_and_sighup_save_then_exit_128_plus_signal(
    tmp_path: Path, signame: str, code: int
) -> None:
    """A real signal to a real training process: it finishes the step, saves, exits
    128 + the signal; ``--resume`` then ends bit-identical to a run never stopped."""
    from tests.test_resume import assert_same_final_state
    from translate.engine.loop import prepare

    data = make_paired(tmp_path / "data", n_train=2, n_val=1)
    run_dir = tmp_path / "run"
    loop = ["--threads", "1", "--device", "cpu", "--amp", "none", "--sample-every", "1000"]
    loop += ["--lr-decay-start", "1"]  # a constant LR: the same in a run of any length
    proc = cli_process(
        "train", "pix2pix", "--data", str(data), "--run-dir", str(run_dir), *TINY_PIX2PIX,
        *loop, "--max-steps", "100000", "--checkpoint-every", "100000", cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_for(lambda: len(metrics_steps(run_dir)) >= 2, 120, "two logged steps")
        proc.send_signal(getattr(signal, signame))
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == code, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    assert errors[0].startswith(f"error: {signame} at step "), errors[0]
    stop = int(errors[0].split(" at step ")[1].split(";")[0])
    root = run_dir / "checkpoints"
    assert (root / "LATEST").read_text().strip() == f"step_{stop:07d}"  # saved at that step
    assert metrics_steps(run_dir) == list(range(1, stop + 1))
    # resume one more step; a run never stopped ends in the same state
    options = dict(
        TINY_PIX2PIX_OPTIONS, data=data, threads=1, device="cpu", amp="none",
        sample_every=1000, checkpoint_every=100000, progress=False, log_every=1,
        lr_decay_start=1.0,
    )  # fmt: skip
    prepare("pix2pix", resume=run_dir, max_steps=stop + 1).run()
    prepare("pix2pix", run_dir=tmp_path / "straight", max_steps=stop + 1, **options).run()
    assert_same_final_state(tmp_path / "straight", run_dir, stop + 1, stop)


@pytest.mark.slow
def test_row07_siblings_export_and_eval_report_on_a_full_disk(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    """The other writers on a real full disk: ``export`` (the ONNX file) and ``eval --report``
    (the page) also end with one line and exit 74, leaving no partial or temporary file."""
    data, run_dir = trained
    with small_disk(tmp_path / "disk", 64) as disk:
        out = disk / "model.onnx"
        result = runner.invoke(
            app, ["export", str(run_dir), "-o", str(out), "--exporter", "torchscript"]
        )
        error_line(result, "model.onnx", "No space left on device", code=74)
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as fh:
            while True:  # the disk's last bytes: the report's first image cannot be written
                fh.write(b"\0" * 4096)
                fh.flush()
        report = disk / "report"
        result = runner.invoke(
            app,
            ["eval", "pix2pix", "-c", str(run_dir), "-d", str(data), "--report", str(report)],
        )
        error_line(result, "No space left on device", code=74)
        assert not out.exists() and temporaries(disk) == []
        assert not (report / "index.html").exists()
