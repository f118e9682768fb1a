"""The engine's implementation of ``translate.plugin.StepContext``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from translate.data.pool import ImagePool
from translate.errors import TrainingDiverged
from translate.losses.objective import GANObjective
from translate.losses.orthogonal import ortho_parameters, orthogonal_regularization


def is_discriminator_group(group: str) -> bool:
    """Optimiser groups whose name starts with "D" train discriminators (lr_d, clipping)."""
    return group.startswith("D")


def diverged_loss(group: str, step: int, what: str) -> TrainingDiverged:
    return TrainingDiverged(
        f"loss of group {group!r} {what} at step {step}; usual remedies: a lower --lr, "
        "--amp none, an R1 penalty (--r1-gamma 10) or a more stable --gan-loss"
    )


class TrainContext:
    """Holds the models, optimisers, AMP state and pools; plugins call its methods.

    n_critic: the engine sets ``update_generator`` before each step. On a critic-only step
    (``False``), ``optimize`` of a non-discriminator group is a no-op, so a plugin that ignores
    the flag still trains correctly; reading it only saves the generator's forward/backward.
    ``generator_stepped`` tells the engine afterwards whether any generator group was stepped
    (it then updates the EMA). With ``clip_value > 0`` (WGAN), the parameters of a
    discriminator group are clamped to ``[-clip_value, clip_value]`` after each of its steps.
    With ``ortho_reg > 0``, BigGAN's orthogonal regularisation of a generator group's weights
    (``translate.losses.orthogonal``) is added to the group's first loss of each step, in
    float32, before the gradient scaling and the DDP hook: it is part of the one backward.
    """

    def __init__(
        self,
        *,
        models: Mapping[str, nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer],
        device: torch.device,
        amp: str,
        gan: GANObjective,
        seed: int,
        clip_value: float = 0.0,
        n_critic: int = 1,
        rank: int = 0,
        before_backward: Callable[[str, Tensor], None] | None = None,
        ortho_reg: float = 0.0,
        deferred_sync: bool = False,
        clip_grad_norm: float = 0.0,
    ):
        self.models = models
        self.optimizers = optimizers
        self.device = device
        self.gan = gan
        self.step = 0
        self.seed = seed
        self.clip_value = float(clip_value)
        self.n_critic = int(n_critic)
        # distributed runs: each rank's pools draw their own stream; the engine's DDP hook
        # arms the group's gradient all-reduce right before each backward
        self.rank = rank
        self.before_backward = before_backward
        self.update_generator = True
        self.generator_stepped = False
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        # fp16 needs loss scaling; bf16 has fp32's range and does not
        self.scalers = {
            group: torch.amp.GradScaler(device.type) for group in optimizers if amp == "fp16"
        }
        self.pools: dict[str, ImagePool] = {}
        self.ortho_reg = float(ortho_reg)
        self.ortho_params = {
            group: ortho_parameters(
                [p for pg in opt.param_groups for p in pg["params"]], self.models
            )
            for group, opt in optimizers.items()
            if ortho_reg > 0 and not is_discriminator_group(group)
        }
        self.last_ortho: float | None = None  # the last regularisation term (for the logs)
        #: --grad-accum K > 1: the virtual ranks (``translate.engine.accumulate``) taking turns
        self.micro: Any = None
        #: --deferred-sync: each loss's finite flag stays on the device until ``check_finite``
        self.clip_grad_norm = float(clip_grad_norm)
        self.deferred_sync = bool(deferred_sync)
        self.gan.deferred_logs = self.deferred_sync
        self._finite: list[tuple[str, int, Tensor]] = []

    def begin_step(self, step: int, *, max_steps: int) -> None:
        """Set the per-step state before the plugin's ``train_step`` runs: the step, whether G
        trains (D trains on every step, G on every ``n_critic``-th, after ``n_critic`` D steps)
        and the objective's schedules (instance noise, lazy penalties)."""
        self.step = step
        self.update_generator = step % self.n_critic == self.n_critic - 1
        self.generator_stepped = False
        self.gan.begin_step(step, max_steps)

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
        with self.accumulate(group) as backward:
            backward(loss)

    @contextlib.contextmanager
    def accumulate(self, group: str) -> Iterator[Callable[[Tensor], None]]:
        """zero_grad on entry; ``backward(loss)`` adds each loss's (scaled) gradients; one
        optimiser step on a clean exit (none if the block raises). Backpropagating losses one
        at a time frees each graph before the next is built: peak memory is the largest graph's,
        not their sum (CycleGAN's two cycles)."""
        if group not in self.optimizers:
            raise KeyError(f"no optimiser group {group!r}; groups: {', '.join(self.optimizers)}")
        critic = is_discriminator_group(group)
        if not critic and not self.update_generator:
            yield lambda loss: None  # n_critic: this step trains the discriminators only
            return
        optimizer = self.optimizers[group]
        scaler = self.scalers.get(group)
        micro = self.micro  # --grad-accum: the first micro-batch clears, the last steps
        if micro is None or micro.first:
            optimizer.zero_grad(set_to_none=True)
        pending_ortho = bool(self.ortho_params.get(group))

        def backward(loss: Tensor) -> None:
            nonlocal pending_ortho
            if pending_ortho:  # once per step, with the group's first loss
                pending_ortho = False
                with torch.autocast(self.device.type, enabled=False):
                    ortho = self.ortho_reg * orthogonal_regularization(self.ortho_params[group])
                self.last_ortho = float(ortho.detach())
                loss = loss.float() + ortho
            if self.deferred_sync:  # read by check_finite, without a sync here
                self._finite.append((group, self.step, torch.isfinite(loss.detach()).all()))
            elif not torch.isfinite(loss.detach()).all():
                raise diverged_loss(group, self.step, f"is {loss.item()}")
            scaled = loss if scaler is None else scaler.scale(loss)
            if self.before_backward is not None and (micro is None or micro.last):
                self.before_backward(group, scaled)  # DDP: with every micro-batch's gradient
            scaled.backward()

        yield backward
        if micro is not None:
            if not micro.arrive():  # the other micro-batches add theirs; the last one steps
                return
            grads = [p.grad for pg in optimizer.param_groups for p in pg["params"]]
            grads = [g for g in grads if g is not None]
            if grads:  # the sum of K micro-batch means -> the mean over the K
                torch._foreach_div_(grads, micro.k)
        if self.clip_grad_norm > 0:  # on the true gradients: unscaled first under fp16
            if scaler is not None:
                scaler.unscale_(optimizer)
            params = [p for pg in optimizer.param_groups for p in pg["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm, foreach=True)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
        if critic and self.clip_value > 0:
            self._clip(optimizer)
        if not critic:
            self.generator_stepped = True
        if micro is not None:
            micro.release()

    def check_finite(self, now: int) -> None:
        """--deferred-sync: raise ``TrainingDiverged`` for the first non-finite loss since the
        last check (one device sync for all of them); ``now``: the step checking."""
        pending, self._finite = self._finite, []
        if not pending:
            return
        finite = torch.stack([flag for _, _, flag in pending]).tolist()
        for (group, step, _), ok in zip(pending, finite, strict=True):
            if not ok:
                found = f"is not finite (found at step {now} with --deferred-sync)"
                raise diverged_loss(group, step, found)

    @torch.no_grad()
    def _clip(self, optimizer: torch.optim.Optimizer) -> None:
        """WGAN's weight clipping (Arjovsky et al. 2017, Algorithm 1, line 7)."""
        params = [p for pg in optimizer.param_groups for p in pg["params"]]
        torch._foreach_clamp_min_(params, -self.clip_value)
        torch._foreach_clamp_max_(params, self.clip_value)

    def image_pool(self, name: str, size: int) -> ImagePool:
        pool = self.pools.get(name)
        if pool is None:
            seed = self.seed + len(self.pools) + 1 + 100_003 * self.rank
            pool = self.pools[name] = ImagePool(size, seed=seed)
        return pool

    # -- trainer state (checkpointed)
    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
            "pools": {k: p.state_dict() for k, p in self.pools.items()},
            **({"ada": self.gan.ada.state_dict()} if self.gan.ada is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][key])
        for key, scaler in self.scalers.items():
            if key in state["scalers"]:
                scaler.load_state_dict(state["scalers"][key])
        if self.gan.ada is not None and "ada" in state:  # ADA's p, resumed exactly
            self.gan.ada.load_state_dict(state["ada"])
        for key, pool_state in state["pools"].items():
            pool = self.pools[key] = ImagePool(int(pool_state["size"]))
            pool.load_state_dict(pool_state)
