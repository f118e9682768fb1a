"""Data-parallel scaling: images/s on 1 and N processes, and the all-reduce share of a step.

Each configuration is one run of N worker processes started by torch's elastic launcher (as
``translate train --nproc-per-node N``), training the plugin's model through the real engine on
synthetic images, batch ``--batch-size`` per process. Printed per process count:

* images/s over every process (global batch x steps / slowest rank's time);
* the speed-up over 1 process;
* the all-reduce share: the same N-process run again with DDP's communication replaced by a
  no-op hook; ``1 - t(no-op) / t(all-reduce)`` is the fraction of a step that gradient
  all-reduce adds (what it costs after overlapping with the backward pass).

    python benchmarks/distributed_scaling.py --plugin pix2pix --nprocs 1 2 --size 128

On a CPU machine the processes share its cores, so this shows the overhead of distribution, not
a speed-up; on a machine with N GPUs (``--device cuda``, NCCL) it shows the scaling.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any


def write_data(root: Path, size: int, n: int = 8) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 255, (size, 2 * size, 3), np.uint8)
        Image.fromarray(pixels).save(root / "train" / f"{i}.png")


def _no_comm(state: Any, bucket: Any) -> Any:
    """A DDP communication hook that communicates nothing (the gradients stay local)."""
    import torch

    future: torch.futures.Future = torch.futures.Future()
    future.set_result(bucket.buffer())
    return future


def worker(args: argparse.Namespace, data: str, run_dir: str, skip_comm: bool) -> float:
    """One rank: warm up, then time ``args.steps`` training steps; returns seconds."""
    import torch

    from translate.engine.loop import prepare

    torch.set_num_threads(args.threads)
    trainer = prepare(
        args.plugin,
        data=data,
        load_size=args.size,
        crop_size=args.size,
        unet_depth=min(8, args.size.bit_length() - 1),  # the U-Net's input multiple: size
        batch_size=args.batch_size,
        max_steps=args.warmup + args.steps,
        device=args.device,
        progress=False,
        run_dir=run_dir,
        sample_every=10**9,
        checkpoint_every=10**9,
        log_every=10**9,
    )
    if skip_comm and trainer.gradient_sync is not None:
        # DDP checks the hook's annotations as objects (this module postpones them)
        _no_comm.__annotations__ = {
            "state": object,
            "bucket": torch.distributed.GradBucket,
            "return": torch.futures.Future[torch.Tensor],
        }
        for ddp in trainer.gradient_sync.ddp.values():
            ddp.register_comm_hook(None, _no_comm)
    batches = iter(trainer.loader())
    for _ in range(args.warmup):
        trainer.train_step(next(batches))
    trainer.dist.barrier()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step(next(batches))
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    trainer.dist.close()
    return seconds


def measure(args: argparse.Namespace, nproc: int, data: Path, skip_comm: bool) -> float:
    """Seconds for ``args.steps`` steps on ``nproc`` processes (the slowest rank)."""
    from translate.engine.distributed import launch, quiet_launcher_logs

    quiet_launcher_logs()
    with tempfile.TemporaryDirectory() as tmp:
        times = launch(nproc, worker, args, str(data), str(Path(tmp) / "run"), skip_comm)
    return max(times.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugin", default="pix2pix", choices=["pix2pix"])
    parser.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_data(data, args.size)
        print(
            f"{args.plugin} {args.size}x{args.size}, batch {args.batch_size} per process, "
            f"{args.steps} timed steps, {args.threads} thread(s) per process, {args.device}"
        )
        print(f"{'processes':>9} {'images/s':>9} {'speed-up':>8} {'all-reduce share':>16}")
        base = None
        for nproc in args.nprocs:
            seconds = measure(args, nproc, data, skip_comm=False)
            rate = nproc * args.batch_size * args.steps / seconds
            base = base or rate
            share = "-"
            if nproc > 1:
                without = measure(args, nproc, data, skip_comm=True)
                share = f"{max(0.0, 1 - without / seconds):.1%}"
            print(f"{nproc:>9} {rate:>9.2f} {rate / base:>8.2f} {share:>16}")


if __name__ == "__main__":
    main()
