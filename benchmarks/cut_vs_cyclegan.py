"""CUT and FastCUT beside CycleGAN: training step time and peak memory, in one run.

Each model trains in its own process (so its peak memory is its own) with its default config
(the paper's networks: ResNet-9 generators, 70x70 PatchGANs; CUT's anti-aliased layers and
PatchNCE heads), on synthetic 256x256 unpaired images, batch 1, through the real engine
(Trainer, the plugin's train_step, the optimisers), for --steps timed steps after --warmup
untimed ones; --rounds alternate the models. Prints per model the median seconds per step,
the peak resident memory of the process (VmHWM) and the part the training steps added to the
memory held after building (models, optimisers, data), then the ratios to CycleGAN, per round
and their median (robust to other load on a shared machine).

    python benchmarks/cut_vs_cyclegan.py --threads 2 --steps 3 --rounds 2
    python benchmarks/cut_vs_cyclegan.py --device cuda --steps 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import bench_trainer, peak_rss_mb, write_data

MODELS = {"cyclegan": ("cyclegan", {}), "cut": ("cut", {}), "fastcut": ("cut", {"mode": "fastcut"})}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(args: argparse.Namespace) -> None:
    import torch

    plugin, options = MODELS[args.model]
    if args.threads:
        options = {**options, "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_data("cyclegan", Path(tmp) / "data", args.size)  # trainA/B-like folders
        trainer = bench_trainer(plugin, data, options, args, Path(tmp) / "run")
        cuda = trainer.device.type == "cuda"
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        batches = iter(trainer.loader())
        first = next(batches)
        built = torch.cuda.memory_allocated() / 2**20 if cuda else rss_mb()
        times = []
        for i in range(args.warmup + args.steps):
            batch = first if i == 0 else next(batches)
            sync()
            start = time.perf_counter()
            trainer.train_step(batch)
            sync()
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mb()
    row = {
        "model": args.model,
        "s_per_step": statistics.median(times[args.warmup :]),
        "peak_mb": peak,
        "step_mb": peak - built,
        "precision": trainer.speed_summary(),
        "params_m": sum(p.numel() for m in trainer.models.values() for p in m.parameters()) / 1e6,
    }
    print(json.dumps(row))


def run_child(args: argparse.Namespace, model: str) -> dict | None:
    cmd = [sys.executable, __file__, "--model", model]
    for flag in ("steps", "warmup", "size", "threads", "device"):
        cmd += [f"--{flag}", str(getattr(args, flag))]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"{model}: failed: {out.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (0: default)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model:
        child(args)
        return
    runs: dict[str, list[dict]] = {m: [] for m in MODELS}
    for r in range(1, args.rounds + 1):
        for model in MODELS:
            row = run_child(args, model)
            if row is None:
                continue
            runs[model].append(row)
            print(
                f"round {r} {model:9} {row['s_per_step']:7.3f} s/step  peak {row['peak_mb']:6.0f}"
                f" MB  added by steps {row['step_mb']:6.0f} MB  {row['params_m']:.1f} M params"
                f"  {row['precision']}",
                flush=True,
            )
    if not runs["cyclegan"]:
        return
    print(
        f"\n{args.device}, batch 1, {args.size}x{args.size}, {args.steps} timed steps after "
        f"{args.warmup}, {args.threads or 'default'} threads, {args.rounds} round(s); "
        "ratios to CycleGAN per round, then the median"
    )
    head = ("s/step", "peak MB", "step MB")
    print(f"{'model':9} " + " ".join(f"{h:>8}" for h in head) + "   x time   x peak   x step")
    base = runs["cyclegan"]
    for model, rows in runs.items():
        if not rows:
            continue
        pairs = list(zip(rows, base, strict=False))
        ratio = {
            k: statistics.median(a[k] / b[k] for a, b in pairs)
            for k in ("s_per_step", "peak_mb", "step_mb")
        }
        med = {
            k: statistics.median(r[k] for r in rows) for k in ("s_per_step", "peak_mb", "step_mb")
        }
        print(
            f"{model:9} {med['s_per_step']:8.3f} {med['peak_mb']:8.0f} {med['step_mb']:8.0f} "
            f"{ratio['s_per_step']:8.2f} {ratio['peak_mb']:8.2f} {ratio['step_mb']:8.2f}"
        )


if __name__ == "__main__":
    main()
