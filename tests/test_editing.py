"""Inference-time editing: GAN inversion (the StyleGAN2 projector) and DragGAN point dragging.

By hand on tiny tensors: point tracking (Eq. 2), motion supervision (Eq. 1: the shift
direction, the stop-gradient on the reference, the mask term), the projector's learning-rate
ramp and noise regularisation, the radii scaled with the resolution. On a tiny stylegan2 run:
``translate invert`` and ``translate drag`` end to end and their bad inputs (one line, exit 2).
Slow: inverting the model's own image from a known latent reaches PSNR >= 25 dB after the
default 1000 steps (w for stylegan2, z for dcgan)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from translate.cli.main import app
from translate.engine.loop import prepare
from translate.inference.dragging import (
    disk_offsets,
    drag,
    drag_radii,
    feature_block,
    motion_supervision,
    track_points,
)
from translate.inference.editing import LatentEditable, StyleEditable, editable
from translate.inference.inversion import (
    invert,
    learning_rate,
    noise_regularization,
    pixel_ssim_loss,
)
from translate.loading import load
from translate.metrics.quality import psnr
from translate.nn.stylegan2 import Generator
from translate.testing import make_single

SG = dict(
    image_size=16, latent_dim=16, channel_base=128, channel_max=16, mapping_layers=2, flip=False
)
LOOP = dict(progress=False, device="cpu", amp="none", log_every=1, batch_size=4, sample_every=10**6)


def tiny_stylegan2(base: Path) -> Path:
    """A 16 px stylegan2 trained two steps on 6 images (test_serve_drag, the page's test)."""
    data = make_single(base / "data", n=6, size=16)
    prepare("stylegan2", data=data, run_dir=base / "run", max_steps=2, **SG, **LOOP).run()
    return base / "run"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_stylegan2(tmp_path_factory.mktemp("edit"))


def _u8(image: torch.Tensor) -> np.ndarray:
    return ((image[0].permute(1, 2, 0).cpu().numpy() + 1) * 127.5).round().clip(0, 255)


# ---- DragGAN by hand -------------------------------------------------------------------


def test_point_tracking_returns_the_nearest_feature_inside_the_window() -> None:
    """Eq. 2: the pixel of the square |dx|, |dy| <= r2 whose feature is nearest in L1."""
    feat = torch.zeros(1, 2, 7, 7)
    feat[0, :, :, :] = 5.0
    f0 = torch.tensor([[1.0, 2.0]])
    feat[0, :, 2, 4] = torch.tensor([1.0, 2.5])  # (x=4, y=2): L1 distance 0.5
    feat[0, :, 3, 3] = torch.tensor([1.0, 3.0])  # (x=3, y=3): L1 distance 1
    feat[0, :, 6, 6] = torch.tensor([1.0, 2.0])  # exact, but outside the window of r2 = 2
    moved = track_points(feat, f0, torch.tensor([[3.0, 3.0]]), r2=2)
    assert moved.tolist() == [[4.0, 2.0]]
    # with a window wide enough the exact match wins; a handle at the border stays inside
    assert track_points(feat, f0, torch.tensor([[3.0, 3.0]]), r2=3).tolist() == [[6.0, 6.0]]
    assert track_points(feat, f0, torch.tensor([[0.0, 0.0]]), r2=1).tolist()[0][0] >= 0


def test_motion_supervision_by_hand_shift_direction_and_detach() -> None:
    """Eq. 1 on a ramp F(x, y) = x: |F(q + d) - sg(F(q))| = 1 for a one-pixel shift; the
    gradient reaches only the shifted sample (the reference is detached), on the target side."""
    ramp = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 5, 5).clone()
    for target, shifted in (((4.0, 2.0), 3), ((0.0, 2.0), 1)):
        feat = ramp.clone().requires_grad_(True)
        loss = motion_supervision(feat, torch.tensor([[2.0, 2.0]]), torch.tensor([target]), r1=0.5)
        assert float(loss.detach()) == pytest.approx(1.0)
        loss.backward()
        grad = feat.grad[0, 0]
        expected = torch.zeros(5, 5)
        expected[2, shifted] = 1.0 if shifted == 3 else -1.0  # d|F(q+d) - F(q)|/dF(q+d)
        assert torch.allclose(grad, expected), grad  # nothing at the handle: sg(F(q))


