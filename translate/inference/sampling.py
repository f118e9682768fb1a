"""``Sampler``: a generating model (``plugin.generates``: dcgan, cgan) as a source of images.

``Sampler.from_checkpoint(run)(64, seed=0, truncation=0.5)`` draws latents z ~ N(0, I) of the
plugin's ``latent_shape`` (U(-1, 1) for a plugin whose ``latent_prior`` is uniform: bigan)
and, for a model with conditioning inputs (``Plugin.condition_inputs``: cgan's class one-hot,
InfoGAN's codes), their vectors (``class_name=``, ``codes={"c": "3"}`` or
drawn per image from each input's prior), runs the generator on them and returns PIL images;
``traversal`` varies one code along a grid's columns (InfoGAN, Chen et al. 2016, Fig. 2);
``save_samples`` writes them as one grid PNG or a folder of PNGs. What ``translate sample``
does. The generator runs on PyTorch or, for an ``.onnx`` file from ``translate export`` (or
``backend="onnx"``), in ONNX Runtime, whose inputs are the latent and the condition vectors:
the same seed gives the same latents on both.

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

from translate.conditioning import (
    check_name,
    code_values,
    did_you_mean,
    draw,
    one_hots,
    parse_vary,
)
from translate.errors import ConfigError, OutputError
from translate.loading.model import latent_prior

__all__ = ["Sampler", "did_you_mean", "grid", "sample", "save_samples", "truncated_normal"]

#: Latents drawn per forward pass (bounds memory for large ``n``).
CHUNK = 256
GRID_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
#: The option of a generating plugin's class input (``translate sample --class``).
CLASS_OPTION = "class"
#: Rows of a traversal grid without a free categorical code to give one row per category.
TRAVERSAL_ROWS = 8


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


def _backend(loaded: Any, device: str) -> Any:
    """PyTorch (fp32) for a ``LoadedModel``, ONNX Runtime for a ``LoadedOnnx``."""
    from translate.inference.backends import OnnxBackend, TorchBackend
    from translate.loading import LoadedOnnx

    if isinstance(loaded, LoadedOnnx):
        return OnnxBackend(
            loaded.path, device=device, fp16=loaded.fp16, conditions=len(loaded.conditions)
        )
    return TorchBackend(loaded.module, next(loaded.module.parameters()).device)


class Sampler:
    """Draw images from a loaded generating model (``translate.loading.load``: a PyTorch
    ``LoadedModel`` or an exported ``LoadedOnnx``)."""

    def __init__(self, loaded: Any, *, device: str = "cpu") -> None:
        from translate.loading import LoadedOnnx

        plugin = loaded.plugin
        onnx = isinstance(loaded, LoadedOnnx)
        if not (loaded.latent_shape is not None if onnx else getattr(plugin, "generates", False)):
            raise ConfigError(
                f"{loaded.source}: plugin {plugin.name} translates images; it does not generate "
                "them (use translate run)"
            )
        self.loaded = loaded
        self.plugin = plugin
        self.plugin_cfg = loaded.plugin_cfg
        self.module = None if onnx else loaded.module
        self.latent_shape = tuple(
            loaded.latent_shape if onnx else plugin.latent_shape(self.plugin_cfg)
        )
        self.conditions = tuple(loaded.conditions)
        #: what latents are drawn from (``Plugin.latent_prior``): normal, or uniform in [-1, 1]
        self.prior = loaded.latent_prior if onnx else latent_prior(plugin, self.plugin_cfg)
        self.backend = _backend(loaded, device)
        named = [c for c in self.conditions if c.option == CLASS_OPTION]
        self.class_input = named[0] if named else None
        self.classes: list[str] = list(self.class_input.names) if self.class_input else []

    @classmethod
    def from_checkpoint(
        cls,
        path: Path | str,
        *,
        device: str = "cpu",
        options: Mapping[str, Any] | None = None,
        backend: str | None = None,
    ) -> Sampler:
        """A run or checkpoint folder of a generating plugin (EMA weights when present), or
        its ``.onnx`` export; ``backend="onnx"`` runs a checkpoint's cached export."""
        from translate.loading import load

        on_torch = backend != "onnx" and Path(path).suffix.lower() != ".onnx"
        loaded = load(path, options=options, device=device if on_torch else "cpu", backend=backend)
        return cls(loaded, device=device)

    @property
    def device(self) -> torch.device | str:
        return self.backend.device

    def class_index(self, name: str) -> int:
        """The index of class ``name``; an unknown name raises one line with a suggestion."""
        if self.class_input is None:
            raise ConfigError(
                f"--class: {self.loaded.source} is unconditional ({self.plugin.name}); it has no "
                "classes"
            )
        return check_name(self.class_input, name)

    def inputs(
        self,
        n: int,
        *,
        seed: int | None = None,
        truncation: float | None = None,
        class_name: str | None = None,
        codes: Mapping[str, str] | list[str] | None = None,
    ) -> tuple[Tensor, ...]:
        """The generator's inputs for ``n`` images, on the CPU: latents (n, *latent_shape),
        then each conditioning vector (n, size): the class ``class_name`` and the inputs that
        ``codes`` names (``{"c": "3", "c1": "0.5"}`` or ``["c=3"]``) as given, every other
        drawn per image from its prior (``translate.conditioning.draw``: a uniform class, each
        attribute on with probability 1/2, U(low, high) for a continuous code). The same
        ``seed`` gives the same inputs. Truncation applies to the noise only."""
        if n < 1:
            raise ConfigError(f"n: must be at least 1, got {n}")
        index = self.class_index(class_name) if class_name is not None else None
        fixed = code_values(self.conditions, codes)
        if index is not None and self.class_input is not None and self.class_input.name in fixed:
            raise ConfigError(f"--code {self.class_input.name}: the class is given by --class too")
        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(seed)
        if self.prior == "uniform":  # truncated at T: entries resampled into [-T, T]
            if truncation is not None and not truncation > 0:
                raise ConfigError(f"truncation: must be > 0, got {truncation}")
            bound = min(1.0, truncation) if truncation is not None else 1.0
            z = (torch.rand((n, *self.latent_shape), generator=gen) * 2 - 1) * bound
        else:
            z = truncated_normal((n, *self.latent_shape), truncation, gen)
        vectors = []
        for cond in self.conditions:
            if cond.name in fixed:
                vectors.append(fixed[cond.name].expand(n, -1).clone())
            elif cond is self.class_input and index is not None:
                vectors.append(one_hots(cond, torch.full((n,), index)))
            else:
                vectors.append(draw(cond, n, gen))
        return (z, *vectors)

    def traversal(
        self,
        vary: str,
        *,
        rows: int | None = None,
        seed: int | None = None,
        truncation: float | None = None,
        class_name: str | None = None,
        codes: Mapping[str, str] | list[str] | None = None,
    ) -> tuple[list[Image.Image], int]:
        """A latent traversal (Chen et al. 2016, Fig. 2): the code ``vary`` names (``c1=-2:2:9``:
        9 values from -2 to 2; ``c``: each category) along the columns, everything else fixed
        along a row. Rows: one per category of the first categorical code that neither ``vary``
        nor ``codes`` fixes (the same noise and codes in every row), or ``rows`` (default 8)
        draws of the noise and free codes. Returns the images row by row and the columns."""
        varied, values = parse_vary(self.conditions, vary)
        fixed = code_values(self.conditions, codes)
        if varied.name in fixed or (varied is self.class_input and class_name is not None):
            raise ConfigError(f"--vary {varied.name}: also fixed by --code/--class")
        taken = {varied.name, *fixed, *([self.class_input.name] if class_name else [])}
        free = [c for c in self.conditions if not (c.continuous or c.multi or c.name in taken)]
        by_category = free[0] if free and rows is None else None
        count = by_category.size if by_category else rows or TRAVERSAL_ROWS
        if count < 1:
            raise ConfigError(f"n: must be at least 1, got {count}")
        base = self.inputs(
            1 if by_category else count,
            seed=seed,
            truncation=truncation,
            class_name=class_name,
            codes=codes,
        )
        base = tuple(t.expand(count, *t.shape[1:]).clone() for t in base)
        columns = len(values)
        inputs = [t.repeat_interleave(columns, 0) for t in base]
        for i, cond in enumerate(self.conditions):
            if cond is by_category:
                inputs[1 + i] = torch.eye(count).repeat_interleave(columns, 0)
            if cond is varied:
                inputs[1 + i] = values.repeat(count, 1)
        images = self.plugin.postprocess(self.generate(*inputs), self.plugin_cfg)
        return images, columns

    def generate(self, z: Tensor, *conditions: Tensor) -> Tensor:
        """Latents (n, *latent_shape) and condition vectors (n, size) -> images (n, C, H, W) in
        [-1, 1], float32 on the CPU."""
        if tuple(z.shape[1:]) != self.latent_shape:
            raise ConfigError(
                f"latent: expected shape (n, {', '.join(map(str, self.latent_shape))}), "
                f"got {tuple(z.shape)}"
            )
        if len(conditions) != len(self.conditions):
            names = ", ".join(c.name for c in self.conditions) or "none"
            raise ConfigError(
                f"conditions: this model takes {len(self.conditions)} ({names}), got "
                f"{len(conditions)}"
            )
        for cond, vector in zip(self.conditions, conditions, strict=True):
            if tuple(vector.shape) != (len(z), cond.size):
                raise ConfigError(
                    f"{cond.name}: expected shape ({len(z)}, {cond.size}), got "
                    f"{tuple(vector.shape)}"
                )
        chunks = range(0, len(z), CHUNK)
        outs = [self.backend(*(t[i : i + CHUNK] for t in (z, *conditions))) for i in chunks]
        return torch.cat(outs)

    def sample_tensor(
        self,
        n: int,
        *,
        seed: int | None = None,
        truncation: float | None = None,
        class_name: str | None = None,
        codes: Mapping[str, str] | list[str] | None = None,
    ) -> Tensor:
        inputs = self.inputs(
            n, seed=seed, truncation=truncation, class_name=class_name, codes=codes
        )
        return self.generate(*inputs)

    def __call__(
        self,
        n: int,
        *,
        seed: int | None = None,
        truncation: float | None = None,
        class_name: str | None = None,
        codes: Mapping[str, str] | list[str] | None = None,
    ) -> list[Image.Image]:
        """``n`` new images (PIL, the plugin's postprocess), of ``class_name`` and with the
        ``codes`` given, when given."""
        x = self.sample_tensor(
            n, seed=seed, truncation=truncation, class_name=class_name, codes=codes
        )
        return self.plugin.postprocess(x, self.plugin_cfg)


