"""The engine's implementation of ``translate.plugin.StepContext``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from translate.data.pool import ImagePool
from translate.errors import TrainingDiverged
from translate.losses.objective import GANObjective


class TrainContext:
    """Holds the models, optimisers, AMP state and pools; plugins call its methods."""

    def __init__(
        self,
        *,
        models: Mapping[str, nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer],
        device: torch.device,
        amp: str,
        gan: GANObjective,
        seed: int,
    ):
        self.models = models
        self.optimizers = optimizers
        self.device = device
        self.gan = gan
        self.step = 0
        self.seed = seed
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        # fp16 needs loss scaling; bf16 has fp32's range and does not
        self.scalers = {
            group: torch.amp.GradScaler(device.type) for group in optimizers if amp == "fp16"
        }
        self.pools: dict[str, ImagePool] = {}

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    @contextlib.contextmanager
    def frozen(self, *names: str) -> Iterator[None]:
        params = [p for n in names for p in self.models[n].parameters()]
        before = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in zip(params, before, strict=True):
                p.requires_grad_(flag)

    def optimize(self, group: str, loss: Tensor) -> None:
        if group not in self.optimizers:
            raise KeyError(f"no optimiser group {group!r}; groups: {', '.join(self.optimizers)}")
        if not torch.isfinite(loss.detach()).all():
            raise TrainingDiverged(
                f"loss of group {group!r} is {loss.item()} at step {self.step}; try a lower "
                "--lr, --amp none, or a more stable --gan-loss"
            )
        optimizer = self.optimizers[group]
        optimizer.zero_grad(set_to_none=True)
        scaler = self.scalers.get(group)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    def image_pool(self, name: str, size: int) -> ImagePool:
        pool = self.pools.get(name)
        if pool is None:
            pool = self.pools[name] = ImagePool(size, seed=self.seed + len(self.pools) + 1)
        return pool

    # -- trainer state (checkpointed)
    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
            "pools": {k: p.state_dict() for k, p in self.pools.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][key])
        for key, scaler in self.scalers.items():
            if key in state["scalers"]:
                scaler.load_state_dict(state["scalers"][key])
        for key, pool_state in state["pools"].items():
            pool = self.pools[key] = ImagePool(int(pool_state["size"]))
            pool.load_state_dict(pool_state)
