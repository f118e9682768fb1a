"""``Sampler``: a generating model (``plugin.generates``, e.g. dcgan) as a source of images.

``Sampler.from_checkpoint(run)(64, seed=0, truncation=0.5)`` draws latents z ~ N(0, I) of the
plugin's ``latent_shape``, runs the inference module (the generator) on them and returns PIL
images; ``save_samples`` writes them as one grid PNG or a folder of PNGs. What
``translate sample`` does.

The truncation trick (Brock et al. 2019, "Large Scale GAN Training for High Fidelity Natural
Image Synthesis", Sec. 3.1): every latent entry with |z| > T is resampled until none is, which
trades diversity for fidelity (T -> 0 collapses towards the sample of z = 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from translate.errors import ConfigError, OutputError

#: Latents drawn per forward pass (bounds memory for large ``n``).
CHUNK = 256
GRID_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def truncated_normal(
    shape: tuple[int, ...], truncation: float | None, generator: torch.Generator
) -> Tensor:
    """N(0, 1) samples of ``shape``; with ``truncation`` T, entries with |z| > T resampled
    until every entry lies in [-T, T] (a truncated normal)."""
    z = torch.randn(shape, generator=generator)
    if truncation is None:
        return z
    if not truncation > 0:
        raise ConfigError(f"truncation: must be > 0, got {truncation}")
    while True:
        outside = z.abs() > truncation
        count = int(outside.sum())
        if count == 0:
            return z
        z[outside] = torch.randn(count, generator=generator)


class Sampler:
    """Draw images from a loaded generating model (a ``translate.loading.LoadedModel``)."""

    def __init__(self, loaded: Any) -> None:
        plugin = loaded.plugin
        if not getattr(plugin, "generates", False):
            raise ConfigError(
                f"{loaded.source}: plugin {plugin.name} translates images; it does not generate "
                "them (use translate run)"
            )
        self.loaded = loaded
        self.plugin = plugin
        self.plugin_cfg = loaded.plugin_cfg
        self.module = loaded.module
        self.latent_shape = tuple(plugin.latent_shape(self.plugin_cfg))

    @classmethod
    def from_checkpoint(
        cls, path: Path | str, *, device: str = "cpu", options: Mapping[str, Any] | None = None
    ) -> Sampler:
        """A run or checkpoint folder of a generating plugin (EMA weights when present)."""
        from translate.loading import load_checkpoint

        return cls(load_checkpoint(path, options=options, device=device))

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def latents(self, n: int, *, seed: int | None = None, truncation: float | None = None):
        """(n, *latent_shape) latents on the CPU; the same ``seed`` gives the same latents."""
        if n < 1:
            raise ConfigError(f"n: must be at least 1, got {n}")
        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(seed)
        return truncated_normal((n, *self.latent_shape), truncation, gen)

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        """Latents (n, *latent_shape) -> images (n, C, H, W) in [-1, 1], float32 on the CPU."""
        if tuple(z.shape[1:]) != self.latent_shape:
            raise ConfigError(
                f"latent: expected shape (n, {', '.join(map(str, self.latent_shape))}), "
                f"got {tuple(z.shape)}"
            )
        outs = [
            self.module(z[i : i + CHUNK].to(self.device)).float().cpu()
            for i in range(0, len(z), CHUNK)
        ]
        return torch.cat(outs)

    def sample_tensor(
        self, n: int, *, seed: int | None = None, truncation: float | None = None
    ) -> Tensor:
        return self.generate(self.latents(n, seed=seed, truncation=truncation))

    def __call__(
        self, n: int, *, seed: int | None = None, truncation: float | None = None
    ) -> list[Image.Image]:
        """``n`` new images (PIL, the plugin's postprocess)."""
        return self.plugin.postprocess(
            self.sample_tensor(n, seed=seed, truncation=truncation), self.plugin_cfg
        )


def sample(
    checkpoint: Path | str,
    n: int = 64,
    *,
    seed: int | None = None,
    truncation: float | None = None,
    device: str = "cpu",
) -> list[Image.Image]:
    """``n`` images from a generating model's checkpoint (``Sampler``)."""
    return Sampler.from_checkpoint(checkpoint, device=device)(n, seed=seed, truncation=truncation)


def grid(images: list[Image.Image], columns: int | None = None) -> Image.Image:
    """Images of one size tiled row by row (``columns`` default: about the square root)."""
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    w, h = images[0].size
    sheet = Image.new("RGB", (columns * w, rows * h))
    for i, image in enumerate(images):
        sheet.paste(image.convert("RGB"), ((i % columns) * w, (i // columns) * h))
    return sheet


def save_samples(images: list[Image.Image], out: Path, *, overwrite: bool = False) -> list[Path]:
    """A grid file when ``out`` ends in an image suffix, else a folder ``out`` of
    ``sample_0000.png`` ...; written atomically, never over an existing file unless
    ``overwrite``. Returns the paths written."""
    from translate.atomic import atomic_path

    out = Path(out)
    if out.suffix.lower() in GRID_SUFFIXES:
        if out.exists() and not overwrite:
            raise OutputError(f"{out}: exists; pass --overwrite to replace it")
        with atomic_path(out) as tmp:
            grid(images).save(tmp, format=Image.registered_extensions()[out.suffix.lower()])
        return [out]
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file; give a folder or a name ending in .png")
    paths = [out / f"sample_{i:04d}.png" for i in range(len(images))]
    taken = [p for p in paths if p.exists()]
    if taken and not overwrite:
        raise OutputError(f"{taken[0]}: exists; pass --overwrite to replace it")
    for image, path in zip(images, paths, strict=True):
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG")
    return paths
