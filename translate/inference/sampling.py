"""``Sampler``: a generating model (``plugin.generates``: dcgan, cgan) as a source of images.

``Sampler.from_checkpoint(run)(64, seed=0, truncation=0.5)`` draws latents z ~ N(0, I) of the
plugin's ``latent_shape`` (for a class-conditional plugin, ``plugin.classes(cfg)`` non-empty,
its last K channels are the one-hot of a class: ``class_name=`` or drawn uniformly), runs the
inference module (the generator) on them and returns PIL images; ``save_samples`` writes them
as one grid PNG or a folder of PNGs. What ``translate sample`` does.

The truncation trick (Brock et al. 2019, "Large Scale GAN Training for High Fidelity Natural
Image Synthesis", Sec. 3.1): every latent entry with |z| > T is resampled until none is, which
trades diversity for fidelity (T -> 0 collapses towards the sample of z = 0).
"""

from __future__ import annotations

import difflib
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


def did_you_mean(name: str, known: list[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest known name (ignoring case), or ``""``."""
    lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.5)
    return f"; did you mean {lower[close[0]]!r}?" if close else ""


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
        classes = getattr(plugin, "classes", None)
        self.classes: list[str] = list(classes(self.plugin_cfg)) if callable(classes) else []

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

    def class_index(self, name: str) -> int:
        """The index of class ``name``; an unknown name raises one line with a suggestion."""
        if not self.classes:
            raise ConfigError(
                f"--class: {self.loaded.source} is unconditional ({self.plugin.name}); it has no "
                "classes"
            )
        if name not in self.classes:
            hint = did_you_mean(name, self.classes)
            raise ConfigError(
                f"--class: unknown class {name!r}{hint} (this model's classes: "
                f"{', '.join(self.classes)})"
            )
        return self.classes.index(name)

    def latents(
        self,
        n: int,
        *,
        seed: int | None = None,
        truncation: float | None = None,
        class_name: str | None = None,
    ) -> Tensor:
        """(n, *latent_shape) latents on the CPU; the same ``seed`` gives the same latents.
        Truncation applies to the noise, not to a class one-hot."""
        if n < 1:
            raise ConfigError(f"n: must be at least 1, got {n}")
        k = len(self.classes)
        index = self.class_index(class_name) if class_name is not None else None
        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(seed)
        head = (self.latent_shape[0] - k, *self.latent_shape[1:])
        z = truncated_normal((n, *head), truncation, gen)
        if not k:
            return z
        labels = (
            torch.full((n,), index)
            if index is not None
            else torch.randint(0, k, (n,), generator=gen)
        )
        onehot = torch.nn.functional.one_hot(labels, k).float()
        onehot = onehot.view(n, k, *([1] * (len(head) - 1))).expand(n, k, *head[1:])
        return torch.cat([z, onehot], 1)

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
        self,
        n: int,
        *,
        seed: int | None = None,
        truncation: float | None = None,
        class_name: str | None = None,
    ) -> Tensor:
        z = self.latents(n, seed=seed, truncation=truncation, class_name=class_name)
        return self.generate(z)

    def __call__(
        self,
        n: int,
        *,
        seed: int | None = None,
        truncation: float | None = None,
        class_name: str | None = None,
    ) -> list[Image.Image]:
        """``n`` new images (PIL, the plugin's postprocess), of ``class_name`` when given."""
        x = self.sample_tensor(n, seed=seed, truncation=truncation, class_name=class_name)
        return self.plugin.postprocess(x, self.plugin_cfg)


def sample(
    checkpoint: Path | str,
    n: int = 64,
    *,
    seed: int | None = None,
    truncation: float | None = None,
    class_name: str | None = None,
    device: str = "cpu",
) -> list[Image.Image]:
    """``n`` images from a generating model's checkpoint (``Sampler``)."""
    sampler = Sampler.from_checkpoint(checkpoint, device=device)
    return sampler(n, seed=seed, truncation=truncation, class_name=class_name)


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
