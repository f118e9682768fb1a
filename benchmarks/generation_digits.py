"""Generation on scikit-learn's bundled digits: how digit-like and how on-class the samples are.

Trains the small models of ``translate.testing_digits`` and prints, for each: CPU seconds of
training, the mean max-probability that a logistic-regression classifier fitted on the real
digits gives to 500 samples (against uniform noise and the real digits themselves), and for
the conditional models the share of class-k samples classified as k (its mean over classes, and
the worst class). The biggan rows are cgan with ``--generator biggan`` (and its residual
discriminator) and ``--ortho-reg 1e-4``.

    python benchmarks/generation_digits.py                       # every row below
    python benchmarks/generation_digits.py --only biggan          # cgan --generator biggan rows
    python benchmarks/generation_digits.py --only dcgan --steps 3000 --seeds 0 1

Runs on one thread (``--threads``); figures vary with the seed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

#: (row name, plugin, model options, GAN options)
BIGGAN = {"generator": "biggan", "embedding_dim": 16}
MODELS = [
    ("dcgan", "dcgan", {}, {}),
    ("cgan projection", "cgan", {"conditioning": "projection"}, {}),
    ("cgan acgan", "cgan", {"conditioning": "acgan"}, {}),
    ("cgan concat", "cgan", {"conditioning": "concat"}, {}),
    ("biggan projection", "cgan", {**BIGGAN, "conditioning": "projection"}, {"ortho_reg": 1e-4}),
    ("biggan acgan", "cgan", {**BIGGAN, "conditioning": "acgan"}, {"ortho_reg": 1e-4}),
    (
        "biggan G + dcgan D projection",
        "cgan",
        {**BIGGAN, "discriminator": "dcgan", "conditioning": "projection"},
        {"ortho_reg": 1e-4},
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="row names (prefixes) to run")
    parser.add_argument("--steps", type=int, help="training steps (default: the tests')")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from translate.testing_digits import DigitJudge, evaluate, train_digits

    torch.set_num_threads(args.threads)
    judge = DigitJudge()
    print(
        f"judge: real digits {judge.confidence_real():.3f}, uniform noise "
        f"{judge.noise_confidence():.3f} (mean max-probability)"
    )
    train = {"max_steps": args.steps} if args.steps else {}
    for row, plugin, model, gan in MODELS:
        if args.only and not any(row.startswith(o) for o in args.only):
            continue
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                start = time.process_time()
                run = train_digits(plugin, Path(tmp), seed=seed, model=model, train=train, gan=gan)
                seconds = time.process_time() - start
                figures = evaluate(run, judge)
            shown = ", ".join(f"{k} {v:.3f}" for k, v in figures.items())
            print(f"{row:29s} seed {seed}: train {seconds:5.1f} CPU s, {shown}", flush=True)


if __name__ == "__main__":
    main()
