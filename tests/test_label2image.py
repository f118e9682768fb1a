"""label2image: palettes from noisy maps, label parsing and its errors, the CLI, learning."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from translate_label2image import Label2ImageConfig, plugin
from typer.testing import CliRunner

from tests.test_cli import assert_user_error
from translate.cli.main import app
from translate.data.palette import (
    colours_to_ids,
    default_palette,
    estimate_palette,
    instance_edges,
    label_ids,
    palette_array,
    to_hex,
)
from translate.engine.loop import prepare
from translate.errors import ConfigError, DataError
from translate.testing import LABEL_COLOURS, PHOTO_COLOURS, label_pair, make_labels

runner = CliRunner()

TINY = dict(
    load_size=32,
    crop_size=32,
    n_up=3,
    base_channels=8,
    spade_hidden=16,
    disc_channels=8,
    disc_layers=2,
)
TINY_FLAGS = [
    "--load-size", "32", "--crop-size", "32", "--n-up", "3", "--base-channels", "8",
    "--spade-hidden", "16", "--disc-channels", "8", "--disc-layers", "2", "--no-progress",
]  # fmt: skip


def jpeg(rgb: np.ndarray, quality: int = 75) -> np.ndarray:
    """``rgb`` after a JPEG round trip (4:2:0 chroma subsampling, as the facades maps)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


# ---------------------------------------------------------------------------- palettes
def test_palette_estimated_from_jpeg_degraded_maps_and_parsed_by_nearest_colour() -> None:
    rng = np.random.default_rng(0)
    pairs = [label_pair(rng, 64) for _ in range(8)]
    noisy = [jpeg(label) for _, label, _ in pairs]
    # JPEG really does move the colours: many pixels are off, some far off (border blends)
    exact = np.array(LABEL_COLOURS, np.uint8)[pairs[0][0]]
    assert (np.abs(noisy[0].astype(int) - exact).max(2) > 20).mean() > 0.02

    found = estimate_palette(noisy)
    assert len(found) == len(LABEL_COLOURS), found
    for colour in LABEL_COLOURS:  # every class colour found, within a few levels
        distance = min(np.linalg.norm(np.subtract(colour, f)) for f in found)
        assert distance < 12, (colour, found)

    # nearest-colour parsing with the estimated palette recovers the ids of a new noisy map
    palette = np.array(found, np.uint8)
    to_true = [int(np.argmin(((palette - c) ** 2).sum(1))) for c in LABEL_COLOURS]
    ids, label, _ = label_pair(rng, 64)
    parsed = colours_to_ids(jpeg(label), palette, tolerance=60, max_unknown=0.01, source="m")
    agree = (parsed == np.array(to_true)[ids]).mean()
    assert agree > 0.97, agree
    # away from class borders, every pixel is right
    interior = np.ones_like(ids, bool)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0), (2, 0), (0, 2), (-2, 0), (0, -2)):
        interior &= np.roll(ids, (dy, dx), (0, 1)) == ids
    assert (parsed == np.array(to_true)[ids])[interior].all()

    # num_classes keeps the most frequent colours; asking for more than exist fails
    assert estimate_palette(noisy, num_classes=3) == found[:3]
    with pytest.raises(ValueError, match="fewer than --num-classes 9"):
        estimate_palette(noisy, num_classes=9)


def test_unknown_colours_are_refused_but_border_noise_is_not() -> None:
    rng = np.random.default_rng(1)
    palette = np.array(LABEL_COLOURS, np.uint8)
    _, label, _ = label_pair(rng, 64)
    colours_to_ids(jpeg(label, 40), palette, tolerance=60, max_unknown=0.01, source="ok.png")

    foreign = label.copy()
    foreign[5:30, 5:30] = (255, 0, 255)  # a region in a colour the palette lacks
    with pytest.raises(DataError, match=r"^x\.png: .*regions of colours far from every"):
        colours_to_ids(foreign, palette, tolerance=60, max_unknown=0.01, source="x.png")
    noise = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)  # no flat regions at all
    with pytest.raises(DataError, match=r"^noise: \d+% of the pixels are of colours far"):
        colours_to_ids(noise, palette, tolerance=60, max_unknown=0.01, source="noise")


