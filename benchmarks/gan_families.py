"""GAN families x stabilisers on the 2-D ring of 8 Gaussians: modes covered, quality, time.

Every run trains the same small MLPs (``translate.engine.ring``) through the code the plugins
use: ``GANObjective``, the engine's model transforms, optimisers, ``TrainContext`` (n_critic,
weight clipping) and EMA. For each combination it prints, per seed and as a mean, the modes
covered (of 8), the share of high-quality samples (within 3 std of a mode) and the training
seconds.

    python benchmarks/gan_families.py                 # every combination, seeds 0 and 1
    python benchmarks/gan_families.py --only hinge --seeds 0 1 2
    python benchmarks/gan_families.py --steps 3000    # a larger budget for every row

Runs on one thread (``--threads``); seconds are wall-clock training time on this machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from typing import Any

#: (row name, GANConfig options, RingTask overrides). The five stable sets asserted by
#: ``tests/test_gan_families.py`` come first, with the test's budgets; then each family alone and
#: with the stabilisers worth comparing, on the default budget (1000 steps).
LONG = {"steps": 4000}
# the test's WGAN-GP budget: slower G, 8x TTUR (the task's optimiser, not the paper's)
WGAN_GP = {"steps": 4000, "lr": 5e-4, "family_defaults": False}
COMBINATIONS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("nonsaturating + R1", {"gan_loss": "nonsaturating", "r1_gamma": 0.1}, {}),
    ("wgan-gp, n_critic 2, lr 5e-4 / 4e-3", {"gan_loss": "wgan-gp", "n_critic": 2}, WGAN_GP),
    ("hinge + SN", {"gan_loss": "hinge", "spectral_norm": "d"}, {}),
    ("rpgan + R1 + R2", {"gan_loss": "rpgan", "r1_gamma": 0.1, "r2_gamma": 0.1}, {}),
    ("lsgan", {"gan_loss": "lsgan"}, {}),
    ("minimax", {"gan_loss": "minimax"}, {}),
    ("nonsaturating", {"gan_loss": "nonsaturating"}, {}),
    ("nonsaturating + R1 lazy 4", {"r1_gamma": 0.1, "penalty_interval": 4}, {}),
    ("nonsaturating + one-centred GP", {"gp_weight": 1.0}, {}),
    ("nonsaturating + SN", {"spectral_norm": "d"}, {}),
    ("nonsaturating + GN", {"gradient_norm": True}, {}),
    ("nonsaturating + label smoothing 0.1", {"label_smoothing": 0.1}, {}),
    ("nonsaturating + instance noise 0.1", {"instance_noise": 0.1}, {}),
    ("nonsaturating + minibatch std", {"minibatch_std": 4}, {}),
    ("nonsaturating + EMA 0.99", {"ema_decay": 0.99}, {}),
    ("nonsaturating, no TTUR (lr_d = lr)", {}, {"lr_d": None}),
    ("lsgan + R1", {"gan_loss": "lsgan", "r1_gamma": 0.1}, {}),
    ("wgan (clip 0.01, RMSprop 5e-5, n_critic 5)", {"gan_loss": "wgan"}, {}),
    ("wgan (same), 4000 steps", {"gan_loss": "wgan"}, LONG),
    ("wgan-gp (paper: Adam 1e-4 (0, 0.9), n_critic 5)", {"gan_loss": "wgan-gp"}, {}),
    ("wgan-gp (paper), 4000 steps", {"gan_loss": "wgan-gp"}, LONG),
    ("wgan-gp (paper), n_critic 2, 4000 steps", {"gan_loss": "wgan-gp", "n_critic": 2}, LONG),
    ("wgan-gp, n_critic 5, lr 5e-4 / 4e-3", {"gan_loss": "wgan-gp", "n_critic": 5}, WGAN_GP),
    ("hinge", {"gan_loss": "hinge"}, {}),
    ("hinge + SN + EMA 0.99", {"gan_loss": "hinge", "spectral_norm": "d", "ema_decay": 0.99}, {}),
    ("hinge + GN", {"gan_loss": "hinge", "gradient_norm": True}, {}),
    ("rpgan", {"gan_loss": "rpgan"}, {}),
    (
        "rpgan + R1 + R2 lazy 4",
        {"gan_loss": "rpgan", "r1_gamma": 0.1, "r2_gamma": 0.1, "penalty_interval": 4},
        {},
    ),
    ("ragan", {"gan_loss": "ragan"}, {}),
    ("ragan + R1", {"gan_loss": "ragan", "r1_gamma": 0.1}, {}),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=None, help="override every row's steps")
    parser.add_argument("--only", default="", help="rows whose name contains this text")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from translate.config import GANConfig
    from translate.engine.ring import RingTask, train_ring

    base = RingTask()
    print(
        f"ring: {base.modes} Gaussians, radius {base.radius}, std {base.std}; MLPs "
        f"{base.layers}x{base.hidden}; batch {base.batch_size}; high quality: within 3 std; "
        f"covered: >= {base.min_share:.0%} of samples; Adam({base.beta1}, {base.beta2}), "
        f"lr {base.lr}, lr_d {base.lr_d}, decay over the second half; threads {args.threads}"
    )
    header = f"{'combination':50} {'steps':>5} {'modes':>9} {'high quality':>13} {'seconds':>8}"
    print(header)
    print("-" * len(header))
    for name, options, overrides in COMBINATIONS:
        if args.only and args.only not in name:
            continue
        task = dataclasses.replace(base, **overrides)
        if args.steps:
            task = dataclasses.replace(task, steps=args.steps)
        results = [
            train_ring(GANConfig(**options), dataclasses.replace(task, seed=s)) for s in args.seeds
        ]
        modes = "/".join(str(r.modes_covered) for r in results)
        quality = statistics.mean(r.high_quality for r in results)
        seconds = statistics.mean(r.seconds for r in results)
        print(f"{name:50} {task.steps:>5} {modes:>9} {quality:>13.2f} {seconds:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
