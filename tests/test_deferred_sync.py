"""--deferred-sync (issue 41: no host sync inside a GPU step) and --compile-mode.

A GPU step at batch 1 is bound by launches and host syncs: every ``.item()``/``.tolist()`` or a
Python ``if`` on a tensor waits for the GPU to drain. With --deferred-sync the losses stay on
the device and are read once per log interval, and the finite check of each loss is read at
the same points (and before any save). These tests run on the CPU: they count the host reads
a step makes (the same calls sync a CUDA device) and check that the deferred run trains the
same weights and logs the same figures as the default one.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import TINY_CYCLEGAN_OPTIONS, TINY_PIX2PIX_OPTIONS
from tests.test_cli import assert_user_error
from tests.test_watch import train as train_cli
from translate.engine.loop import prepare
from translate.testing import make_paired, make_unpaired

RUN = {"device": "cpu", "amp": "none", "progress": False, "tensorboard": False}
#: every way Python reads a tensor's value on the host (each one syncs a CUDA device)
HOST_READS = ("item", "tolist", "__bool__", "__float__", "__int__")


def host_reads_per_step(trainer, monkeypatch: pytest.MonkeyPatch, steps: int) -> list[int]:
    """Run ``steps`` steps of ``trainer``, counting the host reads made inside each."""
    counts: Counter[str] = Counter()
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    per_step = []
    batches = iter(trainer.loader())
    for _ in range(steps):
        batch = next(batches)  # the loader's own reads (sampler, crops) do not count
        before = sum(counts.values())
        trainer.train_step(batch)
        per_step.append(sum(counts.values()) - before)
    monkeypatch.undo()
    return per_step


@pytest.mark.parametrize(
    ("plugin", "options"),
    [("pix2pix", TINY_PIX2PIX_OPTIONS), ("cyclegan", TINY_CYCLEGAN_OPTIONS)],
)
def test_a_deferred_step_reads_nothing_from_the_device_between_log_lines(
    plugin: str, options: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Default: every step reads its losses and finite checks (pix2pix: 5 reads). Deferred:
    none on steps 1-3, the reads come at step 4 (--log-every 4): the finite flags, once."""
    if plugin == "pix2pix":
        data = {"data": make_paired(tmp_path / "p", n_train=4, n_val=1)}
    else:
        root = make_unpaired(tmp_path / "u", n=4, size=36)
        data = {"domain_a": root / "A", "domain_b": root / "B"}
    common = {**RUN, **options, **data, "max_steps": 8, "log_every": 4, "batch_size": 1}
    eager = prepare(plugin, run_dir=tmp_path / "eager", **common)
    assert min(host_reads_per_step(eager, monkeypatch, 4)) >= 3
    deferred = prepare(plugin, run_dir=tmp_path / "deferred", deferred_sync=True, **common)
    reads = host_reads_per_step(deferred, monkeypatch, 4)
    assert reads[:3] == [0, 0, 0], reads
    assert reads[3] >= 1  # the interval's finite check


def test_deferred_sync_trains_the_same_weights_and_logs_the_same_figures(tmp_path: Path) -> None:
    data = make_paired(tmp_path / "p", n_train=4, n_val=1)
    common = {**RUN, **TINY_PIX2PIX_OPTIONS, "data": data, "max_steps": 6, "log_every": 3}
    runs = {}
    for name, deferred in (("eager", False), ("deferred", True)):
        prepare("pix2pix", run_dir=tmp_path / name, deferred_sync=deferred, **common).run()
        runs[name] = tmp_path / name
    weights = [load_file(r / "checkpoints/step_0000006/model.safetensors") for r in runs.values()]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    logs = [
        [json.loads(line) for line in (r / "metrics.jsonl").read_text().splitlines()]
        for r in runs.values()
    ]
    assert [r["step"] for r in logs[0]] == [r["step"] for r in logs[1]] == [3, 6]
    for a, b in zip(*logs, strict=True):
        for key in ("D_loss", "G_adv", "G_L1", "D_real", "D_fake"):
            assert b[key] == pytest.approx(a[key], rel=1e-6), key  # float32 sums on device


def test_a_deferred_nan_is_found_at_the_next_read_and_never_saved(
    paired_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data turn NaN at step 3; with --deferred-sync the next read is step 4 (a checkpoint
    step): the run stops with one line naming the loss's step and the step that found it, no
    checkpoint of step 4 is written, and the last good one (step 2) holds finite weights."""
    from translate.registry import load_plugin

    plugin = load_plugin("pix2pix")
    step = plugin.train_step

    def poisoned(ctx, batch, cfg):
        if ctx.step == 3:
            batch = {**batch, "input": batch["input"] * float("nan")}
        return step(ctx, batch, cfg)

    monkeypatch.setattr(plugin, "train_step", poisoned)
    run_dir = tmp_path / "run"
    result = train_cli(
        paired_data,
        run_dir,
        *("--max-steps", "10", "--checkpoint-every", "2", "--log-every", "5"),
        *("--no-tensorboard", "--deferred-sync"),
    )
    good = run_dir / "checkpoints" / "step_0000002"
    assert_user_error(result, "at step 3", "found at step 4", str(good))
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("step_*")) == [good.name]
    saved = load_file(good / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in saved.values() if t.is_floating_point())


def test_a_bad_compile_mode_is_one_line(paired_data: Path, tmp_path: Path) -> None:
    result = train_cli(paired_data, tmp_path / "r", "--compile", "--compile-mode", "fast")
    assert_user_error(result, "compile_mode", "reduce-overhead")
    assert not (tmp_path / "r" / "checkpoints").exists()


@pytest.mark.slow
def test_a_compiled_reduce_overhead_step_equals_the_eager_step(tmp_path: Path) -> None:
    """--compile --compile-mode reduce-overhead (CUDA graphs on a GPU; inductor's CPU code
    here): the first step's losses equal the eager run's to float32 rounding, and Adam's first
    update (each weight moves by about lr = 2e-4) lands on the eager weights: fewer than 1% of
    them differ by more than 1e-5 (a gradient near zero may flip sign under other rounding).
    A compiled step that skipped or repeated the update would move every weight by ~2e-4."""
    data = make_paired(tmp_path / "p", n_train=4, n_val=1)
    common = {**RUN, **TINY_PIX2PIX_OPTIONS, "data": data, "max_steps": 1, "log_every": 1}
    folders = [
        prepare("pix2pix", run_dir=tmp_path / "eager", **common).run(),
        prepare(
            "pix2pix",
            run_dir=tmp_path / "compiled",
            compile=True,
            compile_mode="reduce-overhead",
            deferred_sync=True,
            **common,
        ).run(),
    ]
    logs = [json.loads((tmp_path / r / "metrics.jsonl").read_text()) for r in ("eager", "compiled")]
    for key in ("D_loss", "G_adv", "G_L1"):
        assert logs[1][key] == pytest.approx(logs[0][key], rel=1e-4), key
    eager, compiled = (load_file(f / "model.safetensors") for f in folders)
    moved = torch.cat([(compiled[k] - eager[k]).abs().flatten() for k in eager if "ema" not in k])
    assert (moved > 1e-5).float().mean() < 0.01, moved.max()
