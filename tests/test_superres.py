"""superres: metrics against hand-computed values, the evaluation protocol, degradations,
learning beyond bicubic, tiling, shipped models and the two-phase (pixel -> GAN) recipe."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from translate.cli.main import app
from translate.engine.loop import prepare
from translate.errors import ConfigError
from translate.inference.translator import Translator
from translate.metrics import psnr, rgb_to_y, ssim, y_psnr_ssim
from translate.shipped import DEFAULT_MODEL, list_models, resolve_model

runner = CliRunner()


# ------------------------------------------------------------------ data for these tests
def textured(rng: np.random.Generator, size: int) -> np.ndarray:
    """Sharp-edged rectangles and stripes in random colours: bicubic blurs their edges, so a
    network has something to learn beyond it."""
    image = np.empty((size, size, 3), np.uint8)
    image[:] = rng.integers(0, 256, 3)
    for _ in range(6):
        h, w = (int(v) for v in rng.integers(size // 8, size // 2, 2))
        y, x = int(rng.integers(0, size - h)), int(rng.integers(0, size - w))
        image[y : y + h, x : x + w] = rng.integers(0, 256, 3)
    period = int(rng.integers(3, 7))
    stripes = (np.arange(size) // period) % 2 == 1
    y0 = int(rng.integers(0, size // 2))
    image[y0 : y0 + size // 4, stripes] = rng.integers(0, 256, 3)
    return image


def make_hr(root: Path, *, n: int, size: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(textured(rng, size)).save(root / f"{i:03d}.png")
    return root


TINY = dict(scale=2, channels=8, blocks=1, patch_size=8, progress=False, log_every=1)


def tiny_run(tmp_path: Path, name: str = "run", steps: int = 2, **options: object) -> Path:
    data = make_hr(tmp_path / "hr", n=4, size=32, seed=0)
    opts = {**TINY, **options}
    trainer = prepare(
        "superres",
        data=data,
        max_steps=steps,
        batch_size=2,
        run_dir=tmp_path / name,
        **opts,
    )
    trainer.run()
    return tmp_path / name


# ------------------------------------------------------------------ metrics
def test_psnr_and_ssim_against_hand_computed_values() -> None:
    a = np.zeros((16, 16))
    b = np.full((16, 16), 10.0)
    # MSE 100 -> 10 log10(255^2 / 100)
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 100))
    assert psnr(a, a) == float("inf")
    # constant images: only the luminance term is left, (2 mx my + C1) / (mx^2 + my^2 + C1)
    c1 = (0.01 * 255) ** 2
    x, y = np.full((20, 20), 100.0), np.full((20, 20), 110.0)
    assert ssim(x, y) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), abs=1e-6)
    assert ssim(x, x) == pytest.approx(1.0)
    noise = np.random.default_rng(0).normal(0, 20, (32, 32))
    assert ssim(x[:16, :16].repeat(2, 0).repeat(2, 1), 100 + noise) < 0.5


def test_y_is_bt601_studio_range() -> None:
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    y = rgb_to_y(rgb)
    assert y[0, 0] == pytest.approx(16.0)
    assert y[0, 1] == pytest.approx(235.0)
    assert y[0, 2] == pytest.approx(16 + 65.481)
    # borders are cropped before measuring: a difference only in the border does not count
    ref = np.full((24, 24, 3), 128, np.uint8)
    out = ref.copy()
    out[:2] = 0
    assert y_psnr_ssim(out, ref, border=2)[0] == float("inf")
    assert y_psnr_ssim(out, ref, border=1)[0] < 30


@pytest.mark.parametrize(("channel", "weight"), [(0, 65.481), (1, 128.553), (2, 24.966)])
def test_psnr_of_a_coloured_pair_is_measured_on_luma(channel: int, weight: float) -> None:
    """A shift of 12 levels in one colour channel moves Y by weight * 12 / 255 (BT.601), so
    the Y-PSNR is 20 log10(255 / that); on RGB it would be 20 log10(255 / (12 / sqrt(3)))."""
    ref = np.random.default_rng(0).integers(20, 236, (24, 24, 3)).astype(np.uint8)
    out = ref.copy()
    out[..., channel] += 12
    expected = 20 * np.log10(255 / (weight * 12 / 255))
    assert y_psnr_ssim(out, ref, border=2)[0] == pytest.approx(expected, rel=1e-9)
    assert abs(expected - 20 * np.log10(255 / (12 / np.sqrt(3)))) > 1  # RGB would differ


def test_protocol_reports_luma_psnr_of_a_colour_shifted_output(tmp_path: Path) -> None:
    """The evaluation protocol on an output whose red channel is inverted: PSNR on BT.601 Y of
    the border-shaved images, computed here by hand from the red difference alone."""
    from translate_superres.evaluate import evaluate_folder

    folder = make_hr(tmp_path / "set", n=1, size=32, seed=5)
    hr = np.asarray(Image.open(folder / "000.png").convert("RGB"))
    wrong = hr.copy()
    wrong[..., 0] = 255 - hr[..., 0]
    rows = evaluate_folder(lambda images: [Image.fromarray(wrong)], folder, scale=4)
    diff_r = wrong[4:-4, 4:-4, 0].astype(np.float64) - hr[4:-4, 4:-4, 0]
    mse_y = np.mean((65.481 / 255 * diff_r) ** 2)
    assert rows[0]["PSNR"] == pytest.approx(10 * np.log10(255**2 / mse_y), rel=1e-9)


def test_protocol_crops_to_the_scale_and_reports_bicubic(tmp_path: Path) -> None:
    from translate_superres.evaluate import evaluate_folder

    folder = make_hr(tmp_path / "set", n=2, size=30, seed=3)  # 30: not a multiple of 4
    truth = [Image.open(p).convert("RGB").crop((0, 0, 28, 28)) for p in sorted(folder.iterdir())]
    seen: list[tuple[int, int]] = []

    def oracle(images: list[Image.Image]) -> list[Image.Image]:
        """Returns the true (cropped) HR image: perfect scores if the protocol compares the
        output with the HR cropped to a multiple of the scale."""
        seen.append(images[0].size)
        return [truth[len(seen) - 1]]

    rows = evaluate_folder(oracle, folder, scale=4)
    assert seen == [(7, 7), (7, 7)]  # 30 -> 28 -> 7
    assert [r["image"] for r in rows] == ["000.png", "001.png"]
    for row, hr in zip(rows, truth, strict=True):
        assert row["PSNR"] == float("inf") and row["SSIM"] == pytest.approx(1.0)
        lr = hr.resize((7, 7), Image.Resampling.BICUBIC)
        bicubic = np.asarray(lr.resize((28, 28), Image.Resampling.BICUBIC))
        expected = y_psnr_ssim(bicubic, np.asarray(hr), border=4)
        assert (row["bicubic PSNR"], row["bicubic SSIM"]) == pytest.approx(expected)
        assert 10 < row["bicubic PSNR"] < 40


# ------------------------------------------------------------------ data and degradations
def test_patches_align_and_degradations_are_seeded(tmp_path: Path) -> None:
    from translate_superres.data import SuperResDataset, bicubic_downscale, dihedral

    folder = make_hr(tmp_path / "hr", n=3, size=40, seed=1)
    small = make_hr(tmp_path / "small", n=1, size=12, seed=2)
    ds = SuperResDataset((folder, small), scale=4, patch_size=6, degradation="bicubic")
    assert len(ds) == 3  # the 12-pixel image cannot hold a 24-pixel crop: left out
    item = ds[(1, 123)]
    assert item["input"].shape == (3, 6, 6) and item["target"].shape == (3, 24, 24)
    hr = ((item["target"].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()
    lr = ((item["input"].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()
    assert np.array_equal(lr, bicubic_downscale(hr, 4))
    assert torch.equal(ds[(1, 123)]["target"], item["target"])

    real = SuperResDataset((folder,), scale=4, patch_size=6, degradation="realistic")
    a, b = real[(0, 7)], real[(0, 7)]
    assert a["input"].shape == (3, 6, 6)
    assert torch.equal(a["input"], b["input"])  # a function of the seed
    plain = bicubic_downscale(((a["target"].permute(1, 2, 0) + 1) * 127.5).byte().numpy(), 4)
    assert not np.array_equal(plain, ((a["input"].permute(1, 2, 0) + 1) * 127.5).byte().numpy())
    square = np.arange(16).reshape(4, 4)
    assert len({dihedral(square, k).tobytes() for k in range(8)}) == 8

    with pytest.raises(Exception, match="no image is at least"):
        SuperResDataset((small,), scale=4, patch_size=6)


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    from translate_superres import SuperResConfig

    with pytest.raises(ConfigError, match="data: is required"):
        SuperResConfig()
    with pytest.raises(ConfigError, match="scale"):
        SuperResConfig(data=(tmp_path,), scale=5)
    # a missing training-only file is refused when a run starts, not when a config is read
    with pytest.raises(ConfigError, match=r"vgg_weights: .*missing\.pth: file not found"):
        prepare("superres", data=tmp_path, vgg_weights=tmp_path / "missing.pth", **TINY)


def test_presets_fit_their_budgets() -> None:
    from translate_superres import SuperResConfig, plugin
    from translate_superres.nets import count_parameters

    small = plugin.build_generator(SuperResConfig(data=(Path("."),), preset="small"))
    assert 0.5e6 < count_parameters(small) <= 1e6  # the shipped preset: at most 1 M
    x = torch.rand(1, 3, 10, 12) * 2 - 1
    for scale in (2, 3, 4):
        cfg = SuperResConfig(data=(Path("."),), scale=scale, channels=8, blocks=1)
        assert plugin.build_generator(cfg)(x).shape == (1, 3, 10 * scale, 12 * scale)
        rrdb = SuperResConfig(data=(Path("."),), scale=scale, preset="rrdb", channels=8, blocks=1)
        assert plugin.build_generator(rrdb)(x).shape == (1, 3, 10 * scale, 12 * scale)


# ------------------------------------------------------------------ learning
def mean_psnr(upscale, images: list[np.ndarray], scale: int) -> tuple[float, float]:
    """(model, bicubic) mean Y-PSNR over ``images`` with the evaluation protocol."""
    ours, bicubic = [], []
    for hr in images:
        h, w = hr.shape[:2]
        lr = Image.fromarray(hr).resize((w // scale, h // scale), Image.Resampling.BICUBIC)
        out = np.asarray(upscale([lr])[0])
        bic = np.asarray(lr.resize((w, h), Image.Resampling.BICUBIC))
        ours.append(y_psnr_ssim(out, hr, border=scale)[0])
        bicubic.append(y_psnr_ssim(bic, hr, border=scale)[0])
    return float(np.mean(ours)), float(np.mean(bicubic))


def test_a_tiny_model_beats_bicubic(tmp_path: Path) -> None:
    """x2 on sharp-edged synthetic images: 300 steps (about 20 s on one thread) lift a 2-block
    network from bicubic quality (29.6 dB on held-out images) to about 30.3 dB."""
    data = make_hr(tmp_path / "hr", n=32, size=48, seed=0)
    rng = np.random.default_rng(99)
    held_out = [textured(rng, 48) for _ in range(6)]
    trainer = prepare(
        "superres",
        data=data,
        scale=2,
        channels=16,
        blocks=2,
        patch_size=12,
        max_steps=300,
        batch_size=8,
        lr=2e-3,
        progress=False,
        run_dir=tmp_path / "run",
        sample_every=10**6,
        checkpoint_every=10**6,
        log_every=100,
    )
    start, bicubic = mean_psnr(Translator.from_checkpoint(trainer.save()), held_out, 2)
    folder = trainer.run()
    ours, _ = mean_psnr(Translator.from_checkpoint(folder, device="cpu"), held_out, 2)
    # the bicubic skip starts the network near bicubic; training must add clearly to it
    assert abs(start - bicubic) < 0.2, (start, bicubic)
    assert ours > bicubic + 0.4, (ours, bicubic)


# ------------------------------------------------------------------ tiling
def test_tiled_upscaling_matches_untiled(tmp_path: Path) -> None:
    folder = tiny_run(tmp_path)
    image = Image.fromarray(textured(np.random.default_rng(5), 80))
    whole = Translator.from_checkpoint(folder, device="cpu", tile_size=0)([image])[0]
    tiled = Translator.from_checkpoint(folder, device="cpu", tile_size=32, tile_overlap=16)
    out = tiled([image])[0]
    assert out.size == whole.size == (160, 160)
    assert psnr(np.asarray(out, np.float64), np.asarray(whole, np.float64)) >= 40


# ------------------------------------------------------------------ CLI: run, eval, models
@pytest.fixture
def shipped_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of shipped models holding a tiny x2 model under the default name."""
    run = tiny_run(tmp_path, "shipped-run")
    root = tmp_path / "shipped"
    source = run / "checkpoints" / (run / "checkpoints" / "LATEST").read_text().strip()
    shutil.copytree(source, root / DEFAULT_MODEL, ignore=shutil.ignore_patterns("trainer.pt"))
    (root / DEFAULT_MODEL / "MODEL_CARD.md").write_text("# tiny\n\nA tiny test model.\n")
    monkeypatch.setenv("TRANSLATE_CHECKPOINTS", str(root))
    return root


