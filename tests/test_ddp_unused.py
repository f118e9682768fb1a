"""Every plugin declares ``ddp_unused_parameters`` as it is: True exactly when some armed
backward pass of an optimiser group leaves some of the group's trainable parameters out of its
graph (DDP must then look for them, ``find_unused_parameters``; where nothing is unused that
costs a graph traversal per backward and a warning from every rank). Measured in one process:
the engine's DDP hook sees each loss right before its backward, and the test walks its graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from translate.config import config_to_dict
from translate.engine.loop import prepare
from translate.registry import discover, load_plugin
from translate.testing import make_dataset

FIRST_PARTY = sorted(n for n in discover() if (Path("plugins") / f"translate_{n}").is_dir())


def _reached(loss: torch.Tensor) -> set[int]:
    """ids of the leaf tensors ``loss``'s graph accumulates gradients into."""
    seen, leaves, stack = set(), set(), [loss.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if hasattr(fn, "variable"):
            leaves.add(id(fn.variable))
        stack += [f for f, _ in fn.next_functions]
    return leaves


def unused_in_backward(name: str, root: Path, steps: int = 4) -> dict[str, set[str]]:
    """group -> names of its trainable parameters that some backward of ``steps`` tiny
    training steps did not reach."""
    plugin = load_plugin(name)
    cfg = plugin.tiny_config(make_dataset(plugin.dataset_kind, root / "data"))
    options: dict[str, Any] = {k: v for k, v in config_to_dict(cfg).items() if v is not None}
    options.update(max_steps=steps, batch_size=2, device="cpu", progress=False, threads=1,
                   sample_every=100, n_samples=1, run_dir=root / "run")  # fmt: skip
    threads = torch.get_num_threads()
    try:
        trainer = prepare(name, **options)
        groups = plugin.param_groups(trainer.models)
        names = {id(p): k for m, model in trainer.models.items() for k, p in
                 ((f"{m}.{n}", p) for n, p in model.named_parameters())}  # fmt: skip
        unused: dict[str, set[str]] = {}

        def hook(group: str, loss: torch.Tensor) -> None:
            leaves = _reached(loss)
            missed = {
                names[id(p)] for p in groups[group] if p.requires_grad and id(p) not in leaves
            }
            if missed:
                unused.setdefault(group, set()).update(missed)

        trainer.ctx.before_backward = hook  # what the engine arms DDP with, in one process
        trainer.run()
    finally:
        torch.set_num_threads(threads)
    return unused


@pytest.mark.slow
@pytest.mark.parametrize("name", FIRST_PARTY)
def test_ddp_unused_parameters_is_declared_as_measured(tmp_path: Path, name: str) -> None:
    unused = unused_in_backward(name, tmp_path)
    declared = load_plugin(name).ddp_unused_parameters
    assert declared == bool(unused), (name, {g: sorted(v)[:5] for g, v in unused.items()})
