"""The evaluation protocol of generating plugins (dcgan, cgan): samples against the training set.

``translate eval dcgan|cgan -c RUN --data TRAIN_DIR`` draws as many samples as there are real
images (``--samples N`` to choose) with a fixed seed and scores:

* FID and KID of the samples against the real images (``translate.metrics.fidelity``, with the
  Inception weights the user gives; ``translate.evaluation.score`` adds them);
* for a class-conditional model (the real images in a folder per class), *class accuracy*: the
  share of the samples drawn for class k that a classifier assigns to k, one row per class and
  their mean. The classifier is the user's (``--classifier FILE``: an ONNX file or a
  TorchScript module mapping RGB images (B, 3, H, W) in [0, 1] at the model's size to (B, K)
  logits in the model's class order) or, by default, a multinomial logistic regression fitted
  here on the real images (16x16 RGB pixels, standardised; L-BFGS with a small L2 penalty), a
  proxy that is only as good as its accuracy on the real images, which the notes give.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from translate.errors import ConfigError, DataError
from translate.evaluation import EvalItem, EvalSet, GenerationModels

#: Side the fitted classifier sees (images are area-resized to it).
CLASSIFIER_SIDE = 16
#: Samples shown per class on the report page.
SHOWN = 8


def real_images(folder: Path, classes: list[str]) -> list[tuple[Image.Image, int]]:
    """The evaluation folder's images (its ``train/`` split when present) with their class
    index (``folder/<class>/`` for a conditional model; -1 without classes)."""
    from translate.data.images import list_images, load_rgb
    from translate.data.paired import split_folder

    root = split_folder(Path(folder), "train")
    assert root is not None  # "train" falls back to the folder itself
    if not classes:
        paths = [(p, -1) for p in list_images(root)]
    else:
        missing = [c for c in classes if not (root / c).is_dir()]
        if missing:
            raise DataError(
                f"{root}: no folder for class {missing[0]!r} (this model's classes: "
                f"{', '.join(classes)})"
            )
        paths = [(p, k) for k, c in enumerate(classes) for p in list_images(root / c)]
    if len(paths) < 2:
        raise DataError(f"{root}: needs at least 2 images to compare samples with")
    return [(load_rgb(p), k) for p, k in paths]


def labelled_folders(folder: Path) -> list[str]:
    """The class sub-folders of ``folder`` (its ``train/`` split when present) when it holds
    no images of its own: the labelled layout an unconditional model is scored on too (FID/KID
    on all its images; infogan's cluster accuracy against the classes)."""
    from translate.data.images import IMAGE_EXTENSIONS
    from translate.data.paired import split_folder

    root = split_folder(Path(folder), "train")
    assert root is not None
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    if any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in entries):
        return []
    return sorted(p.name for p in entries if p.is_dir())


def model_input(images: list[Image.Image], side: int) -> Tensor:
    """(N, 3, side, side) in [-1, 1]: images as a generator's output or an encoder's input
    (bicubic resize to the model's side)."""
    arrays = [
        np.asarray(im.convert("RGB").resize((side, side), Image.Resampling.BICUBIC))
        for im in images
    ]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _pixels(images: list[Image.Image], side: int) -> Tensor:
    """(N, 3, side, side) in [0, 1]."""
    arrays = [
        np.asarray(im.convert("RGB").resize((side, side), Image.Resampling.BOX)) for im in images
    ]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


