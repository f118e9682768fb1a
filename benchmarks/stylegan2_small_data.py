"""StyleGAN2 on a few hundred images, with and without ADA: the small-data claim of Karras et al.
2020 ("Training GANs with Limited Data"), measured on scikit-learn's bundled digits.

For each seed, trains a CPU-sized stylegan2 at 16x16 on ``--images`` digits (a seeded subset of
the 1797) for a fixed budget of ``--steps`` steps, once with ADA (``--ada-target 0.6``, adjusted
every 4 steps, here at ``--ada-kimg`` so p can move within the budget) and once without, then
prints the KID of 500 samples of each (``translate.testing_digits.digits_kid``: KID on the 64
grey levels, against 500 of all 1797 digits, i.e. the distribution the few hundred were drawn
from; lower is better), the final p, and the CPU seconds. Untrained generators score about the
``step 0`` column.

    python benchmarks/stylegan2_small_data.py                         # 300 images, 3 seeds
    python benchmarks/stylegan2_small_data.py --images 200 --steps 3000 --seeds 0 1 2

Runs on one thread (``--threads``); the machine's load changes the seconds, not the KIDs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def write_subset(root: Path, n: int, seed: int) -> Path:
    """``n`` of the 1797 digits (a permutation by ``seed``) as RGB PNGs in ``root``."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pick = np.random.default_rng(seed).permutation(len(digits.images))[:n]
    root.mkdir(parents=True, exist_ok=True)
    for i in pick:
        grey = (digits.images[i] / 16 * 255).round().astype(np.uint8)
        Image.fromarray(np.repeat(grey[..., None], 3, 2)).save(root / f"{i:04d}.png")
    return root


def train_one(data: Path, run: Path, seed: int, args: Any, ada: bool) -> dict[str, float]:
    import torch
    from translate_stylegan2.sampling import StyleSampler

    from translate.engine.loop import prepare
    from translate.inference.sampling import Sampler
    from translate.testing_digits import STYLEGAN2_DIGITS_MODEL, digits_kid

    trainer = prepare(
        "stylegan2",
        data=data,
        run_dir=run,
        seed=seed,
        max_steps=args.steps,
        batch_size=args.batch,
        progress=False,
        device="cpu",
        threads=args.threads,
        log_every=50,
        sample_every=10**9,
        checkpoint_every=10**9,
        ada_target=0.6 if ada else 0.0,
        ada_kimg=args.ada_kimg,
        **STYLEGAN2_DIGITS_MODEL,
    )
    with torch.no_grad():
        g0 = StyleSampler(trainer.models["G"]).eval()
        kid0 = digits_kid(g0(torch.randn(500, trainer.plugin_cfg.z_dim)))
    start = time.process_time()
    trainer.run()
    seconds = time.process_time() - start
    ada_state = trainer.ctx.gan.ada
    kid = digits_kid(Sampler.from_checkpoint(run).sample_tensor(500, seed=0))
    return {"kid0": kid0, "kid": kid, "p": ada_state.p if ada_state else 0.0, "cpu_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--ada-kimg", type=float, default=20.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rows: dict[str, list[dict[str, float]]] = {"ADA": [], "no ADA": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            data = write_subset(Path(tmp) / f"digits-{seed}", args.images, seed)
            for name in rows:
                result = train_one(data, Path(tmp) / f"{name}-{seed}", seed, args, name == "ADA")
                rows[name].append(result)
                print(
                    f"seed {seed} {name:6s}: KID {result['kid']:.4f} (step 0 {result['kid0']:.4f})"
                    f"  p {result['p']:.3f}  {result['cpu_s']:.0f} CPU s",
                    flush=True,
                )
    print(f"\n{args.images} images, {args.steps} steps of {args.batch}, seeds {args.seeds}")
    print("| | KID (mean +- sd over seeds) | per seed | final p |")
    print("|---|---|---|---|")
    for name, results in rows.items():
        kids = [r["kid"] for r in results]
        sd = statistics.stdev(kids) if len(kids) > 1 else 0.0
        per_seed = ", ".join(f"{k:.4f}" for k in kids)
        ps = ", ".join(f"{r['p']:.2f}" for r in results)
        print(f"| {name} | {statistics.mean(kids):.4f} +- {sd:.4f} | {per_seed} | {ps} |")


if __name__ == "__main__":
    main()
