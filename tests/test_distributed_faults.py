"""What clusters do to a distributed job, done for real to ``translate train --nproc-per-node 2``
(gloo, tiny pix2pix, one thread per process): the launcher terminated or killed, one rank
failing, one worker preempted. Each test starts real processes (a torch import each), so all
are ``slow``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TINY_PIX2PIX_OPTIONS
from translate.engine import checkpoint as ckpt
from translate.testing import make_paired

pytestmark = pytest.mark.slow

OPTIONS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_PIX2PIX_OPTIONS.items()]
COMMON = ["--device", "cpu", "--threads", "1", "--amp", "none", "--no-progress", "--seed", "3",
          "--log-every", "1", "--sample-every", "100000", "--lr-decay-start", "1"]  # fmt: skip


def _train(tmp_path: Path, run_dir: Path, *extra: str, env: dict | None = None, resume=False):
    data = [] if resume else ["--data", str(tmp_path / "paired"), "--run-dir", str(run_dir)]
    return subprocess.Popen(
        [sys.executable, "-m", "translate", "train", "pix2pix", *data, "--nproc-per-node", "2",
         *COMMON, *([] if resume else OPTIONS), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )  # fmt: skip


def _wait_for_steps(proc: subprocess.Popen, run_dir: Path, steps: int) -> None:
    metrics, deadline = run_dir / "metrics.jsonl", time.monotonic() + 240
    while not (metrics.is_file() and metrics.read_text().count("\n") >= steps):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    found = []
    for task in tasks:
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _descendants(pid: int) -> list[int]:
    out, todo = [], _children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo += _children(child)
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie that nobody reaps in a container counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _workers(launcher: int) -> list[int]:
    """The launcher's worker processes in start order (local rank 0 first: the spawn children
    that are not multiprocessing's resource tracker)."""
    workers = []
    for pid in _children(launcher):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline:
            workers.append(pid)
    return sorted(workers)


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [p for p in pids if _alive(p)]


def _stop_line(stderr: str) -> tuple[int, Path]:
    """The one error line of a stopped run: its step and checkpoint."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "SIGTERM at step" in errors[0], stderr
    step = int(errors[0].split("SIGTERM at step ")[1].split(";")[0])
    return step, Path(errors[0].split("state saved to ")[1].split(";")[0])


def _checkpoints(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.is_dir())


@pytest.fixture
def paired(tmp_path: Path) -> Path:
    make_paired(tmp_path / "paired", n_train=4, n_val=1)
    return tmp_path


def test_sigterm_to_the_launcher_saves_and_stops_every_worker(paired: Path) -> None:
    """``kill <launcher>`` (a scheduler, ``docker stop``): the workers get it as a request to
    save and stop: exit 143, one checkpoint of the step they stopped at, no worker left.
    (Before: torch's agent ended the workers; exit 130, nothing saved.)"""
    run_dir = paired / "run"
    proc = _train(paired, run_dir, "--max-steps", "100000")
    try:
        _wait_for_steps(proc, run_dir, 2)
        workers = _descendants(proc.pid)
        assert len(_workers(proc.pid)) == 2
        os.kill(proc.pid, signal.SIGTERM)  # the launcher alone
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    # pix2pix declares that DDP need not look for unused parameters (no warning from every
    # rank), and Python warnings come from rank 0 only: none twice
    assert "find_unused_parameters" not in stderr
    warned = [line for line in stderr.splitlines() if "Warning" in line]
    assert len(warned) == len(set(warned)), warned
    step, folder = _stop_line(stderr)
    assert _checkpoints(run_dir) == [f"step_{step:07d}"] and folder.name == f"step_{step:07d}"
    assert json.loads((folder / "meta.json").read_text())["step"] == step
    ckpt.read_weights(folder)  # complete and readable
    assert _wait_gone(workers, 10) == []


def test_sigkill_to_the_launcher_leaves_no_worker_alive(paired: Path) -> None:
    """The OOM killer or a hard kill takes the launcher: the workers must not train on alone
    (parent-death signal). (Before: both workers kept training.)"""
    run_dir = paired / "run"
    proc = _train(paired, run_dir, "--max-steps", "100000")
    try:
        _wait_for_steps(proc, run_dir, 2)
        workers = _workers(proc.pid)
        assert len(workers) == 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        assert _wait_gone(workers, 30) == []
    finally:
        for pid in _descendants(proc.pid) + workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


SITECUSTOMIZE = """
import os, time
if os.environ.get("FAIL_AT_STEP"):
    import translate.engine.loop as loop
    from translate.errors import DataError
    original = loop.Trainer.train_step
    def train_step(self, batch):
        if self.step == int(os.environ["FAIL_AT_STEP"]) and os.environ.get("RANK") == "1":
            with open(os.environ["FAIL_STAMP"], "w") as f:
                f.write(repr(time.time()))
            raise DataError("data: shard-only failure planted on rank 1")
        return original(self, batch)
    loop.Trainer.train_step = train_step
"""


def test_one_rank_failing_stops_every_rank_with_its_own_message(paired: Path) -> None:
    """Rank 1 raises a user error at step 3: every process exits non-zero within seconds with
    rank 1's one line. (Before: the worker returned its code instead of exiting, rank 0 waited
    in a collective for --dist-timeout, 600 s.)"""
    hooks = paired / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    stamp = paired / "failed_at"
    env = {"PYTHONPATH": os.pathsep.join([str(hooks), *sys.path]), "FAIL_AT_STEP": "3",
           "FAIL_STAMP": str(stamp)}  # fmt: skip
    proc = _train(paired, paired / "run", "--max-steps", "100000", env=env)
    try:
        _, stderr = proc.communicate(timeout=240)
        ended = time.time()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert stamp.is_file(), stderr
    assert ended - float(stamp.read_text()) < 30
    assert proc.returncode == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: rank 1: data: shard-only failure planted on rank 1"], stderr
    assert "Traceback" not in stderr


def test_sigterm_to_one_worker_saves_one_step_and_resumes_exactly(paired: Path) -> None:
    """Preemption of one worker: every rank stops after the same step, one checkpoint, exit 143
    from every process; ``--resume`` to step k + 3 equals an uninterrupted run of k + 3 steps
    bit for bit (same process count and threads). (Before: exit 130, the other ranks' signal
    unknown.)"""
    run_dir = paired / "run"
    proc = _train(paired, run_dir, "--max-steps", "100000")
    try:
        _wait_for_steps(proc, run_dir, 2)
        os.kill(_workers(proc.pid)[-1], signal.SIGTERM)  # (pids in start order: rank 1)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, stderr
    step, _folder = _stop_line(stderr)
    assert _checkpoints(run_dir) == [f"step_{step:07d}"]
    logged = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").open()]
    assert logged == list(range(1, step + 1))
    end = step + 3
    resumed = _train(paired, run_dir, "--resume", str(run_dir), "--max-steps", str(end),
                     resume=True)  # fmt: skip
    straight = _train(paired, paired / "straight", "--max-steps", str(end))
    for p in (resumed, straight):
        _out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    a = ckpt.read_weights(run_dir / "checkpoints" / f"step_{end:07d}")
    b = ckpt.read_weights(paired / "straight" / "checkpoints" / f"step_{end:07d}")
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a), [k for k in a if not (a[k] == b[k]).all()]