def test_motion_supervision_mask_term_and_arrived_handles() -> None:
    """lambda * mean |(F - F0) * (1 - M)|: F - F0 = 1 everywhere, 3 of 4 columns masked (may
    change) -> 10 * 0.25; a handle already at its target adds nothing."""
    feat0 = torch.zeros(1, 1, 4, 4)
    mask = torch.zeros(4, 4)
    mask[:, :3] = 1
    p = torch.tensor([[1.0, 1.0]])
    loss = motion_supervision(feat0 + 1, p, p.clone(), r1=1, feat0=feat0, mask=mask)
    assert float(loss) == pytest.approx(2.5)


def test_radii_disk_and_block_scale_with_resolution() -> None:
    assert drag_radii(256) == (3.0, 12.0, 1.0)
    assert drag_radii(512) == (6.0, 24.0, 2.0)
    assert drag_radii(32) == (1.0, 1.5, 0.125)
    assert len(disk_offsets(1)) == 5 and len(disk_offsets(3)) == 29
    assert feature_block([4, 8, 16, 32, 64, 128, 256]) == 5  # the 6th block: 128 px
    assert feature_block([4, 8, 16, 32, 64, 128, 256, 512]) == 5  # the 6th block: R/4 at 512
    assert feature_block([4, 8, 16, 32]) == 2  # a smaller model: half its resolution
    assert feature_block([4]) == 0


def test_drag_optimises_only_the_first_6_layers_and_stops_on_arrival() -> None:
    """On a random 32 px generator (8 layers of w+): layers 7 and 8 stay as they were; a
    handle already at its target takes no step and leaves the latent alone."""
    torch.manual_seed(0)
    G = Generator(8, 8, 32, mapping_layers=1, channel_base=64, channel_max=8)
    gen = StyleEditable(G)
    ws = gen.map(gen.draw(0))
    result = drag(gen, ws, torch.tensor([[10.0, 10.0]]), torch.tensor([[20.0, 10.0]]), steps=3)
    assert result.steps == 3 and result.points.shape == (1, 2)
    assert torch.equal(result.latent[:, 6:], ws[:, 6:])
    assert not torch.equal(result.latent[:, :6], ws[:, :6])
    still = drag(gen, ws, torch.tensor([[10.0, 10.0]]), torch.tensor([[10.0, 10.0]]), steps=3)
    assert still.steps == 0 and still.arrived and torch.equal(still.latent, ws)


# ---- the projector by hand -------------------------------------------------------------


def test_projector_learning_rate_ramps() -> None:
    """Linear ramp-up over the first 5%, cosine ramp-down over the last 25%."""
    assert learning_rate(0.0) == 0.0
    assert learning_rate(0.025) == pytest.approx(0.05)
    assert learning_rate(0.5) == pytest.approx(0.1)
    assert learning_rate(0.875) == pytest.approx(0.1 * (0.5 - 0.5 * math.cos(0.5 * math.pi)))


def test_noise_regularization_by_hand() -> None:
    """A checkerboard correlates -1 with its one-pixel rolls in x and y: (-1)^2 + (-1)^2 = 2;
    a 16 px map adds its 8 px average-pooled level (a checkerboard pools to 0)."""
    checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    assert float(noise_regularization([checker])) == pytest.approx(2.0)
    big = checker.repeat(8, 8)
    assert float(noise_regularization([big])) == pytest.approx(2.0)
    assert float(noise_regularization([torch.ones(16, 16)])) == pytest.approx(4.0)


def test_pixel_ssim_loss_is_zero_only_for_the_same_image() -> None:
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert float(pixel_ssim_loss(x, x)) == pytest.approx(0.0, abs=1e-5)
    assert float(pixel_ssim_loss(x, -x)) > 1.0


# ---- on a tiny stylegan2 ---------------------------------------------------------------


def test_editable_of_stylegan2_gives_w_plus_noise_and_features(run: Path) -> None:
    gen = editable(load(run))
    assert isinstance(gen, StyleEditable) and gen.space == "w" and gen.resolution == 16
    ws = gen.map(gen.draw(3))
    assert ws.shape == (1, gen.num_ws, 16) and torch.equal(ws, gen.map(gen.draw(3)))
    image, feat = gen.features(ws, 2)
    assert image.shape == (1, 3, 16, 16) and feat.shape[-1] == gen.feature_blocks()[2] == 16
    assert gen.noise_buffers()[0].shape == (4, 4)


