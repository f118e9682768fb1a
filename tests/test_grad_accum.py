"""``--grad-accum K``: K micro-batches per step as K virtual ranks (``translate.engine.
accumulate``); a resumed run's global batch said in one line; random states restored with
fewer GPUs than saved. (2 processes resumed by 1 with ``--grad-accum 2``:
``test_distributed_faults.py``.)"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import TINY_CYCLEGAN_OPTIONS, TINY_PIX2PIX_OPTIONS
from tests.test_distributed import _inert_biases
from translate.engine.loop import prepare
from translate.engine.run_state import set_rng_state
from translate.errors import ConfigError
from translate.testing import make_paired, make_unpaired

COMMON = dict(device="cpu", amp="none", progress=False, log_every=1, sample_every=1000, seed=3,
              threads=1)  # fmt: skip
PIX2PIX = dict(TINY_PIX2PIX_OPTIONS, norm="instance", dropout=0.0)


def _train(run_dir: Path, plugin: str, data: dict, **options: Any) -> dict[str, torch.Tensor]:
    """The weights, without the biases that instance norm cancels (``_inert_biases``)."""
    threads = torch.get_num_threads()
    try:
        trainer = prepare(plugin, **data, run_dir=run_dir, **COMMON, **options)
        trainer.run()
    finally:
        torch.set_num_threads(threads)
    inert = _inert_biases(trainer.models)
    return {k: v.detach().clone() for k, v in trainer.weights().items() if k not in inert}


@pytest.mark.parametrize("plugin", ["pix2pix", "cyclegan"])
def test_two_micro_batches_of_one_equal_one_batch_of_two(
    tmp_path: Path, plugin: str, float64: torch.dtype
) -> None:
    """float64, 2 steps: ``--grad-accum 2 --batch-size 1`` trains like ``--batch-size 2``
    (the same rows, the gradient of their mean; CycleGAN: two groups, two losses each, pools,
    frozen critics). Biases that instance norm cancels again are left out (their gradient is
    rounding noise: 2e-9 apart). Measured: largest difference 4e-11 (pix2pix)."""
    if plugin == "cyclegan":
        make_unpaired(tmp_path / "data", n=6)
        data = {"domain_a": tmp_path / "data" / "A", "domain_b": tmp_path / "data" / "B"}
        options = TINY_CYCLEGAN_OPTIONS
    else:
        make_paired(tmp_path / "data", n_train=6, n_val=1)
        data, options = {"data": tmp_path / "data"}, PIX2PIX
    accumulated = _train(tmp_path / "accum", plugin, data, batch_size=1, grad_accum=2,
                         max_steps=2, **options)  # fmt: skip
    reference = _train(tmp_path / "batch2", plugin, data, batch_size=2, max_steps=2, **options)
    assert accumulated.keys() == reference.keys()
    diff, key = max(((accumulated[k] - reference[k]).abs().max().item(), k) for k in reference)
    assert diff <= 1e-9, (diff, key)


def test_grad_accum_is_validated_and_counts_in_the_global_batch(tmp_path: Path) -> None:
    make_paired(tmp_path / "data", n_train=4, n_val=1)
    with pytest.raises(ConfigError, match="grad_accum"):
        prepare("pix2pix", data=tmp_path / "data", grad_accum=0, **COMMON, **PIX2PIX)
    trainer = prepare("pix2pix", data=tmp_path / "data", run_dir=tmp_path / "run", batch_size=2,
                      grad_accum=3, **COMMON, **PIX2PIX)  # fmt: skip
    assert trainer.global_batch_size == 6


def test_a_resume_with_another_global_batch_says_so_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Saved with batch 2, resumed with batch 1: one warning naming both global batches (and
    none when --grad-accum 2 keeps it)."""
    make_paired(tmp_path / "data", n_train=4, n_val=1)
    _train(tmp_path / "run", "pix2pix", {"data": tmp_path / "data"}, batch_size=2, max_steps=1,
           **PIX2PIX)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="translate.train"):
        prepare("pix2pix", resume=tmp_path / "run", batch_size=1, max_steps=2, **COMMON)
    lines = [r.getMessage() for r in caplog.records if "global batch" in r.getMessage()]
    assert lines == [
        "global batch 1 (1 process x batch 1) instead of the checkpoint's 2 (1 process x batch "
        "2): the effective learning rate changes; --grad-accum K keeps the global batch on "
        "fewer processes"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="translate.train"):
        prepare("pix2pix", resume=tmp_path / "run", batch_size=1, grad_accum=2, max_steps=2,
                **COMMON)  # fmt: skip
    assert not [r for r in caplog.records if "global batch" in r.getMessage()]


def test_cuda_random_states_of_more_gpus_than_visible_restore_what_exists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A checkpoint of a process that saw 2 GPUs (older format: every GPU's state) resumed on
    GPU 1 restores GPU 1's state; on GPU 3, which the checkpoint has no state for, it says so
    instead of indexing past the list (before: ``set_rng_state_all`` on every saved state)."""
    calls: list[tuple[Any, Any]] = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, d: calls.append((s, d)))
    states = [torch.zeros(3, dtype=torch.uint8), torch.ones(3, dtype=torch.uint8)]
    rng = {"torch": torch.get_rng_state(), "cuda": states}
    assert set_rng_state(rng, torch.device("cuda", 1)) is None
    assert calls == [(states[1], torch.device("cuda", 1))]
    calls.clear()
    lost = set_rng_state(rng, torch.device("cuda", 3))
    assert lost == "the CUDA random state of GPU 3 (the checkpoint has 2 GPUs' states)"
    assert calls == []
    assert "CPU" in set_rng_state(rng, torch.device("cpu"))
    one = {"torch": torch.get_rng_state(), "cuda": states[0]}  # this version: its own GPU's
    assert set_rng_state(one, torch.device("cuda", 0)) is None
    assert calls == [(states[0], torch.device("cuda", 0))]