def test_two_processes_resumed_by_one_with_grad_accum_2_train_alike(paired: Path) -> None:
    """A 2-process run (batch 1, DiffAugment, instance norm) saved at step 2 and resumed by one
    process with ``--grad-accum 2`` reaches the 2-process run's step-4 weights: the same
    global batch, rows, random streams (rank r's is virtual rank r's) and optimiser state.
    Biases that instance norm cancels are left out (their gradient is rounding noise that
    Adam scales up). Measured: identical to the bit (float32, one thread per process); the
    documented tolerance is 1e-5."""
    import shutil

    import torch

    from tests.test_distributed import _inert_biases
    from translate.engine.loop import prepare

    run_dir = paired / "run"
    proc = _train(paired, run_dir, "--max-steps", "4", "--checkpoint-every", "2", "--norm",
                  "instance", "--diff-augment", "color,translation,cutout")  # fmt: skip
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr
    copy = paired / "copy"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "checkpoints" / "step_0000004")
    threads = torch.get_num_threads()
    try:
        step_2 = copy / "checkpoints" / "step_0000002"
        trainer = prepare("pix2pix", resume=step_2, grad_accum=2, max_steps=4, threads=1)
        assert trainer.step == 2 and trainer.global_batch_size == 2
        trainer.run()
    finally:
        torch.set_num_threads(threads)
    inert = _inert_biases(trainer.models)
    ddp = ckpt.read_weights(run_dir / "checkpoints" / "step_0000004")
    accumulated = ckpt.read_weights(copy / "checkpoints" / "step_0000004")
    diff, key = max(
        ((ddp[k] - accumulated[k]).abs().max().item(), k) for k in ddp if k not in inert
    )
    assert diff <= 1e-5, (diff, key)
    print(f"largest difference {diff:.3g} at {key}")


ACCUM = dict(TINY_PIX2PIX_OPTIONS, norm="instance", device="cpu", threads=1, amp="none",
             progress=False, seed=3, sample_every=100000, max_steps=3)  # fmt: skip


def _accumulating(root: str, k: int) -> dict:
    """Train ``ACCUM`` with ``--grad-accum k`` in float64 (a worker of ``launch`` or this
    process); this process's weights, less the biases instance norm cancels."""
    import torch
    import torch.distributed as dist

    from tests.test_distributed import _inert_biases
    from translate.engine.loop import prepare

    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        run_dir = Path(root) / f"accum{k}"
        trainer = prepare("pix2pix", data=Path(root) / "paired", run_dir=run_dir, grad_accum=k,
                          **ACCUM)  # fmt: skip
        trainer.run()
    finally:
        torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)
        if dist.is_initialized():
            dist.destroy_process_group()
    inert = _inert_biases(trainer.models)
    return {k: v.detach() for k, v in trainer.weights().items() if k not in inert}


def test_two_processes_with_grad_accum_2_train_like_one_with_4(paired: Path) -> None:
    """DDP and accumulation together (a job keeping its global batch of 4 on 2 GPUs): the
    reducer is armed with the last micro-batch's backward, after the others' gradients were
    summed, so 2 processes x --grad-accum 2 reach the weights of 1 process x --grad-accum 4
    (4 virtual ranks either way; the sums in another order). float64: measured 1e-12 and
    less; in float32 the order alone gave 1.4e-5 after 3 steps (Adam scales rounding noise of
    near-zero gradients up); without the division by K the weights differ by 1e-4."""
    from translate.engine.distributed import launch

    two = launch(2, _accumulating, str(paired), 2)
    one = _accumulating(str(paired), 4)
    assert max((two[0][k] - two[1][k]).abs().max().item() for k in one) == 0.0
    diff, key = max(((two[0][k] - one[k]).abs().max().item(), k) for k in one)
    print(f"largest difference {diff:.3g} at {key}")
    assert diff <= 1e-9, (diff, key)
