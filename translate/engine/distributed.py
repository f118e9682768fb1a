"""Data-parallel training across processes: torchrun's process group, DDP and rank-0 I/O.

A run started by torchrun (``torchrun --nproc-per-node 4 -m translate train ...``), by
``translate train ... --nproc-per-node 4`` (``launch`` below: torch's elastic launcher, in
process) or by a user's own script inside a torchrun worker reads ``RANK``/``WORLD_SIZE``/
``LOCAL_RANK`` from the environment; ``Distributed.from_env`` joins the process group (NCCL with
one GPU per process, gloo on CPU) or, outside torchrun, is a world of one that costs nothing.

Gradients are averaged by DDP's own reducer, one ``DistributedDataParallel`` per optimiser
group. Plugins call the *unwrapped* models, so their code is the same on 1 or N processes
(attribute access, ``forward_features``, penalties), and the engine arms a group's reducer with
the loss right before that group's backward (``GradientSync.before_backward``): DDP then finds
the parameters the loss reaches (``find_unused_parameters``) and all-reduces their gradients
in buckets while the backward runs. This is what makes penalties that need a double backward
(R1/R2/WGAN-GP, GN) exact under DDP: the input gradient is taken with ``autograd.grad``, which
never fires DDP's hooks, and the one hook per parameter fires in the final backward, whose
graph contains the penalty's. The pattern (arming the reducer outside DDP's forward) is the one
mmcv/mmgen use for GANs. Frozen models and critic-only steps arm nothing, so nothing waits.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from translate.engine.device import resolve_device
from translate.engine.launcher import launch, peer_lost, quiet_launcher_logs
from translate.errors import ConfigError, TranslateError

__all__ = [
    "Distributed",
    "GradientSync",
    "launch",
    "launched_by_torchrun",
    "quiet_launcher_logs",
]


def launched_by_torchrun() -> bool:
    """Whether this process is a worker of a torchrun (or ``launch``) job of several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@dataclass
