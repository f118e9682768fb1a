"""Training speed and peak memory of a plugin's default model, variants side by side, and the
reference implementation's step in the same run.

Each variant runs in its own process (so peak memory is its own) on synthetic 256x256 images,
batch 1, for --steps timed steps after --warmup untimed ones, through the real engine (Trainer,
plugin train_step, optimisers). Data loading (decode + augment) is timed apart from the step.
Prints the median seconds/step, the first step (compilation included), data ms/batch, peak
resident memory and the ratios to the first variant.

    python benchmarks/train_speed.py --plugin pix2pix
    python benchmarks/train_speed.py --plugin cyclegan --variants default fp32 --rounds 3
    python benchmarks/train_speed.py --plugin cyclegan --reference --rounds 3 --steps 4

``--reference`` also runs the reference (pytorch-CycleGAN-and-pix2pix, found in
``../shared/reference`` or ``--reference-dir``: its own ``set_input`` + ``optimize_parameters``,
data pre-loaded, its defaults, timed by ``reference_step.py``) before each round of our
variants, so the ratios compare steps measured minutes apart on the same machine; with several
--rounds the table gives each variant's median over rounds and the median of the per-round
ratios (robust to other load on a shared machine).

``--device cuda`` runs every variant and the reference on the GPU (the reference in fp32, as its
users run it): steps are timed between CUDA synchronisations and the memory column is the CUDA
allocator's peak instead of the process's resident memory.

    python benchmarks/train_speed.py --device cuda --plugin cyclegan --reference --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {
    # the engine's defaults: --amp auto (bf16 on CPUs with AVX-512 BF16/AMX), channels-last
    "default": {},
    "compile": {"compile": True},
    # issue 41's launch-bound GPU path: no host sync inside a step, then CUDA graphs on top
    "deferred": {"deferred_sync": True},
    "graphs": {"compile": True, "compile_mode": "reduce-overhead", "deferred_sync": True},
    "graphs+fp32": {
        "compile": True,
        "compile_mode": "reduce-overhead",
        "deferred_sync": True,
        "amp": "none",
    },
    "fp32": {"amp": "none", "channels_last": False},
    "fp32+cl": {"amp": "none", "channels_last": True},
    "bf16": {"amp": "bf16", "channels_last": False},
    "bf16+cl": {"amp": "bf16", "channels_last": True},
    # CycleGAN's generator calls: six separate (the CPU default) or four, identity batched in
    # (the CUDA default)
    "6calls": {},
    "4calls": {},
}
# ../shared/reference from the project root (or from the folder above a worktree's)
REFERENCE_DIR = next(
    (
        up / "shared" / "reference"
        for up in Path(__file__).resolve().parents[2:4]
        if (up / "shared" / "reference").is_dir()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "reference",
)


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: reset by exec, unlike ru_maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_data(plugin_name: str, root: Path, size: int, n: int = 4) -> dict[str, str]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    if plugin_name == "cyclegan":
        for d in ("A", "B"):
            (root / d).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), np.uint8)).save(
                    root / d / f"{i}.jpg", quality=90
                )
        return {"domain_a": str(root / "A"), "domain_b": str(root / "B")}
    (root / "train").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, 2 * size, 3), np.uint8)).save(
            root / "train" / f"{i}.jpg", quality=90
        )
    return {"data": str(root)}


def bench_trainer(
    plugin: str, data: dict[str, str], options: dict, args: argparse.Namespace, run_dir: Path
):
    """A Trainer of ``plugin`` at ``args.size`` for ``args.warmup + args.steps`` steps on
    ``args.device``, writing no samples, checkpoints or logs."""
    from translate.engine.loop import prepare

    return prepare(
        plugin,
        **data,
        **options,
        load_size=args.size,
        crop_size=args.size,
        max_steps=args.warmup + args.steps,
        batch_size=args.batch_size,
        progress=False,
        run_dir=run_dir,
        sample_every=10**9,
        checkpoint_every=10**9,
        log_every=10**9,
        device=args.device,
    )


def child(args: argparse.Namespace) -> None:
    import torch

    options = dict(VARIANTS[args.variant])
    if args.variant in ("6calls", "4calls"):
        import translate_cyclegan  # noqa: F401  (the plugin module below is its submodule)

        batched = args.variant == "4calls"
        sys.modules["translate_cyclegan.plugin"].BATCH_INDEPENDENT_CALLS = batched
    if args.threads:
        options["threads"] = args.threads
    with tempfile.TemporaryDirectory() as tmp:
        data = write_data(args.plugin, Path(tmp) / "data", args.size, max(4, args.batch_size))
        trainer = bench_trainer(args.plugin, data, options, args, Path(tmp) / "run")
        cuda = trainer.device.type == "cuda"
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        batches = iter(trainer.loader())
        step_times, data_times = [], []
        for _ in range(args.warmup + args.steps):
            sync()
            start = time.perf_counter()
            batch = next(batches)
            loaded = time.perf_counter()
            trainer.train_step(batch)
            sync()
            done = time.perf_counter()
            data_times.append(loaded - start)
            step_times.append(done - loaded)
    timed = step_times[args.warmup :]
    print(
        json.dumps(
            {
                "variant": args.variant,
                "precision": trainer.speed_summary(),
                "s_per_step": statistics.median(timed),
                "first_step_s": step_times[0],
                "data_ms": 1000 * statistics.median(data_times),
                "peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mb(),
                "threads": torch.get_num_threads(),
            }
        )
    )


def reference(args: argparse.Namespace, data: Path, out: Path) -> dict:
    """One run of the reference's training step (``reference_step.py`` around its modules)."""
    ref_dir = args.reference_dir.resolve()  # the harness runs in the reference folder
    code = ref_dir / "pytorch-CycleGAN-and-pix2pix"
    common = ["--checkpoints_dir", str(out / "ck"), "--n_epochs", "1", "--n_epochs_decay", "0"]
    common += ["--print_freq", "1", "--display_freq", "100000", "--update_html_freq", "100000"]
    common += ["--save_latest_freq", "100000", "--save_epoch_freq", "1", "--no_html"]
    common += ["--batch_size", str(args.batch_size)]
    if args.plugin == "cyclegan":
        model = ["--dataroot", str(data / "cyclegan"), "--name", "sbs_c", "--model", "cycle_gan"]
    else:
        model = ["--dataroot", str(data / "pix2pix"), "--name", "sbs_p", "--model", "pix2pix"]
        model += ["--direction", "AtoB"]
    result = out / "reference.json"
    env = {
        **os.environ,
        "REF": str(code),
        "BENCH_WARMUP": str(args.warmup),
        "BENCH_ITERS": str(args.steps),
        "BENCH_OUT": str(result),
        "BENCH_DEVICE": args.device,
    }
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    cmd = [sys.executable, str(Path(__file__).with_name("reference_step.py")), *model, *common]
    done = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"reference failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    r = json.loads(result.read_text())
    return {
        "variant": "reference",
        "precision": f"fp32, {r['device']}, {r['torch_threads']} threads",
        "s_per_step": r["median_s"],
        "first_step_s": float("nan"),
        "data_ms": float("nan"),
        "peak_mb": r["peak_mb"],
    }


