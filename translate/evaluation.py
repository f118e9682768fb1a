"""``translate eval``: a plugin's evaluation protocol over folders of images, scored with the
shared metrics and written up as a report.

A plugin that can be evaluated implements ``evaluate(models, folder, cfg) -> EvalSet`` (or, the
older form, a list of row dicts). ``models`` is an ``EvalModels``: called on PIL images it is the
checkpoint's ``Translator`` (so the torch and ONNX Runtime backends and tiling are exactly those
of ``translate run``); ``models.open(direction="b2a")`` gives the translator with other
inference options. The plugin names its protocol by what it returns:

- ``EvalItem`` per image: the images shown on the report page (``input``/``output``/``target``
  ...), figures computed per image (L1, PSNR, SSIM), and which two images LPIPS compares;
- ``distributions``: named (generated, real) image sets scored with FID and KID.

A generating plugin (``plugin.generates``: dcgan, cgan) gets a ``GenerationModels`` (a
``Sampler`` and the protocol's settings) instead, and compares samples with the folder's real
images (``translate.evaluation_generation``).

The protocols themselves (``EvalItem``, ``EvalSet``, ``paired_protocol`` and the generic
protocol of a plugin that defines none) are in ``translate.evaluation_protocol``. This module
adds LPIPS, FID and KID when their weights files are given (nothing is downloaded),
averages the per-image figures, and returns one ``FolderResult`` per folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from translate.errors import ConfigError
from translate.evaluation_protocol import (
    EvalItem,
    EvalSet,
    eval_folder,
    generic_protocol,
    paired_protocol,
)

# what plugins import from here: a protocol's types and helpers live in evaluation_protocol
__all__ = [
    "EvalItem",
    "EvalModels",
    "EvalSet",
    "Evaluation",
    "FolderResult",
    "GenerationModels",
    "MetricWeights",
    "eval_folder",
    "evaluate",
    "paired_protocol",
    "score",
]


@dataclass(frozen=True)
class FolderResult:
    folder: Path
    rows: list[dict[str, Any]]
    summary: dict[str, float] = field(default_factory=dict)  # FID/KID (set-level figures)
    items: list[EvalItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def means(self) -> dict[str, float]:
        keys = [k for k in self.rows[0] if k != "image"] if self.rows else []
        means = {k: sum(float(r[k]) for r in self.rows) / len(self.rows) for k in keys}
        return {**means, **self.summary}


@dataclass(frozen=True)
class MetricWeights:
    """Weights files of the feature networks (None: that metric is skipped, with a note)."""

    inception: Path | None = None
    lpips: Path | None = None

    @classmethod
    def resolve(cls, inception: Path | None = None, lpips: Path | None = None) -> MetricWeights:
        from translate.metrics.weights import INCEPTION, LPIPS

        return cls(inception=INCEPTION.resolve(inception), lpips=LPIPS.resolve(lpips))


class EvalModels:
    """The checkpoint's translators: callable as the default one; ``open(**options)`` for
    others (each opened once)."""

    def __init__(
        self, checkpoint: Path, *, options: Mapping[str, Any] | None = None, **translator_args: Any
    ):
        from translate.inference.translator import Translator

        self.checkpoint = checkpoint
        self.args = translator_args
        self.options = dict(options or {})  # the user's (--direction b2a): under every open()
        self.default = Translator.from_checkpoint(
            checkpoint, options=self.options, **translator_args
        )
        self.opened: dict[str, Any] = {}

    def __call__(self, images: list[Image.Image]) -> list[Image.Image]:
        return self.default(images)

    def open(self, **options: Any) -> Any:
        from translate.inference.translator import Translator

        options = {**self.options, **options}
        key = repr(sorted(options.items()))
        if key not in self.opened:
            self.opened[key] = Translator.from_checkpoint(
                self.checkpoint, options=options, **self.args
            )
        return self.opened[key]


def _as_eval_set(result: Any) -> EvalSet:
    if isinstance(result, EvalSet):
        return result
    items = [  # the older form: rows of figures
        EvalItem(name=str(r["image"]), metrics={k: v for k, v in r.items() if k != "image"})
        for r in result
    ]
    return EvalSet(items=items)


def score(evalset: EvalSet, folder: Path, weights: MetricWeights, device: str) -> FolderResult:
    """Add LPIPS / FID / KID to a plugin's protocol result (when their weights are given)."""
    from translate.metrics.weights import INCEPTION, LPIPS

    notes = list(evalset.notes)
    compared = [it for it in evalset.items if it.compare is not None]
    if compared and weights.lpips is not None:
        from translate.metrics.perceptual import LPIPSMetric

        metric = LPIPSMetric(weights.lpips, device=device)
        for it in compared:
            out, ref = it.compare  # type: ignore[misc]
            it.metrics["LPIPS"] = metric(it.images[out], it.images[ref])
    elif compared:
        notes.append(f"LPIPS skipped: {LPIPS.missing_note()}")
    summary: dict[str, float] = {}
    if evalset.distributions and weights.inception is not None:
        from translate.metrics.fidelity import InceptionFeatures, fid, kid

        features = InceptionFeatures(weights.inception, device=device)
        for name, (generated, real) in evalset.distributions.items():
            if len(generated) < 2 or len(real) < 2:
                notes.append(f"FID/KID {name} skipped: fewer than 2 images")
                continue
            a, b = features(generated), features(real)
            suffix = f" {name}" if name else ""
            summary[f"FID{suffix}"] = fid(a, b)
            summary[f"KID{suffix}"] = kid(a, b)
    elif evalset.distributions:
        notes.append(f"FID/KID skipped: {INCEPTION.missing_note()}")
    rows = [{"image": it.name, **it.metrics} for it in evalset.items]
    return FolderResult(folder, rows, summary=summary, items=evalset.items, notes=notes)


