"""Test kit for plugin authors: tiny synthetic datasets and the plugin contract check.

translate's own suite runs ``check_plugin_contract`` over every discovered plugin; a third-party
plugin can call it from its own tests::

    def test_contract(tmp_path):
        check_plugin_contract(load_plugin("myplugin"), tmp_path)

A plugin opts in by implementing ``tiny_config(data_root)``: a config small enough to train two
steps on CPU in about a second, reading the data that ``make_dataset`` writes for its kind.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from translate.plugin import DATASET_KINDS


def shape_pair(rng: np.random.Generator, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A mask of a random square or disc (white on black) and its coloured rendering
    (square red, disc yellow, on a blue background): a small, learnable paired task."""
    mask = np.zeros((size, size), bool)
    r = int(rng.integers(size // 6, size // 3))
    cy, cx = (int(v) for v in rng.integers(r, size - r, 2))
    disc = bool(rng.integers(2))
    yy, xx = np.mgrid[:size, :size]
    if disc:
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    else:
        mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
    a = np.where(mask[..., None], 255, 0).astype(np.uint8).repeat(3, 2)
    colour = np.array([240, 220, 40] if disc else [230, 50, 40], np.uint8)
    b = np.where(mask[..., None], colour, np.array([30, 60, 160], np.uint8)).astype(np.uint8)
    return a, b


def make_paired(
    root: Path, *, n_train: int = 6, n_val: int = 2, size: int = 32, seed: int = 0
) -> Path:
    """Side-by-side A|B PNGs (the pix2pix release format) in ``root/train`` and ``root/val``."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a, b = shape_pair(rng, size)
            Image.fromarray(np.concatenate([a, b], 1)).save(root / split / f"{i:03d}.png")
    return root


#: Colours of the classes in ``make_labels``' label maps (class 0, black, is the background)
#: and the colour each class is rendered in in its photos.
LABEL_COLOURS = ((0, 0, 0), (230, 40, 40), (40, 200, 60), (60, 80, 230), (240, 220, 40))
PHOTO_COLOURS = ((90, 60, 30), (210, 210, 210), (20, 110, 40), (140, 170, 220), (250, 140, 20))


def label_pair(
    rng: np.random.Generator, size: int = 32, n_classes: int = len(LABEL_COLOURS)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids (H, W), colour-coded label map (H, W, 3), photo (H, W, 3)): class 0 everywhere,
    then one axis-aligned rectangle per class 1..n-1 (later ones may overlap earlier ones);
    the photo paints each class in its ``PHOTO_COLOURS`` entry with mild noise."""
    ids = np.zeros((size, size), np.int64)
    for k in range(1, n_classes):
        h, w = (int(v) for v in rng.integers(size // 4, size // 2, 2))
        y, x = int(rng.integers(0, size - h)), int(rng.integers(0, size - w))
        ids[y : y + h, x : x + w] = k
    label = np.array(LABEL_COLOURS[:n_classes], np.uint8)[ids]
    photo = np.array(PHOTO_COLOURS[:n_classes], np.float64)[ids]
    photo = (photo + rng.normal(0, 6, photo.shape)).clip(0, 255).astype(np.uint8)
    return ids, label, photo


def make_labels(
    root: Path, *, n_train: int = 6, n_val: int = 2, size: int = 32, seed: int = 0
) -> Path:
    """Side-by-side ``label map | photo`` PNGs (``--direction a2b``) in ``root/train`` and
    ``root/val``: colour-coded rectangles (``LABEL_COLOURS``) and their rendering."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _, label, photo = label_pair(rng, size)
            Image.fromarray(np.concatenate([label, photo], 1)).save(root / split / f"{i:03d}.png")
    return root


def probe_image(kind: str, size: tuple[int, int], seed: int = 1) -> Image.Image:
    """An arbitrary valid input of a dataset kind, ``size`` = (width, height): random pixels,
    or for ``labels`` a random label map in ``make_labels``' colours (a model trained on label
    maps rightly refuses random colours)."""
    rng = np.random.default_rng(seed)
    w, h = size
    if kind == "labels":
        ids = rng.integers(0, len(LABEL_COLOURS), (h, w))
        return Image.fromarray(np.array(LABEL_COLOURS, np.uint8)[ids])
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def make_unpaired(root: Path, *, n: int = 6, size: int = 32, seed: int = 0) -> Path:
    """``root/A``: red discs; ``root/B``: blue discs, at random positions on black."""
    rng = np.random.default_rng(seed)
    for domain, colour in (("A", (220, 30, 30)), ("B", (30, 30, 220))):
        (root / domain).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image = np.zeros((size, size, 3), np.uint8)
            r = int(rng.integers(size // 6, size // 3))
            cy, cx = (int(v) for v in rng.integers(r, size - r, 2))
            yy, xx = np.mgrid[:size, :size]
            image[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = colour
            Image.fromarray(image).save(root / domain / f"{i:03d}.png")
    return root


def make_single(root: Path, *, n: int = 6, size: int = 48, seed: int = 0) -> Path:
    """Textured RGB images (smooth gradients plus stripes) in ``root``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size] / size
    for i in range(n):
        f = rng.uniform(2, 6, 3)
        image = np.stack(
            [0.5 + 0.5 * np.sin(2 * math.pi * (f[c] * xx + rng.uniform() * yy)) for c in range(3)],
            -1,
        )
        Image.fromarray((image * 255).astype(np.uint8)).save(root / f"{i:03d}.png")
    return root


def make_dataset(kind: str, root: Path) -> Path:
    """Write a tiny dataset of ``kind`` under ``root`` and return the folder to train on."""
    if kind not in DATASET_KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}")
    if kind == "paired":
        return make_paired(root)
    if kind == "labels":
        return make_labels(root)
    if kind == "unpaired":
        return make_unpaired(root)
    return make_single(root)


def check_plugin_contract(plugin: Any, tmp_path: Path) -> dict[str, Any]:
    """Build, train two steps, checkpoint, reload, resume and run ``plugin`` on tiny data.

    Raises AssertionError with a message on any contract violation; returns figures for
    further checks (losses, output sizes).
    """
    import torch

    from translate.conditioning import expand
    from translate.config import GANConfig, TrainConfig, config_from_dict
    from translate.engine import checkpoint as ckpt
    from translate.engine.loop import Trainer
    from translate.inference.translator import Translator
    from translate.registry import contract_problems

    # what loading checks, for a plugin object handed over directly (not via its entry point)
    problems = "; ".join(contract_problems(plugin))
    assert not problems, f"plugin {getattr(plugin, 'name', plugin)!r} is invalid: {problems}"
    data = make_dataset(plugin.dataset_kind, tmp_path / "data")
    cfg = plugin.tiny_config(data)
    assert dataclasses.is_dataclass(cfg) and isinstance(cfg, plugin.config_cls), "tiny_config type"
    run_dir = tmp_path / "run"
    train_cfg = config_from_dict(
        TrainConfig,
        {
            **plugin.train_defaults,
            "max_steps": 2,
            "log_every": 1,
            "sample_every": 2,
            "checkpoint_every": 2,
            "n_samples": 2,
            "progress": False,
            "device": "cpu",
            "batch_size": 2,
            "run_dir": run_dir,
        },
    )
    gan_cfg = config_from_dict(GANConfig, dict(plugin.gan_defaults))
    trainer = Trainer(plugin, cfg, train_cfg, gan_cfg, run_dir=run_dir)
    cfg = trainer.plugin_cfg  # as completed by the plugin's finalize_config, if it has one
    assert isinstance(cfg, plugin.config_cls), "finalize_config changed the config type"
    folder = trainer.run()

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2], records
    losses = {
        k: v
        for r in records
        for k, v in r.items()
        if k not in ("step", "time", "steps_per_s", "lr")
    }
    assert losses, "train_step returned no losses"
    for record in records:
        for key, value in record.items():
            assert isinstance(value, (int, float)) and math.isfinite(value), f"{key}={value}"
    assert (run_dir / "samples" / "step_0000002.png").is_file(), "no sample grid written"

    # checkpoint describes itself and reloads into fresh models with identical outputs
    meta = ckpt.read_meta(folder)
    assert meta["plugin"] == plugin.name and meta["step"] == 2
    if getattr(plugin, "generates", False):
        report = check_generating(plugin, trainer, folder, tmp_path)
        return {"losses": losses, **report}
    translator = Translator.from_checkpoint(folder, device="cpu")
    req = translator.requirements
    x = (
        torch.rand(
            1, *_input_shape(plugin, cfg, translator), generator=torch.Generator().manual_seed(0)
        )
        * 2
        - 1
    )
    # a plugin with conditioning inputs (stargan's label) takes their vectors after x
    conditions = translator.conditions
    assert conditions == tuple(plugin.condition_inputs(cfg)), "conditions differ after reload"
    vectors = expand(translator.condition_values, 1)
    with torch.no_grad():
        trainer_module = plugin.inference_module(
            {k: m.eval() for k, m in trainer.models.items()}, cfg, plugin.inference_config_cls()
        )
        expected = trainer_module(x, *vectors)
        got = translator.module(x, *vectors)
    assert torch.allclose(expected, got, atol=1e-5), "reloaded weights give different outputs"
    assert got.shape[-1] == x.shape[-1] * req.scale and got.shape[-2] == x.shape[-2] * req.scale
    assert got.min() >= -1 - 1e-4 and got.max() <= 1 + 1e-4, "output outside [-1, 1]"

    # any input size: an odd-sized image comes back at size * scale
    image = probe_image(plugin.dataset_kind, (37, 29))
    out = translator(image)[0]
    assert out.size == (37 * req.scale, 29 * req.scale), out.size
    assert out.mode == "RGB"

    # resume restores the full state and continues from step 2
    more = dataclasses.replace(train_cfg, max_steps=3)
    resumed = Trainer(plugin, cfg, more, gan_cfg, run_dir=run_dir, resume_from=folder)
    assert resumed.step == 2
    resumed.run()
    assert resumed.step == 3

    # ONNX export: ONNX Runtime matches PyTorch within 1e-4 at two sizes (export_onnx refuses
    # to write the file otherwise), the metadata round-trips, and the ONNX backend runs the
    # same inference path (padding, crop, pre- and post-processing) as torch
    from translate.export.onnx import FP32_TOLERANCE, export_onnx, read_metadata

    exported = export_onnx(run_dir, tmp_path / "model.onnx")
    assert exported.checked_with is not None, exported.note
    assert max(d for _, d in exported.checks) <= FP32_TOLERANCE, exported.checks
    metadata = read_metadata(exported.path)
    assert metadata["plugin"] == plugin.name and int(metadata["scale"]) == req.scale
    assert int(metadata["multiple_of"]) == req.multiple_of
    assert int(metadata["minimum"]) == req.minimum
    latest = Translator.from_checkpoint(run_dir, device="cpu")
    on_onnx = Translator.from_onnx(exported.path, device="cpu")
    assert on_onnx.requirements == latest.requirements
    a, b = (np.asarray(t(image)[0], dtype=np.int16) for t in (latest, on_onnx))
    assert a.shape == b.shape and np.abs(a - b).max() <= 1, "ONNX and torch outputs differ"
    check_conditions(latest, on_onnx, x)
    return {"losses": losses, "output_shape": tuple(got.shape), "onnx": exported}


