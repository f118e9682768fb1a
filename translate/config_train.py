"""``TrainConfig``: the core training loop's settings (steps, batch, optimiser, schedule,
precision, checkpoints, logging), shared by every plugin; re-exported by ``translate.config``.

This module must stay light: no torch import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from translate.fields import SEED_MAX, check, check_int_range, opt

AmpMode = Literal["auto", "none", "bf16", "fp16"]
DeviceName = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class TrainConfig:
    """Core training-loop settings shared by every plugin."""

    max_steps: int = opt(10_000, "Number of optimisation steps (one batch each).")
    batch_size: int = opt(
        1, "Images per batch and process: the global batch is this x the number of processes."
    )
    grad_accum: int = opt(
        1,
        "Gradient accumulation: micro-batches of --batch-size per optimisation step and "
        "process (global batch = batch x processes x this); keeps a run's global batch on "
        "fewer GPUs.",
    )
    lr: float = opt(2e-4, "Learning rate of the generator (and of every group without its own).")
    lr_d: float | None = opt(None, "Discriminator learning rate (TTUR); default: same as --lr.")
    beta1: float = opt(0.5, "Adam beta1.")
    beta2: float = opt(0.999, "Adam beta2.")
    lr_decay_start: float = opt(
        0.5, "Fraction of --max-steps after which the LR decays linearly to zero (1 = constant)."
    )
    seed: int = opt(0, "Random seed (data order, augmentation, initialisation).")
    device: DeviceName = opt("auto", "Device: auto (CUDA when available), cpu or cuda.")
    amp: AmpMode = opt(
        "auto",
        "Mixed precision: auto (bf16 where the hardware has it: CPUs with AVX-512 BF16 or AMX, "
        "CUDA compute capability >= 8; fp16 with a gradient scaler on older CUDA GPUs; else "
        "fp32), none (fp32), bf16 (CPU or CUDA) or fp16 (CUDA). The choice is printed at start.",
    )
    channels_last: bool = opt(
        True, "Channels-last (NHWC) memory format for models and batches (faster convolutions)."
    )
    threads: int = opt(
        0,
        "Intra-op CPU threads; 0: $OMP_NUM_THREADS when set, else one per physical core "
        "(hyper-threads slow convolutions down).",
    )
    compile: bool = opt(
        False,
        "Compile the models with torch.compile (inductor): a one-off compile time for faster "
        "steps; benchmarks/train_speed.py --variants default compile measures both.",
    )
    compile_mode: str = opt(
        "default",
        "torch.compile's mode with --compile: default, reduce-overhead (CUDA graphs: one launch "
        "per captured region, for launch-bound small-batch GPU steps) or max-autotune.",
    )
    deferred_sync: bool = opt(
        False,
        "Read the losses and their finite check on the host only every --log-every steps and "
        "before a save, not every step (no device sync inside a GPU step). A non-finite loss is "
        "then found up to --log-every steps late; nothing non-finite is saved.",
    )
    workers: int = opt(0, "Data-loading worker processes (0: load in the training process).")
    log_every: int = opt(10, "Append metrics to metrics.jsonl every N steps.")
    sample_every: int = opt(500, "Write a PNG sample grid every N steps.")
    checkpoint_every: int = opt(1000, "Write a checkpoint every N steps (and always at the end).")
    keep_checkpoints: int = opt(2, "How many recent checkpoints to keep on disk.")
    n_samples: int = opt(4, "Rows in each sample grid.")
    run_dir: Path | None = opt(None, "Run folder; default runs/<plugin>-<timestamp>.")
    progress: bool = opt(True, "Show a progress bar.")
    eval_every: int = opt(
        0,
        "Every N steps, save a checkpoint and run the plugin's evaluation protocol on the "
        "validation data; figures go to metrics.jsonl as eval_<metric> (0: never). FID/KID and "
        "LPIPS need $TRANSLATE_INCEPTION_WEIGHTS / $TRANSLATE_LPIPS_WEIGHTS. Distributed runs: "
        "rank 0 evaluates while the other processes wait, at most --dist-timeout seconds.",
    )
    keep_best: str | None = opt(
        None,
        "With --eval-every: keep the checkpoint with the best value of this metric (e.g. L1, "
        "FID, PSNR) as checkpoints/best; lower is better except PSNR/SSIM.",
    )
    tensorboard: bool | None = opt(
        None,
        "Write TensorBoard event files to <run>/tensorboard (scalars, samples, configs); "
        "default: on when the tensorboard package is installed.",
    )
    sync_bn: bool = opt(
        False,
        "Distributed runs on GPUs: batch norm uses the statistics of the global batch "
        "(SyncBatchNorm). Matters when the per-process batch is small, e.g. pix2pix's batch "
        "norm at batch 1 per GPU; no effect in a single process.",
    )
    dist_timeout: float = opt(
        600.0,
        "Distributed runs: seconds a process waits for the others (a collective, a checkpoint "
        "being written, rank 0's --eval-every evaluation) before the run fails instead of "
        "hanging.",
    )

    def __post_init__(self) -> None:
        check(self.dist_timeout > 0, "dist_timeout", "must be positive")
        for name in (
            "max_steps",
            "batch_size",
            "grad_accum",
            "log_every",
            "sample_every",
            "checkpoint_every",
        ):
            check(getattr(self, name) >= 1, name, "must be at least 1")
        check(self.keep_checkpoints >= 1, "keep_checkpoints", "must be at least 1")
        check(self.workers >= 0, "workers", "must be 0 or more")
        check(self.n_samples >= 1, "n_samples", "must be at least 1")
        check(self.eval_every >= 0, "eval_every", "must be 0 (never) or more")
        check(self.keep_best is None or self.eval_every > 0, "keep_best", "needs --eval-every N")
        check(self.lr > 0, "lr", "must be positive")
        check(self.lr_d is None or self.lr_d > 0, "lr_d", "must be positive")
        check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1/beta2", "must be in [0, 1)")
        check(0 <= self.lr_decay_start <= 1, "lr_decay_start", "must be in [0, 1]")
        check(self.device in ("auto", "cpu", "cuda"), "device", "must be auto, cpu or cuda")
        check(
            self.amp in ("auto", "none", "bf16", "fp16"), "amp", "must be auto, none, bf16 or fp16"
        )
        check(
            self.compile_mode in COMPILE_MODES,
            "compile_mode",
            f"must be one of {', '.join(COMPILE_MODES)}",
        )
        check(self.threads >= 0, "threads", "must be 0 (physical cores) or more")
        check_int_range(self.seed, "seed", 0, SEED_MAX)

    def reads_device_at(self, step: int) -> bool:
        """Whether step ``step`` reads values from the device with --deferred-sync: a log
        line, a checkpoint, an evaluation or the last step."""
        every = (self.log_every, self.checkpoint_every, self.eval_every or self.max_steps)
        return step == self.max_steps or any(step % n == 0 for n in every)


#: torch.compile modes offered by --compile-mode.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")

#: Inference precision (run, serve, the Python API, export parity; ``engine.device``): fp32 by
#: default, so the same image gives the same bytes every way a model is run.
DEFAULT_AMP = "none"
INFERENCE_AMP_MODES = ("none", "auto", "bf16", "fp16")
#: Help text for the ``--amp`` option of ``run`` and ``serve`` (one wording for both).
AMP_HELP = (
    "Inference precision: none (fp32, the default: the same pixels from run, serve and the "
    "Python API), bf16 (CPU or CUDA), fp16 (CUDA) or auto (bf16 where the CPU or GPU has it "
    "natively, else fp32)."
)