class FittedClassifier:
    """Multinomial logistic regression on standardised 16x16 RGB pixels, fitted with L-BFGS."""

    def __init__(self, images: list[Image.Image], labels: list[int], n_classes: int):
        x = _pixels(images, CLASSIFIER_SIDE).flatten(1).double()
        self.mean, self.std = x.mean(0), x.std(0).clamp_min(1e-3)
        x = (x - self.mean) / self.std
        y = torch.tensor(labels)
        gen = torch.Generator().manual_seed(0)
        self.weight = torch.randn(x.shape[1], n_classes, generator=gen, dtype=x.dtype) * 0.01
        self.bias = torch.zeros(n_classes, dtype=x.dtype)
        self.weight.requires_grad_(True)
        self.bias.requires_grad_(True)
        opt = torch.optim.LBFGS(
            [self.weight, self.bias], max_iter=200, line_search_fn="strong_wolfe"
        )
        l2 = 1e-3

        def closure() -> Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(x @ self.weight + self.bias, y)
            loss = loss + l2 * self.weight.pow(2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        self.weight, self.bias = self.weight.detach(), self.bias.detach()
        self.real_accuracy = float((self.predict(images) == y).double().mean())

    @torch.no_grad()
    def predict(self, images: list[Image.Image]) -> Tensor:
        x = (_pixels(images, CLASSIFIER_SIDE).flatten(1).double() - self.mean) / self.std
        return (x @ self.weight + self.bias).argmax(1)


class GivenClassifier:
    """The user's classifier, an ONNX file (``.onnx``, run by ONNX Runtime on the CPU) or a
    TorchScript module: RGB (B, 3, H, W) in [0, 1] -> (B, K) logits."""

    def __init__(self, path: Path, n_classes: int, side: int):
        if not path.is_file():
            raise ConfigError(f"{path}: --classifier file not found")
        self.path, self.n_classes, self.side = path, n_classes, side
        kind = "ONNX" if path.suffix.lower() == ".onnx" else "TorchScript"
        try:
            if kind == "ONNX":
                import onnxruntime as ort

                from translate.loading.ort import CPU, session_options

                self.session = ort.InferenceSession(str(path), session_options(), providers=[CPU])
            else:
                self.module = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:  # each runtime raises its own types for a bad file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            article = "an" if kind == "ONNX" else "a"
            raise ConfigError(f"{path}: not {article} {kind} classifier ({first[:200]})") from None
        self.kind = kind

    def _logits(self, x: Tensor) -> Tensor:
        if self.kind == "ONNX":
            name = self.session.get_inputs()[0].name
            return torch.from_numpy(self.session.run(None, {name: x.numpy()})[0])
        return self.module(x)

    @torch.no_grad()
    def predict(self, images: list[Image.Image]) -> Tensor:
        logits = self._logits(_pixels(images, self.side))
        if logits.dim() != 2 or logits.shape[1] != self.n_classes:
            raise ConfigError(
                f"{self.path}: --classifier gave logits of shape {tuple(logits.shape)}; "
                f"expected (B, {self.n_classes}) for this model's classes"
            )
        return logits.argmax(1)


def generation_protocol(models: GenerationModels, folder: Path) -> EvalSet:
    """Samples vs the real images of ``folder``: FID/KID (by ``score``) and, with classes,
    class accuracy per class (rows) by the user's or a fitted classifier."""
    from translate.inference.sampling import grid

    sampler = models.sampler
    classes = list(sampler.classes)
    # an unconditional model on a folder per class: every class's images
    real = real_images(folder, classes or labelled_folders(folder))
    n = models.samples if models.samples is not None else len(real)
    if n < 2:
        raise ConfigError(f"samples: needs at least 2, got {n}")
    reals = [im for im, _ in real]
    if not classes:
        samples = sampler(n, seed=models.seed)
        item = EvalItem("samples", {"samples": grid(samples[:SHOWN])})
        return EvalSet([item], distributions={"": (samples, reals)})

    k = len(classes)
    predict: Callable[[list[Image.Image]], Tensor]
    notes = []
    if models.classifier is not None:
        side = sampler(1, seed=0)[0].size[0]  # the model's image size
        predict = GivenClassifier(models.classifier, k, side).predict
        notes.append(f"class accuracy by {models.classifier.name}")
    else:
        fitted = FittedClassifier(reals, [c for _, c in real], k)
        predict = fitted.predict
        notes.append(
            "class accuracy by a logistic regression fitted on these real images (its accuracy "
            f"on them: {fitted.real_accuracy:.3f}); give --classifier FILE for a better judge"
        )
    items, samples = [], []
    per_class = [n // k + (1 if c < n % k else 0) for c in range(k)]
    for c, (name, count) in enumerate(zip(classes, per_class, strict=True)):
        if count == 0:
            continue
        drawn = sampler(count, seed=models.seed + c, class_name=name)
        hits = float((predict(drawn) == c).double().mean())
        shown = {"samples": grid(drawn[:SHOWN], columns=SHOWN)}
        items.append(EvalItem(f"class {name}", shown, {"class_accuracy": hits}))
        samples += drawn
    worst = min(items, key=lambda it: it.metrics["class_accuracy"])
    notes.append(f"worst class: {worst.name[6:]} ({worst.metrics['class_accuracy']:.3f})")
    return EvalSet(items, distributions={"": (samples, reals)}, notes=notes)
