"""What a checkpoint of a training run holds, and how a Trainer writes and reads it.

``save_run`` writes the weights (with the EMA copies as ``ema.<model>...``), ``meta.json`` (the
plugin, versions, the three configs, step, world size) and the trainer state (optimisers,
scalers, pools and RNG of every rank, samples consumed); ``restore_run`` puts all of it back so
a resumed run continues bit-identically. ``diverged`` saves what can be saved when a loss turns
NaN. Only rank 0 writes; every rank takes part in gathering the per-rank state.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

import translate
from translate.config import config_to_dict
from translate.engine import checkpoint as ckpt
from translate.engine.setup import plugin_version
from translate.errors import CheckpointError, TrainingDiverged

log = logging.getLogger("translate.train")

Trainer = Any  # translate.engine.loop.Trainer (not imported: the loop imports this module)
RANK_SEED = 1_000_003
"""Distributed runs seed rank ``r``'s random stream with ``seed + RANK_SEED * r``."""

EMA_PREFIX = "ema."
"""Key prefix of the generators' EMA copies in ``model.safetensors``."""


def run_meta(trainer: Trainer) -> dict[str, Any]:
    extra = getattr(trainer.plugin, "checkpoint_meta", None)
    return {
        "plugin": trainer.plugin.name,
        "plugin_version": plugin_version(trainer.plugin.name),
        "translate_version": translate.__version__,
        "torch_version": torch.__version__,
        "api_version": trainer.plugin.api_version,
        "step": trainer.step,
        "world_size": trainer.dist.world_size,
        "global_batch_size": trainer.global_batch_size,
        "models": list(trainer.models),
        "plugin_config": config_to_dict(trainer.plugin_cfg),
        "train_config": config_to_dict(trainer.train_cfg),
        "gan_config": config_to_dict(trainer.gan_cfg),
        "created": datetime.now().isoformat(timespec="seconds"),
        # a plugin's own provenance (a compressed model's parent, keep ratio, method)
        **(extra(trainer.plugin_cfg) if callable(extra) else {}),
    }


def run_weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Every model's tensors, plus the EMA copies as ``ema.<model>.<param>``."""
    weights = ckpt.flatten_state(trainer.models)
    if trainer.ema is not None:
        weights.update(ckpt.flatten_state(trainer.ema.models, prefix=EMA_PREFIX))
    return weights


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's random state: the CPU generator's and its own GPU's (not every GPU's:
    a process uses one)."""
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def set_rng_state(rng: dict[str, Any], device: torch.device) -> str | None:
    """Restore ``rng_state``'s output; returns what was saved and could not be restored."""
    torch.set_rng_state(rng["torch"])
    cuda = rng.get("cuda")
    if cuda is None:
        return None
    if device.type != "cuda":
        return "the CUDA random state (this run is on the CPU)"
    if isinstance(cuda, torch.Tensor):
        torch.cuda.set_rng_state(cuda, device)
        return None
    # older checkpoints: the states of every GPU the process saw, of which it used its own
    index = device.index or 0
    if index < len(cuda):
        torch.cuda.set_rng_state(cuda[index], device)
        return None
    return f"the CUDA random state of GPU {index} (the checkpoint has {len(cuda)} GPUs' states)"


def save_run(trainer: Trainer) -> Path:
    if trainer.ctx.deferred_sync:  # a stop between reads: nothing non-finite is saved
        trainer.ctx.check_finite(trainer.step)
    rng = rng_state(trainer.device)
    state = {
        **trainer.ctx.state_dict(),
        "rng": rng,
        "step": trainer.step,
        "samples_seen": trainer.samples_seen,
    }
    micro = trainer.ctx.micro
    if trainer.dist.enabled or micro is not None:
        # every (virtual) rank's pools and RNG, in rank order (a collective: all ranks save)
        ranks = micro.rank_states() if micro is not None else [{"rng": rng, "pools": None}]
        ranks = [r for per in trainer.dist.gather(ranks) for r in per]
        if micro is None:
            ranks = [
                {**r, "pools": p}
                for r, p in zip(ranks, trainer.dist.gather(state["pools"]), strict=True)
            ]
        state["rank_pools"] = [r["pools"] for r in ranks]
        state["rank_rng"] = [r["rng"] for r in ranks]
    folder = trainer.run_dir / "checkpoints" / f"step_{trainer.step:07d}"
    if trainer.dist.is_main:
        folder = ckpt.save_run_checkpoint(
            trainer.run_dir,
            trainer.step,
            weights=run_weights(trainer),
            meta=run_meta(trainer),
            trainer_state=state,
            keep=trainer.train_cfg.keep_checkpoints,
        )
    # every rank returns once the checkpoint is on disk: a rank that exits right after (a stop
    # request) must not make the launcher end rank 0 while it writes
    trainer.dist.barrier()
    return folder


