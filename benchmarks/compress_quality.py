"""``translate compress`` against its baseline, the paper's Table 1 on a budget (Yu & Pool 2020).

Trains (or takes, ``--parent``) a dense pix2pix model, compresses its generator to each
``--keeps`` ratio twice with the same fine-tuning budget (``--steps``, same seed, same start:
the pruned dense G and the dense D):

* ``distill``: ``translate compress`` (the dense G's outputs as targets next to the usual
  objective, Yu & Pool 2020);
* ``finetune``: ``translate compress --method finetune`` (one-shot pruning + fine-tuning on the
  usual pix2pix objective alone, the baseline),

then prints one table: parameters, GFLOPs per image, ONNX size, median batch-1 latency in
PyTorch and ONNX Runtime on the CPU (``--size``; the models alternate, ``--rounds`` times), and
the val split's L1 (on [0, 1]), PSNR and SSIM (Y) with the images resized to the training crop.

    python benchmarks/compress_quality.py --data ../shared/data/facades --work runs/cq

Every training run is a ``translate`` process with one intra-op thread; ``--jobs`` of them run
at once. Runs already finished in ``--work`` are reused, so a second call only measures. The
default dense model is shrunk so the whole benchmark takes about an hour on two CPU cores:
128x128 crops (resized to 143), a 7-level U-Net with ``--base-channels 32``, a 32-wide PatchGAN,
batch 1, fp32; ``--crop-size 256 --load-size 286 --unet-depth 8 --base-channels 64`` (and more
steps) is the paper's facades model. FID needs Inception weights and is left out.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

METHODS = ("distill", "finetune")


def _translate(*args: str) -> list[str]:
    return [sys.executable, "-m", "translate", *args]


def _finished(run_dir: Path, steps: int) -> Path | None:
    folder = run_dir / "checkpoints" / f"step_{steps:07d}"
    return folder if (folder / "meta.json").exists() else None


def _run_all(commands: list[tuple[str, list[str], Path]], jobs: int) -> None:
    """Run the commands, ``jobs`` at a time; each one's output goes to ``<name>.log``."""
    pending, running = list(commands), []
    while pending or running:
        while pending and len(running) < jobs:
            name, cmd, log = pending.pop(0)
            print(f"[{time.strftime('%H:%M:%S')}] start {name}: {' '.join(cmd[3:])}", flush=True)
            running.append(
                (
                    name,
                    subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT),
                    time.time(),
                )
            )
        for item in list(running):
            name, proc, start = item
            if proc.poll() is not None:
                running.remove(item)
                took = (time.time() - start) / 60
                print(
                    f"[{time.strftime('%H:%M:%S')}] {name}: exit {proc.returncode}, {took:.1f} min",
                    flush=True,
                )
                if proc.returncode:
                    raise SystemExit(f"{name} failed; see its log")
        time.sleep(2)


