"""Ctrl-C at a random step, then ``--resume``: the run ends bit-identical to one never stopped.

The configurations keep the default-depth features that draw random numbers (pix2pix's U-Net 256
with its three dropout layers; CycleGAN's image pools) and add the stabilisers that draw them
every step (DiffAugment, instance noise, the GP's interpolation weights), on small channels so a
step takes a fraction of a second. The interrupted process is simulated in-process: a real
SIGINT reaches the trainer's handler after a randomly chosen step, and before resuming the
global RNG is reseeded, as a fresh process would have it.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from translate.engine.checkpoint import TRAINER, WEIGHTS
from translate.engine.loop import Trainer, TrainingInterrupted, prepare
from translate.testing import make_paired, make_unpaired

STEPS = 5

LOOP = dict(max_steps=STEPS, progress=False, device="cpu", log_every=1, sample_every=2)

# the default U-Net 256 (depth 8: three dropout layers at p = 0.5), narrow
PIX2PIX = dict(
    load_size=264,
    crop_size=256,
    base_channels=2,
    disc_channels=2,
    diff_augment="color,translation,cutout",
    instance_noise=0.1,
)

# the default ResNet-9 CycleGAN with its image pools, narrow, plus a gradient penalty
CYCLEGAN = dict(
    load_size=36,
    crop_size=32,
    base_channels=2,
    disc_channels=2,
    gp_weight=1.0,
    diff_augment="color,translation,cutout",
    instance_noise=0.1,
)


def _final_state(run_dir: Path, steps: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    folder = run_dir / "checkpoints" / f"step_{steps:07d}"
    return load_file(folder / WEIGHTS), torch.load(folder / TRAINER, weights_only=True)


def _flat(state: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(state, dict):
        out: dict[str, Any] = {}
        for k, v in state.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    if isinstance(state, (list, tuple)):
        return _flat(dict(enumerate(state)), prefix)
    return {prefix: state}


def interrupt_then_resume(trainer: Trainer, stop: int, sig: int = signal.SIGINT) -> None:
    """Run ``trainer`` until a real Ctrl-C (or ``sig``) after step ``stop``, then resume its
    run folder as a fresh process would (``--resume RUN``)."""
    step = trainer.train_step

    def step_then_ctrl_c(batch: Any) -> dict[str, float]:
        logs = step(batch)
        if trainer.step == stop:
            os.kill(os.getpid(), sig)  # the trainer's own handler takes it
        return logs

    trainer.train_step = step_then_ctrl_c  # type: ignore[method-assign]
    with pytest.raises(TrainingInterrupted):
        trainer.run()
    run_dir = trainer.run_dir
    assert (run_dir / "checkpoints" / "LATEST").read_text().strip() == f"step_{stop:07d}"
    torch.manual_seed(random.randrange(2**31))  # a new process: the global RNG is anyone's
    prepare(trainer.plugin.name, resume=run_dir).run()


def assert_same_final_state(straight: Path, split: Path, steps: int, stop: int) -> None:
    """Both runs end with the same weights, optimiser moments, image pools and RNG states."""
    weights_a, trainer_a = _final_state(straight, steps)
    weights_b, trainer_b = _final_state(split, steps)
    assert weights_a.keys() == weights_b.keys()
    differ = [k for k in weights_a if not torch.equal(weights_a[k], weights_b[k])]
    assert not differ, f"stopped after step {stop}: {len(differ)} tensors differ, e.g. {differ[0]}"
    flat_a, flat_b = _flat(trainer_a), _flat(trainer_b)
    assert flat_a.keys() == flat_b.keys()
    for key, a in flat_a.items():
        b = flat_b[key]
        same = torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b
        assert same, f"stopped after step {stop}: trainer state {key} differs"


@pytest.mark.parametrize(
    ("plugin", "options"),
    [("pix2pix", PIX2PIX), ("cyclegan", CYCLEGAN)],
    ids=["pix2pix", "cyclegan"],
)
def test_ctrl_c_at_a_random_step_then_resume_is_bit_identical(
    plugin: str, options: dict[str, Any], tmp_path: Path
) -> None:
    if plugin == "pix2pix":
        data = {"data": make_paired(tmp_path / "data", n_train=3, n_val=1)}
    else:
        root = make_unpaired(tmp_path / "data", n=3)
        data = {"domain_a": root / "A", "domain_b": root / "B"}
    options = {**data, **LOOP, **options}
    stop = random.randint(1, STEPS - 1)
    prepare(plugin, run_dir=tmp_path / "straight", **options).run()
    interrupt_then_resume(prepare(plugin, run_dir=tmp_path / "split", **options), stop)
    assert_same_final_state(tmp_path / "straight", tmp_path / "split", STEPS, stop)


# ---------------------------------------------------------------------------- stackgan's stages
STAGE1_STEPS = 3  # steps 0-2 train stage I (G, D); steps 3-5 stage II (G2, D2), stage I fixed


@pytest.fixture(scope="module")
def stackgan_straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The options of a two-stage stackgan and its run never stopped."""
    from translate.text.synthetic import make_captioned_shapes

    root = tmp_path_factory.mktemp("stackgan-resume")
    make_captioned_shapes(root / "shapes", 8, size=32)
    options = _stackgan(root / "shapes")
    prepare("stackgan", run_dir=root / "straight", **options).run()
    return options, root / "straight"


def _stackgan(data: Path) -> dict[str, Any]:
    """Two stages at 32 px (stage I at 8 px), narrow; the DAMSM-pretrained text encoder."""
    return dict(
        data=data, image_size=32, stages=2, stage1_steps=STAGE1_STEPS, latent_dim=8,
        condition_dim=8, text_dim=8, word_dim=8, g_channels=4, d_channels=4, d_text_dim=4,
        residual_blocks=1, pretrain_steps=2, pretrain_batch=4, batch_size=4,
        **{**LOOP, "max_steps": 6},
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop", "sig"),
    [(1, signal.SIGINT), (STAGE1_STEPS, signal.SIGTERM), (4, signal.SIGINT)],
    ids=["stage1", "at-switch", "stage2"],
)
def test_stackgan_resumes_exactly_across_its_stage_switch(
    stackgan_straight: tuple[dict[str, Any], Path], stop: int, sig: int, tmp_path: Path
) -> None:
    """``--stages 2``: a Ctrl-C in stage I (resumed through the switch), a SIGTERM right at the
    switch (the last stage-I step saved) or a Ctrl-C in stage II ends with G, D, G2 and D2,
    their optimiser states (G2's and D2's still empty when stopped in stage I) and the RNG
    states equal to those of a run never stopped."""
    options, straight = stackgan_straight
    split = prepare("stackgan", run_dir=tmp_path / "split", **options)
    interrupt_then_resume(split, stop, sig)
    assert_same_final_state(straight, tmp_path / "split", 6, stop)
    weights, trainer = _final_state(tmp_path / "split", 6)
    for net in ("G", "D", "G2", "D2"):  # each network and its optimiser moments compared
        assert any(k.startswith(f"{net}.") for k in weights), net
        assert trainer["optimizers"][net]["state"], net
    log = (tmp_path / "split" / "metrics.jsonl").read_text()
    assert '"stage": 1.0' in log and '"stage": 2.0' in log  # both stages trained