def check_conditions(torch_model: Any, onnx_model: Any, x: Any) -> None:
    """A model with conditioning inputs: the ONNX file declares them (and takes each as an
    input), every entry's one-hot reaches the module (distinct outputs) and gives ONNX Runtime
    outputs equal to PyTorch's within the export tolerance (both ``Translator``s)."""
    import torch

    from translate.conditioning import expand
    from translate.export.onnx import FP32_TOLERANCE

    conditions = torch_model.conditions
    assert onnx_model.conditions == conditions, "the ONNX file's conditions differ"
    for i, cond in enumerate(conditions):
        labels = [f"e{k}" for k in range(cond.size)] if cond.is_code else cond.names
        outputs = []
        for k in range(cond.size):
            vectors = list(expand(torch_model.condition_values, x.shape[0]))
            vectors[i] = torch.eye(cond.size)[[k] * x.shape[0]]
            a, b = (m.backend(x, *vectors) for m in (torch_model, onnx_model))
            diff = float((a - b).abs().max())
            assert diff <= FP32_TOLERANCE, f"{cond.name}={labels[k]}: ONNX differs by {diff}"
            outputs.append(a)
        for k in range(1, cond.size):
            assert not torch.allclose(outputs[0], outputs[k], atol=1e-6), (
                f"{cond.name}: {labels[0]} and {labels[k]} give the same output"
            )