def test_run_without_checkpoint_uses_the_shipped_default(
    shipped_root: Path, tmp_path: Path
) -> None:
    image = tmp_path / "in.png"
    Image.fromarray(textured(np.random.default_rng(0), 20)).save(image)
    result = runner.invoke(app, ["run", str(image), "--out", str(tmp_path / "out.png")])
    assert result.exit_code == 0, result.output
    assert DEFAULT_MODEL in result.output  # says which model it used
    assert Image.open(tmp_path / "out.png").size == (40, 40)

    result = runner.invoke(app, ["run", str(image), "--model", "superres-x5"])
    assert result.exit_code == 2
    assert f"unknown model 'superres-x5'; did you mean '{DEFAULT_MODEL}'?" in result.output

    listing = runner.invoke(app, ["models"])
    assert listing.exit_code == 0 and f"{DEFAULT_MODEL} (default)" in listing.output
    assert "A tiny test model." in listing.output


def test_eval_prints_model_and_bicubic(shipped_root: Path, tmp_path: Path) -> None:
    folder = make_hr(tmp_path / "set", n=2, size=24, seed=4)
    result = runner.invoke(app, ["eval", "superres", "--data", str(folder), "--per-image"])
    assert result.exit_code == 0, result.output
    for column in ("PSNR", "SSIM", "bicubic PSNR", "bicubic SSIM", "000.png", "mean"):
        assert column in result.output
    bad = runner.invoke(app, ["eval", "pix2pix", "--data", str(folder)])
    assert bad.exit_code == 2 and "pix2pix" in bad.output


