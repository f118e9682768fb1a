"""Watching a run: curves.png, TensorBoard event files, ``translate runs``, divergence stop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import TINY_PIX2PIX
from tests.test_cli import assert_user_error
from translate.cli.main import app
from translate.engine.curves import family, smooth

runner = CliRunner()


def train(data: Path, run_dir: Path, *extra: str) -> object:
    return runner.invoke(
        app,
        [
            "train",
            "pix2pix",
            "--data",
            str(data),
            "--run-dir",
            str(run_dir),
            *TINY_PIX2PIX,
            "--amp",
            "none",
            *extra,
        ],
    )


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from translate.testing import make_paired

    root = tmp_path_factory.mktemp("watch")
    data = make_paired(root / "facades", n_train=4, n_val=2)
    run_dir = root / "runs" / "first"
    result = train(
        data,
        run_dir,
        "--max-steps",
        "6",
        "--sample-every",
        "3",
        "--checkpoint-every",
        "3",
        "--tensorboard",
    )
    assert result.exit_code == 0, result.output
    return run_dir


def test_curves_png_has_a_panel_per_loss_family(tiny_run: Path) -> None:
    path = tiny_run / "curves.png"
    with Image.open(path) as image:
        layout = json.loads(image.info["Description"])
        pixels = np.asarray(image.convert("L"), dtype=np.float32)
    assert pixels.std() > 10  # drawn, not blank
    assert len(np.unique(pixels)) > 20
    logged = {k for r in metrics(tiny_run) for k in r if k not in ("step", "time")}
    plotted = {k for keys in layout.values() for k in keys}
    assert plotted == logged  # every logged key has a curve, nothing else does
    assert "D_loss" in layout["discriminator (losses, mean logits)"]
    assert "G_adv" in layout["generator: adversarial"]
    assert "G_L1" in layout["generator: reconstruction / cycle / perceptual"]
    assert layout["learning rate"] == ["lr"] and layout["steps/s"] == ["steps_per_s"]


def test_loss_families_by_name() -> None:
    assert family("D_A") == "discriminator"
    assert family("G_adv_B") == "adversarial"
    assert family("cycle_A") == family("idt_B") == family("G_pixel") == "reconstruction"
    assert family("r1") == family("gp") == family("r2") == "penalty"
    assert family("eval_fid") == "eval"


def test_smoothing_is_a_debiased_moving_average() -> None:
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
    out = smooth([0.0, 10.0], weight=0.5)
    assert out == pytest.approx([0.0, 10.0 * 0.5 / 0.75])


def test_tensorboard_scalars_match_metrics_jsonl(tiny_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tiny_run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()
    records = metrics(tiny_run)
    for key in ("D_loss", "G_adv", "G_L1", "lr"):
        tag = f"{family(key)}/{key}"
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        want = [(r["step"], r[key]) for r in records]
        assert [s for s, _ in got] == [s for s, _ in want]
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)
    assert "samples" in tags["images"]
    assert any(t.startswith("config/") for t in tags["tensors"])


def test_runs_lists_runs_with_their_steps(tiny_run: Path, paired_data: Path) -> None:
    second = tiny_run.parent / "second"
    assert train(paired_data, second, "--max-steps", "2", "--no-tensorboard").exit_code == 0
    assert not (second / "tensorboard").exists()
    result = runner.invoke(app, ["runs", str(tiny_run.parent)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.output.splitlines() if "pix2pix" in line}
    assert "6/6" in rows["first"] and "2/2" in rows["second"]
    one = runner.invoke(app, ["runs", str(tiny_run)], env={"COLUMNS": "200"})
    assert one.exit_code == 0, one.output
    assert "step 6 of 6" in one.output
    assert str(tiny_run / "curves.png") in one.output.replace("\n", "")
    assert "step_0000006.png" in one.output
    assert_user_error(runner.invoke(app, ["runs", str(tiny_run / "nope")]), "nope")


def test_a_nan_loss_stops_the_run_with_one_line_and_a_loadable_checkpoint(
    paired_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from translate.inference.translator import Translator
    from translate.registry import load_plugin

    # patched on the instance the registry hands out: an earlier test's monkeypatch of that
    # instance leaves an instance attribute behind, which a patch of the class would not reach
    plugin = load_plugin("pix2pix")
    step = plugin.train_step

    def poisoned(ctx, batch, cfg):  # the data turn NaN at step 3 (0-based)
        if ctx.step == 3:
            batch = {**batch, "input": batch["input"] * float("nan")}
        return step(ctx, batch, cfg)

    monkeypatch.setattr(plugin, "train_step", poisoned)
    run_dir = tmp_path / "run"
    result = train(paired_data, run_dir, "--max-steps", "10", "--no-tensorboard")
    assert_user_error(result, "step 3", "nan", "--lr", str(run_dir / "checkpoints"))
    saved = run_dir / "checkpoints" / "step_0000003"
    assert (saved / "model.safetensors").is_file()
    from safetensors.torch import load_file

    weights = load_file(saved / "model.safetensors").values()
    assert all(torch.isfinite(t).all() for t in weights if t.is_floating_point())
    translator = Translator.from_checkpoint(saved)
    out = translator([Image.new("RGB", (32, 32), (120, 30, 200))])[0]
    assert np.asarray(out).std() > 0  # an image, not a constant fill
    assert (run_dir / "curves.png").is_file()  # the curves show how it ended
    assert torch.isfinite(torch.tensor([r["D_loss"] for r in metrics(run_dir)])).all()


def test_nan_weights_are_never_saved_over_the_last_good_checkpoint(
    paired_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard checks the weights before it saves: when they are not finite (here G's
    parameters turn NaN at step 3) nothing is written, and the error names the last good
    checkpoint (step 2), which holds finite weights."""
    from safetensors.torch import load_file

    from translate.registry import load_plugin

    plugin = load_plugin("pix2pix")
    step = plugin.train_step

    def poisoned(ctx, batch, cfg):
        if ctx.step == 3:
            with torch.no_grad():
                for p in ctx.models["G"].parameters():
                    p.fill_(float("nan"))
        return step(ctx, batch, cfg)

    monkeypatch.setattr(plugin, "train_step", poisoned)
    run_dir = tmp_path / "run"
    result = train(
        paired_data, run_dir, "--max-steps", "10", "--checkpoint-every", "2", "--no-tensorboard"
    )
    good = run_dir / "checkpoints" / "step_0000002"
    assert_user_error(result, "step 3", "not finite", str(good))
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("step_*")) == [good.name]
    saved = load_file(good / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in saved.values() if t.is_floating_point())


