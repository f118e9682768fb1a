"""Where a training step's time goes, and how fast this machine's convolutions can go.

Profiles one step of a plugin's default model (after warm-up steps) with ``torch.profiler`` and
sums self CPU time by kind of operator: convolutions (forward, backward), normalisation, layout
and dtype copies, padding, element-wise, optimiser, loading of the batch (timed apart). Then
times the step's dominant convolution (the ResNet generator's 3x3, 256 -> 256 channels at 64x64,
or the U-Net's 4x4 stride-2 convolution at 128x128) forward and backward in fp32 and bf16 and
prints GFLOP/s. The step's convolution FLOPs (counted by ``FlopCounterMode``, forward and
backward) over the best rate measured give the time the convolutions alone need at this CPU's
ceiling: the floor under the step, against the step's measured time.

    python benchmarks/profile_step.py --plugin cyclegan
    python benchmarks/profile_step.py --plugin pix2pix --amp none --no-channels-last
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from train_speed import write_data

KINDS = (
    ("convolution", ("conv", "mkldnn_convolution")),
    ("normalisation", ("batch_norm", "instance_norm", "group_norm")),
    ("layout/dtype copies", ("copy_", "to_copy", "clone", "contiguous")),
    ("reflection padding", ("reflection_pad",)),
    ("optimiser", ("adam", "zero_grad", "optimizer")),
    ("activations", ("relu", "tanh", "threshold", "leaky")),
    ("losses/element-wise", ("add", "mul", "sub", "abs", "mean", "sum", "div", "sign", "pow")),
)


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, keys in KINDS:
        if any(k in low for k in keys):
            return kind
    return "other"


def profile_step(args: argparse.Namespace) -> tuple[int, float]:
    from torch.profiler import ProfilerActivity, profile

    from translate.engine.loop import prepare

    with tempfile.TemporaryDirectory() as tmp:
        data = write_data(args.plugin, Path(tmp) / "data", args.size)
        trainer = prepare(
            args.plugin,
            **data,
            load_size=args.size,
            crop_size=args.size,
            amp=args.amp,
            channels_last=args.channels_last,
            max_steps=100,
            progress=False,
            run_dir=Path(tmp) / "run",
            sample_every=10**9,
            checkpoint_every=10**9,
            log_every=10**9,
            device="cpu",
        )
        batches = iter(trainer.loader())
        for _ in range(args.warmup):
            trainer.train_step(next(batches))
        plain = []
        for _ in range(args.steps):  # unprofiled steps: the time the FLOP rate is taken over
            batch = next(batches)
            start = time.perf_counter()
            trainer.train_step(batch)
            plain.append(time.perf_counter() - start)
        with FlopCounterMode(display=False) as counter:  # convolutions, forward and backward
            trainer.train_step(next(batches))
        start = time.perf_counter()
        batch = next(batches)
        data_s = time.perf_counter() - start
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            trainer.train_step(batch)
        step_s = time.perf_counter() - start
    totals: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        totals[kind_of(event.key)] += event.self_cpu_time_total / 1e6
    profiled = sum(totals.values())
    print(
        f"{args.plugin} step, {trainer.speed_summary()}, {args.size}x{args.size}: "
        f"{step_s:.3f} s under the profiler; loading the batch {1000 * data_s:.1f} ms"
    )
    print(f"{'operators':22} {'self s':>7} {'share':>6}")
    for kind, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"{kind:22} {seconds:7.3f} {100 * seconds / profiled:5.1f}%")
    if args.table:
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.table))
    flops = counter.get_total_flops()
    median = statistics.median(plain)
    print(
        f"\none step: {flops / 1e9:.1f} GFLOP of convolutions and matrix products (forward and "
        f"backward); median of {args.steps} unprofiled steps {median:.3f} s: "
        f"{flops / median / 1e9:.0f} GFLOP/s achieved"
    )
    return flops, median


def conv_speed(args: argparse.Namespace) -> None:
    """GFLOP/s of the dominant convolution, forward and forward + backward: the best of
    --conv-reps runs per precision (the ceiling this CPU reaches), returned by name."""
    import torch
    from torch import nn

    if args.plugin == "cyclegan":
        conv, shape, what = nn.Conv2d(256, 256, 3, padding=1), (1, 256, 64, 64), "3x3 256->256"
        out_hw = 64 * 64
    else:
        conv, shape, what = nn.Conv2d(64, 128, 4, 2, 1), (1, 64, 128, 128), "4x4/2 64->128"
        out_hw = 64 * 64
    c_out, c_in, kh, kw = conv.weight.shape
    best: dict[str, float] = {}
    flops = 2 * out_hw * c_out * c_in * kh * kw  # one forward
    print(f"\n{what} convolution at {shape[2]}x{shape[3]}: {flops / 1e9:.2f} GFLOP forward")
    print(f"{'precision':18} {'fwd ms':>7} {'GFLOP/s':>8} {'fwd+bwd ms':>10} {'GFLOP/s':>8}")
    for name, dtype, fmt in (
        ("fp32 NCHW", torch.float32, torch.contiguous_format),
        ("fp32 channels-last", torch.float32, torch.channels_last),
        ("bf16 channels-last", torch.bfloat16, torch.channels_last),
    ):
        layer = conv.to(dtype=dtype, memory_format=fmt)
        x = torch.randn(shape, dtype=dtype).contiguous(memory_format=fmt).requires_grad_()
        fwd, both = [], []  # medians printed; the best (ceiling) returned
        for i in range(args.conv_reps + 2):
            start = time.perf_counter()
            with torch.no_grad():
                layer(x)
            mid = time.perf_counter()
            y = layer(x)
            y.backward(torch.ones_like(y))
            end = time.perf_counter()
            if i >= 2:
                fwd.append(mid - start)
                both.append(end - mid)
        f, b = statistics.median(fwd), statistics.median(both)
        print(
            f"{name:18} {1000 * f:7.2f} {flops / f / 1e9:8.0f} {1000 * b:10.2f} "
            f"{3 * flops / b / 1e9:8.0f}"
        )
        best[name] = 3 * flops / min(both)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plugin", default="cyclegan", choices=["pix2pix", "cyclegan"])
    parser.add_argument("--amp", default="auto", choices=["auto", "none", "bf16"])
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="unprofiled steps timed")
    parser.add_argument("--conv-reps", type=int, default=5)
    parser.add_argument("--table", type=int, default=0, help="also print the top N operators")
    args = parser.parse_args()
    step_flops, step_s = profile_step(args)
    best = conv_speed(args)
    precision = "bf16 channels-last" if args.amp != "none" else "fp32 channels-last"
    if not args.channels_last and args.amp == "none":
        precision = "fp32 NCHW"
    ceiling = best[precision]
    print(
        f"\nat the best {precision} convolution rate measured above ({ceiling / 1e9:.0f} GFLOP/s "
        f"forward + backward), the step's {step_flops / 1e9:.1f} GFLOP take at least "
        f"{step_flops / ceiling:.3f} s of the {step_s:.3f} s step; the rest is memory-bound work "
        "(normalisation, casts, the optimiser, element-wise)"
    )


if __name__ == "__main__":
    main()