@pytest.mark.slow
def test_invert_and_drag_commands_end_to_end(run: Path, tmp_path: Path) -> None:
    cli = CliRunner()
    gen = editable(load(run))
    with torch.no_grad():
        target = gen.synthesize(gen.map(gen.draw(7))).clamp(-1, 1)
    Image.fromarray(_u8(target).astype(np.uint8)).resize((20, 24)).save(tmp_path / "t.png")
    res = cli.invoke(
        app, ["invert", str(tmp_path / "t.png"), "-c", str(run), "--steps", "5", "--wplus",
              "-o", str(tmp_path / "inv")]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "centre-cropped and resized to 16x16" in res.output and "MSE + (1 - SSIM)" in res.output
    assert "PSNR" in res.output and (tmp_path / "inv" / "image.png").is_file()
    res = cli.invoke(
        app, ["drag", "-c", str(run), "--latent", str(tmp_path / "inv" / "latent.pt"),
              "--handle", "5,5", "--target", "9,5", "--steps", "3", "--frames",
              "-o", str(tmp_path / "drag")]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    points = json.loads((tmp_path / "drag" / "points.json").read_text())
    assert points["targets"] == [[9.0, 5.0]] and len(points["points"]) == 1
    assert len(list((tmp_path / "drag" / "frames").glob("*.png"))) == points["steps"]
    # the output folder is never overwritten without --overwrite
    res = cli.invoke(
        app, ["drag", "-c", str(run), "--seed", "1", "--handle", "5,5", "--target", "9,5",
              "-o", str(tmp_path / "drag")]
    )  # fmt: skip
    assert res.exit_code == 2 and "already exists" in res.output


def test_lpips_is_defined_below_alexnets_size(lpips_weights: Path) -> None:
    """AlexNet needs 31 px: a 16 px image is upsampled to 32 px first (else the network
    raises 'Output size is too small'), so LPIPS of a tiny generator's images is defined."""
    from translate.metrics.perceptual import LPIPSMetric

    metric = LPIPSMetric(lpips_weights)
    torch.manual_seed(0)
    x, y = torch.rand(2, 1, 3, 16, 16) * 2 - 1
    up = [torch.nn.functional.interpolate(t, size=(32, 32), mode="bilinear") for t in (x, y)]
    with torch.no_grad():
        assert float(metric.distance(x, y)) == pytest.approx(float(metric.net(*up)), rel=1e-6)
        assert float(metric.distance(x, x)) == pytest.approx(0.0, abs=1e-7)
    assert metric.distance(torch.rand(1, 3, 40, 36), torch.rand(1, 3, 40, 36)).shape[-1] == 1


def test_invert_command_with_lpips_weights_on_a_16px_model(
    run: Path, lpips_weights: Path, tmp_path: Path
) -> None:
    """--lpips-weights: the distance optimised is LPIPS (no 'MSE + (1 - SSIM)' note) and the
    figure printed is LPIPS, on a model smaller than AlexNet's input."""
    gen = editable(load(run))
    with torch.no_grad():
        target = gen.synthesize(gen.map(gen.draw(7))).clamp(-1, 1)
    Image.fromarray(_u8(target).astype(np.uint8)).save(tmp_path / "t.png")
    res = CliRunner().invoke(
        app, ["invert", str(tmp_path / "t.png"), "-c", str(run), "--steps", "2",
              "--lpips-weights", str(lpips_weights), "-o", str(tmp_path / "inv")]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "SSIM" not in res.output and "LPIPS" in res.output and "PSNR" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["invert", "{tmp}/missing.png", "-c", "{run}", "-o", "{tmp}/o"], "image not found"),
        (["invert", "{tmp}/m.png", "-c", "{run}", "--steps", "0", "-o", "{tmp}/o"], "--steps"),
        (["drag", "-c", "{run}", "--seed", "1", "--handle", "16,3", "--target", "3,3",
          "-o", "{tmp}/o"], "outside the 16x16 image"),
        (["drag", "-c", "{run}", "--seed", "1", "--handle", "1,1", "--handle", "2,2",
          "--target", "3,3", "-o", "{tmp}/o"], "2 handles but 1 targets"),
        (["drag", "-c", "{run}", "--handle", "1,1", "--target", "3,3", "-o", "{tmp}/o"],
         "exactly one of --seed"),
        (["drag", "-c", "{run}", "--seed", "1", "--handle", "1;1", "--target", "3,3",
          "-o", "{tmp}/o"], "expected x,y"),
    ],
)  # fmt: skip
def test_bad_inputs_are_one_line_exit_2(
    args: list[str], message: str, run: Path, tmp_path: Path
) -> None:
    argv = [a.format(tmp=tmp_path, run=run) for a in args]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 2, res.output
    assert message in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


