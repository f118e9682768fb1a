"""``Sampler``: a generating model (``plugin.generates``: dcgan, cgan) as a source of images.

``Sampler.from_checkpoint(run)(64, seed=0, truncation=0.5)`` draws latents z ~ N(0, I) of the
plugin's ``latent_shape`` (U(-1, 1) for a plugin whose ``latent_prior`` is uniform: bigan)
and, for a model with conditioning inputs (``Plugin.condition_inputs``: cgan's class one-hot,
InfoGAN's codes), their vectors (``class_name=``, ``codes={"c": "3"}`` or drawn per image from
each input's prior), runs the generator on them and returns PIL images (``translate.inference.
traversal`` varies one code along a grid's columns); ``save_samples`` writes
them as one grid PNG or a folder of PNGs. What ``translate sample`` does. The generator runs
on PyTorch or, for an ``.onnx`` file from ``translate export`` (or ``backend="onnx"``), in ONNX
Runtime, whose inputs are the latent and the condition vectors: the same seed gives the same
latents on both.

The truncation trick (Brock et al. 2019, "Large Scale GAN Training for High Fidelity Natural
Image Synthesis", Sec. 3.1): latent entries are drawn from N(0, 1) truncated to [-T, T] (the
paper resamples every entry with |z| > T until none is), which trades diversity for fidelity
(T -> 0 collapses towards the sample of z = 0). We draw the same distribution by its inverse
CDF, in constant time whatever T (resampling takes about 1/T rounds: 1e-300 never ends).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from torch import Tensor

from translate.conditioning import (
    check_name,
    code_values,
    did_you_mean,
    draw,
    one_hots,
)
from translate.errors import ConfigError, OutputError, TranslateError, refuse_existing
from translate.fields import SEED_MAX, check_int_range
from translate.inference.latents import slerp, truncated_normal, truncated_uniform
from translate.loading.model import latent_prior
from translate.plugin import PluginBase

if TYPE_CHECKING:  # pragma: no cover
    from translate.loading.identify import ModelRef

__all__ = [
    "MIN_TRUNCATION",
    "SEED_RANGE",
    "Sampler",
    "SamplingInterrupted",
    "check_seed",
    "check_truncation",
    "did_you_mean",
    "grid",
    "sample",
    "save_samples",
    "slerp",
    "truncated_normal",
    "write_sample_folder",
]

#: Latents drawn per forward pass (bounds memory for large ``n``).
CHUNK = 256
GRID_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
#: Where ``Sampler.walk`` interpolates: slerp in z, lerp in a style generator's w.
WALK_SPACES = ("z", "w")
#: The option of a generating plugin's class input (``translate sample --class``).
CLASS_OPTION = "class"
#: Inputs fixed by name (``--code c=3``): a mapping or ``NAME=VALUE`` strings.
Codes = Mapping[str, str] | list[str] | None


#: Smallest truncation: float32's smallest normal number, 2**-126. Latents are float32; a
#: smaller T only gives subnormal or zero latents (the images of T = 2**-126, through the
#: CPU's slow subnormal arithmetic), so it is refused rather than silently meaningless.
MIN_TRUNCATION = float(torch.finfo(torch.float32).tiny)
#: Seeds taken (``translate.fields.NAMED_RANGES``): 0 to 2^63-1, within what torch takes.
SEED_RANGE = (0, SEED_MAX)


def check_truncation(truncation: float | None) -> None:
    """``truncation`` is None or at least ``MIN_TRUNCATION``; a ``ConfigError`` (one line,
    naming ``truncation``) otherwise."""
    if truncation is not None and not MIN_TRUNCATION <= truncation < math.inf:
        raise ConfigError(
            f"truncation: must be a finite number of at least {MIN_TRUNCATION:.6g} (float32's "
            f"smallest normal number; smaller values give the same latents, all 0), got "
            f"{truncation:g}"
        )


def check_seed(seed: int | None) -> None:
    """``seed`` is None or within ``SEED_RANGE`` (``translate.fields.check_int_range``, the
    house's one range check: a seed outside 64 bits used to reach torch as an overflow)."""
    if seed is not None:
        check_int_range(seed, "seed", *SEED_RANGE)


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
        #: the plugin has its own truncation trick (``Plugin.truncated``: StyleGAN's psi in W)
        hook = getattr(type(plugin), "truncated", None)
        self.own_truncation = hook is not None and hook is not PluginBase.truncated
        named = [c for c in self.conditions if c.option == CLASS_OPTION]
        self.class_input = named[0] if named else None
        self.classes: list[str] = list(self.class_input.names) if self.class_input else []

    @classmethod
    def from_checkpoint(
        cls,
        path: Path | str | ModelRef,
        *,
        device: str = "cpu",
        options: Mapping[str, Any] | None = None,
        backend: str | None = None,
    ) -> Sampler:
        """A run or checkpoint folder of a generating plugin (EMA weights when present), or
        its ``.onnx`` export; ``backend="onnx"`` runs a checkpoint's cached export."""
        from translate.loading import load
        from translate.loading.identify import as_ref

        ref = as_ref(path)  # identified once, here or by the caller
        on_torch = backend != "onnx" and ref.kind != "onnx"
        loaded = load(ref, options=options, device=device if on_torch else "cpu", backend=backend)
        return cls(loaded, device=device)

    @property
    def device(self) -> torch.device | str:
        return self.backend.device

    def class_index(self, name: str) -> int:
        """The index of class ``name``; an unknown name raises one line with a suggestion."""
        if self.class_input is None:
            raise ConfigError(
                f"class: this model is unconditional ({self.plugin.name}); it has no classes"
            )
        return check_name(self.class_input, name)

    def inputs(
        self,
        n: int,
        *,
        seed: int | None = None,
        truncation: float | None = None,
        class_name: str | None = None,
        codes: Codes = None,
        prompt: str | None = None,
    ) -> tuple[Tensor, ...]:
        """The generator's inputs for ``n`` images, on the CPU: latents (n, *latent_shape),
        then each conditioning vector (n, size): the class ``class_name`` and the inputs that
        ``codes`` names (``{"c": "3", "c1": "0.5"}`` or ``["c=3"]``) as given, every other
        drawn per image from its prior (``translate.conditioning.draw``: a uniform class, each
        attribute on with probability 1/2, U(low, high) for a continuous code). The same
        ``seed`` gives the same inputs. Truncation applies to the noise only. ``prompt``: the
        text of a text-conditioned model (``encode_prompt``)."""
        chunks = list(self._input_chunks(n, seed, truncation, class_name, codes, prompt))
        return tuple(torch.cat(parts) for parts in zip(*chunks, strict=True))

    def _latents(self, m: int, truncation: float | None, gen: torch.Generator) -> Tensor:
        """``m`` latents from the prior: N(0, I) truncated at T (unless the plugin truncates
        itself), or U(-1, 1) truncated at T: U(-T, T)."""
        if self.prior == "uniform":
            return truncated_uniform((m, *self.latent_shape), truncation, gen)
        own = self.own_truncation
        return truncated_normal((m, *self.latent_shape), None if own else truncation, gen)

    def _input_chunks(
        self,
        n: int,
        seed: int | None,
        truncation: float | None,
        class_name: str | None,
        codes: Codes = None,
        prompt: str | None = None,
    ) -> Iterator[tuple[Tensor, ...]]:
        """The inputs of ``n`` images, ``CHUNK`` at a time, drawn in turn from one seeded
        generator: a chunk's latents, then its condition vectors (for n <= CHUNK the draws of
        drawing all at once)."""
        if n < 1:
            raise ConfigError(f"n: must be at least 1, got {n}")
        check_seed(seed)
        if not self.own_truncation:  # a plugin's own truncation (psi) checks its own range
            check_truncation(truncation)
        index = self.class_index(class_name) if class_name is not None else None
        fixed = code_values(self.conditions, codes)
        if prompt is not None:  # a text-conditioned model's text input, by its encoder
            from translate.text.prompts import prompt_vector

            name, fixed[name] = prompt_vector(self.loaded, self.conditions, prompt, fixed)
        if index is not None and self.class_input is not None and self.class_input.name in fixed:
            raise ConfigError(f"--code {self.class_input.name}: the class is given by --class too")
        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(seed)
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            z = self._latents(m, truncation, gen)
            vectors = []
            for cond in self.conditions:
                if cond.name in fixed:
                    vectors.append(fixed[cond.name].expand(m, -1).clone())
                elif cond is self.class_input and index is not None:
                    vectors.append(one_hots(cond, torch.full((m,), index)))
                else:
                    vectors.append(draw(cond, m, gen))
            yield (z, *vectors)

    def batches(
        self,
        n: int,
        *,
        seed: int | None = None,
        truncation: float | None = None,
        class_name: str | None = None,
        codes: Codes = None,
        prompt: str | None = None,
    ) -> Iterator[list[Image.Image]]:
        """The ``n`` images of ``__call__``, ``CHUNK`` at a time: memory bounded by one chunk
        whatever ``n`` (``translate sample -n 1000000`` held 12.4 GB when drawn at once)."""
        for inputs in self._input_chunks(n, seed, truncation, class_name, codes, prompt):
            images = self.generate(*inputs, truncation=truncation)
            yield self.plugin.postprocess(images, self.plugin_cfg)

    def _truncating_backend(self, truncation: float | None) -> Any:
        """The backend that applies a plugin's own truncation (``Plugin.truncated``)."""
        if truncation is None or not self.own_truncation:
            return self.backend
        if self.module is None:
            raise ConfigError(
                f"truncation: {self.loaded.source} is an ONNX export of {self.plugin.name}, whose "
                "truncation is fixed when exporting (its inference options); export it again"
            )
        from translate.inference.backends import TorchBackend

        module = self.plugin.truncated(self.module, truncation, self.plugin_cfg).eval()
        return TorchBackend(module, self.backend.device)

    def generate(self, z: Tensor, *conditions: Tensor, truncation: float | None = None) -> Tensor:
        """Latents (n, *latent_shape) and condition vectors (n, size) -> images (n, C, H, W) in
        [-1, 1], float32 on the CPU; ``truncation`` only for a plugin with its own truncation
        trick (applied in the model, e.g. StyleGAN's psi in W)."""
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
        backend = self._truncating_backend(truncation)
        chunks = range(0, len(z), CHUNK)
        outs = [backend(*(t[i : i + CHUNK] for t in (z, *conditions))) for i in chunks]
        return torch.cat(outs)

    def sample_tensor(
        self,
        n: int,
        *,
        seed: int | None = None,
        truncation: float | None = None,
        class_name: str | None = None,
        codes: Codes = None,
        prompt: str | None = None,
    ) -> Tensor:
        inputs = self.inputs(
            n, seed=seed, truncation=truncation, class_name=class_name, codes=codes, prompt=prompt
        )
        return self.generate(*inputs, truncation=truncation)

    def walk(
        self,
        rows: int,
        frames: int,
        *,
        seed: int | None = None,
        truncation: float | None = None,
        space: str = "z",
    ) -> Tensor:
        """``rows`` latent walks of ``frames`` images each, row by row: between two latents
        drawn from ``seed``, spherical interpolation in z (``space="z"``, any generator), or
        linear interpolation between their mapped w (``space="w"``: a style generator whose
        inference module has ``map(z) -> w`` and ``synthesize(w) -> image``), the two
        interpolations of StyleGAN's perceptual path length (Karras et al. 2019, Sec. 4.2).
        Conditioned models keep one condition per row."""
        if frames < 2:
            raise ConfigError(f"interpolate: needs at least 2 frames, got {frames}")
        if space not in WALK_SPACES:
            raise ConfigError(f"walk: {space!r} is not one of {', '.join(WALK_SPACES)}")
        ends = self.inputs(2 * rows, seed=seed, truncation=truncation)
        t = torch.linspace(0, 1, frames).repeat(rows).view(-1, *([1] * len(self.latent_shape)))
        a, b = (e.repeat_interleave(frames, 0) for e in (ends[0][:rows], ends[0][rows:]))
        conditions = [c[:rows].repeat_interleave(frames, 0) for c in ends[1:]]
        if space == "z":
            return self.generate(slerp(a, b, t), *conditions, truncation=truncation)
        module = self.module
        if module is None or not callable(getattr(module, "map", None)):
            raise ConfigError(
                f"walk: w needs a style-based generator run in PyTorch (map and synthesize); "
                f"{self.loaded.source} is not one"
            )
        if truncation is not None and self.own_truncation:
            module = self.plugin.truncated(module, truncation, self.plugin_cfg)
        with torch.inference_mode():
            device = next(module.parameters()).device
            wa, wb = module.map(a.to(device)), module.map(b.to(device))
            w = torch.lerp(wa, wb, t.view(-1, 1).to(device))
            return torch.cat([module.synthesize(c).float().cpu() for c in w.split(CHUNK)])

    def __call__(
        self,
        n: int,
        *,
        seed: int | None = None,
        truncation: float | None = None,
        class_name: str | None = None,
        codes: Codes = None,
        prompt: str | None = None,
    ) -> list[Image.Image]:
        """``n`` new images (PIL, the plugin's postprocess), of ``class_name``, with the
        ``codes`` given and of the text ``prompt``, when given."""
        batches = self.batches(
            n, seed=seed, truncation=truncation, class_name=class_name, codes=codes, prompt=prompt
        )
        return [image for batch in batches for image in batch]


def sample(
    checkpoint: Path | str,
    n: int = 64,
    *,
    seed: int | None = None,
    truncation: float | None = None,
    class_name: str | None = None,
    codes: Codes = None,
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


class SamplingInterrupted(TranslateError):
    """Ctrl-C while writing samples: the files written so far are complete and kept."""

    exit_code = 130


#: The most images ``translate sample`` puts in one grid (a grid is built in memory).
GRID_MAX = 4096


def sample_name(i: int, n: int) -> str:
    """``sample_0000.png``...; wider numbers when ``n`` needs them (names sort in order)."""
    return f"sample_{i:0{max(4, len(str(n - 1)))}d}.png"


def write_sample_folder(
    sampler: Sampler,
    n: int,
    out: Path,
    *,
    seed: int | None = None,
    truncation: float | None = None,
    class_name: str | None = None,
    codes: Codes = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    prompt: str | None = None,
) -> int:
    """Draw ``n`` images into folder ``out`` one chunk at a time (bounded memory), each file
    written atomically; ``progress(written)`` after each chunk. Ctrl-C stops after the file
    being written: ``SamplingInterrupted`` says how many were written (they are kept).
    Refuses, before drawing, a folder that holds any of the names unless ``overwrite``."""
    from translate.atomic import atomic_path

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file; give a folder or a name ending in .png")
    if out.is_dir() and not overwrite:
        first, last = sample_name(0, n), sample_name(n - 1, n)
        taken = sorted(
            e.name
            for e in os.scandir(out)
            if e.name.startswith("sample_") and len(e.name) == len(last) and first <= e.name <= last
        )
        refuse_existing([out / name for name in taken[:1]], overwrite=False)
    written = 0
    try:
        batches = sampler.batches(
            n, seed=seed, truncation=truncation, class_name=class_name, codes=codes, prompt=prompt
        )
        for batch in batches:
            for image in batch:
                with atomic_path(out / sample_name(written, n)) as tmp:
                    image.save(tmp, format="PNG")
                written += 1
            if progress is not None:
                progress(written)
    except KeyboardInterrupt:
        if written < n and (out / sample_name(written, n)).is_file():
            written += 1  # the signal came between a file's rename and its count
        raise SamplingInterrupted(
            f"interrupted: wrote {written} of {n} samples to {out} (each file complete)"
        ) from None
    return written


def save_samples(
    images: list[Image.Image], out: Path, *, overwrite: bool = False, columns: int | None = None
) -> list[Path]:
    """A grid file (``columns`` wide, default about square) when ``out`` ends in an image
    suffix, else a folder ``out`` of ``sample_0000.png`` ...; written atomically, never over an
    existing file unless ``overwrite``. Returns the paths written."""
    from translate.atomic import atomic_path

    out = Path(out)
    if out.suffix.lower() in GRID_SUFFIXES:
        refuse_existing([out], overwrite=overwrite)
        with atomic_path(out) as tmp:
            grid(images, columns).save(
                tmp, format=Image.registered_extensions()[out.suffix.lower()]
            )
        return [out]
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file; give a folder or a name ending in .png")
    paths = [out / sample_name(i, len(images)) for i in range(len(images))]
    refuse_existing(paths, overwrite=overwrite)
    for image, path in zip(images, paths, strict=True):
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG")
    return paths
