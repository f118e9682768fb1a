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


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("edit")
    data = make_single(base / "data", n=6, size=16)
    prepare("stylegan2", data=data, run_dir=base / "run", max_steps=2, **SG, **LOOP).run()
    return base / "run"


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
    assert feature_block([4, 8, 16]) == 2


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