def test_curves_draw_the_logged_values_and_their_smoothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What curves.png draws, read from the figure before it is closed: each panel holds its
    family's keys, each key's raw line is (steps, values) of metrics.jsonl and its bold line
    the debiased moving average, a family spanning decades is on a log scale, and checkpoints
    are marked. A plot of the wrong key, steps or values, or of an unsmoothed curve, fails."""
    import matplotlib.pyplot as plt

    from translate.engine.curves import plot_curves

    path = tmp_path / "metrics.jsonl"
    steps = [10, 20, 30, 40, 50]
    d_loss = [1.2, 0.9, 0.7, 0.8, 0.6]
    g_l1 = [100.0, 30.0, 5.0, 0.9, 0.5]  # spans decades
    path.write_text(
        "".join(
            json.dumps({"step": s, "time": 0.0, "D_loss": d, "G_L1": g, "lr": 2e-4}) + "\n"
            for s, d, g in zip(steps, d_loss, g_l1, strict=True)
        )
    )
    figures = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig) or close(fig))
    assert plot_curves(path, tmp_path / "curves.png", checkpoint_steps=[30]) is not None
    (fig,) = figures
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert set(panels) == {
        "discriminator (losses, mean logits)",
        "generator: reconstruction / cycle / perceptual",
        "learning rate",
    }
    for title, values, scale in (
        ("discriminator (losses, mean logits)", d_loss, "linear"),
        ("generator: reconstruction / cycle / perceptual", g_l1, "log"),
    ):
        ax = panels[title]
        raw, bold, *marks = ax.get_lines()
        assert list(raw.get_xdata()) == steps and list(raw.get_ydata()) == values
        assert list(bold.get_ydata()) == pytest.approx(smooth(values))
        assert bold.get_ydata()[0] == values[0] and bold.get_ydata()[-1] != values[-1]
        assert ax.get_yscale() == scale
        assert [list(m.get_xdata()) for m in marks] == [[30, 30]]  # the checkpoint
    (lr, *_) = panels["learning rate"].get_lines()
    assert list(lr.get_ydata()) == [2e-4] * 5
