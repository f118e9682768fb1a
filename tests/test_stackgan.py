"""The stackgan plugin: conditioning augmentation's KL by hand, the matching-aware D loss on
mismatched pairs, GigaGAN's adaptive kernels against a plain convolution, the multi-scale
pyramid, `translate sample --prompt` and its bad inputs, two stages, gigagan's ONNX export."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F
from translate_stackgan import StackGANConfig
from translate_stackgan.gigagan import GigaGANGenerator, MultiScaleDiscriminator, levels, pyramid
from translate_stackgan.nets import ConditioningAugmentation, ca_kl, with_text
from typer.testing import CliRunner

from tests.conftest import train_tiny
from translate.cli.main import app
from translate.config import GANConfig
from translate.errors import ConfigError
from translate.inference.sampling import Sampler
from translate.losses.matching import matching_aware_d_loss
from translate.losses.objective import GANObjective
from translate.nn.adaptive import AdaptiveConv2d
from translate.text.encoder import pack_text
from translate.text.synthetic import make_captioned_shapes

runner = CliRunner()
TINY = {
    "image_size": 16, "latent_dim": 8, "condition_dim": 8, "text_dim": 8, "word_dim": 8,
    "g_channels": 4, "d_channels": 4, "d_text_dim": 4, "pretrain_steps": 2, "pretrain_batch": 4,
}  # fmt: skip


def test_ca_kl_against_the_closed_form() -> None:
    """KL(N(mu, s^2) || N(0, 1)) = (mu^2 + s^2 - 1 - log s^2) / 2 per dimension, averaged over
    dimensions and batch (the official code's mean; weight 2.0)."""
    mu = torch.tensor([[0.5, -1.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)], [math.log(0.25), 0.0]])
    per = [
        (0.25 + 1 - 1 - 0) / 2, (1 + 4 - 1 - math.log(4)) / 2,
        (0 + 0.25 - 1 - math.log(0.25)) / 2, (4 + 1 - 1 - 0) / 2,
    ]  # fmt: skip
    assert float(ca_kl(mu, logvar)) == pytest.approx(sum(per) / 4, rel=1e-6)


def test_ca_draws_from_its_gaussian_and_infers_its_mean() -> None:
    torch.manual_seed(0)
    ca = ConditioningAugmentation(text_dim=3, condition_dim=2)
    phi = torch.tensor([[1.0, -2.0, 0.5]]).expand(20000, 3)
    c, mu, logvar = ca(phi, sample=True)
    assert torch.allclose(c.mean(0), mu[0], atol=0.05)
    assert torch.allclose(c.std(0), (0.5 * logvar[0]).exp(), rtol=0.05)
    assert torch.equal(ca(phi[:2], sample=False)[0], mu[:2])  # inference: the mean


