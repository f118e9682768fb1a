"""The evaluation protocol of text-to-image plugins (stackgan): images drawn from the captions
of the evaluation set, against its images.

``translate eval stackgan -c RUN --data DIR`` reads ``DIR`` (its ``test/`` or ``val/`` split
when present, ``evaluation_protocol.eval_folder``): images with same-stem ``.txt`` captions.
It draws one image per real image (``--samples N`` for another number: image i mod M, its
caption i // M mod K, as StackGAN's evaluation draws from the test captions), each from a
seeded latent and that caption encoded by the model's text encoder (``translate.text.
prompts``: the checkpoint's, or the text graph beside an ONNX export), and scores:

* FID and KID of the samples against the folder's images (``translate.evaluation.score``,
  with the Inception weights the user gives);
* on the synthetic captioned-shapes set (``translate.text.synthetic``: the folder holds its
  ``captioned_shapes.json`` manifest, which ``make_captioned_shapes`` writes), *prompt
  accuracy*: the share of samples whose colour and shape, read by the set's rule
  (``read_shape``), are those of the image the caption describes (the manifest's label), one
  row per (colour, shape) with ``colour_accuracy``, ``shape_accuracy`` and
  ``prompt_accuracy`` (joint; chance 1/16 for 4 x 4), and the figures over all samples in the
  notes. A folder without the manifest gets FID/KID only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from translate.errors import ConfigError, DataError
from translate.evaluation_protocol import EvalItem, EvalSet, eval_folder

__all__ = [
    "caption_plan",
    "caption_sampler",
    "prompt_accuracy",
    "template_samples",
    "text_protocol",
]

#: Samples shown per row on the report page.
SHOWN = 8
#: Captions encoded and drawn at a time.
BATCH = 64

Draw = Callable[[Sequence[str], int], list[Image.Image]]


def caption_plan(images: Sequence[Path], n: int) -> list[tuple[Path, str]]:
    """(image, caption) of each of ``n`` samples: image i mod M, its caption i // M mod K."""
    from translate.text.captions import read_captions

    captions = {p: read_captions(p) for p in images}
    m = len(images)
    return [
        (images[i % m], captions[images[i % m]][(i // m) % len(captions[images[i % m]])])
        for i in range(n)
    ]


def caption_sampler(sampler: Any) -> Draw:
    """``draw(captions, seed)``: one image per caption from a ``Sampler`` of a text-conditioned
    model (its latents from ``seed``, its text input the captions' vectors)."""
    from translate.text.prompts import prompt_vectors

    def draw(captions: Sequence[str], seed: int) -> list[Image.Image]:
        name, text = prompt_vectors(sampler.loaded, sampler.conditions, captions)
        inputs = list(sampler.inputs(len(captions), seed=seed))
        index = 1 + [c.name for c in sampler.conditions].index(name)
        inputs[index] = text
        out = sampler.generate(*inputs)
        return sampler.plugin.postprocess(out, sampler.plugin_cfg)

    return draw


def prompt_accuracy(
    samples: Sequence[Image.Image], labels: Sequence[tuple[str, str]]
) -> tuple[dict[tuple[str, str], dict[str, float]], dict[str, float]]:
    """Per (colour, shape) label and over all: the shares of ``samples`` whose colour, shape,
    and both (``prompt_accuracy``), read by ``read_shape``, are their label's."""
    from translate.text.synthetic import read_shape

    hits: dict[tuple[str, str], list[tuple[bool, bool]]] = {}
    for image, label in zip(samples, labels, strict=True):
        colour, shape = read_shape(image)
        hits.setdefault(tuple(label), []).append((colour == label[0], shape == label[1]))  # type: ignore[arg-type]

    def shares(rows: list[tuple[bool, bool]]) -> dict[str, float]:
        n = len(rows)
        return {
            "prompt_accuracy": sum(c and s for c, s in rows) / n,
            "colour_accuracy": sum(c for c, _ in rows) / n,
            "shape_accuracy": sum(s for _, s in rows) / n,
        }

    per_label = {label: shares(rows) for label, rows in sorted(hits.items())}
    return per_label, shares([r for rows in hits.values() for r in rows])


def template_samples(
    sampler: Any, template: str, per_prompt: int = 8, seed: int = 100
) -> tuple[list[Image.Image], list[tuple[str, str]]]:
    """The captioned-shapes set's 16 prompts written with ``template`` (e.g. the held-out
    "a {c} {s}"), ``per_prompt`` samples each from ``sampler`` (a text-conditioned
    ``Sampler``; latents from ``seed``): (samples, their (colour, shape) labels), what
    ``prompt_accuracy`` reads (the learning tests and ``benchmarks/stackgan_shapes.py``)."""
    from translate.text.synthetic import COLOURS, SHAPES

    samples: list[Image.Image] = []
    labels: list[tuple[str, str]] = []
    for colour in COLOURS:
        for shape in SHAPES:
            samples += sampler(per_prompt, seed=seed, prompt=template.format(c=colour, s=shape))
            labels += [(colour, shape)] * per_prompt
    return samples, labels


def text_protocol(models: Any, folder: Path, draw: Draw | None = None) -> EvalSet:
    """Samples of the captions of ``folder`` (its split) vs its images: FID/KID (by
    ``score``) and, on the captioned-shapes set, prompt accuracy. ``models``: a
    ``GenerationModels``; ``draw``: how captions become images (default: its sampler's)."""
    from translate.data.images import list_images, load_rgb
    from translate.inference.sampling import grid
    from translate.text.synthetic import MANIFEST, read_labels

    if models.classifier is not None:
        raise ConfigError(
            "--classifier: a text-to-image model is judged by its captions (FID/KID, and the "
            "rule-based prompt accuracy on the captioned-shapes set); drop it"
        )
    root = eval_folder(Path(folder))
    images = list_images(root)
    if len(images) < 2:
        raise DataError(f"{root}: needs at least 2 captioned images to compare samples with")
    n = models.samples if models.samples is not None else len(images)
    if n < 2:
        raise ConfigError(f"samples: needs at least 2, got {n}")
    plan = caption_plan(images, n)
    draw = draw or caption_sampler(models.sampler)
    samples: list[Image.Image] = []
    for start in range(0, n, BATCH):
        chunk = [caption for _, caption in plan[start : start + BATCH]]
        samples += draw(chunk, models.seed + start // BATCH)
    reals = [load_rgb(p) for p in images]
    distributions = {"": (samples, reals)}
    labels = read_labels(root)
    if labels is None:
        item = EvalItem("samples", {"samples": grid(samples[:SHOWN])})
        notes = [f"no {MANIFEST} in {root}: FID/KID only (prompt accuracy needs the "
                 "captioned-shapes set)"]  # fmt: skip
        return EvalSet([item], distributions=distributions, notes=notes)
    missing = next((p for p, _ in plan if p.stem not in labels), None)
    if missing is not None:
        raise DataError(f"{root / MANIFEST}: no label for {missing.name}")
    truth = [labels[p.stem] for p, _ in plan]
    per_label, overall = prompt_accuracy(samples, truth)
    items = []
    for label, figures in per_label.items():
        shown = [im for im, t in zip(samples, truth, strict=True) if t == label][:SHOWN]
        items.append(EvalItem(f"prompt {' '.join(label)}", {"samples": grid(shown)}, figures))
    notes = [
        "prompt accuracy by the captioned-shapes rule over {} samples: joint {prompt_accuracy:.3f} "
        "(chance 0.062), colour {colour_accuracy:.3f}, shape {shape_accuracy:.3f} (chance "
        "0.25 each)".format(len(samples), **overall)
    ]
    return EvalSet(items, distributions=distributions, notes=notes)
