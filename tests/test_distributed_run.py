"""``translate run DIR -c RUN -o OUT --nproc-per-node 2``: inputs sharded across processes,
every output written once and identical to one process's; ``--skip-existing`` for reruns.
The shard arithmetic is a fast test; the runs start processes and are ``slow``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import train_tiny
from translate.cli.run_shards import shard_block


def test_shards_cover_every_input_once_in_whole_batches() -> None:
    """By hand: 10 inputs, batch 4, 2 processes: blocks of ceil(10 / 8) * 4 = 8."""
    assert [shard_block(10, r, 2, 4) for r in range(2)] == [range(0, 8), range(8, 10)]
    for n in range(0, 40):
        for world in (1, 2, 3, 5):
            for batch in (1, 2, 4):
                blocks = [shard_block(n, r, world, batch) for r in range(world)]
                assert sorted(i for b in blocks for i in b) == list(range(n))
                assert all(b.start % batch == 0 for b in blocks if len(b))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A tiny pix2pix run, a folder of 9 inputs of one size, and one process's outputs."""
    from translate.registry import load_plugin
    from translate.testing import make_paired

    root = tmp_path_factory.mktemp("drun")
    plugin = load_plugin("pix2pix")
    run = train_tiny("pix2pix", plugin.tiny_config(make_paired(root / "paired")), root / "run")
    inputs = root / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(9):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(inputs / f"frame{i:02d}.png")
    single = root / "single"
    done = _run(inputs, run, single)
    assert done.returncode == 0, done.stderr
    return run, inputs, single


def _run(inputs: Path, run: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "translate", "run", str(inputs), "-c", str(run), "-o", str(out),
         "--device", "cpu", "--batch-size", "2", *extra],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


def _pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


@pytest.mark.slow
def test_two_processes_write_every_output_once_identical_to_one(
    model: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    run, inputs, single = model
    done = _run(inputs, run, tmp_path / "out", "--nproc-per-node", "2")
    assert done.returncode == 0, done.stderr
    written = done.stdout.split()
    assert len(written) == 9 and len(set(written)) == 9  # each input once, by one process
    assert done.stderr.count("model: ") == 1  # rank 0 describes the model
    ours, reference = _pixels(tmp_path / "out"), _pixels(single)
    assert ours.keys() == reference.keys() and len(ours) == 9
    assert all(np.array_equal(ours[k], reference[k]) for k in ours)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_a_rerun_with_skip_existing_completes_only_the_rest(
    model: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """What a killed job leaves (writes are atomic: complete outputs, a temporary of a dead
    process): the rerun on 2 processes writes only the 5 missing outputs and leaves the 4
    done ones as they were."""
    run, inputs, single = model
    out = tmp_path / "out"
    out.mkdir()
    done_before = sorted(single.glob("*.png"))[::2][:4]
    for path in done_before:
        (out / path.name).write_bytes(path.read_bytes())
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / ".frame01.png.tmp-999999").write_bytes(b"partial")  # pid 999999: not running
    again = _run(inputs, run, out, "--nproc-per-node", "2", "--skip-existing")
    assert again.returncode == 0, again.stderr
    written = sorted(Path(p).name for p in again.stdout.split())
    assert written == sorted(set(_pixels(single)) - set(stamps))
    assert all((out / name).stat().st_mtime_ns == ns for name, ns in stamps.items())
    ours, reference = _pixels(out), _pixels(single)
    assert ours.keys() == reference.keys()
    assert all(np.array_equal(ours[k], reference[k]) for k in ours)
    assert not (out / ".frame01.png.tmp-999999").exists()
    nothing = _run(inputs, run, out, "--skip-existing")  # all done: nothing to write
    assert nothing.returncode == 0 and nothing.stdout == "", nothing.stderr


@pytest.mark.slow
def test_a_damaged_input_on_one_process_leaves_the_others_to_finish(
    model: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """The last input is damaged: the process that has it reports it (exit code 2) after its
    other inputs; the other process is not stopped and writes all of its own."""
    import shutil

    run, inputs, single = model
    damaged = tmp_path / "inputs"
    shutil.copytree(inputs, damaged)
    (damaged / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    done = _run(damaged, run, tmp_path / "out", "--nproc-per-node", "2")
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "zz_broken.png" in errors[0], done.stderr
    assert _pixels(tmp_path / "out").keys() == _pixels(single).keys()
