"""The body of ``translate train <plugin>``: one process, one rank of a torchrun job, or
``--nproc-per-node N`` processes started here with torch's elastic launcher (what ``torchrun
--standalone --nproc-per-node N -m translate train ...`` does, without typing torchrun).

Output in a distributed run comes from rank 0. Errors print once: an error that the ranks
agreed on (a missing folder: ``Distributed.agree``) and Ctrl-C from rank 0; an error in the
options, before the ranks can agree, from the first process of each machine (every rank parses
the same command line); an error of one rank alone (a diverged loss on its shard) names it.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import typer

from translate.errors import ConfigError, TranslateError

PEER_LOST = 1
"""Exit code of a rank that stopped because another process of the job failed or died."""


def train_and_report(
    name: str, resume: Path | None, config: Path | None, options: dict[str, Any]
) -> int:
    """Train; returns the exit code after printing progress and errors the CLI way."""
    from translate.engine.launcher import die_with_parent, env_rank, peer_lost
    from translate.engine.loop import TrainingInterrupted, prepare

    rank, local_rank, world = env_rank()
    main = rank == 0
    trainer = None
    if world > 1 and "TORCHELASTIC_RUN_ID" in os.environ:  # torchrun's or our launcher's worker
        die_with_parent()  # a launcher killed by SIGKILL leaves no worker behind
    if world > 1 and not main:  # every rank runs the same code: rank 0 shows each warning
        warnings.simplefilter("ignore")  # once for the job (Python's; torch's C++ ones remain)
    try:
        trainer = prepare(name, resume=resume, config_file=config, **options)
        if main:
            cfg = trainer.train_cfg
            action = "resuming" if resume else "training"
            where = f"{trainer.device}" if world == 1 else f"{world} processes ({trainer.device})"
            typer.echo(
                f"{action} {name} on {where} from step {trainer.step} to {cfg.max_steps}; "
                f"global batch {trainer.global_batch_size} ({world} x batch {cfg.batch_size}); "
                f"run folder {trainer.run_dir}",
                err=True,
            )
        folder = trainer.run()
    except TranslateError as exc:
        agreed = getattr(exc, "agreed", False) or isinstance(exc, TrainingInterrupted)
        if agreed:
            show = main
        elif trainer is None:  # the options: the same on every rank, so once per machine
            show = local_rank == 0
        else:  # this rank's own failure
            show = True
        if world == 1 or show:
            prefix = "" if main or world == 1 else f"rank {rank}: "
            typer.echo(f"error: {prefix}{exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        if main:
            typer.echo("interrupted", err=True)
        return 130
    except RuntimeError as exc:
        if world == 1 or not peer_lost(exc):
            raise
        # another process failed (and printed its own error) or was killed: stop quietly
        return PEER_LOST
    if main:
        typer.echo(f"done: step {trainer.step}; checkpoint {folder}", err=True)
        typer.echo(str(trainer.run_dir))
    return 0


def _worker(name: str, resume: Path | None, config: Path | None, options: dict) -> int:
    """One process of ``--nproc-per-node``: the CLI's logging, then the same body. A failed
    rank exits non-zero at once, as under torchrun: returning would wait for the launcher to
    collect its result, and the launcher for the other ranks, stuck in a collective."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    code = train_and_report(name, resume, config, options)
    if code:  # at once, without tearing down the process group: gloo's teardown racing the
        sys.stdout.flush()  # peers' could abort the process ("terminate called ...", SIGABRT)
        sys.stderr.flush()
        os._exit(code)
    return 0


def train_command(
    name: str,
    resume: Path | None,
    config: Path | None,
    options: dict[str, Any],
    nproc_per_node: int | None,
) -> None:
    """``translate train``: here, or on ``nproc_per_node`` local processes; exits with the
    first non-zero exit code of any process."""
    from translate.engine.distributed import launched_by_torchrun

    if nproc_per_node is not None and nproc_per_node < 1:
        raise ConfigError("nproc_per_node: must be at least 1")
    if nproc_per_node is None or nproc_per_node == 1:
        code = train_and_report(name, resume, config, options)
    elif launched_by_torchrun():
        raise ConfigError(
            "nproc_per_node: this process is already one of torchrun's workers; give the "
            "process count to torchrun only"
        )
    else:
        code = _launch(nproc_per_node, name, resume, config, options)
    if code:
        raise typer.Exit(code)


def _launch(nproc: int, *args: Any) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from translate.engine.launcher import launch, quiet_launcher_logs

    quiet_launcher_logs()
    try:
        codes = launch(nproc, _worker, *args)
    except SignalException as exc:  # SIGQUIT: torch's agent ended the workers
        return 128 + int(exc.sigval)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        if failure.exitcode > PEER_LOST:  # the worker printed its own one-line error
            return failure.exitcode
        received = getattr(exc, "received", None)
        if received and failure.exitcode < 0:  # a stop signal before training began
            name = signal.Signals(received).name
            typer.echo(f"error: {name} before training began; nothing to save", err=True)
            return 128 + received
        # a crash (its traceback is above) or a worker killed from outside
        why = failure.message or failure.exitcode
        typer.echo(f"error: process {rank} failed ({why})", err=True)
        return 1
    return next((c for _, c in sorted(codes.items()) if c), 0)