def test_index_maps_ids_dont_care_and_palette_images() -> None:
    palette = np.array(LABEL_COLOURS, np.uint8)
    kw = dict(palette=palette, num_classes=5, tolerance=60.0, max_unknown=0.01)
    ids = np.array([[0, 1, 2], [3, 4, 255]], np.uint8)
    with pytest.raises(DataError, match=r"^m\.png: label id 255 at x=2, y=1 is beyond .* 5 "):
        label_ids(Image.fromarray(ids, "L"), source="m.png", **kw)
    parsed, _ = label_ids(Image.fromarray(ids, "L"), dont_care=255, **kw)
    assert parsed.tolist() == [[0, 1, 2], [3, 4, -1]]

    # a P image whose colours are the model's palette is a colour map (editor-saved) ...
    shuffled = [3, 1, 4, 0, 2]
    p = Image.fromarray(np.array([[0, 1], [2, 3]], np.uint8), "P")
    p.putpalette([v for k in shuffled for v in LABEL_COLOURS[k]])
    assert label_ids(p, **kw)[0].tolist() == [[3, 1], [4, 0]]
    # ... one with other colours (a VOC-style index PNG) counts by its indices
    p.putpalette([*[v for c in default_palette(5) for v in c][3:], 9, 9, 9])
    assert label_ids(p, **kw)[0].tolist() == [[0, 1], [2, 3]]


def test_instance_ids_give_boundaries_between_touching_objects() -> None:
    inst = np.full((4, 6), 2, np.int32)  # class 2 ("stuff") everywhere
    inst[:, 1:3] = 3001  # two touching objects of class 3
    inst[:, 3:5] = 3002
    image = Image.fromarray(inst.astype(np.int32), "I")
    ids, instance = label_ids(
        image,
        palette=np.array(LABEL_COLOURS, np.uint8),
        num_classes=5,
        tolerance=60,
        max_unknown=0.01,
        instances=True,
    )
    assert ids[0].tolist() == [2, 3, 3, 3, 3, 2]
    edges = instance_edges(instance)
    assert edges[0].tolist() == [1, 1, 1, 1, 1, 1]  # includes the 3001 | 3002 border
    inst[:, 3:5] = 3001
    assert instance_edges(inst)[0].tolist() == [1, 1, 0, 0, 1, 1]