def test_no_shipped_models_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import translate.shipped as shipped

    monkeypatch.setattr(shipped, "search_roots", lambda: [tmp_path / "nothing"])
    with pytest.raises(ConfigError, match="no shipped models were found"):
        resolve_model(None)
    assert list_models() == []


# ------------------------------------------------------------------ two phases
def test_gan_phase_starts_from_the_pixel_model(tmp_path: Path) -> None:
    pixel = tiny_run(tmp_path, "pixel")
    from translate.engine import checkpoint as ckpt

    pixel_weights = ckpt.read_weights(ckpt.resolve_checkpoint(pixel))
    from translate.losses.perceptual import vgg19_features

    vgg = tmp_path / "vgg19.pth"  # random weights: the loss only has to be wired in
    torch.save({f"features.{k}": v for k, v in vgg19_features(34).state_dict().items()}, vgg)
    trainer = prepare(
        "superres",
        data=tmp_path / "hr",
        **{**TINY, "phase": "gan", "init_from": pixel, "disc_channels": 8, "vgg_weights": vgg},
        max_steps=2,
        batch_size=2,
        run_dir=tmp_path / "gan",
    )
    g = trainer.models["G"].state_dict()
    assert all(torch.equal(g[k], pixel_weights[f"G.{k}"]) for k in g)
    assert set(trainer.models) == {"G", "D"}
    trainer.run()
    logs = (tmp_path / "gan" / "metrics.jsonl").read_text()
    assert "D_loss" in logs and "G_pixel" in logs and "G_perceptual" in logs

    with pytest.raises(ConfigError, match="init_from"):
        prepare(
            "superres",
            data=tmp_path / "hr",
            **{**TINY, "channels": 16, "phase": "gan", "init_from": pixel},
            run_dir=tmp_path / "bad",
        )