def val_metrics(checkpoint: Path, data: Path) -> dict[str, float]:
    """Mean L1, PSNR and SSIM over the val split, inputs and targets resized to the model's
    training crop (the scale it was trained at), outputs in fp32."""
    from PIL import Image

    from translate.data.paired import PairedDataset
    from translate.evaluation import eval_folder, paired_protocol
    from translate.inference.translator import Translator

    translator = Translator.from_checkpoint(checkpoint, device="cpu", amp="none")
    cfg = translator.plugin_cfg
    pairs = PairedDataset(eval_folder(data / "val"), direction=cfg.direction, train=False)
    side = (cfg.crop_size, cfg.crop_size)

    def load(i: int) -> tuple[str, Image.Image, Image.Image]:
        source, target = pairs.load_pair(i)
        resize = Image.Resampling.BICUBIC
        return (
            pairs.pairs[i][0].name,
            Image.fromarray(source).resize(side, resize),
            Image.fromarray(target).resize(side, resize),
        )

    result = paired_protocol(translator, (load(i) for i in range(len(pairs))))
    return {
        k: statistics.mean(float(item.metrics[k]) for item in result.items)
        for k in ("L1", "PSNR", "SSIM")
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/facades"))
    parser.add_argument("--work", type=Path, default=Path("runs/compress-quality"))
    parser.add_argument("--parent", type=Path, help="a trained dense pix2pix run to compress")
    parser.add_argument("--direction", default="b2a", help="facades labels -> photo is b2a")
    parser.add_argument("--dense-steps", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=2000, help="fine-tuning budget, each run")
    parser.add_argument("--keeps", type=float, nargs="+", default=[0.5, 0.25])
    parser.add_argument("--load-size", type=int, default=143)
    parser.add_argument("--crop-size", type=int, default=128)
    parser.add_argument("--unet-depth", type=int, default=7)
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--disc-channels", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="seed of the dense run")
    parser.add_argument(
        "--compress-seed", type=int, help="seed of the compression runs (default: the dense's)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="training processes at once")
    parser.add_argument("--size", type=int, default=256, help="image side for the latencies")
    parser.add_argument("--rounds", type=int, default=3, help="latency rounds (alternating)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    quiet = ["--no-progress", "--sample-every", "1000000", "--log-every", "100"]

    parent = args.parent
    if parent is None:
        run = args.work / "dense"
        if _finished(run, args.dense_steps) is None:
            dense = _translate(
                "train", "pix2pix", "--data", str(args.data), "--direction", args.direction,
                "--load-size", str(args.load_size), "--crop-size", str(args.crop_size),
                "--unet-depth", str(args.unet_depth), "--base-channels", str(args.base_channels),
                "--disc-channels", str(args.disc_channels), "--batch-size", "1",
                "--max-steps", str(args.dense_steps), "--threads", "1", "--amp", "none",
                "--seed", str(args.seed), "--run-dir", str(run), *quiet,
            )  # fmt: skip
            _run_all([("dense", dense, args.work / "dense.log")], 1)
        parent = run

    runs: dict[tuple[float, str], Path] = {}
    todo = []
    for keep in args.keeps:
        for method in METHODS:
            suffix = "" if args.compress_seed is None else f"-s{args.compress_seed}"
            run = args.work / f"{method}-{keep:g}{suffix}"
            runs[keep, method] = run
            if _finished(run, args.steps) is None:
                cmd = _translate(
                    "compress", str(parent), "--keep", str(keep), "--method", method,
                    "--steps", str(args.steps), "--run-dir", str(run),
                )  # fmt: skip
                if args.compress_seed is not None:
                    cmd += ["--seed", str(args.compress_seed)]
                todo.append((f"{method} {keep:g}", cmd, args.work / f"{run.name}.log"))
    _run_all(todo, args.jobs)

    from translate.compress_report import measure
    from translate.engine.checkpoint import resolve_checkpoint

    models = {"dense": resolve_checkpoint(parent)}
    for (keep, method), run in runs.items():
        models[f"{method} {keep:g}"] = _finished(run, args.steps)  # type: ignore[assignment]
    quality = {name: val_metrics(path, args.data) for name, path in models.items()}
    # latencies under a shared machine's noise: every round measures every model in turn
    costs: dict[str, list] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, path in models.items():
            costs[name].append(measure(path, name, size=args.size, repeats=5))

    dense_cost = costs["dense"][0]
    dense_torch = statistics.median(c.torch_ms for c in costs["dense"])
    dense_ort = statistics.median(c.ort_ms for c in costs["dense"])
    from translate.engine.checkpoint import read_meta

    meta = read_meta(models["dense"])
    pc, tc = meta["plugin_config"], meta["train_config"]
    print(
        f"\npix2pix {pc['direction']} on {Path(pc['data']).name}: dense {meta['step']} steps "
        f"({pc['crop_size']}px crops from {pc['load_size']}, U-Net depth {pc['unet_depth']}, "
        f"ngf {pc['base_channels']}, ndf {pc['disc_channels']}, batch {tc['batch_size']}, "
        f"seed {tc['seed']}); each compressed model {args.steps} steps from the dense G and D "
        f"(seed {tc['seed'] if args.compress_seed is None else args.compress_seed}); "
        f"val L1/PSNR/SSIM at {pc['crop_size']}x{pc['crop_size']}; latency at "
        f"{args.size}x{args.size}, batch 1, CPU, median of {args.rounds} rounds x 5\n"
    )
    print("| model | params | GFLOPs | ONNX MB | torch ms | ORT ms | val L1 | PSNR | SSIM |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in models:
        c = costs[name][0]
        torch_ms = statistics.median(x.torch_ms for x in costs[name])
        ort_ms = statistics.median(x.ort_ms for x in costs[name])
        q = quality[name]
        ratio = "" if name == "dense" else f" ({c.params / dense_cost.params:.3f}x)"
        lat = "" if name == "dense" else f" ({torch_ms / dense_torch:.2f}x)"
        lat_ort = "" if name == "dense" else f" ({ort_ms / dense_ort:.2f}x)"
        print(
            f"| {name} | {c.params:,}{ratio} | {c.gflops:.2f} | {c.onnx_bytes / 1e6:.1f} | "
            f"{torch_ms:.1f}{lat} | {ort_ms:.1f}{lat_ort} | {q['L1']:.4f} | {q['PSNR']:.2f} | "
            f"{q['SSIM']:.4f} |"
        )


if __name__ == "__main__":
    main()
