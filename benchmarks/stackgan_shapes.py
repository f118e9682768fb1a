"""stackgan on synthetic captioned shapes: the prompt accuracy of issue 40 (colour *and* shape of
held-out prompts, read by rule; the target is 70%, chance 1/16) at each checkpoint of a longer
run than the learning test's, over seeds.

For each seed: ``--images`` shapes (``translate.text.synthetic``: 4 colours x 4 shapes at
random positions, 32 px) captioned with three templates, the text encoder DAMSM-pretrained
200 steps, then ``--steps`` GAN steps of batch ``--batch``; every ``--every`` steps, 8 samples
of each of the 16 prompts written with the fourth, held-out template ("a red circle") are read
by ``read_shape`` (``translate.evaluation_text.template_samples``, ``prompt_accuracy``). The
model is the learning tests' (``translate.text.synthetic.STACKGAN_SHAPES_MODEL``: widths 32,
text 64-d, condition 16-d, z 16-d); ``--set KEY=VALUE`` changes a plugin option, ``--gan
KEY=VALUE`` the objective's options (default ``diff_augment=translation``; giving ``--gan``
replaces it; values read as JSON when they parse).

    python benchmarks/stackgan_shapes.py                  # the plugin README's best CPU setting:
                                                          # 8192 images, DiffAugment translation,
                                                          # 10000 steps, seeds 0 1 2
    python benchmarks/stackgan_shapes.py --seeds 0 --steps 3000 --every 1000 --set kl_weight=0
    python benchmarks/stackgan_shapes.py --generator gigagan --set g_channels=8 --device cuda

Prints a row per checkpoint (joint, colour, shape, seconds since the GAN started) and, for the
last one, how each prompt's shape was read (true -> read: count). On the 2-core development
machine one run takes about 25 minutes at one thread (about 7 steps/s); ``--device cuda`` runs
the same on a GPU.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any


def key_values(pairs: list[str]) -> dict[str, Any]:
    """``["kl_weight=0", "diff_augment=translation"]`` -> {"kl_weight": 0, ...} (JSON values
    where they parse, else the string)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"error: {pair!r}: expected KEY=VALUE")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out


def read_checkpoint(path: Path) -> tuple[dict[str, float], Counter[tuple[str, str]]]:
    """The held-out template's prompt accuracy of a checkpoint, and its shape confusion."""
    from translate.evaluation_text import prompt_accuracy, template_samples
    from translate.inference.sampling import Sampler
    from translate.text.synthetic import TEMPLATES, read_shape

    samples, labels = template_samples(Sampler.from_checkpoint(path), TEMPLATES[0])
    pairs = zip(samples, labels, strict=True)
    confusion = Counter((label[1], read_shape(image)[1]) for image, label in pairs)
    return prompt_accuracy(samples, labels)[1], confusion


def run_seed(seed: int, root: Path, args: Any) -> None:
    import torch

    from translate.engine.loop import prepare
    from translate.text.synthetic import STACKGAN_SHAPES_MODEL, TEMPLATES, make_captioned_shapes

    torch.manual_seed(seed)
    data = root / "data"
    make_captioned_shapes(data, args.images, size=32, seed=seed, templates=TEMPLATES[1:])
    trainer = prepare(
        "stackgan",
        data=data,
        run_dir=root / "run",
        generator=args.generator,
        seed=seed,
        max_steps=args.steps,
        batch_size=args.batch,
        progress=False,
        device=args.device,
        threads=args.threads,
        lr_decay_start=1.0,
        sample_every=10**9,
        checkpoint_every=args.every,
        keep_checkpoints=10**6,
        log_every=100,
        **{**STACKGAN_SHAPES_MODEL, **key_values(args.set), **key_values(args.gan)},
    )
    start = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - start
    checkpoints = sorted(p for p in (root / "run" / "checkpoints").glob("step_*") if p.is_dir())
    confusion: Counter[tuple[str, str]] = Counter()
    for path in checkpoints:
        figures, confusion = read_checkpoint(path)
        step = int(path.name.split("_")[1])
        print(
            f"| {seed} | {step} | {figures['prompt_accuracy']:.3f} | "
            f"{figures['colour_accuracy']:.3f} | {figures['shape_accuracy']:.3f} | "
            f"{seconds * step / args.steps:.0f} |",
            flush=True,
        )
    read = ", ".join(f"{a}->{b} {n}" for (a, b), n in sorted(confusion.items()))
    print(f"seed {seed}, last checkpoint, shape true->read: {read}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", default="stackgan", choices=["stackgan", "gigagan"])
    parser.add_argument("--images", type=int, default=8192)
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--every", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--gan", nargs="*", default=["diff_augment=translation"], metavar="KEY=VALUE"
    )
    parser.add_argument("--keep", type=Path, help="keep the runs in this folder")
    args = parser.parse_args()
    kept = [args.keep / f"seed{seed}" for seed in args.seeds] if args.keep else []
    taken = next((p for p in kept if p.exists()), None)
    if taken is not None:  # an earlier run (and its data) is never overwritten
        raise SystemExit(f"error: {taken}: exists; give another --keep folder")
    print(
        f"stackgan {args.generator}, {args.images} images, {args.steps} steps of {args.batch}, "
        f"{args.device}; options {key_values(args.set)}, objective {key_values(args.gan)}\n"
        "| seed | step | joint (chance 0.062) | colour | shape | seconds |\n"
        "|---|---|---|---|---|---|",
        flush=True,
    )
    from translate.errors import TranslateError

    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            try:
                run_seed(seed, (args.keep or Path(tmp)) / f"seed{seed}", args)
            except TranslateError as exc:  # a bad --set / --gan value: one line
                raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
