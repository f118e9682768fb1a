"""Every plugin on a CUDA GPU: trains in each precision, and its checkpoint runs on the GPU.

For each discovered plugin (or ``--plugins``), on its tiny synthetic dataset (the one the
contract test uses), trains ``--steps`` steps on ``cuda`` through the real engine in each
``--amp`` mode (``auto`` is bf16 on GPUs with native bf16; ``fp16`` uses a gradient scaler per
optimiser), with channels-last and cuDNN autotuning as by default, then loads the checkpoint
with ``Translator`` (or ``Sampler`` for generating plugins) on the GPU and on the CPU and
compares their outputs (PSNR of the GPU output against the CPU fp32 one). Prints one row per
plugin and precision: first and last logged losses, whether all were finite, s/step, and the
PSNR. Needs a CUDA device; no downloads.

    python benchmarks/gpu_smoke.py --steps 20
    python benchmarks/gpu_smoke.py --plugins pix2pix cyclegan --amp auto fp16 none --compile
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
import traceback
from pathlib import Path


def psnr(a, b) -> float:  # tensors in [-1, 1]
    mse = float(((a.float() - b.float()) / 2).pow(2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


def one(plugin_name: str, amp: str, args: argparse.Namespace, tmp: Path) -> dict:
    import torch

    from translate.config import GANConfig, TrainConfig, config_from_dict
    from translate.engine.loop import Trainer
    from translate.registry import load_plugin
    from translate.testing import _input_shape, make_dataset

    plugin = load_plugin(plugin_name)
    data = make_dataset(plugin.dataset_kind, tmp / "data")
    cfg = plugin.tiny_config(data)
    run_dir = tmp / f"run-{amp}"
    train_cfg = config_from_dict(
        TrainConfig,
        {
            **plugin.train_defaults,
            "max_steps": args.steps,
            "log_every": 1,
            "sample_every": args.steps,
            "checkpoint_every": args.steps,
            "n_samples": 2,
            "progress": False,
            "device": args.device,
            "amp": amp,
            "compile": args.compile,
            "batch_size": 2,
            "run_dir": run_dir,
        },
    )
    gan_cfg = config_from_dict(GANConfig, dict(plugin.gan_defaults))
    trainer = Trainer(plugin, cfg, train_cfg, gan_cfg, run_dir=run_dir)
    start = time.perf_counter()
    folder = trainer.run()
    cfg = trainer.plugin_cfg  # as completed by finalize_config (label2image's channel count)
    if args.device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [
        {k: v for k, v in r.items() if k not in ("step", "time", "steps_per_s", "lr")}
        for r in records
    ]
    finite = all(math.isfinite(v) for r in losses for v in r.values())
    first_key = next(iter(losses[0]))
    gen = torch.Generator().manual_seed(0)
    if getattr(plugin, "generates", False):
        from translate.inference.sampling import Sampler

        gpu, cpu = (
            Sampler.from_checkpoint(folder, device=d).sample_tensor(4, seed=0).float().cpu()
            for d in (args.device, "cpu")
        )
    else:
        from translate.inference.translator import Translator

        translators = {
            d: Translator.from_checkpoint(folder, device=d, amp=amp if d == args.device else "none")
            for d in (args.device, "cpu")
        }
        x = torch.rand(1, *_input_shape(plugin, cfg, translators["cpu"]), generator=gen) * 2 - 1
        gpu = translators[args.device].translate_tensor(x).float().cpu()
        cpu = translators["cpu"].translate_tensor(x).float().cpu()
    quality = psnr(gpu, cpu)
    return {
        "plugin": plugin_name,
        "amp": amp,
        "precision": trainer.speed_summary(),
        "first": f"{first_key} {losses[0][first_key]:.3f}",
        "last": f"{losses[-1][first_key]:.3f}",
        "finite": finite,
        "s_per_step": seconds,
        "psnr_gpu_vs_cpu": quality,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plugins", nargs="*", help="default: every discovered plugin")
    parser.add_argument("--amp", nargs="+", default=["auto", "fp16"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of this script")
    args = parser.parse_args()
    import torch

    from translate.registry import discover

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_smoke: no CUDA device")
    names = args.plugins or sorted(discover())
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU (dry run)"
    print(f"{where}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    failures = 0
    for name in names:
        for amp in args.amp:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    row = one(name, amp, args, Path(tmp))
                except Exception as exc:  # report and go on: one table for every plugin
                    failures += 1
                    print(f"{name:12} {amp:5} FAILED: {type(exc).__name__}: {exc}")
                    traceback.print_exc(limit=3)
                    continue
            print(
                f"{name:12} {amp:5} {row['precision'][:48]:48} loss {row['first']} -> "
                f"{row['last']} finite={row['finite']} {row['s_per_step'] * 1000:7.1f} ms/step "
                f"PSNR gpu vs cpu {row['psnr_gpu_vs_cpu']:.1f} dB",
                flush=True,
            )
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
