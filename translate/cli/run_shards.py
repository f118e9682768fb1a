"""``translate run`` on several processes: ``--nproc-per-node N`` on one machine, or under
``torchrun`` on several (each process reads ``RANK``/``WORLD_SIZE`` from the environment).

The inputs are sharded without any communication: every process lists the same files in the
same order and plans the same output names (``translate.inference.outputs``), then takes one
contiguous block of whole batches (``shard_block``), so every input is translated by exactly
one process and written once, atomically. For images of one size the batches are those of one
process, so the outputs are identical to a one-process run's. ``--skip-existing`` skips inputs
whose output exists already (a complete file: writes are atomic), so a preempted job rerun
with the same command completes only the rest. On CUDA each process of a machine uses its own
GPU (``LOCAL_RANK``).
"""

from __future__ import annotations

import sys

import typer

__all__ = ["command_line", "launch_run", "pick_gpu", "shard_block"]


def shard_block(n: int, rank: int, world: int, batch_size: int) -> range:
    """Rank ``rank``'s inputs among ``n``: a contiguous block of whole batches, so one-size
    inputs are batched exactly as by one process."""
    per = -(-n // (world * batch_size)) * batch_size
    return range(min(n, rank * per), min(n, (rank + 1) * per))


def pick_gpu(local_rank: int) -> None:
    """Each process of a machine on its own GPU (the torch backend's ``cuda`` device)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())


def command_line(ctx: typer.Context, drop: str = "nproc_per_node") -> list[str]:
    """The ``translate run`` arguments ``ctx`` was parsed from, less ``drop``: what every
    worker runs."""
    argv: list[str] = []
    options: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name == drop or value is None or value == param.default:
            continue
        if param.param_type_name == "argument":
            argv += [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
            continue
        name = next(o for o in param.opts if o.startswith("--"))
        if getattr(param, "is_flag", False):
            secondary = getattr(param, "secondary_opts", [])
            if value or secondary:
                options.append(name if value else secondary[0])
            continue
        options += [name, str(value)]
    return argv + options + list(ctx.args)


def launch_run(nproc: int, argv: list[str]) -> int:
    """``translate run ARGV`` in ``nproc`` local processes; the exit code (the first failing
    process's, which printed its own error)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from translate.engine.launcher import launch, quiet_launcher_logs

    quiet_launcher_logs()
    try:
        codes = launch(nproc, _worker, argv)
    except ChildFailedError as exc:  # a crash, or a stop signal
        rank, failure = exc.get_first_failure()
        received = getattr(exc, "received", None)
        if failure.exitcode > 0:
            return failure.exitcode
        if received:
            return 128 + received
        typer.echo(
            f"error: process {rank} failed ({failure.message or failure.exitcode})", err=True
        )
        return 1
    return next((c for _, c in sorted(codes.items()) if c), 0)


def _worker(argv: list[str]) -> int:
    """One process: the ``translate`` command itself, with this process's shard; returns its
    exit code. (A failed input is reported at the end and the command's code returned, not
    raised: the launcher would end the other processes, which still have inputs to do.)"""
    import runpy

    from translate.engine.launcher import die_with_parent

    die_with_parent()
    sys.argv = ["translate", "run", *argv]
    try:
        runpy.run_module("translate", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