def test_a_checkpoint_runs_without_its_training_only_files(tmp_path: Path) -> None:
    """A run trained with --vgg-weights, moved where neither the VGG file nor the data
    exist: run, export, serve and eval load it from its checkpoint alone."""
    from translate.losses.perceptual import vgg19_features
    from translate.serve.models import LoadSettings, load_translator

    vgg = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in vgg19_features(34).state_dict().items()}, vgg)
    run = tiny_run(tmp_path, steps=1, vgg_weights=vgg)
    vgg.unlink()
    shutil.rmtree(tmp_path / "hr")  # the training data is gone too
    image = tmp_path / "in.png"
    Image.fromarray(textured(np.random.default_rng(2), 12)).save(image)

    ran = runner.invoke(app, ["run", str(image), "-c", str(run), "-o", str(tmp_path / "o.png")])
    assert ran.exit_code == 0, ran.output
    assert Image.open(tmp_path / "o.png").size == (24, 24)
    onnx = tmp_path / "sr.onnx"
    exported = runner.invoke(app, ["export", str(run), "-o", str(onnx)])
    assert exported.exit_code == 0, exported.output
    served = load_translator("checkpoint", str(run), LoadSettings(device="cpu"))
    assert served([Image.open(image)])[0].size == (24, 24)
    folder = make_hr(tmp_path / "set", n=1, size=16, seed=3)
    scored = runner.invoke(app, ["eval", "superres", "-c", str(run), "--data", str(folder)])
    assert scored.exit_code == 0, scored.output
    assert "PSNR" in scored.output


