"""Checkpoints are atomic, self-describing and never execute code when loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from translate.engine import checkpoint as ckpt
from translate.errors import CheckpointError


def save(run: Path, step: int, value: float, keep: int = 2) -> Path:
    return ckpt.save_run_checkpoint(
        run,
        step,
        weights={"G.w": torch.full((3,), value)},
        meta={"plugin": "p", "step": step},
        trainer_state={"step": step},
        keep=keep,
    )


def test_latest_points_at_newest_and_old_ones_are_pruned(tmp_path: Path) -> None:
    for step in (1, 2, 3):
        save(tmp_path, step, float(step))
    assert ckpt.resolve_checkpoint(tmp_path).name == "step_0000003"
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*")) == [
        "step_0000002",
        "step_0000003",
    ]
    assert ckpt.read_meta(ckpt.resolve_checkpoint(tmp_path))["format"] == ckpt.FORMAT_VERSION


def test_a_save_that_dies_leaves_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    save(tmp_path, 1, 1.0)

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # e.g. a second Ctrl-C in the middle of writing

    monkeypatch.setattr(ckpt.torch, "save", die)
    with pytest.raises(KeyboardInterrupt):
        save(tmp_path, 2, 2.0)
    folder = ckpt.resolve_checkpoint(tmp_path)
    assert folder.name == "step_0000001"
    assert ckpt.read_weights(folder)["G.w"].tolist() == [1.0, 1.0, 1.0]
    assert not (tmp_path / "checkpoints" / "step_0000002").exists()


def test_saving_the_same_step_twice_replaces_it(tmp_path: Path) -> None:
    save(tmp_path, 5, 1.0)
    save(tmp_path, 5, 2.0)
    assert ckpt.read_weights(ckpt.resolve_checkpoint(tmp_path))["G.w"].tolist() == [2.0] * 3


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "meta.json").write_text("{ not json"), "meta.json: not valid JSON"),
        (
            lambda f: (f / "model.safetensors").write_bytes(b"\x00" * 10),
            "model.safetensors: truncated",
        ),
        (lambda f: (f / "trainer.pt").write_bytes(b"PK\x03\x04junk"), "trainer.pt: truncated"),
    ],
)
def test_damaged_files_are_named(tmp_path: Path, damage, message: str) -> None:
    folder = save(tmp_path, 1, 1.0)
    damage(folder)
    with pytest.raises(CheckpointError, match=message):
        ckpt.read_meta(folder)
        ckpt.read_weights(folder)
        ckpt.read_trainer_state(folder)


def test_trainer_state_refuses_pickled_code(tmp_path: Path) -> None:
    folder = save(tmp_path, 1, 1.0)

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    torch.save({"step": Evil()}, folder / "trainer.pt")
    with pytest.raises(CheckpointError, match=r"trainer\.pt"):
        ckpt.read_trainer_state(folder)


def test_resolve_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        ckpt.resolve_checkpoint(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        ckpt.resolve_checkpoint(tmp_path / "empty")
    save(tmp_path / "run", 1, 1.0)
    (tmp_path / "run" / "checkpoints" / "LATEST").write_text("step_0000009\n")
    with pytest.raises(CheckpointError, match="points at step_0000009, which is missing"):
        ckpt.resolve_checkpoint(tmp_path / "run")


def test_meta_from_a_newer_format_is_refused(tmp_path: Path) -> None:
    folder = save(tmp_path, 1, 1.0)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(CheckpointError, match="upgrade translate"):
        ckpt.read_meta(folder)
