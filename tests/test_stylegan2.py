"""The stylegan2 plugin: its step against the objective written by hand, its defaults by
resolution, the EMA half-life, ADA's p through a Ctrl-C and resume, sampling with truncation in
W and latent walks, ONNX export of z -> image and w -> image, one service request."""

from __future__ import annotations

import io
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from tests.test_objectives_by_hand import assert_same_gradients, frozen_trainer
from tests.test_resume import assert_same_final_state, interrupt_then_resume
from translate.cli.main import app
from translate.engine.ema import half_life_decay
from translate.engine.loop import prepare
from translate.inference.sampling import Sampler, slerp
from translate.nn.stylegan2 import mix_styles
from translate.registry import load_plugin
from translate.testing import make_single

PLUGIN = load_plugin("stylegan2")
TINY = dict(
    image_size=8, latent_dim=16, channel_base=64, channel_max=16, mapping_layers=2, flip=False
)
LOOP = dict(progress=False, device="cpu", amp="none", log_every=1, batch_size=4, sample_every=10**6)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_single(tmp_path_factory.mktemp("sg-data"), n=6, size=12)


@pytest.fixture(scope="module")
def run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sg-run") / "run"
    prepare("stylegan2", data=data, run_dir=folder, max_steps=3, **TINY, **LOOP).run()
    return folder