def restore_run(trainer: Trainer, folder: Path) -> None:
    weights = ckpt.read_weights(folder)
    ckpt.load_models(weights, trainer.models, source=folder / ckpt.WEIGHTS)
    if trainer.ema is not None:
        ckpt.load_models(
            weights, trainer.ema.models, source=folder / ckpt.WEIGHTS, prefix=EMA_PREFIX
        )
    state = ckpt.read_trainer_state(folder)
    dropped: list[str] = []
    try:
        trainer.step = int(state["step"])
        # each (virtual) rank resumes its own pools and random stream; ranks the saved run did
        # not have start with empty pools and a stream of their own
        pools, rngs = state.get("rank_pools"), state.get("rank_rng")
        pools, rngs = pools or [state["pools"]], rngs or [state["rng"]]
        micro, k = trainer.ctx.micro, trainer.train_cfg.grad_accum
        ranks = range(trainer.dist.rank * k, (trainer.dist.rank + 1) * k)
        mine = [
            {"rng": rngs[v], "pools": pools[v]} if v < len(rngs) else _fresh(trainer, v)
            for v in ranks
        ]
        state["pools"] = mine[0]["pools"]
        trainer.ctx.load_state_dict(state)
        if micro is not None:
            micro.load_rank_states(mine)
        lost = set_rng_state(mine[0]["rng"], trainer.device)  # (micro: virtual rank 0's)
        dropped += [lost] if lost else []
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{folder / ckpt.TRAINER}: incompatible trainer state ({exc})"
        ) from exc
    trainer.samples_seen = int(state["samples_seen"])
    total = trainer.dist.world_size * k
    if len(rngs) > total:
        dropped.append(f"the random streams and image pools of ranks {total}-{len(rngs) - 1}")
    if dropped and trainer.dist.is_main:
        log.warning(
            "resuming %s: not restored (new streams instead): %s", folder, "; ".join(dropped)
        )
    if trainer.dist.is_main:
        _say_global_batch(trainer, ckpt.read_meta(folder))


def _say_global_batch(trainer: Trainer, meta: dict[str, Any]) -> None:
    """One line when the resumed run's global batch is not the checkpoint's."""
    saved, cfg = meta.get("global_batch_size"), meta.get("train_config", {})
    if saved is None or saved == trainer.global_batch_size:
        return
    world, batch, k = meta.get("world_size", 1), cfg.get("batch_size", 1), cfg.get("grad_accum", 1)
    mine = trainer.train_cfg
    log.warning(
        "global batch %d (%s) instead of the checkpoint's %d (%s): the effective learning rate "
        "changes; --grad-accum K keeps the global batch on fewer processes",
        trainer.global_batch_size,
        _batch_parts(trainer.dist.world_size, mine.batch_size, mine.grad_accum),
        saved,
        _batch_parts(world, batch, k),
    )


def _batch_parts(world: int, batch: int, k: int) -> str:
    parts = f"{world} process{'es' if world > 1 else ''} x batch {batch}"
    return parts + (f" x grad-accum {k}" if k > 1 else "")


def _fresh(trainer: Trainer, v: int) -> dict[str, Any]:
    """A rank the saved run did not have: empty pools and a stream of its own."""
    seed = trainer.train_cfg.seed + RANK_SEED * v + trainer.step
    rng = {"torch": torch.Generator().manual_seed(seed).get_state()}
    return {"rng": rng, "pools": {}}


def float_buffers(trainer: Trainer) -> list[torch.Tensor]:
    return [b for m in trainer.models.values() for b in m.buffers() if b.is_floating_point()]


def weights_finite(trainer: Trainer) -> bool:
    return all(
        torch.isfinite(t).all() for t in run_weights(trainer).values() if t.is_floating_point()
    )


def diverged(trainer: Trainer, exc: TrainingDiverged, last_saved: Path | None) -> TrainingDiverged:
    """Save what can be saved after a NaN/inf loss; the error to stop with."""
    # the failing loss is caught before its backward pass, so the parameters are those of
    # the last good step (or its D update); the running statistics go back to the step's
    # start. NaN weights are never saved over a good checkpoint.
    with torch.no_grad():
        for buffer, before in trainer._buffers:
            buffer.copy_(before)
    if last_saved is not None and last_saved.name == f"step_{trainer.step:07d}":
        where = f"state of step {trainer.step} is in {last_saved}"
    elif weights_finite(trainer) and not trainer.dist.enabled:  # (a save needs every rank)
        where = f"state of step {trainer.step} saved to {save_run(trainer)}"
    elif last_saved is not None:
        where = f"the weights are not finite; the last good checkpoint is {last_saved}"
    else:
        where = "the weights are not finite and no checkpoint was written"
    return TrainingDiverged(f"{exc}; {where}")