def check_generating(plugin: Any, trainer: Any, folder: Path, tmp_path: Path) -> dict[str, Any]:
    """The rest of the contract for a generating plugin (``plugin.generates``): its reloaded
    generator maps latents to the trainer's images, ``Sampler`` draws reproducible RGB images
    (truncated latents stay within the truncation), resume continues, and the ONNX export
    takes the latent as input and matches PyTorch."""
    import dataclasses

    import onnxruntime as ort
    import torch

    from translate.engine.loop import Trainer
    from translate.export.onnx import FP32_TOLERANCE, export_onnx, read_metadata
    from translate.inference.sampling import Sampler

    cfg, run_dir = trainer.plugin_cfg, trainer.run_dir
    shape = tuple(plugin.latent_shape(cfg))
    sampler = Sampler.from_checkpoint(run_dir, device="cpu")
    assert sampler.latent_shape == shape
    assert sampler.conditions == tuple(plugin.condition_inputs(cfg))
    z, *vectors = sampler.inputs(2, seed=0)  # latents, then the class one-hot (cgan)
    with torch.no_grad():
        # what a checkpoint samples with: the EMA generators when the EMA is on
        models = {k: m.eval() for k, m in trainer.sampling_models().items()}
        expected = plugin.inference_module(models, cfg, plugin.inference_config_cls())(z, *vectors)
    got = sampler.generate(z, *vectors)
    assert got.dim() == 4 and got.shape[:2] == (2, 3), f"samples of shape {tuple(got.shape)}"
    assert torch.allclose(expected, got, atol=1e-5), "reloaded weights give different outputs"
    assert got.min() >= -1 - 1e-4 and got.max() <= 1 + 1e-4, "output outside [-1, 1]"
    a, b = sampler(3, seed=1), sampler(3, seed=1)
    assert len(a) == 3 and all(im.mode == "RGB" for im in a)
    assert [im.tobytes() for im in a] == [im.tobytes() for im in b], "seeded samples differ"
    noise = sampler.inputs(64, seed=0, truncation=0.5)[0]
    if sampler.own_truncation:  # the model truncates (StyleGAN's psi in W), not the latents
        assert torch.equal(noise, sampler.inputs(64, seed=0)[0]), "own truncation moved z"
        near = sampler.sample_tensor(2, seed=0, truncation=0.5)
        assert not torch.equal(near, sampler.sample_tensor(2, seed=0)), "truncation ignored"
    else:
        assert noise.abs().max() <= 0.5, "truncated latents exceed the truncation"
    k = len(sampler.classes)  # a class-conditional model's class input
    if k:
        index = sampler.conditions.index(sampler.class_input)
        onehot = sampler.inputs(4, seed=0, class_name=sampler.classes[-1])[1 + index]
        assert torch.equal(onehot, torch.eye(k)[[k - 1] * 4]), "class one-hot"
        assert len(sampler(2, seed=0, class_name=sampler.classes[0])) == 2

    more = dataclasses.replace(trainer.train_cfg, max_steps=3)
    resumed = Trainer(plugin, cfg, more, trainer.gan_cfg, run_dir=run_dir, resume_from=folder)
    assert resumed.step == 2
    resumed.run()
    assert resumed.step == 3

    exported = export_onnx(run_dir, tmp_path / "model.onnx")
    assert exported.checked_with is not None, exported.note
    assert max(d for _, d in exported.checks) <= FP32_TOLERANCE, exported.checks
    metadata = read_metadata(exported.path)
    assert metadata["plugin"] == plugin.name and json.loads(metadata["latent_shape"]) == list(shape)
    # the ONNX file takes the latent and each condition as inputs of their own
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == ["input", *(c.name for c in sampler.conditions)], names
    latest = Sampler.from_checkpoint(run_dir, device="cpu")
    on_onnx = Sampler.from_checkpoint(exported.path, device="cpu")
    assert on_onnx.backend.kind == "onnx" and on_onnx.conditions == latest.conditions
    for class_name in latest.classes or [None]:  # every class: ONNX Runtime == PyTorch
        inputs = latest.inputs(5, seed=2, class_name=class_name)
        diff = float((on_onnx.generate(*inputs) - latest.generate(*inputs)).abs().max())
        assert diff <= FP32_TOLERANCE, f"ONNX and torch samples ({class_name}) differ by {diff}"
    a, b = (np.asarray(s(2, seed=3)[1], np.int16) for s in (latest, on_onnx))
    assert np.abs(a - b).max() <= 1, "seeded ONNX and torch samples differ"
    return {"output_shape": tuple(got.shape), "onnx": exported}


def _input_shape(plugin: Any, cfg: Any, translator: Any) -> tuple[int, int, int]:
    """(C, H, W) of a valid inference input for the plugin (channels as the Translator
    finds them: ``input_channels``, or preprocess on a blank image)."""
    from translate.loading.model import probe_channels

    req = translator.requirements
    side = max(req.minimum, req.multiple_of, 8)
    side = -(-side // req.multiple_of) * req.multiple_of
    return (probe_channels(plugin, cfg, req), side, side)