# ---- slow: inversion quality ---------------------------------------------------------------


@pytest.mark.slow
def test_inverting_the_models_own_image_reaches_25_db(run: Path) -> None:
    """The issue's bar: the image of a known latent, projected in w with the default 1000
    steps (pixel + SSIM loss), comes back at PSNR >= 25 dB (measured 28.2 dB)."""
    gen = editable(load(run))
    with torch.no_grad():
        target = gen.synthesize(gen.map(gen.draw(5))).clamp(-1, 1)
    start = gen.synthesize(gen.mean_and_std()[0]).clamp(-1, 1).detach()
    result = invert(gen, target, steps=1000)
    assert psnr(_u8(result.image), _u8(target)) >= 25.0
    assert psnr(_u8(start), _u8(target)) < 20.0  # it was not there to begin with


@pytest.mark.slow
def test_inverting_a_dcgan_image_optimises_z(tmp_path: Path) -> None:
    data = make_single(tmp_path / "data", n=4, size=16)
    tiny = {"image_size": 16, "latent_dim": 8, "base_channels": 8, "batch_size": 2}
    prepare("dcgan", data=data, run_dir=tmp_path / "run", max_steps=2, **tiny, progress=False,
            amp="none", device="cpu").run()  # fmt: skip
    gen = editable(load(tmp_path / "run"))
    assert isinstance(gen, LatentEditable) and gen.noise_buffers() == []
    with torch.no_grad():
        target = gen.synthesize(gen.draw(2)).clamp(-1, 1)
    result = invert(gen, target, steps=1000)
    assert psnr(_u8(result.image), _u8(target)) >= 25.0


@pytest.mark.slow
def test_inverting_with_lpips_lowers_lpips_below_the_bound(run: Path, lpips_weights: Path) -> None:
    """With LPIPS weights the projector optimises LPIPS: after the default 1000 steps the
    reconstruction's LPIPS to the image of a known latent is at most 0.3 of the start's (w_avg).
    The weights are random stand-ins (conftest's ``lpips_weights``: signed random AlexNet,
    non-negative heads), so this bound shows that the LPIPS path works (the distance is
    LPIPS, its gradient reaches w, the 16 px images are measured), not that reconstructions
    look right to people: that needs the trained weights, which tests cannot download.
    Measured (shared 2-core machine) on targets of seeds 5, 6, 7: LPIPS 0.063 -> 0.0005,
    0.049 -> 0.0083, 0.041 -> 0.0034 (ratios 0.008, 0.17, 0.08; PSNR 31.7, 16.5, 22.6 dB);
    with every weight non-negative (the old stand-in) LPIPS rose, 0.013 -> 0.069."""
    from translate.metrics.perceptual import LPIPSMetric

    metric = LPIPSMetric(lpips_weights)
    gen = editable(load(run))
    with torch.no_grad():
        target = gen.synthesize(gen.map(gen.draw(5))).clamp(-1, 1)
        start = float(metric.distance(gen.synthesize(gen.mean_and_std()[0]), target))
    result = invert(gen, target, steps=1000, lpips=metric.distance)
    with torch.no_grad():
        end = float(metric.distance(result.image, target))
    assert end <= 0.3 * start, (start, end)


# ---- slow: a measurable drag ---------------------------------------------------------------

DOT = dict(
    image_size=32, latent_dim=32, channel_base=512, channel_max=32, mapping_layers=2,
    flip=False, pl_weight=0.0, style_mixing=0.0, ada_target=0.0, ema_kimg=0.5, ema_rampup=0.0,
    lr=0.005, batch_size=16,
)  # fmt: skip