def run_variant(args: argparse.Namespace, name: str) -> dict | None:
    cmd = [sys.executable, __file__, "--plugin", args.plugin, "--variant", name]
    for flag in ("steps", "warmup", "size", "threads", "device", "batch_size"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"{name}: failed: {out.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plugin", default="pix2pix", choices=["pix2pix", "cyclegan"])
    parser.add_argument(
        "--variants", nargs="+", default=["default", "fp32"], choices=list(VARIANTS)
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="alternating repeats")
    parser.add_argument(
        "--threads", type=int, default=0, help="intra-op threads (0: the engine's default)"
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--reference", action="store_true", help="time the reference too")
    parser.add_argument("--reference-dir", type=Path, default=REFERENCE_DIR)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        child(args)
        return
    if args.reference and args.size != 256:
        parser.error("--reference runs the reference's defaults: --size 256")
    names = (["reference"] if args.reference else []) + list(args.variants)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        if args.reference:
            subprocess.run(
                [
                    sys.executable,
                    str(args.reference_dir / "gen_data.py"),
                    f"{tmp}/data",
                    str(max(12, 2 * args.batch_size)),
                    "2",
                ],
                check=True,
                capture_output=True,
            )
        for r in range(1, args.rounds + 1):
            for name in names:
                if name == "reference":
                    row = reference(args, Path(tmp) / "data", Path(tmp) / f"ref{r}")
                else:
                    row = run_variant(args, name)
                if row is None:
                    continue
                runs[name].append(row)
                print(
                    f"round {r} {name:10} {row['s_per_step']:7.3f} s/step "
                    f"{row['peak_mb']:6.0f} MB  {row['precision']}",
                    flush=True,
                )
    names = [n for n in names if runs[n]]
    if not names:
        return
    base = names[0]
    print(
        f"\n{args.plugin} training, batch {args.batch_size}, {args.size}x{args.size}, "
        f"{args.steps} timed steps after {args.warmup}, {args.rounds} round(s); medians over "
        f"rounds; ratios are per round (same round, alternating), then the median"
    )
    print(
        f"{'variant':10} {'s/step':>7} {'img/s':>7} {'1st step':>8} {'data ms':>7} {'peak MB':>7} "
        f"{'time vs ' + base:>16} {'memory vs ' + base:>18}"
    )
    for name in names:
        rows = runs[name]
        pairs = list(zip(runs[base], rows, strict=False))
        time_ratio = statistics.median(r["s_per_step"] / b["s_per_step"] for b, r in pairs)
        mem_ratio = statistics.median(r["peak_mb"] / b["peak_mb"] for b, r in pairs)
        print(
            f"{name:10} {statistics.median(r['s_per_step'] for r in rows):7.3f} "
            f"{args.batch_size / statistics.median(r['s_per_step'] for r in rows):7.1f} "
            f"{statistics.median(r['first_step_s'] for r in rows):8.2f} "
            f"{statistics.median(r['data_ms'] for r in rows):7.1f} "
            f"{statistics.median(r['peak_mb'] for r in rows):7.0f} "
            f"{time_ratio:15.2f}x {mem_ratio:17.2f}x"
        )


if __name__ == "__main__":
    main()