class Distributed:
    """This process's place in the run; a world of one when not launched by torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # we created the process group, so we destroy it

    @classmethod
    def from_env(cls, device_name: str, *, timeout_s: float) -> Distributed:
        """Join torchrun's process group (or reuse one the caller made) on the right device."""
        if not dist.is_available() or not (launched_by_torchrun() or dist.is_initialized()):
            return cls(device=resolve_device(device_name))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = resolve_device(device_name)
        if device.type == "cuda":
            # decided alike on every rank of this machine (from torchrun's LOCAL_WORLD_SIZE), so
            # all stop before the rendezvous: a rank stopping alone leaves the others waiting
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", local_rank + 1))
            gpus = torch.cuda.device_count()
            if max(local_world, local_rank + 1) > gpus:
                raise ConfigError(
                    f"device: {local_world} processes on this machine but {gpus} GPU(s) "
                    f"visible; NCCL needs one GPU per process (--nproc-per-node {gpus}, or "
                    "--device cpu for CPU processes)"
                )
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        owns = not dist.is_initialized()
        if owns:
            # NCCL for GPUs (one per process), gloo for CPU processes
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
        return cls(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=local_rank,
            device=device,
            owns_group=owns,
        )

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, samples, metrics and the progress bar."""
        return self.rank == 0

    @property
    def _comm_device(self) -> torch.device:
        # NCCL reduces CUDA tensors, gloo CPU ones
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any (a stop request, a failure)."""
        return bool(self.maximum(int(flag)))

    def maximum(self, value: int) -> int:
        """The largest of every rank's ``value``, on every rank (one small all-reduce)."""
        if not self.enabled:
            return value
        t = torch.tensor([value], device=self._comm_device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def average_logs(
        self, sums: Mapping[str, float], counts: Mapping[str, int]
    ) -> tuple[dict[str, float], dict[str, int]]:
        """Sum the per-rank sums and counts of logged values (same keys on every rank)."""
        if not self.enabled:
            return dict(sums), dict(counts)
        keys = sorted(sums)
        t = torch.tensor(
            [sums[k] for k in keys] + [counts[k] for k in keys],
            dtype=torch.float64,
            device=self._comm_device,
        )
        dist.all_reduce(t)
        values = t.tolist()
        n = len(keys)
        return dict(zip(keys, values[:n], strict=True)), {
            k: int(c) for k, c in zip(keys, values[n:], strict=True)
        }

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def agree(self, error: TranslateError | None) -> None:
        """Raise on every rank when ``error`` happened on any; ``agreed`` tells the CLI that
        rank 0 prints it, so the message appears once, not once per process."""
        if not self.enabled:
            if error is not None:
                raise error
            return
        found = [e for e in self.gather(None if error is None else (type(error), str(error))) if e]
        if not found:
            return
        kind, message = found[0]  # the lowest failing rank's error, raised on every rank
        agreed = kind(message)
        agreed.agreed = True  # type: ignore[attr-defined]
        raise agreed from error

    def broadcast_models(self, models: Iterable[nn.Module]) -> None:
        """Copy rank 0's parameters and buffers to every rank (a new run starts identical)."""
        if not self.enabled:
            return
        with torch.no_grad():
            for model in models:
                for t in [*model.parameters(), *model.buffers()]:
                    dist.broadcast(t.data, src=0)

    def barrier(self) -> None:
        if self.enabled:  # NCCL: on this process's GPU, not on GPU 0
            cuda = self.device.type == "cuda"
            dist.barrier(device_ids=[self.device.index] if cuda else None)

    def wait_for_main(self, what: str, timeout_s: float) -> None:
        """Every process waits here until rank 0 is done with ``what`` (an evaluation it runs
        alone): a barrier under the process group's timeout, ``--dist-timeout``. With gloo a
        wait past it raises, and becomes one line that names the option instead of a backend
        traceback per process; NCCL's watchdog ends the processes after the same timeout."""
        if not self.enabled:
            return
        try:
            self.barrier()
        except RuntimeError as exc:  # torch.distributed.DistBackendError is one
            if peer_lost(exc):  # another process failed: not a timeout
                raise
            raise ConfigError(
                f"dist_timeout: waited more than {timeout_s:g} s for every process to finish "
                f"{what}; rank 0 evaluates while the others wait, so raise --dist-timeout above "
                "the evaluation's time or evaluate less often (--eval-every)"
            ) from exc

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


class _Params(nn.Module):
    """A module holding an optimiser group's parameters (shared, not copied) for DDP."""

    def __init__(self, params: list[nn.Parameter]):
        super().__init__()
        self.params = nn.ParameterList(params)


class GradientSync:
    """One DDP reducer per optimiser group; ``before_backward`` arms it with the loss.

    Construction broadcasts rank 0's parameters (DDP does) and registers DDP's gradient hooks.
    The reducer averages: with per-rank mean losses over batch ``B``, every rank ends with the
    gradient of the mean over the global batch ``N * B``.
    """

    def __init__(
        self,
        groups: Mapping[str, list[nn.Parameter]],
        device: torch.device,
        *,
        find_unused: bool = True,
    ):
        from torch.nn.parallel import DistributedDataParallel

        self.ddp = {
            name: DistributedDataParallel(
                _Params(params),
                device_ids=[device] if device.type == "cuda" else None,
                # the traversal from the loss marks parameters it does not reach (a frozen
                # model, an unused branch, a group's second loss) so each backward reduces
                # exactly what it produced; a plugin whose every group's backward reaches every
                # parameter declares so (``ddp_unused_parameters = False``) and saves it
                find_unused_parameters=find_unused,
            )
            for name, params in groups.items()
            if params
        }

    def before_backward(self, group: str, loss: Tensor) -> None:
        ddp = self.ddp.get(group)
        if ddp is not None:
            ddp.reducer.prepare_for_backward([loss])


def convert_sync_batchnorm(models: Mapping[str, nn.Module]) -> dict[str, nn.Module]:
    """Batch norm -> SyncBatchNorm: statistics over the global batch (GPU processes only)."""
    return {k: nn.SyncBatchNorm.convert_sync_batchnorm(m) for k, m in models.items()}
