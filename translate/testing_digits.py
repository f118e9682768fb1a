"""A learning-test kit for generating plugins on scikit-learn's bundled handwritten digits.

1797 8x8 images in 10 classes, shipped inside scikit-learn (no download; the ``dev`` extra):
``make_digits`` writes them as PNGs (one folder, or a folder per class), ``DigitJudge`` is a
logistic-regression classifier fitted on them that scores generated images (how confidently
they are digits, and which), and ``train_digits`` trains a small model of a generating plugin
on them. ``tests/test_generation_digits.py`` asserts on the figures and
``benchmarks/generation_digits.py`` prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: A small model that learns the digits on CPU in seconds (8x8 images, two extra 3x3 layers
#: for capacity at that size), with its training budget.
DIGITS_MODEL: dict[str, Any] = {
    "image_size": 8,
    "latent_dim": 16,
    "base_channels": 32,
    "extra_layers": 2,
    "flip": False,
}
DIGITS_TRAIN: dict[str, Any] = {"max_steps": 1200, "batch_size": 64, "lr": 4e-4}
DIGITS_GAN: dict[str, Any] = {"ema_decay": 0.99}
#: A CPU-sized StyleGAN2 at 16x16 (z and w 32, at most 32 channels, 2 mapping layers): the
#: stylegan2 learning test and ``benchmarks/stylegan2_small_data.py``.
STYLEGAN2_DIGITS_MODEL: dict[str, Any] = {
    "image_size": 16,
    "latent_dim": 32,
    "channel_base": 512,
    "channel_max": 32,
    "mapping_layers": 2,
    "flip": False,
}

#: A CPU-sized ProGAN growing 4x4 -> 8x8 -> 16x16 on the digits (z 32, at most 32 channels),
#: each fade and stabilisation 1600 images (50 steps of 32): the progan learning test.
PROGAN_DIGITS_MODEL: dict[str, Any] = {
    "image_size": 16,
    "latent_dim": 32,
    "fmap_base": 256,
    "fmap_max": 32,
    "stable_kimg": 1.6,
    "fade_kimg": 1.6,
    "flip": False,
}


def make_digits(root: Path, *, by_class: bool = False, names: Sequence[str] = ()) -> Path:
    """scikit-learn's bundled handwritten digits (1797 8x8 images, no download) as RGB PNGs in
    ``root`` (``root/<class>/`` with ``by_class``; ``names`` renames classes 0..9). For
    learning tests of generating plugins; needs scikit-learn (the ``dev`` extra)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (digits.images / 16 * 255).round().astype(np.uint8)  # (N, 8, 8), 0..16 -> 0..255
    for i, (image, label) in enumerate(zip(pixels, digits.target, strict=True)):
        name = names[label] if names else str(label)
        folder = root / name if by_class else root
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.repeat(image[..., None], 3, 2)).save(folder / f"{i:04d}.png")
    return root


class DigitJudge:
    """A logistic-regression classifier fitted on the real digits (images in [0, 1]): judges
    whether generated 8x8 images look like digits (``confidence``: the mean max-probability)
    and which (``predict``)."""

    def __init__(self) -> None:
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression

        digits = load_digits()
        self.real = digits.images.reshape(len(digits.images), -1) / 16
        self.labels = digits.target
        self.model = LogisticRegression(max_iter=2000).fit(self.real, self.labels)

    @staticmethod
    def features(images: Any) -> np.ndarray:
        """(N, C, H, W) tensors in [-1, 1] or PIL images -> (N, 64) grey levels in [0, 1]
        (larger images are area-averaged down to 8x8)."""
        if isinstance(images, list):
            grey = [im.convert("L").resize((8, 8), Image.Resampling.BOX) for im in images]
            arr = np.stack([np.asarray(im, np.float64) / 255 for im in grey])
        else:
            from torch.nn.functional import adaptive_avg_pool2d

            x = adaptive_avg_pool2d(images.detach().float().cpu().mean(1, keepdim=True), 8)
            arr = (x[:, 0].numpy().astype(np.float64) + 1) / 2
        return arr.reshape(len(arr), -1).clip(0, 1)

    def confidence(self, images: Any) -> float:
        return float(self.model.predict_proba(self.features(images)).max(1).mean())

    def predict(self, images: Any) -> np.ndarray:
        return self.model.predict(self.features(images))

    def confidence_real(self) -> float:
        """The judge's confidence on the real digits it was fitted on."""
        return float(self.model.predict_proba(self.real).max(1).mean())

    def noise_confidence(self, n: int = 500, seed: int = 0) -> float:
        """The judge's confidence on uniform noise images (what a model that learnt nothing
        scores, roughly)."""
        rng = np.random.default_rng(seed)
        return float(self.model.predict_proba(rng.uniform(0, 1, (n, 64))).max(1).mean())