def test_finalize_config_palette_from_flag_file_or_data(tmp_path: Path) -> None:
    data = make_labels(tmp_path / "data")
    cfg = plugin.finalize_config(Label2ImageConfig(data=data, **TINY))
    assert cfg.labels == "colour" and cfg.num_classes == len(LABEL_COLOURS)
    assert sorted(cfg.palette) == sorted(to_hex(c) for c in LABEL_COLOURS)

    given = [to_hex(c) for c in LABEL_COLOURS]
    cfg = plugin.finalize_config(Label2ImageConfig(data=data, palette=tuple(given), **TINY))
    assert list(cfg.palette) == given
    text = tmp_path / "palette.txt"
    text.write_text("".join(f"{r} {g} {b} class{i}\n" for i, (r, g, b) in enumerate(LABEL_COLOURS)))
    cfg = plugin.finalize_config(Label2ImageConfig(data=data, palette=(str(text),), **TINY))
    assert list(cfg.palette) == given
    with pytest.raises(ConfigError, match="num_classes: 4 differs from the palette's 5"):
        plugin.finalize_config(
            Label2ImageConfig(data=data, palette=tuple(given), num_classes=4, **TINY)
        )
    with pytest.raises(ConfigError, match="palette: 'pink' is not a colour"):
        plugin.finalize_config(Label2ImageConfig(data=data, palette=("pink",), **TINY))

    # index maps: classes from the largest id, VOC colours for previews
    index = tmp_path / "index"
    for folder in ("A", "B"):
        (index / "train" / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        ids, _, photo = label_pair(rng, 32, n_classes=4)
        Image.fromarray(ids.astype(np.uint8), "L").save(index / "train" / "A" / f"{i}.png")
        Image.fromarray(photo).save(index / "train" / "B" / f"{i}.png")
    cfg = plugin.finalize_config(Label2ImageConfig(data=index, **TINY))
    assert cfg.labels == "index" and cfg.num_classes == 4
    assert list(cfg.palette) == [to_hex(c) for c in default_palette(4)]
    item = plugin.build_dataset(cfg, "train")[0]
    assert item["input"].shape == (4, 32, 32) and item["input"].sum(0).eq(1).all()


# ---------------------------------------------------------------------------- the CLI
def test_cli_train_run_preview_and_one_line_errors(tmp_path: Path) -> None:
    data = make_labels(tmp_path / "data")
    run_dir = tmp_path / "run"
    trained = runner.invoke(
        app,
        ["train", "label2image", "--data", str(data), "--run-dir", str(run_dir), "--max-steps",
         "2", *TINY_FLAGS],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    meta = json.loads((run_dir / "checkpoints" / "step_0000002" / "meta.json").read_text())
    palette = meta["plugin_config"]["palette"]  # estimated, stored: run needs no flags
    assert sorted(palette) == sorted(to_hex(c) for c in LABEL_COLOURS)

    # a colour map (JPEG-noisy) and an index map of the same layout render alike
    ids, label, _ = label_pair(np.random.default_rng(5), 48)
    Image.fromarray(jpeg(label)).save(tmp_path / "colour.jpg")
    order = [palette.index(to_hex(c)) for c in LABEL_COLOURS]  # our class k -> model id
    model_ids = np.array(order)[ids].astype(np.uint8)
    Image.fromarray(model_ids, "L").save(tmp_path / "index.png")
    out, shown = tmp_path / "out", tmp_path / "preview"
    ran = runner.invoke(
        app,
        ["run", str(tmp_path / "colour.jpg"), str(tmp_path / "index.png"), "-c", str(run_dir),
         "-o", str(out), "--preview", str(shown)],
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    assert Image.open(out / "colour.png").size == (48, 48)
    # the preview draws what the model was given: the parsed classes in palette colours
    exact = np.array(LABEL_COLOURS, np.uint8)[ids]
    for name in ("colour", "index"):
        preview = np.asarray(Image.open(shown / f"{name}.png"))
        assert (preview == exact).all(axis=2).mean() > 0.97, name
    assert (np.asarray(Image.open(shown / "index.png")) == exact).all()

    def run(path: Path) -> object:
        return runner.invoke(app, ["run", str(path), "-c", str(run_dir), "-o", str(out)])

    foreign = label.copy()
    foreign[8:40, 8:40] = (255, 0, 255)
    Image.fromarray(foreign).save(tmp_path / "foreign.png")
    assert_user_error(run(tmp_path / "foreign.png"), "foreign.png:", "far from every palette")
    Image.fromarray(np.full((16, 16), 7, np.uint8), "L").save(tmp_path / "big_id.png")
    assert_user_error(run(tmp_path / "big_id.png"), "big_id.png:", "label id 7", "5 classes")
    Image.fromarray(np.zeros((4, 30), np.uint8), "L").save(tmp_path / "tiny.png")
    assert_user_error(run(tmp_path / "tiny.png"), "tiny.png:", "30x4 is too small")

    # tiled label maps (16-pixel tiles) work like any input
    tiled = runner.invoke(
        app,
        ["run", str(tmp_path / "colour.jpg"), "-c", str(run_dir), "-o", str(out), "--preview",
         str(shown), "--tile-size", "16"],
    )  # fmt: skip
    assert tiled.exit_code == 0, tiled.output


def test_vgg_perceptual_loss_from_a_weights_file(tmp_path: Path) -> None:
    from translate.losses.perceptual import ESRGAN_LAYERS, VGGLoss, vgg19_features

    torch.manual_seed(0)
    weights = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in vgg19_features(36).state_dict().items()}, weights)
    loss = VGGLoss(weights)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    y = torch.rand(1, 3, 32, 32, requires_grad=True)
    assert loss(x, x).item() == 0
    value = loss(y, x)
    value.backward()
    assert value.item() > 0 and y.grad is not None and y.grad.abs().sum() > 0
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ConfigError, match=r"vgg_weights: .*not a torchvision VGG-19"):
        VGGLoss(bad)
    # ESRGAN's single pre-activation conv5_4 layer from the same file
    esrgan = VGGLoss(weights, ESRGAN_LAYERS)
    assert esrgan(x, x).item() == 0 and esrgan(y, x).item() > 0


