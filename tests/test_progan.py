"""The progan plugin: the fade-in by hand (alpha 0 is the previous resolution upscaled, alpha 1
the new block), pixel norm and the drift term by hand, the growth schedule in images, the
paper's optimiser under its own WGAN-GP, a Ctrl-C and resume mid-fade, sampling and ONNX export
at the checkpoint's resolution, one service request, bad options."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from translate_progan.nets import Discriminator, Generator, pixel_norm, real_images
from translate_progan.plugin import ProGANConfig, growth_at
from typer.testing import CliRunner

from tests.test_resume import assert_same_final_state, interrupt_then_resume
from translate.cli.main import app
from translate.config import GANConfig
from translate.engine.loop import prepare
from translate.inference.sampling import Sampler
from translate.losses.objective import GANObjective
from translate.testing import make_single

TINY = dict(image_size=16, latent_dim=8, fmap_base=64, fmap_max=8, flip=False)
# 4x4 for 2 steps of 4, then 8x8 faded over 3 steps and stabilised for 2, then 16x16
GROWTH = dict(stable_kimg=0.008, fade_kimg=0.012)
LOOP = dict(progress=False, device="cpu", amp="none", log_every=1, batch_size=4, sample_every=10**6)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_single(tmp_path_factory.mktemp("pg-data"), n=6, size=16)


@pytest.fixture(scope="module")
def run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run stopped mid-fade of 8x8 (step 3: one of the fade's three steps seen)."""
    folder = tmp_path_factory.mktemp("pg-run") / "run"
    prepare("progan", data=data, run_dir=folder, max_steps=3, **TINY, **GROWTH, **LOOP).run()
    return folder


def _nets() -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    G = Generator(8, 16, fmap_base=64, fmap_max=8)
    D = Discriminator(16, fmap_base=64, fmap_max=8)
    for net in (G, D):  # random biases too, so a skipped bias would show
        for p in net.parameters():
            p.data.normal_()
    return G, D


