"""Training speed and peak memory of a plugin's default model, variants side by side.

Each variant runs in its own process (so peak RSS is its own) on synthetic 256x256 pairs, batch
1, for --steps timed steps after --warmup untimed ones, through the real engine (Trainer,
plugin train_step, optimisers). Prints seconds/step, steps/s, peak RSS and the speed ratio to the
first variant.

    python benchmarks/train_speed.py --plugin pix2pix --threads 2
    python benchmarks/train_speed.py --plugin cyclegan --variants fp32 bf16

Reference (pytorch-CycleGAN-and-pix2pix on this 2-core CPU, batch 1, 256x256): pix2pix
0.82 s/step and 1.9 GB; CycleGAN 11.4 s/step and 4.1 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "fp32": {"amp": "none", "channels_last": False},
    "fp32+cl": {"amp": "none", "channels_last": True},
    "bf16": {"amp": "bf16", "channels_last": False},
    "bf16+cl": {"amp": "bf16", "channels_last": True},
}


def write_data(plugin_name: str, root: Path, size: int) -> dict[str, str]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    if plugin_name == "cyclegan":
        for d in ("A", "B"):
            (root / d).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), np.uint8)).save(
                    root / d / f"{i}.png"
                )
        return {"domain_a": str(root / "A"), "domain_b": str(root / "B")}
    (root / "train").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (size, 2 * size, 3), np.uint8)).save(
            root / "train" / f"{i}.png"
        )
    return {"data": str(root)}


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from translate.engine.loop import prepare

    variant = VARIANTS[args.variant]
    with tempfile.TemporaryDirectory() as tmp:
        data = write_data(args.plugin, Path(tmp) / "data", args.size)
        trainer = prepare(
            args.plugin,
            **data,
            load_size=args.size,
            crop_size=args.size,
            amp=variant["amp"],
            channels_last=variant["channels_last"],
            max_steps=args.warmup + args.steps,
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
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step(next(batches))
        elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"variant": args.variant, "s_per_step": elapsed / args.steps, "peak_mb": peak_mb}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plugin", default="pix2pix")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        child(args)
        return
    rows = []
    for name in args.variants:
        cmd = [
            sys.executable,
            __file__,
            "--plugin",
            args.plugin,
            "--variant",
            name,
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--size",
            str(args.size),
            "--threads",
            str(args.threads),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name}: failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    if not rows:
        return
    base = rows[0]["s_per_step"]
    print(
        f"{args.plugin} training, batch 1, {args.size}x{args.size}, {args.threads} threads, "
        f"{args.steps} timed steps"
    )
    ratio = "speed vs " + rows[0]["variant"]
    print(f"{'variant':10} {'s/step':>8} {'steps/s':>8} {'peak MB':>8} {ratio:>14}")
    for r in rows:
        print(
            f"{r['variant']:10} {r['s_per_step']:8.3f} {1 / r['s_per_step']:8.2f} "
            f"{r['peak_mb']:8.0f} {base / r['s_per_step']:13.2f}x"
        )


if __name__ == "__main__":
    main()