def train_digits(
    plugin_name: str,
    root: Path,
    *,
    seed: int = 0,
    model: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
    gan: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
    trainer_hook: Any = None,
) -> Path:
    """Train ``plugin_name`` (dcgan: one folder; cgan: a folder per class) on the digits under
    ``root`` with the ``DIGITS_*`` settings (overridden by ``model``, ``train``, ``gan``; ``base``
    replaces ``DIGITS_MODEL`` for a plugin with other options) and the engine's defaults
    otherwise; ``trainer_hook(trainer)`` sees the trainer before it trains (e.g. to score the
    untrained model). Returns the run folder."""
    import dataclasses

    import torch

    from translate.config import GANConfig, TrainConfig, config_from_dict
    from translate.engine.loop import Trainer
    from translate.registry import load_plugin

    plugin = load_plugin(plugin_name)
    # a class-conditional plugin (cgan: "unpaired", a folder per class) trains on a folder per
    # class; an unconditional one ("single": dcgan, infogan, whose codes are unsupervised) on one
    by_class = plugin.dataset_kind != "single"
    data = root / "digits"
    if not data.exists():
        make_digits(data, by_class=by_class)
    torch.manual_seed(seed)
    model_base = DIGITS_MODEL if base is None else base
    # the small model's settings that this plugin's config has (infogan has no widths)
    known = {f.name for f in dataclasses.fields(plugin.config_cls)}
    shared = {k: v for k, v in model_base.items() if k in known}
    cfg = config_from_dict(plugin.config_cls, {"data": data, **shared, **(model or {})})
    run_dir = root / "run"
    options = {
        **DIGITS_TRAIN,
        "progress": False,
        "device": "cpu",
        "run_dir": run_dir,
        "sample_every": 10**6,
        "checkpoint_every": 10**6,
        "log_every": 100,
        "seed": seed,  # the engine seeds every RNG from the run's seed
        **(train or {}),
    }
    train_cfg = config_from_dict(TrainConfig, options)
    gan_cfg = config_from_dict(GANConfig, {**plugin.gan_defaults, **DIGITS_GAN, **(gan or {})})
    trainer = Trainer(plugin, cfg, train_cfg, gan_cfg, run_dir=run_dir)
    if trainer_hook is not None:
        trainer_hook(trainer)
    trainer.run()
    return run_dir


def digits_kid(images: Any, n: int = 500, seed: int = 0) -> float:
    """KID (Binkowski et al. 2018: unbiased MMD^2, cubic polynomial kernel) between generated
    images ((N, C, H, W) in [-1, 1] or PIL) and ``n`` real digits, on the 64 grey levels of
    ``DigitJudge.features`` (no Inception network: nothing to download). 0 for the real
    distribution; a model that learnt nothing scores far above."""
    import torch
    from sklearn.datasets import load_digits

    from translate.metrics.fidelity import kid

    digits = load_digits()
    rng = np.random.default_rng(seed)
    real = digits.images.reshape(len(digits.images), -1)[rng.permutation(len(digits.images))[:n]]
    fake = DigitJudge.features(images)
    to = torch.from_numpy
    return kid(to(fake.astype(np.float64)), to(real / 16), subsets=100, seed=seed)


def evaluate(run: Path, judge: DigitJudge, n: int = 500) -> dict[str, float]:
    """``confidence`` of ``n`` samples of a run and, for a conditional model (classes named
    0-9), ``class_accuracy`` (mean over classes of the share of class-k samples judged k) and
    ``worst_class`` (the lowest share)."""
    from translate.inference.sampling import Sampler

    sampler = Sampler.from_checkpoint(run)
    figures = {"confidence": judge.confidence(sampler.sample_tensor(n, seed=0))}
    if sampler.classes:
        hits = []
        for name in sampler.classes:
            x = sampler.sample_tensor(n // len(sampler.classes), seed=1, class_name=name)
            hits.append(float((judge.predict(x) == int(name)).mean()))
        figures["class_accuracy"] = float(np.mean(hits))
        figures["worst_class"] = float(min(hits))
    return figures