def _grads(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("step", [0, 1])
def test_step_gradients_equal_the_objective_by_hand(step: int, data: Path, tmp_path: Path) -> None:
    """D: softplus(D(G(z))) + softplus(-D(x)) + 16 * gamma / 2 * ||grad D(x)||^2 (every 16
    steps); G: softplus(-D(G(z))) + 2 * 4 * (||J^T y|| - a)^2 (every 4 steps, half batch),
    with style mixing; replayed draw by draw from the same seed."""
    cfg = PLUGIN.config_cls(data=data, **TINY)
    gamma = 0.5
    trainer = frozen_trainer("stylegan2", cfg, tmp_path, ada_target=0.0, r1_gamma=gamma)
    G, D = trainer.models["G"], trainer.models["D"]
    real = torch.rand(4, 3, 8, 8) * 2 - 1
    trainer.ctx.begin_step(step, max_steps=2)
    torch.manual_seed(11)
    logs = PLUGIN.train_step(trainer.ctx, {"image": real}, cfg)
    got_d, got_g = _grads(D), _grads(G)
    pl_after = float(G.pl_mean.detach())

    G.pl_mean.zero_()
    torch.manual_seed(11)

    def styles(n: int) -> torch.Tensor:
        z = torch.randn(n, cfg.z_dim)
        return mix_styles(G, z, G.mapping(z), 0.9)

    with torch.no_grad():
        fake = G.synthesis(styles(4))
    x = real.clone().requires_grad_(True)
    real_logits = D(x)
    loss_d = F.softplus(D(fake)).mean() + F.softplus(-real_logits).mean()
    if step % 16 == 0:
        (grad,) = torch.autograd.grad(real_logits.sum(), x, create_graph=True)
        loss_d = loss_d + 16 * gamma / 2 * grad.square().sum(dim=(1, 2, 3)).mean()
    want_d = torch.autograd.grad(loss_d, list(D.parameters()))
    assert_same_gradients(got_d, torch.cat([g.flatten() for g in want_d]))

    loss_g = F.softplus(-D(G.synthesis(styles(4)))).mean()
    if step % 4 == 0:
        ws = styles(2)
        images = G.synthesis(ws)
        y = torch.randn_like(images) / math.sqrt(8 * 8)
        (jty,) = torch.autograd.grad((images * y).sum(), ws, create_graph=True)
        lengths = jty.square().sum(2).mean(1).sqrt()
        a = 0.01 * lengths.mean().detach()  # the running mean moved once from 0
        loss_g = loss_g + 2 * 4 * (lengths - a).square().mean()
        assert pl_after == pytest.approx(float(a), rel=1e-5)
        assert logs["pl_penalty"] == pytest.approx(float((lengths - a).square().mean()), rel=1e-4)
    else:
        assert "pl_penalty" not in logs and pl_after == 0.0
    params = [p for p in G.parameters() if p.grad is not None]
    want_g = torch.autograd.grad(loss_g, params, allow_unused=True)
    want = torch.cat(
        [
            (g if g is not None else torch.zeros_like(p)).flatten()
            for g, p in zip(want_g, params, strict=True)
        ]
    )
    assert_same_gradients(got_g, want)


def test_defaults_by_resolution_and_user_overrides(data: Path, tmp_path: Path) -> None:
    trainer = prepare("stylegan2", data=data, run_dir=tmp_path / "a", image_size=32, width=0.0625)
    gan, train = trainer.gan_cfg, trainer.train_cfg
    assert gan.r1_gamma == pytest.approx(0.0002 * 32 * 32 / 32)  # 0.0002 res^2 / batch
    assert gan.penalty_interval == 16 and gan.ada_target == 0.6 and gan.ema_kimg == 10
    assert gan.gan_loss == "nonsaturating" and gan.ema_rampup == 0.05
    assert train.batch_size == 32 and (train.beta1, train.beta2) == (0.0, 0.99)
    assert train.lr == pytest.approx(0.0025 * 4 / 5)  # lazy path length: k / (k + 1)
    assert train.lr_d == pytest.approx(0.0025 * 16 / 17)  # lazy R1
    assert train.lr_decay_start == 1.0
    mine = prepare(
        "stylegan2", data=data, run_dir=tmp_path / "b", image_size=256, r1_gamma=3.0, lr=0.001
    )
    assert mine.gan_cfg.r1_gamma == 3.0 and mine.train_cfg.lr == 0.001
    assert mine.train_cfg.batch_size == 16  # 4096 / 256


def test_ema_half_life_in_images_with_the_ramp(data: Path, tmp_path: Path) -> None:
    assert half_life_decay(32, 10, 0, 0.05) == 0.0  # at the start the average is a copy
    assert half_life_decay(32, 10, 100_000, 0.05) == pytest.approx(0.5 ** (32 / 5000))
    assert half_life_decay(32, 10, 10**7, 0.05) == pytest.approx(0.5 ** (32 / 10_000))
    assert half_life_decay(32, 10, 0) == pytest.approx(0.5 ** (32 / 10_000))  # no ramp
    trainer = prepare("stylegan2", data=data, run_dir=tmp_path / "r", max_steps=2, **TINY, **LOOP)
    batches = iter(trainer.loader())
    for _ in range(2):
        trainer.train_step(next(batches))
    live = dict(trainer.models["G"].named_parameters())
    average = dict(trainer.ema.models["G"].named_parameters())
    # step 1 saw 4 images: half-life 0.2 images, decay 0.5 ** 20 ~ 1e-6: nearly a copy
    for name, p in average.items():
        assert torch.allclose(p, live[name], atol=1e-4), name


@pytest.mark.slow
def test_ada_p_is_logged_and_resumed_exactly_after_ctrl_c(data: Path, tmp_path: Path) -> None:
    """ADA (adapting every 2 steps, fast) with the lazy terms due on alternate steps: a Ctrl-C
    at a random step and --resume end bit-identical to an uninterrupted run, p included."""
    options = dict(
        data=data,
        **TINY,
        **LOOP,
        max_steps=5,
        ada_interval=2,
        ada_kimg=0.01,
        penalty_interval=2,
        pl_interval=2,
    )
    prepare("stylegan2", run_dir=tmp_path / "straight", **options).run()
    stop = random.randint(1, 4)
    interrupt_then_resume(prepare("stylegan2", run_dir=tmp_path / "split", **options), stop)
    assert_same_final_state(tmp_path / "straight", tmp_path / "split", 5, stop)
    records = [
        json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    ]
    ps = [r["ada_p"] for r in records if "ada_p" in r]
    assert len(ps) == 5 and ps[0] == 0.0 and any(p > 0 for p in ps)  # 8 images move p by 0.8
    assert any("ada_rt" in r for r in records)
    state = torch.load(
        tmp_path / "split" / "checkpoints" / "step_0000005" / "trainer.pt", weights_only=True
    )
    assert state["ada"]["p"] == pytest.approx(ps[-1] if len(ps) == 5 else state["ada"]["p"])


def test_sample_truncation_and_latent_walks(run: Path, tmp_path: Path) -> None:
    sampler = Sampler.from_checkpoint(run)
    assert sampler.own_truncation
    psi0 = sampler.sample_tensor(4, seed=1, truncation=1e-3)  # all pulled onto w_avg
    assert float((psi0 - psi0[:1]).abs().max()) < 0.01
    assert float((sampler.sample_tensor(4, seed=1) - psi0).abs().max()) > 0.01
    # z walks: slerp between two latents, the ends exactly the endpoints' samples
    frames = sampler.walk(2, 5, seed=3)
    (ends,) = sampler.inputs(4, seed=3)
    assert torch.allclose(frames[0], sampler.generate(ends[:1]), atol=1e-5)
    assert torch.allclose(frames[4], sampler.generate(ends[2:3]), atol=1e-5)
    assert torch.allclose(frames[9], sampler.generate(ends[3:4]), atol=1e-5)
    half = slerp(ends[:1], ends[2:3], torch.tensor(0.5))
    assert torch.allclose(half.norm(), (ends[0].norm() + ends[2].norm()) / 2, rtol=0.1)
    # w walks: linear in w
    module = sampler.module
    wframes = sampler.walk(1, 3, seed=3, space="w")
    w0, w1 = module.map(ends[:1]), module.map(ends[1:2])
    assert torch.allclose(wframes[1:2], module.synthesize((w0 + w1) / 2), atol=1e-5)

    cli = CliRunner()
    out = tmp_path / "walk.png"
    res = cli.invoke(
        app,
        ["sample", str(run), "-n", "2", "--seed", "1", "--truncation", "0.7",
         "--interpolate", "5", "--walk", "w", "-o", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert Image.open(out).size == (5 * 8, 2 * 8)
    res = cli.invoke(
        app, ["sample", str(run), "--truncation", "1e-300", "-o", str(tmp_path / "x.png")]
    )
    assert res.exit_code == 2 and "truncation: psi" in res.output and "Traceback" not in res.output
    res = cli.invoke(app, ["sample", str(run), "--interpolate", "1", "-o", str(tmp_path / "y.png")])
    assert res.exit_code == 2 and "interpolate" in res.output


@pytest.mark.slow
def test_onnx_export_of_z_and_w_with_parity(run: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    from translate.export.onnx import export_onnx

    loaded = Sampler.from_checkpoint(run).module
    for space, psi in (("z", 0.7), ("w", 1.0)):
        out = tmp_path / f"{space}.onnx"
        result = export_onnx(run, out, options={"latent_space": space, "truncation_psi": psi})
        assert max(d for _, d in result.checks) <= 1e-4
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        latent = torch.randn(3, 16)
        (got,) = session.run(None, {"input": latent.numpy()})
        module = PLUGIN.truncated(loaded, psi, None).eval()
        module.space = space
        with torch.no_grad():
            want = module(latent).numpy()
        assert np.abs(got - want).max() <= 1e-4, space
    # an ONNX file has its psi built in: asking for another one is a one-line error
    from translate.errors import ConfigError

    with pytest.raises(ConfigError, match="truncation"):
        Sampler.from_checkpoint(tmp_path / "z.onnx")(2, truncation=0.5)


def test_one_service_request(run: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from translate.serve.app import create_app
    from translate.serve.config import ServeConfig
    from translate.serve.server import load_models

    (served,) = load_models(checkpoints=[f"faces={run}"])
    app_ = create_app([], ServeConfig(max_samples=8, access_log=False), generators=[served])
    with TestClient(app_) as client:
        res = client.get("/v1/models/faces/sample", params={"n": 4, "seed": 2, "truncation": 0.5})
        assert res.status_code == 200, res.text
        image = Image.open(io.BytesIO(res.content))
        assert image.size == (16, 16)
        from translate.inference.sampling import grid

        want = grid(Sampler.from_checkpoint(run)(4, seed=2, truncation=0.5))
        assert np.abs(np.asarray(image, np.int16) - np.asarray(want, np.int16)).max() <= 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--width", "2"], "width"),
        (["--image-size", "12"], "image_size"),
        (["--ada-p", "1.5"], "ada_p"),
        (["--ada-target", "0.6", "--diff-augment", "color"], "pick one"),
        (["--pl-interval", "0"], "pl_interval"),
        (["--ema-decay", "0.999"], "ema_kimg"),  # the plugin's half-life is on: one of the two
    ],
)
def test_bad_training_options_are_one_line_errors(
    args: list[str], needle: str, data: Path, tmp_path: Path
) -> None:
    res = CliRunner().invoke(
        app, ["train", "stylegan2", "--data", str(data), "--run-dir", str(tmp_path / "r"), *args]
    )
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert len([line for line in res.output.splitlines() if line.strip()]) == 1, res.output
