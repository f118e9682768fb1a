"""Evaluation protocols: what a protocol returns (``EvalSet`` of ``EvalItem``), the paired
protocol, and the generic protocols ``translate eval`` applies to a plugin that defines no
``evaluate`` of its own, chosen by the plugin's ``dataset_kind``.

A plugin names its own protocol by writing ``evaluate(models, folder, cfg) -> EvalSet``
(``docs/plugins.md``). Without one, every image goes through the checkpoint's ``Translator``
(the plugin's own ``preprocess`` included, so a colourisation plugin sees the grayscale copy
it always sees), and the outputs are compared with the data the plugin trains on:

- ``paired`` (A|B files, or ``A/`` and ``B/`` folders; ``test/`` or ``val/`` when present): each
  input translated in the config's ``direction`` (a2b when it has none) and compared with its
  target: L1, PSNR, SSIM per image, LPIPS when its weights are given; FID/KID of the outputs
  against the targets (the target domain).
- ``single`` (a folder of images): the plugin makes its input from each image (grayscale, a
  degraded copy...) and the image itself is the target, so the same paired figures apply.
- ``unpaired`` (``testA/`` and ``testB/``, or ``A/`` and ``B/``): no image has a target, so
  only FID/KID of the translated A images against the real B images.

LPIPS, FID and KID are added by ``translate.evaluation.score`` when their weights files are
given (nothing is downloaded), as for every protocol. A plugin whose data means something else
(a degradation its ``preprocess`` does not apply, labels, a generator) defines ``evaluate``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from translate.errors import DataError, PluginError

GENERIC_KINDS = ("paired", "single", "unpaired")


@dataclass
class EvalItem:
    """One evaluated image: what the report shows and its per-image figures."""

    name: str
    images: dict[str, Image.Image] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    compare: tuple[str, str] | None = None  # (output, reference) columns that LPIPS compares


@dataclass
class EvalSet:
    """A plugin's protocol applied to one folder."""

    items: list[EvalItem]
    distributions: dict[str, tuple[list[Image.Image], list[Image.Image]]] = field(
        default_factory=dict
    )  # name -> (generated, real), scored with FID/KID
    notes: list[str] = field(default_factory=list)


def eval_folder(folder: Path) -> Path:
    """The split to evaluate: ``folder/test`` or ``folder/val`` when ``folder`` is a dataset root
    with such a split, else ``folder`` itself."""
    for split in ("test", "val"):
        if (folder / split).is_dir():
            return folder / split
    return folder


def paired_protocol(
    models: Any, pairs: Iterable[tuple[str, Image.Image, Image.Image]], *, batch_size: int = 8
) -> EvalSet:
    """The paired protocol (pix2pix, label2image): translate each input, compare the output
    with its target: L1 (on [0, 1]), PSNR (RGB, 8-bit), SSIM (Y); LPIPS between output and
    target; FID/KID of the outputs against the targets."""
    from translate.metrics import l1, psnr, rgb_to_y, ssim

    items: list[EvalItem] = []
    pending = list(pairs)
    for start in range(0, len(pending), batch_size):
        chunk = pending[start : start + batch_size]
        outputs = models([inp for _, inp, _ in chunk])
        for (name, inp, target), output in zip(chunk, outputs, strict=True):
            output = output.convert("RGB")
            if output.size != target.size:
                output = output.resize(target.size, Image.Resampling.BICUBIC)
            a, b = np.asarray(output), np.asarray(target.convert("RGB"))
            metrics = {"L1": l1(a, b), "PSNR": psnr(a, b), "SSIM": ssim(rgb_to_y(a), rgb_to_y(b))}
            shown = inp.convert("RGB") if inp.mode not in ("RGB", "L") else inp
            items.append(
                EvalItem(
                    name,
                    {"input": shown, "output": output, "target": target.convert("RGB")},
                    metrics,
                    compare=("output", "target"),
                )
            )
    outputs_all = [it.images["output"] for it in items]
    targets_all = [it.images["target"] for it in items]
    return EvalSet(items, distributions={"": (outputs_all, targets_all)})


def generic_protocol(plugin: Any, models: Any, folder: Path, cfg: Any) -> EvalSet:
    """The protocol of ``plugin.dataset_kind`` on ``folder`` (see the module docstring)."""
    kind = plugin.dataset_kind
    if kind == "paired":
        evalset = _paired(models, folder, getattr(cfg, "direction", "a2b"))
    elif kind == "single":
        evalset = paired_protocol(models, _single(folder))
    elif kind == "unpaired":
        evalset = _unpaired(models, folder)
    else:
        raise PluginError(
            f"plugin {plugin.name} has no evaluation protocol, and its data kind {kind!r} has "
            f"no generic one ({', '.join(GENERIC_KINDS)} do): define evaluate() (docs/plugins.md)"
        )
    evalset.notes.insert(
        0, f"generic {kind} protocol: plugin {plugin.name} defines no evaluate() of its own"
    )
    return evalset


def _paired(models: Any, folder: Path, direction: str) -> EvalSet:
    from translate.data.paired import PairedDataset

    pairs = PairedDataset(eval_folder(folder), direction=direction, train=False)

    def load(i: int) -> tuple[str, Image.Image, Image.Image]:
        source, target = pairs.load_pair(i)
        return pairs.pairs[i][0].name, Image.fromarray(source), Image.fromarray(target)

    return paired_protocol(models, (load(i) for i in range(len(pairs))))


def _single(folder: Path) -> Iterator[tuple[str, Image.Image, Image.Image]]:
    from translate.data.images import list_images, load_rgb

    files = list_images(eval_folder(folder))
    if not files:
        raise DataError(f"{folder}: no images to evaluate")
    for path in files:
        image = load_rgb(path)
        yield path.name, image, image


def _unpaired(models: Any, folder: Path) -> EvalSet:
    from translate.data.images import list_images, load_rgb
    from translate.data.unpaired import find_domains

    domains = next(
        (d for split in ("test", "val", "train") if (d := find_domains(folder, split))), None
    )
    if domains is None:
        raise DataError(f"{folder}: no testA/testB (or A/, B/) folders to evaluate")
    a_files, b_files = list_images(domains[0]), list_images(domains[1])
    real_a = [load_rgb(p) for p in a_files]
    fakes = [im.convert("RGB") for im in models(real_a)]
    items = [
        EvalItem(p.name, {"input": a, "output": f})
        for p, a, f in zip(a_files, real_a, fakes, strict=True)
    ]
    real_b = [load_rgb(p) for p in b_files]
    return EvalSet(items, distributions={"": (fakes, real_b)})