@dataclass
class GenerationModels:
    """What ``translate eval`` hands a generating plugin's ``evaluate``: the sampler and the
    protocol's settings."""

    sampler: Any  # a translate.inference.sampling.Sampler
    samples: int | None = None  # None: as many as the real images
    classifier: Path | None = None  # a TorchScript classifier; None: fit one on the data
    seed: int = 0


@dataclass(frozen=True)
class Evaluation:
    model: str  # what was evaluated, one line
    meta: dict[str, Any]  # the checkpoint's meta.json (or the .onnx file's metadata)
    results: list[FolderResult]


def evaluate(
    plugin_name: str,
    folders: list[Path],
    *,
    checkpoint: Path | None = None,
    model: str | None = None,
    backend: str | None = None,
    device: str = "auto",
    tile_size: int | None = None,
    weights: MetricWeights | None = None,
    samples: int | None = None,
    classifier: Path | None = None,
    options: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Evaluate a checkpoint (or shipped model) of ``plugin_name`` on each folder: one result
    per folder, with the model's description and metadata. ``options``: the plugin's
    inference options (``translate run``'s, e.g. ``direction="b2a"``)."""
    from translate.registry import load_plugin
    from translate.shipped import list_models, resolve_model

    plugin = load_plugin(plugin_name)
    if checkpoint is not None and model is not None:
        raise ConfigError("give --checkpoint or --model, not both")
    if checkpoint is None:
        if model is None:  # the shipped model of this plugin, when there is one
            ours = [m.name for m in list_models() if m.plugin == plugin_name]
            if not ours:
                raise ConfigError(f"no model given: pass --checkpoint (no shipped {plugin_name})")
            model = ours[0]
        checkpoint = resolve_model(model)
    weights = weights or MetricWeights()
    metric_device = "cuda" if device != "cpu" and torch.cuda.is_available() else "cpu"
    if getattr(plugin, "generates", False):
        return _evaluate_generation(
            plugin, folders, checkpoint, backend=backend, device=device, weights=weights,
            metric_device=metric_device, samples=samples, classifier=classifier,
            options=options,
        )  # fmt: skip
    if samples is not None or classifier is not None:
        raise ConfigError(
            f"--samples/--classifier: only for generating plugins (dcgan, cgan), not {plugin_name}"
        )
    models = EvalModels(
        checkpoint, options=options, device=device, backend=backend, tile_size=tile_size
    )
    translator = models.default
    # a model from elsewhere may follow a plugin's protocol (a spandrel SR file: superres)
    fits = getattr(translator.plugin_cfg, "evaluate_as", None) == plugin_name
    if translator.plugin.name != plugin_name and not fits:
        raise ConfigError(
            f"{checkpoint}: a {translator.plugin.name} model, not {plugin_name}; "
            f"use translate eval {translator.plugin.name}"
        )
    results = _score_folders(plugin, models, folders, translator.plugin_cfg, weights, metric_device)
    return Evaluation(f"{translator.describe()} from {checkpoint}", dict(translator.meta), results)


def _score_folders(
    plugin: Any,
    models: Any,
    folders: list[Path],
    plugin_cfg: Any,
    weights: MetricWeights,
    metric_device: str,
) -> list[FolderResult]:
    """The plugin's protocol on each folder (the generic one of its data kind when it defines
    none: ``translate.evaluation_generic``), scored: one result per folder."""
    if callable(getattr(plugin, "evaluate", None)):
        protocol = plugin.evaluate
    else:

        def protocol(models: Any, folder: Path, cfg: Any) -> EvalSet:
            return generic_protocol(plugin, models, folder, cfg)

    evaluated = ((_as_eval_set(protocol(models, f, plugin_cfg)), f) for f in folders)
    return [score(evalset, folder, weights, metric_device) for evalset, folder in evaluated]


def _evaluate_generation(
    plugin: Any,
    folders: list[Path],
    checkpoint: Path,
    *,
    backend: str | None,
    device: str,
    weights: MetricWeights,
    metric_device: str,
    samples: int | None,
    classifier: Path | None,
    options: Mapping[str, Any] | None = None,
) -> Evaluation:
    """A generating plugin's protocol: samples of the checkpoint against each folder."""
    from translate.inference.sampling import Sampler

    if backend not in (None, "auto", "torch"):
        raise ConfigError(f"--backend {backend}: evaluating a generating model runs on torch")
    sampler = Sampler.from_checkpoint(checkpoint, device=device, options=options)
    if sampler.plugin.name != plugin.name:
        raise ConfigError(
            f"{checkpoint}: a {sampler.plugin.name} model, not {plugin.name}; "
            f"use translate eval {sampler.plugin.name}"
        )
    models = GenerationModels(sampler, samples=samples, classifier=classifier)
    results = _score_folders(plugin, models, folders, sampler.plugin_cfg, weights, metric_device)
    meta = dict(sampler.loaded.meta)
    step = meta.get("step")
    return Evaluation(f"{plugin.name} generator (step {step}) from {checkpoint}", meta, results)