def sample(
    checkpoint: Path | str,
    n: int = 64,
    *,
    seed: int | None = None,
    truncation: float | None = None,
    class_name: str | None = None,
    codes: Mapping[str, str] | list[str] | None = None,
    device: str = "cpu",
    backend: str | None = None,
) -> list[Image.Image]:
    """``n`` images from a generating model's checkpoint or ONNX export (``Sampler``)."""
    sampler = Sampler.from_checkpoint(checkpoint, device=device, backend=backend)
    return sampler(n, seed=seed, truncation=truncation, class_name=class_name, codes=codes)


def grid(images: list[Image.Image], columns: int | None = None) -> Image.Image:
    """Images of one size tiled row by row (``columns`` default: about the square root)."""
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    w, h = images[0].size
    sheet = Image.new("RGB", (columns * w, rows * h))
    for i, image in enumerate(images):
        sheet.paste(image.convert("RGB"), ((i % columns) * w, (i // columns) * h))
    return sheet


def save_samples(
    images: list[Image.Image],
    out: Path,
    *,
    overwrite: bool = False,
    columns: int | None = None,
) -> list[Path]:
    """A grid file (``columns`` wide; default about square) when ``out`` ends in an image
    suffix, else a folder ``out`` of ``sample_0000.png`` ...; written atomically, never over an
    existing file unless ``overwrite``. Returns the paths written."""
    from translate.atomic import atomic_path

    out = Path(out)
    if out.suffix.lower() in GRID_SUFFIXES:
        if out.exists() and not overwrite:
            raise OutputError(f"{out}: exists; pass --overwrite to replace it")
        with atomic_path(out) as tmp:
            grid(images, columns).save(
                tmp, format=Image.registered_extensions()[out.suffix.lower()]
            )
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