class DotD(torch.nn.Module):
    """logit = <text, mean colour of the image>: tells matched from mismatched pairs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, :3, 0, 0] * x[:, 3:].mean((2, 3))).sum(1, keepdim=True)


def test_matching_aware_loss_scores_mismatched_pairs_as_fake() -> None:
    """L_D = -log s(D(x, t)) - (log(1 - s(D(G, t))) + log(1 - s(D(x, t')))) / 2 with t' the
    previous sample's text (planted bug: t' = t, the matched pairs, fails here)."""
    real = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])[..., None, None]
    real = real.expand(3, 3, 2, 2)
    fake = torch.full((3, 3, 2, 2), 0.2)
    text = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0]])
    loss, logs = matching_aware_d_loss(
        GANObjective(GANConfig(gan_loss="minimax")), DotD(), real, fake, text, with_text,
        condition_channels=3,
    )  # fmt: skip
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    d_real = [2.0, 3.0, 1.0]  # own text . own colour
    d_fake = [0.2 * 2, 0.2 * 3, 0.2 * 1]
    d_wrong = [0.0, 0.0, 0.0]  # image i with text i-1: orthogonal
    expected = (
        sum(
            -math.log(sig(r)) - 0.5 * (math.log(1 - sig(f)) + math.log(1 - sig(w)))
            for r, f, w in zip(d_real, d_fake, d_wrong, strict=True)
        )
        / 3
    )
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert logs["D_wrong"] == pytest.approx(0.0)


def test_adaptive_conv_with_a_one_hot_selection_is_the_selected_conv() -> None:
    """Selection logits that pick filter 2 and a unit modulation without demodulation give
    exactly conv2d with bank[2] (planted bug: mixing the wrong filter index fails)."""
    torch.manual_seed(0)
    layer = AdaptiveConv2d(3, 5, style_dim=4, kernels=4, demodulate=False)
    with torch.no_grad():
        layer.select.weight.zero_()
        layer.select.bias.copy_(torch.tensor([0.0, 0.0, 200.0, 0.0]))
        layer.bias.normal_()
    x, w = torch.randn(2, 3, 6, 6), torch.randn(2, 4)
    expected = F.conv2d(x, layer.bank.view(4, 5, 3, 3, 3)[2], layer.bias, padding=1)
    assert torch.allclose(layer(x, w), expected, atol=1e-5)
    onehot = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])  # per sample
    got = layer.mixed(x, onehot, None)
    assert torch.allclose(
        got[0],
        F.conv2d(x[:1], layer.bank.view(4, 5, 3, 3, 3)[1], layer.bias, padding=1)[0],
        atol=1e-5,
    )
    assert torch.allclose(
        got[1],
        F.conv2d(x[1:], layer.bank.view(4, 5, 3, 3, 3)[3], layer.bias, padding=1)[0],
        atol=1e-5,
    )


def test_multiscale_discriminator_sees_each_scale() -> None:
    """The pyramid holds the image average-pooled per scale; each D branch gets exactly that."""
    torch.manual_seed(0)
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    pyr = pyramid(image, 3)  # 8, 16, 32 px
    assert pyr.shape == (2, 9, 32, 32) and torch.equal(pyr[:, 6:], image)
    D = MultiScaleDiscriminator(text_dim=2, image_size=32, channels=4, text_out=2).eval()
    seen = []
    for branch in D.branches:
        branch.image.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    logits = D(with_text(pyr, torch.ones(2, 2)))
    assert len(logits) == 3
    assert torch.allclose(seen[0], F.avg_pool2d(image, 4), atol=1e-6)
    assert torch.allclose(seen[1], F.avg_pool2d(image, 2), atol=1e-6)


def test_gigagan_outputs_are_the_linear_torgb_sum() -> None:
    """StyleGAN2's skip generator (GigaGAN's G): each scale's image is the up-sampled image of
    the scale below plus its toRGB, with no tanh (a tanh saturated on white backgrounds: one
    run collapsed to blank images). With every toRGB a bias alone (b_8, b_16, b_32), the 8, 16
    and 32 px images are b_8, b_8 + b_16 and b_8 + b_16 + b_32, beyond [-1, 1]."""
    torch.manual_seed(0)
    G = GigaGANGenerator(
        latent_dim=4, text_dim=6, condition_dim=2, image_size=32, channels=2, kernels=2,
        heads=1, attention_max=8,
    ).eval()  # fmt: skip
    biases = [torch.tensor(b) for b in ([0.5, -0.7, 0.9], [0.8, 0.1, -0.6], [1.2, -0.9, 0.3])]
    rgb = [m for m in G.rgb if isinstance(m, torch.nn.Conv2d)]
    assert len(rgb) == 3
    with torch.no_grad():
        for conv, b in zip(rgb, biases, strict=True):
            conv.weight.zero_()
            conv.bias.copy_(b)
        text = pack_text(torch.randn(2, 6), torch.randn(2, 18, 6), torch.ones(2, 18))
        images = levels(G(torch.randn(2, 4, 1, 1), text)[0], 3)
    for i, image in enumerate(images):
        want = sum(biases[: i + 1]).view(1, 3, 1, 1).expand_as(image)
        assert torch.allclose(image, want, atol=1e-6), (i, image[0, :, 0, 0], want[0, :, 0, 0])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stackgan")
    make_captioned_shapes(root / "shapes", 8, size=16)
    return train_tiny("stackgan", StackGANConfig(data=root / "shapes", **TINY), root / "run")


def test_sample_prompt_through_the_cli(run_dir: Path, tmp_path: Path) -> None:
    """-n 4 --seed: the same files twice; another prompt, other images; the text vector is
    the stored encoder's."""
    outs = [tmp_path / f"{k}.png" for k in range(3)]
    prompts = ["a red circle", "a red circle", "a blue square"]
    for out, prompt in zip(outs, prompts, strict=True):
        args = [
            "sample",
            str(run_dir),
            "--prompt",
            prompt,
            "-n",
            "4",
            "--seed",
            "3",
            "-o",
            str(out),
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert outs[0].read_bytes() != outs[2].read_bytes()
    sampler = Sampler.from_checkpoint(run_dir)
    _, text = sampler.inputs(2, seed=0, prompt="a red circle")
    assert torch.equal(text[0], text[1]) and text.shape == (2, 8)


@pytest.mark.parametrize(
    ("prompt", "message"),
    [("  ", "prompt: empty"), ("x" * 1001, "prompt: at most 1000 characters")],
)
def test_bad_prompt_is_one_line(run_dir: Path, tmp_path: Path, prompt: str, message: str) -> None:
    args = ["sample", str(run_dir), "--prompt", prompt, "-o", str(tmp_path / "a.png")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_captions_missing_is_one_line(tmp_path: Path) -> None:
    make_captioned_shapes(tmp_path / "d", 3, size=16)
    (tmp_path / "d" / "shape_0002.txt").unlink()
    args = ["train", "stackgan", "--data", str(tmp_path / "d"), "--max-steps", "1",
            "--run-dir", str(tmp_path / "run"), "--device", "cpu"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "shape_0002.png: no caption file shape_0002.txt" in result.output


def test_prompt_on_a_model_without_text(tmp_path: Path) -> None:
    from translate.text.prompts import prompt_input

    with pytest.raises(ConfigError, match="not text-conditioned"):
        prompt_input((), "dcgan")


@pytest.mark.slow
def test_two_stages_train_in_turn(tmp_path: Path) -> None:
    """Stage I trains first (its D steps), then stage II at 4x the size; samples are full size."""
    make_captioned_shapes(tmp_path / "d", 8, size=32)
    cfg = StackGANConfig(
        data=tmp_path / "d", **{**TINY, "image_size": 32}, stages=2, stage1_steps=1
    )
    run = train_tiny("stackgan", cfg, tmp_path / "run")
    log = (run / "metrics.jsonl").read_text()
    assert '"stage": 1.5' in log  # the mean of the two steps: stage I, then stage II
    images = Sampler.from_checkpoint(run)(2, seed=0, prompt="a red circle")
    assert images[0].size == (32, 32)


@pytest.mark.slow
def test_gigagan_exports_with_the_text_as_input(tmp_path: Path) -> None:
    """gigagan: the packed text (sentence, words, mask) is one ONNX input; ONNX Runtime matches
    PyTorch for a prompt's vector, and the text graph's packed vector matches the checkpoint's."""
    from translate.export.onnx import FP32_TOLERANCE, export_onnx

    make_captioned_shapes(tmp_path / "d", 8, size=16)
    cfg = StackGANConfig(data=tmp_path / "d", generator="gigagan", attention_max=8, **TINY)
    run = train_tiny("stackgan", cfg, tmp_path / "run")
    exported = export_onnx(run, tmp_path / "g.onnx")
    assert (
        exported.checked_with is not None and max(d for _, d in exported.checks) <= FP32_TOLERANCE
    )
    torch_sampler, onnx_sampler = (
        Sampler.from_checkpoint(run),
        Sampler.from_checkpoint(exported.path),
    )
    inputs = torch_sampler.inputs(3, seed=1, prompt="a green cross")
    assert inputs[1].shape == (3, 8 + 18 * 8 + 18)
    diff = (torch_sampler.generate(*inputs) - onnx_sampler.generate(*inputs)).abs().max()
    assert float(diff) <= FP32_TOLERANCE
    # the text graph beside it (g.text.onnx) encodes the prompt as the checkpoint does
    onnx_text = onnx_sampler.inputs(3, seed=1, prompt="a green cross")[1]
    assert float((onnx_text - inputs[1]).abs().max()) <= FP32_TOLERANCE


def test_service_samples_a_prompt(run_dir: Path) -> None:
    """GET /sample?prompt=...: the grid `translate sample --prompt` draws; an empty prompt is
    a one-line 422."""
    import io

    import numpy as np
    from fastapi.testclient import TestClient
    from PIL import Image

    from translate.inference.sampling import grid
    from translate.serve.app import create_app
    from translate.serve.config import ServeConfig
    from translate.serve.server import load_models

    (served,) = load_models(checkpoints=[f"shapes={run_dir}"])
    served.warm_up()
    app = create_app([], ServeConfig(max_samples=8, access_log=False), generators=[served])
    with TestClient(app) as c:
        url = "/v1/models/shapes/sample"
        res = c.get(url, params={"n": 4, "seed": 3, "prompt": "a red circle"})
        assert res.status_code == 200, res.text
        got = np.asarray(Image.open(io.BytesIO(res.content)).convert("RGB"))
        expected = grid(Sampler.from_checkpoint(run_dir)(4, seed=3, prompt="a red circle"))
        assert np.array_equal(got, np.asarray(expected))
        bad = c.get(url, params={"prompt": " "})
        assert bad.status_code == 422 and "prompt: empty" in bad.json()["error"]
        # what the page and generated clients read: the model takes a prompt
        (entry,) = c.get("/v1/models").json()["generators"]
        assert entry["parameters"] == ["n", "seed", "truncation", "format", "code", "prompt"]
        op = c.get("/openapi.json").json()["paths"][url]["get"]
        (declared,) = [p for p in op["parameters"] if p["name"] == "prompt"]
        assert declared["schema"] == {
            "type": "string", "minLength": 1, "maxLength": 1000, "pattern": r"\S",
        }  # fmt: skip


def precomputed_run(root: Path) -> Path:
    """A tiny run on 4 shapes with precomputed 6-d embeddings (2 captions each), no encoder."""
    import numpy as np

    make_captioned_shapes(root / "d", 4, size=16)
    names = np.array([f"shape_{i:04d}" for i in range(4)])
    emb = np.random.default_rng(0).normal(size=(4, 2, 6)).astype(np.float32)
    np.savez(root / "emb.npz", embeddings=emb, filenames=names)
    cfg = StackGANConfig(data=root / "d", embeddings=str(root / "emb.npz"), **TINY)
    return train_tiny("stackgan", cfg, root / "run")


def test_precomputed_embeddings_train_without_a_text_encoder(tmp_path: Path) -> None:
    """--embeddings FILE: the file's vectors condition G (no model T); its size sets text_dim;
    --prompt is refused in one line (no encoder to read it)."""
    run = precomputed_run(tmp_path)
    sampler = Sampler.from_checkpoint(run)
    assert "T" not in sampler.loaded.models and sampler.conditions[0].size == 6
    assert len(sampler(2, seed=0, codes=["text=" + ",".join(["0.5"] * 6)])) == 2
    with pytest.raises(ConfigError, match="precomputed embeddings"):
        sampler(1, prompt="a red circle")


def test_pretrain_text_trains_the_stored_encoder_only_when_asked(tmp_path: Path) -> None:
    """--pretrain-text (initialize): DAMSM steps move T's weights; --no-pretrain-text keeps its
    initialisation. T has no optimiser group in the GAN (fixed), and lr halves as configured."""
    import dataclasses

    from translate.registry import load_plugin

    plugin = load_plugin("stackgan")
    make_captioned_shapes(tmp_path / "d", 8, size=16)
    cfg = plugin.finalize_config(StackGANConfig(data=tmp_path / "d", **TINY))
    for pretrain in (True, False):
        torch.manual_seed(0)
        models = plugin.build_models(dataclasses.replace(cfg, pretrain_text=pretrain))
        before = [p.detach().clone() for p in models["T"].parameters()]
        plugin.initialize(models, dataclasses.replace(cfg, pretrain_text=pretrain))
        moved = any(
            not torch.equal(a, b) for a, b in zip(before, models["T"].parameters(), strict=True)
        )
        assert moved == pretrain
    assert "T" not in plugin.param_groups(models)
    halving = dataclasses.replace(cfg, lr_halve_every=10)
    assert [plugin.lr_multiplier(s, halving) for s in (0, 9, 10, 25)] == [1, 1, 0.5, 0.25]
    assert plugin.lr_multiplier(10**6, cfg) == 1.0