# ---------------------------------------------------------------------------- learning
def class_colour_error(generator: torch.nn.Module, dataset: object) -> float:
    """Mean over classes of the distance (0-255 units) between the class's mean rendered
    colour on the validation maps and its ``PHOTO_COLOURS`` entry."""
    items = [dataset[i] for i in range(len(dataset))]
    seg = torch.stack([it["input"] for it in items])
    ids = torch.stack([it["labels"] for it in items])
    generator.eval()
    with torch.no_grad():
        out = (generator(seg) + 1) * 127.5  # (B, 3, H, W) in 0..255
    generator.train()
    palette = palette_array(dataset.cfg.palette).astype(int).tolist()
    errors = []
    for k, colour in enumerate(palette):
        mask = ids == k
        if mask.sum() == 0:
            continue
        mean = out.permute(0, 2, 3, 1)[mask].mean(0)
        target = torch.tensor(PHOTO_COLOURS[LABEL_COLOURS.index(tuple(colour))], dtype=float)
        errors.append((mean.double() - target).norm().item())
    return float(np.mean(errors))


def test_label2image_learns_class_colours(tmp_path: Path) -> None:
    """32x32 maps of coloured rectangles -> each class painted in its own colour: with the
    default objective (hinge + feature matching, SN in D and in G's residual blocks, as SPADE),
    120 steps of batch 4 bring the per-class colour error from about 135 to 56-70 (0-255
    units, two runs; about 32 when SN also held the SPADE modulation convolutions, which then
    started larger than their 0.02 initialisation), in about 15 s of CPU time on one thread."""
    root = make_labels(tmp_path / "rects", n_train=48, n_val=8, size=32, seed=3)
    trainer = prepare(
        "label2image",
        data=root,
        **{**TINY, "base_channels": 16, "disc_channels": 16},
        flip=False,
        max_steps=120,
        batch_size=4,
        lr_decay_start=1.0,
        progress=False,
        run_dir=tmp_path / "run",
        sample_every=10**6,
        checkpoint_every=10**6,
        log_every=40,
    )
    before = class_colour_error(trainer.models["G"], trainer.val_dataset)
    trainer.run()
    after = class_colour_error(trainer.models["G"], trainer.val_dataset)
    assert before > 60, before
    assert after < 0.6 * before, (before, after)


def test_spectral_norm_sits_where_spade_puts_it() -> None:
    """SPADE's spectral norm (--spectral-norm both, the default) normalises the generator's
    residual-block convolutions only, not the modulation convolutions, head or to_rgb."""
    from translate.config import GANConfig
    from translate.engine.transforms import apply_gan_transforms
    from translate.nn.surgery import has_spectral_norm

    cfg = Label2ImageConfig(
        data=Path("unused"),
        palette=("#000000", "#ff0000"),
        n_up=2,
        base_channels=4,
        spade_hidden=4,
        crop_size=16,
        load_size=16,
    )
    models = apply_gan_transforms(plugin.build_models(cfg), GANConfig(**plugin.gan_defaults))
    convs = {n: m for n, m in models["G"].named_modules() if isinstance(m, torch.nn.Conv2d)}
    normalised = {n.rsplit(".", 1)[-1] for n, m in convs.items() if has_spectral_norm(m)}
    plain = {n for n, m in convs.items() if not has_spectral_norm(m)}
    assert normalised == {"conv_0", "conv_1", "conv_s"}
    assert "head" in plain and "to_rgb" in plain
    assert all(".spade_" in n for n in plain - {"head", "to_rgb"})
    d_convs = [m for m in models["D"].modules() if isinstance(m, torch.nn.Conv2d)]
    assert d_convs and all(has_spectral_norm(m) for m in d_convs)


def test_default_discriminator_is_spades_and_the_docs_say_so() -> None:
    """SPADE's n_layers_D 4 is this PatchGAN's n_layers 3: a 70x70 receptive field and 4 matched
    feature layers (feature matching 40 = SPADE's 10 summed over 4). Neither the help text nor
    the README may send users to --disc-layers 4 (a larger net, 5 matched layers)."""
    import dataclasses

    from translate.nn import PatchDiscriminator

    layers = {f.name: f for f in dataclasses.fields(Label2ImageConfig)}["disc_layers"]
    d = PatchDiscriminator(in_channels=3, base_channels=4, n_layers=layers.default, norm="none")
    x = torch.zeros(1, 3, 160, 160, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero()
    assert int(rows.max() - rows.min() + 1) == 70
    assert len(d.forward_features(x)) - 1 == 4
    readme = (Path(__file__).parents[1] / "plugins/translate_label2image/README.md").read_text()
    assert "--disc-layers 4" not in readme
    assert "SPADE: 4" not in layers.metadata["help"]
