"""What a checkpoint of a training run holds, and how a Trainer writes and reads it.

``save_run`` writes the weights (with the EMA copies as ``ema.<model>...``), ``meta.json`` (the
plugin, versions, the three configs, step, world size) and the trainer state (optimisers,
scalers, pools and RNG of every rank, samples consumed); ``restore_run`` puts all of it back so
a resumed run continues bit-identically. ``diverged`` saves what can be saved when a loss turns
NaN. Only rank 0 writes; every rank takes part in gathering the per-rank state.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import torch

import translate
from translate.config import config_to_dict
from translate.engine import checkpoint as ckpt
from translate.engine.setup import plugin_version
from translate.errors import CheckpointError, TrainingDiverged

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


def save_run(trainer: Trainer) -> Path:
    if trainer.ctx.deferred_sync:  # a stop between reads: nothing non-finite is saved
        trainer.ctx.check_finite(trainer.step)
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if trainer.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state_all()
    state = {
        **trainer.ctx.state_dict(),
        "rng": rng,
        "step": trainer.step,
        "samples_seen": trainer.samples_seen,
    }
    if trainer.dist.enabled:  # every rank's pools and RNG (a collective: all ranks save)
        state["rank_pools"] = trainer.dist.gather(state["pools"])
        state["rank_rng"] = trainer.dist.gather(rng)
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
    return folder


def restore_run(trainer: Trainer, folder: Path) -> None:
    weights = ckpt.read_weights(folder)
    ckpt.load_models(weights, trainer.models, source=folder / ckpt.WEIGHTS)
    if trainer.ema is not None:
        ckpt.load_models(
            weights, trainer.ema.models, source=folder / ckpt.WEIGHTS, prefix=EMA_PREFIX
        )
    state = ckpt.read_trainer_state(folder)
    try:
        trainer.step = int(state["step"])
        # each rank resumes its own pools and random stream; ranks the saved run did not
        # have start with empty pools and a stream of their own
        rank, pools, rngs = trainer.dist.rank, state.get("rank_pools"), state.get("rank_rng")
        pools, rngs = pools or [state["pools"]], rngs or [state["rng"]]
        state["pools"] = pools[rank] if rank < len(pools) else {}
        trainer.ctx.load_state_dict(state)
        if rank < len(rngs):
            torch.set_rng_state(rngs[rank]["torch"])
            if "cuda" in rngs[rank] and trainer.device.type == "cuda":
                torch.cuda.set_rng_state_all(rngs[rank]["cuda"])
        else:
            torch.manual_seed(trainer.train_cfg.seed + RANK_SEED * rank + trainer.step)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{folder / ckpt.TRAINER}: incompatible trainer state ({exc})"
        ) from exc
    trainer.samples_seen = int(state["samples_seen"])


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