def _dot_images(folder: Path, n: int = 512, sigma: float = 3.0) -> Path:
    """``n`` 32 px images of one white Gaussian dot (sigma 3 px) on black, its centre uniform in
    [6, 26]^2."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    for i in range(n):
        cx, cy = rng.uniform(6, 26, 2)
        dot = 255 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        Image.fromarray(np.repeat(dot[..., None], 3, 2).astype(np.uint8)).save(
            folder / f"{i:03d}.png"
        )
    return folder


def _dot_centre(image: torch.Tensor) -> tuple[np.ndarray, float]:
    """The dot's centre (x, y) measured on the image: the centroid of the grey levels above
    half the peak; and the peak (0..1)."""
    g = ((image[0].mean(0) + 1) / 2).cpu().numpy()
    w = np.clip(g - 0.5 * g.max(), 0, None)
    yy, xx = np.mgrid[0 : g.shape[0], 0 : g.shape[1]]
    return np.array([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()]), float(g.max())


@pytest.mark.slow
def test_dragging_a_dot_moves_it_to_the_target(tmp_path: Path) -> None:
    """The issue's measurable drag. A 32 px stylegan2 learns images of one bright dot (1500
    steps, seed 0: about 3.5 CPU minutes on one free core). For the first 3 seeds whose image
    has a clear dot (peak > 0.5) away from the vertical midline, the handle is its detected
    centre and the target 10 px away vertically, towards the middle; the drag runs up to 200
    steps at lr 0.05 (the paper's 2e-3 is for a 512-d w; on this 32-d w it had moved the dot
    2-5 px after 200 steps). Measured on the image afterwards, the dot's centre is within 2 px
    of the target for the median dot and within 3 px for each; with a mask over only the
    dot's half of the image, the other half changes less than the masked half.

    Calibration (shared 2-core machine): training seed 0 (this test): errors 1.03, 0.51,
    1.10 px (masked: 0.70, 0.71, 0.95; mean change dot half vs other half 0.42/0.06,
    0.36/0.04, 0.34/0.02). Seed 1: 1.12, 2.49, 1.85 px (masked halves 0.34/0.03, 0.13/0.05,
    0.32/0.01; one masked drag went wrong, 9 px). Seed 2: at 1000 steps its dots all sat in
    one place, at 1500 it had collapsed to black (no dot found): this GAN training is not
    reliable across seeds, and the test is calibrated on seed 0 only. With the last block's
    features (32 px, the choice before this test) seed 0's errors at 1000 steps were 1.3 to
    9 px."""
    data = _dot_images(tmp_path / "dots")
    prepare("stylegan2", data=data, run_dir=tmp_path / "run", max_steps=1500, seed=0, **DOT,
            progress=False, device="cpu", amp="none", log_every=100, sample_every=10**6,
            checkpoint_every=10**6).run()  # fmt: skip
    gen = editable(load(tmp_path / "run"))
    found = []
    for seed in range(200):
        ws = gen.map(gen.draw(seed))
        with torch.no_grad():
            image = gen.synthesize(ws).clamp(-1, 1)
        centre, peak = _dot_centre(image)
        if peak > 0.5 and 6 <= centre[1] <= 26 and abs(centre[0] - 15.5) >= 5:
            found.append((ws, image, centre))
        if len(found) == 3:
            break
    assert len(found) == 3, "the generator did not learn dots (training collapsed?)"
    errors = []
    for ws, image, centre in found:
        handle = torch.tensor([centre.round()], dtype=torch.float32)
        target = handle + torch.tensor([[0.0, -10.0 if centre[1] >= 16 else 10.0]])
        free = drag(gen, ws, handle, target, steps=200, lr=0.05)
        moved, _ = _dot_centre(free.image)
        errors.append(float(np.linalg.norm(moved - target[0].numpy())))
        right = centre[0] >= 16  # the dot's half: right or left of the midline
        mask = torch.zeros(32, 32)
        mask[:, 16:] = 1 if right else 0
        mask[:, :16] = 0 if right else 1
        masked = drag(gen, ws, handle, target, mask=mask, steps=200, lr=0.05)
        change = (masked.image - image).abs().mean(1)[0]
        dot_half, other = (
            (change[:, 16:], change[:, :16]) if right else (change[:, :16], change[:, 16:])
        )
        assert float(other.mean()) < float(dot_half.mean()), (other.mean(), dot_half.mean())
    assert np.median(errors) <= 2.0 and max(errors) <= 3.0, errors
