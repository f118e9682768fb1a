"""Time the reference's own training step (pytorch-CycleGAN-and-pix2pix) on the CPU or a GPU.

Our harness around the reference's modules, run by ``train_speed.py --reference`` in its own
process: it parses the reference's ``train.py`` options, pre-loads the batches (so decoding is
not timed), builds the model with the reference's ``create_model`` + ``setup`` and times its
``set_input`` + ``optimize_parameters``, as its users run it (fp32; on CUDA with the reference's
own settings, so no cuDNN autotuning unless it sets it). On CUDA each step is timed between two
``torch.cuda.synchronize()`` calls and the peak is the CUDA allocator's; on the CPU it is the
process's peak resident memory.

    BENCH_DEVICE=cuda REF=DIR/pytorch-CycleGAN-and-pix2pix BENCH_OUT=out.json \
        python benchmarks/reference_step.py --dataroot ... --model cycle_gan ...
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time

REF = os.environ["REF"]
sys.path.insert(0, REF)
WARMUP = int(os.environ.get("BENCH_WARMUP", 3))
ITERS = int(os.environ.get("BENCH_ITERS", 20))
DEVICE = os.environ.get("BENCH_DEVICE", "cpu")

import torch  # noqa: E402
from data import create_dataset  # noqa: E402  (the reference's modules)
from models import create_model  # noqa: E402
from options.train_options import TrainOptions  # noqa: E402


def main() -> None:
    if DEVICE == "cuda" and not torch.cuda.is_available():
        raise SystemExit("reference_step: BENCH_DEVICE=cuda but CUDA is not available")
    opt = TrainOptions().parse()
    # the reference moves its networks to cuda:0 whenever CUDA is present (init_net)
    opt.device = torch.device("cuda:0" if DEVICE == "cuda" else "cpu")
    opt.num_threads = 0
    batches = []
    while len(batches) < WARMUP + ITERS:
        for batch in create_dataset(opt):
            batches.append(batch)
            if len(batches) == WARMUP + ITERS:
                break
    model = create_model(opt)
    model.setup(opt)
    cuda = opt.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times = []
    for i, batch in enumerate(batches):
        sync()
        start = time.perf_counter()
        model.set_input(batch)
        model.optimize_parameters()
        sync()
        if i >= WARMUP:
            times.append(time.perf_counter() - start)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    result = {
        "model": opt.model,
        "device": str(opt.device),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "median_s": statistics.median(times),
        "times_s": times,
        "peak_mb": peak,
    }
    print(json.dumps(result))
    if os.environ.get("BENCH_OUT"):
        with open(os.environ["BENCH_OUT"], "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