def test_gan_phase_defaults_are_esrgans(tmp_path: Path) -> None:
    """ESRGAN, Sec. 4.1: pixel weight 1e-2, adversarial 5e-3, Adam lr 1e-4 for G and D, a VGG
    discriminator with batch norm; the pixel phase keeps 2e-4; a value the user gives wins."""
    from translate.testing import make_single

    data = make_single(tmp_path / "hr", n=2, size=32)
    common = dict(data=data, **TINY, disc_channels=4, device="cpu")
    gan = prepare("superres", phase="gan", run_dir=tmp_path / "gan", **common)
    assert (gan.plugin_cfg.lambda_pixel, gan.plugin_cfg.lambda_adv) == (1e-2, 5e-3)
    assert gan.gan_cfg.gan_loss == "ragan"
    assert {g: o.param_groups[0]["lr"] for g, o in gan.ctx.optimizers.items()} == {
        "G": 1e-4,
        "D": 1e-4,
    }
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in gan.models["D"].modules())
    pixel = prepare("superres", run_dir=tmp_path / "pixel", **common)
    assert pixel.ctx.optimizers["G"].param_groups[0]["lr"] == 2e-4
    mine = prepare(
        "superres", phase="gan", lr=5e-5, disc_norm="none", run_dir=tmp_path / "mine", **common
    )
    assert mine.ctx.optimizers["D"].param_groups[0]["lr"] == 5e-5
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in mine.models["D"].modules())


def test_serve_without_a_model_loads_the_shipped_default(shipped_root: Path) -> None:
    from translate.serve.server import load_models

    (served,) = load_models()
    assert served.name == DEFAULT_MODEL
    assert served.translator.meta["plugin"] == "superres"
    image = Image.fromarray(textured(np.random.default_rng(1), 12))
    assert served.translator([image])[0].size == (24, 24)


def test_the_shipped_default_model() -> None:
    """The real shipped weights (checkpoints/superres-x4): within the budget (at most 1 M
    parameters, 10 MB), documented, and better than bicubic on a sharp-edged image."""
    from translate.shipped import MODEL_CARD, search_roots

    roots = [r for r in search_roots()[1:] if (r / DEFAULT_MODEL).is_dir()]  # not the env var
    assert roots, "the shipped default model is missing from checkpoints/"
    folder = roots[0] / DEFAULT_MODEL
    assert (folder / "model.safetensors").stat().st_size <= 10 * 2**20
    assert "Set5" in (folder / MODEL_CARD).read_text()
    translator = Translator.from_checkpoint(folder, device="cpu")
    assert sum(p.numel() for p in translator.backend.module.parameters()) <= 1_000_000
    hr = textured(np.random.default_rng(7), 96)
    ours, bicubic = mean_psnr(translator, [hr], 4)
    assert ours > bicubic, (ours, bicubic)
