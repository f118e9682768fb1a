"""What the training loop does around a plugin's step: the learning-rate schedule reaches the
optimisers (and the log), and the EMA generator follows the live one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import TINY_PIX2PIX_OPTIONS
from translate.engine import checkpoint as ckpt
from translate.engine.loop import Trainer, prepare
from translate.engine.schedule import lr_factor


def tiny_pix2pix(data: Path, run_dir: Path, **options: Any) -> Trainer:
    return prepare(
        "pix2pix",
        data=data,
        **TINY_PIX2PIX_OPTIONS,
        amp="none",
        device="cpu",
        batch_size=2,
        progress=False,
        run_dir=run_dir,
        **options,
    )


# ---------------------------------------------------------------------------- LR schedule
def test_lr_factor_is_constant_then_linear_to_zero() -> None:
    """pix2pix / CycleGAN: constant for the first ``decay_start`` of training, then linear."""
    factors = [lr_factor(s, max_steps=10, decay_start=0.5) for s in range(10)]
    assert factors == pytest.approx([1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
    assert [lr_factor(s, max_steps=4, decay_start=0.0) for s in range(4)] == pytest.approx(
        [1, 0.75, 0.5, 0.25]
    )
    assert {lr_factor(s, max_steps=10, decay_start=1.0) for s in range(10)} == {1.0}


def test_metrics_lines_average_their_own_interval_only(tmp_path: Path) -> None:
    """Each metrics.jsonl line averages the steps since the previous line (sums and counts
    cleared at every flush); a key logged on some steps only (G on critic-only steps) is
    averaged over the steps that logged it."""
    from translate.engine.run_log import MetricsLog

    log = MetricsLog(tmp_path / "metrics.jsonl")
    for values in ({"D": 1.0, "G": 4.0}, {"D": 3.0}):
        log.add(values)
    assert log.flush(2, {}) == {"D": 2.0, "G": 4.0}
    log.add({"D": 10.0, "G": 0.0})
    assert log.flush(3, {}) == {"D": 10.0, "G": 0.0}  # not (1 + 3 + 10) / 3
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["D"], r["G"]) for r in lines] == [(2, 2.0, 4.0), (3, 10.0, 0.0)]


def test_optimisers_use_and_the_log_reports_the_decayed_lr(
    paired_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over 8 steps with the decay starting half-way, both optimiser groups (G and, with
    TTUR, D at its own rate) step with the scheduled LR, and metrics.jsonl logs it."""
    run_dir = tmp_path / "run"
    trainer = tiny_pix2pix(
        paired_data,
        run_dir,
        max_steps=8,
        lr=2e-4,
        lr_d=4e-4,
        lr_decay_start=0.5,
        log_every=1,
        sample_every=100,
        checkpoint_every=100,
    )
    seen: dict[str, list[float]] = {"G": [], "D": []}
    step = trainer.plugin.train_step

    def recording(ctx: Any, batch: Any, cfg: Any) -> dict[str, float]:
        for group, optimizer in ctx.optimizers.items():
            seen[group].append(optimizer.param_groups[0]["lr"])
        return step(ctx, batch, cfg)

    monkeypatch.setattr(trainer.plugin, "train_step", recording)
    trainer.run()
    factors = [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]
    assert seen["G"] == pytest.approx([2e-4 * f for f in factors])
    assert seen["D"] == pytest.approx([4e-4 * f for f in factors])
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in records] == pytest.approx([2e-4 * f for f in factors])


# ---------------------------------------------------------------------------- EMA
def test_ema_generator_follows_the_live_generator(paired_data: Path, tmp_path: Path) -> None:
    """With decay 0.5 the average after two G steps is 1/4 start + 1/4 G_1 + 1/2 G_2 (Yazici
    et al. 2019), in the trainer and in the checkpoint that ``run`` and export read: an
    average that is never updated, or updated before the step, is caught."""
    trainer = tiny_pix2pix(paired_data, tmp_path / "run", max_steps=2, ema_decay=0.5)
    assert trainer.ema is not None

    def snapshot() -> dict[str, torch.Tensor]:
        return {k: p.detach().clone() for k, p in trainer.models["G"].named_parameters()}

    start = snapshot()
    batches = iter(trainer.loader())
    trainer.train_step(next(batches))
    first = snapshot()
    trainer.train_step(next(batches))
    second = snapshot()
    assert any(not torch.equal(start[k], second[k]) for k in start)  # G did move
    saved = load_file(trainer.save() / ckpt.WEIGHTS)
    averaged = dict(trainer.ema.models["G"].named_parameters())
    for k in start:
        expected = 0.25 * start[k] + 0.25 * first[k] + 0.5 * second[k]
        torch.testing.assert_close(averaged[k], expected, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(saved[f"ema.G.{k}"], expected, rtol=1e-6, atol=1e-7)
