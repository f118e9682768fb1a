"""Does mixed precision train as well as fp32? Same steps, same seed, L1 on the val split.

Trains pix2pix on a paired dataset (default: facades, labels -> photos) once per precision with
the same seed and steps, then translates every val image with each final checkpoint in fp32 and
prints the mean L1 to the target (images in [-1, 1]). Each precision runs with ``--seeds``
seeds: the seed-to-seed spread of one precision is the noise that the difference between
precisions (paired by seed) is compared against.

    python benchmarks/precision_quality.py --data ../shared/data/facades --steps 200 --seeds 3

The default model is shrunk to a 128x128 crop and a 7-level U-Net so that a run takes minutes
on a CPU; ``--crop-size 256 --unet-depth 8`` trains the paper's model.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def val_l1(checkpoint: Path, data: Path, direction: str, limit: int) -> float:
    import torch
    from PIL import Image

    from translate.inference.translator import Translator

    translator = Translator.from_checkpoint(checkpoint, device="cpu", amp="none")
    plugin, cfg = translator.plugin, translator.plugin_cfg
    files = sorted((data / "val").glob("*.*"))[:limit]
    losses = []
    for path in files:
        pair = Image.open(path).convert("RGB")
        w, h = pair.size
        left, right = pair.crop((0, 0, w // 2, h)), pair.crop((w // 2, 0, w, h))
        source, target = (left, right) if direction == "a2b" else (right, left)
        source = source.resize((cfg.crop_size, cfg.crop_size), Image.Resampling.BICUBIC)
        target = target.resize((cfg.crop_size, cfg.crop_size), Image.Resampling.BICUBIC)
        x = plugin.preprocess([source], cfg)  # (1, 3, H, W) in [-1, 1]
        y = translator.translate_tensor(x)
        t = plugin.preprocess([target], cfg)
        losses.append(float(torch.nn.functional.l1_loss(y, t)))
    return statistics.mean(losses)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/facades"))
    parser.add_argument("--direction", default="b2a")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--crop-size", type=int, default=128)
    parser.add_argument("--unet-depth", type=int, default=7)
    parser.add_argument("--precisions", nargs="+", default=["none", "auto"])
    parser.add_argument("--seeds", type=int, default=3, help="runs per precision (seeds 0..N-1)")
    parser.add_argument("--val-images", type=int, default=100)
    args = parser.parse_args()

    from translate.engine.loop import prepare

    runs = [(amp, seed) for seed in range(args.seeds) for amp in args.precisions]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for amp, seed in runs:
            trainer = prepare(
                "pix2pix",
                data=str(args.data),
                direction=args.direction,
                load_size=args.crop_size + args.crop_size // 8,
                crop_size=args.crop_size,
                unet_depth=args.unet_depth,
                max_steps=args.steps,
                amp=amp,
                seed=seed,
                progress=False,
                run_dir=Path(tmp) / f"{amp}-{seed}",
                sample_every=10**9,
                checkpoint_every=10**9,
            )
            start = time.perf_counter()
            folder = trainer.run()
            seconds = time.perf_counter() - start
            l1 = val_l1(folder, args.data, args.direction, args.val_images)
            results.append((trainer.precision, seed, seconds, l1))
            print(
                f"{trainer.precision:50} seed {seed}: {args.steps} steps in {seconds:6.0f} s, "
                f"val L1 {l1:.4f}",
                flush=True,
            )
    by_precision: dict[str, list[float]] = {}
    for precision, _, _, l1 in results:
        by_precision.setdefault(precision, []).append(l1)
    for precision, values in by_precision.items():
        spread = statistics.stdev(values) if len(values) > 1 else float("nan")
        print(
            f"{precision:50} val L1 {statistics.mean(values):.4f} +- {spread:.4f} (sd over seeds)"
        )
    if len(by_precision) == 2 and args.seeds > 1:
        first, second = by_precision.values()
        diffs = [b - a for a, b in zip(first, second, strict=True)]
        print(
            f"difference, second - first, paired by seed: {statistics.mean(diffs):+.4f} "
            f"(per seed {', '.join(f'{d:+.4f}' for d in diffs)}); seed-to-seed sd of the "
            f"first: {statistics.stdev(first):.4f}"
        )


if __name__ == "__main__":
    main()