@pytest.mark.parametrize("resolution", [8, 16])
def test_fade_in_alpha_0_is_the_previous_resolution_and_1_the_new_block(resolution: int) -> None:
    G, D = _nets()
    z = torch.randn(3, 8)
    previous = G(z, resolution // 2, 1.0)
    # alpha 0: exactly the previous resolution's image, nearest-upscaled
    assert torch.allclose(
        G(z, resolution, 0.0), previous.repeat_interleave(2, 2).repeat_interleave(2, 3)
    )
    # alpha 1: the new block's toRGB alone; in between, the linear blend of the two
    new = G(z, resolution, 1.0)
    assert not torch.allclose(new, G(z, resolution, 0.0), atol=1e-3)
    up = F.interpolate(previous, scale_factor=2, mode="nearest")
    assert torch.allclose(G(z, resolution, 0.25), 0.75 * up + 0.25 * new, atol=1e-5)
    # D: at alpha 0 the new block is skipped (the image is box-filtered to the old resolution)
    x = torch.randn(4, 3, resolution, resolution)
    assert torch.allclose(
        D(x, resolution, 0.0), D(F.avg_pool2d(x, 2), resolution // 2, 1.0), atol=1e-5
    )
    assert not torch.allclose(D(x, resolution, 1.0), D(x, resolution, 0.0), atol=1e-3)
    # the real images D sees: at alpha 0 the half-resolution copy upscaled, at 1 untouched
    real = torch.randn(2, 3, 16, 16)
    at = F.adaptive_avg_pool2d(real, resolution)
    assert torch.equal(real_images(real, int(math.log2(resolution)), 1.0), at)
    half = F.avg_pool2d(at, 2).repeat_interleave(2, 2).repeat_interleave(2, 3)
    assert torch.allclose(real_images(real, int(math.log2(resolution)), 0.0), half)


def test_the_growth_state_is_a_buffer_that_sets_the_output_size() -> None:
    G, _ = _nets()
    G.grow(8, 0.5)
    assert G(torch.randn(2, 8)).shape == (2, 3, 8, 8)
    state = G.state_dict()
    assert int(state["level"]) == 3 and float(state["alpha"]) == 0.5
    fresh = Generator(8, 16, fmap_base=64, fmap_max=8)
    fresh.load_state_dict(state)
    assert fresh.resolution == 8 and float(fresh.alpha) == 0.5


def test_pixel_norm_by_hand() -> None:
    x = torch.tensor([3.0, 4.0, 0.0, 0.0]).view(1, 4, 1, 1)  # mean square 25 / 4
    assert torch.allclose(pixel_norm(x).flatten(), torch.tensor([1.2, 1.6, 0.0, 0.0]), atol=1e-6)
    y = torch.randn(2, 5, 3, 3) * 7
    assert torch.allclose(pixel_norm(y).square().mean(1), torch.ones(2, 3, 3), atol=1e-5)


def test_drift_term_by_hand() -> None:
    """WGAN-GP with the drift: D_loss = mean D(fake) - mean D(real) + 10 * GP + 0.001 *
    mean D(real)^2; only D's scores of the reals enter the drift. A linear D(x) = 2x has
    gradient 2 everywhere, so GP = (2 - 1)^2 = 1."""
    D = torch.nn.Linear(1, 1, bias=False)
    D.weight.data.fill_(2.0)
    real, fake = torch.tensor([[1.0], [3.0]]), torch.tensor([[-1.0], [5.0]])
    objective = GANObjective(GANConfig(gan_loss="wgan-gp", epsilon_drift=0.001))
    loss, logs = objective.discriminator_loss(D, real, fake)
    # D(real) = 2, 6; D(fake) = -2, 10: 4 - 4 + 10 * 1 + 0.001 * (4 + 36) / 2
    assert loss.item() == pytest.approx(10.0 + 0.001 * 20.0)
    assert logs["drift"] == pytest.approx(20.0) and logs["gp"] == pytest.approx(1.0)
    (grad,) = torch.autograd.grad(loss, D.weight)
    # d/dw [w mean(fake) - w mean(real) + 10 (w - 1)^2 + eps w^2 mean(real^2)]
    #   = 2 - 2 + 20 * (2 - 1) + 2e-3 * 2 * 5
    assert grad.item() == pytest.approx(20.02)
    off = GANObjective(GANConfig(gan_loss="wgan-gp"))
    assert off.discriminator_loss(D, real, fake)[0].item() == pytest.approx(10.0)


def test_growth_schedule_by_images() -> None:
    cfg = ProGANConfig(
        data=Path("x"), image_size=16, fade_kimg=0.1, stable_kimg=0.1, batch_sizes="16:5"
    )
    g = [growth_at(s, cfg, 10) for s in (0, 9, 10, 15, 19, 20, 29, 30, 40, 49, 50, 10**6)]
    assert [x.resolution for x in g] == [4, 4, 8, 8, 8, 8, 8, 16, 16, 16, 16, 16]
    assert [x.phase for x in g] == ["stable"] * 2 + ["fade"] * 3 + ["stable"] * 2 + ["fade"] * 3 + [
        "stable"
    ] * 2
    assert [x.alpha for x in g] == [1, 1, 0.0, 0.5, 0.9, 1, 1, 0.0, 0.5, 0.95, 1, 1]
    assert [x.images for x in g][2:5] == [0, 50, 90]
    assert [x.batch for x in g] == [10] * 7 + [5] * 5  # 16x16 at its own minibatch, 20 steps
    # a start above 4x4 and a batch larger than the loader's (capped)
    cfg = ProGANConfig(data=Path("x"), image_size=8, start_resolution=8, batch_sizes="8:64")
    assert growth_at(0, cfg, 16) == (8, "stable", 0, 1.0, 16)


def test_the_paper_optimiser_under_its_own_wgan_gp(data: Path, tmp_path: Path) -> None:
    """WGAN-GP is progan's own objective: lr 1e-3, betas (0, 0.99), one D step per G step, GP
    10, drift 0.001, EMA 0.999 (not Gulrajani's lr 1e-4, betas (0, 0.9), n_critic 5); another
    family still gets its own paper's settings."""
    t = prepare("progan", data=data, run_dir=tmp_path / "a", **TINY, **LOOP)
    assert (t.train_cfg.lr, t.train_cfg.beta1, t.train_cfg.beta2) == (1e-3, 0.0, 0.99)
    assert t.n_critic == 1 and t.ctx.gan.gp_weight == 10 and t.ctx.gan.epsilon_drift == 0.001
    assert t.gan_cfg.ema_decay == 0.999
    w = prepare("progan", data=data, run_dir=tmp_path / "b", gan_loss="wgan", **TINY, **LOOP)
    assert w.train_cfg.lr == 5e-5


def test_runs_sample_at_the_checkpoint_resolution_mid_fade(run: Path, tmp_path: Path) -> None:
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["resolution"], r["alpha"]) for r in records] == [(4, 1), (4, 1), (8, 0)]
    assert all("drift" in r and "gp" in r for r in records)
    sampler = Sampler.from_checkpoint(run)
    images = sampler.sample_tensor(2, seed=0)
    assert images.shape == (2, 3, 8, 8)  # the last step trained 8x8 at alpha 0
    # the grid is captioned with the resolution and alpha
    grid = Image.open(sorted((run / "samples").glob("*.png"))[-1])
    assert grid.height > 2 * 16
    res = CliRunner().invoke(app, ["runs", str(run)])
    assert res.exit_code == 0 and "resolution=8" in res.output and "alpha=0" in res.output
    out = tmp_path / "s.png"
    res = CliRunner().invoke(app, ["sample", str(run), "-n", "4", "--seed", "3", "-o", str(out)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["sample", str(run), "-n", "0", "-o", str(tmp_path / "t.png")])
    assert res.exit_code == 2 and "Traceback" not in res.output


@pytest.mark.slow
def test_ctrl_c_mid_fade_resumes_bit_identically(data: Path, tmp_path: Path) -> None:
    """Stopped at step 3 (8x8, alpha 1/3 of its fade) and resumed, a run ends where an
    uninterrupted one does, through the rest of the fade and into 16x16."""
    options = dict(data=data, **TINY, **GROWTH, **LOOP, max_steps=9)
    prepare("progan", run_dir=tmp_path / "straight", **options).run()
    interrupt_then_resume(prepare("progan", run_dir=tmp_path / "split", **options), 3)
    assert_same_final_state(tmp_path / "straight", tmp_path / "split", 9, 3)
    records = [
        json.loads(x) for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["resolution"] for r in records] == [4, 4, 8, 8, 8, 8, 8, 16, 16]
    assert [round(r["alpha"], 3) for r in records][2:5] == [0.0, 0.333, 0.667]


@pytest.mark.slow
def test_onnx_export_at_the_checkpoint_resolution(run: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    from translate.export.onnx import export_onnx

    out = tmp_path / "g.onnx"
    result = export_onnx(run, out)
    assert max(d for _, d in result.checks) <= 1e-4
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    z = torch.randn(3, 8)
    (got,) = session.run(None, {"input": z.numpy()})
    with torch.no_grad():
        want = Sampler.from_checkpoint(run).module(z).numpy()
    assert got.shape == (3, 3, 8, 8) and np.abs(got - want).max() <= 1e-4


def test_one_service_request(run: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from translate.inference.sampling import grid
    from translate.serve.app import create_app
    from translate.serve.config import ServeConfig
    from translate.serve.server import load_models

    (served,) = load_models(checkpoints=[f"pg={run}"])
    app_ = create_app([], ServeConfig(max_samples=8, access_log=False), generators=[served])
    with TestClient(app_) as client:
        res = client.get("/v1/models/pg/sample", params={"n": 4, "seed": 2})
        assert res.status_code == 200, res.text
        image = Image.open(io.BytesIO(res.content))
        want = grid(Sampler.from_checkpoint(run)(4, seed=2))
        assert image.size == want.size
        assert np.abs(np.asarray(image, np.int16) - np.asarray(want, np.int16)).max() <= 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--image-size", "12"], "image_size"),
        (["--start-resolution", "32", "--image-size", "16"], "start_resolution"),
        (["--batch-sizes", "256:x"], "batch_sizes"),
        (["--batch-sizes", "12:4"], "batch_sizes"),
        (["--fade-kimg", "0"], "fade_kimg"),
        (["--epsilon-drift", "-1"], "epsilon_drift"),
    ],
)
def test_bad_training_options_are_one_line_errors(
    args: list[str], needle: str, data: Path, tmp_path: Path
) -> None:
    res = CliRunner().invoke(
        app, ["train", "progan", "--data", str(data), "--run-dir", str(tmp_path / "r"), *args]
    )
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert len([line for line in res.output.splitlines() if line.strip()]) == 1, res.output
