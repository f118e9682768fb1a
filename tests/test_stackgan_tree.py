"""``--generator stackgan-v2`` (StackGAN++'s tree): the tree's pyramid, D's two logits, the D
loss's rule for the wrong pair's unconditional logit and G's two terms against values computed
by hand, the colour-consistency term by hand (``translate.losses.colour``), its options' bad
values, a 2-step run through the CLI-equivalent ``Trainer`` with ``sample --prompt``, and the
ONNX export's parity."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F
from translate_stackgan import StackGANConfig
from translate_stackgan.gigagan import MultiScaleDiscriminator, levels
from translate_stackgan.nets import with_text
from translate_stackgan.tree import TreeGenerator, branch_d_loss, branch_g_loss
from typer.testing import CliRunner

from tests.conftest import train_tiny
from tests.test_stackgan import TINY
from translate.cli.main import app
from translate.config import GANConfig
from translate.errors import ConfigError
from translate.inference.sampling import Sampler
from translate.losses.colour import colour_consistency_loss, colour_statistics
from translate.losses.objective import GANObjective
from translate.text.synthetic import make_captioned_shapes

runner = CliRunner()
sp = lambda v: math.log1p(math.exp(v))  # noqa: E731 - softplus


@pytest.mark.parametrize(("size", "sides"), [(32, (8, 16, 32)), (16, (8, 16)), (8, (8,))])
def test_tree_generator_draws_one_image_per_branch(size: int, sides: tuple[int, ...]) -> None:
    """Branches at S/4, S/2, S (fewer below 32 px, none under 8) as one pyramid (B, 3K, S, S),
    each lower image nearest-up-sampled (constant in its blocks), all in [-1, 1]."""
    torch.manual_seed(0)
    g = TreeGenerator(
        latent_dim=4, text_dim=6, condition_dim=3, image_size=size, channels=4, residual_blocks=1
    )
    stack, mu, logvar = g(torch.randn(2, 4, 1, 1), torch.randn(2, 6), sample=True)
    assert stack.shape == (2, 3 * len(sides), size, size) and mu.shape == logvar.shape == (2, 3)
    assert stack.abs().max() <= 1
    images = levels(stack, len(sides))
    assert tuple(x.shape[-1] for x in images) == sides
    for i, x in enumerate(images):  # pooled back and up-sampled again: the same level
        up = F.interpolate(x, size=size, mode="nearest")
        assert torch.allclose(up, stack[:, 3 * i : 3 * i + 3], atol=1e-6)


def test_discriminator_branch_gives_a_conditional_and_an_unconditional_logit() -> None:
    """Each branch: a logit of (image, text) and one of the image alone (text not read)."""
    torch.manual_seed(0)
    d = MultiScaleDiscriminator(
        text_dim=2, image_size=16, channels=4, text_out=2, unconditional=True
    ).eval()
    image = torch.rand(3, 3, 16, 16) * 2 - 1
    a, b = with_text(image, torch.ones(3, 2)), with_text(image, -torch.ones(3, 2))
    branch = d.branches[-1]
    assert branch(a).shape == branch.unconditional(a).shape == (3, 1)
    assert not torch.allclose(branch(a), branch(b))  # the text matters to the first
    assert torch.equal(branch.unconditional(a), branch.unconditional(b))  # not to the second
    plain = MultiScaleDiscriminator(text_dim=2, image_size=16, channels=4, text_out=2)
    with pytest.raises(ValueError, match="no unconditional logit"):
        plain.branches[0].unconditional(a)


class StubBranch(torch.nn.Module):
    """Fixed logits: conditional = <text, mean colour>, unconditional = 3 x mean pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, :3, 0, 0] * x[:, 3:].mean((2, 3))).sum(1, keepdim=True)

    def unconditional(self, x: torch.Tensor) -> torch.Tensor:
        return 3 * x[:, 3:].mean((1, 2, 3))[:, None]


def _pairs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    real = torch.eye(3)[..., None, None].expand(3, 3, 2, 2)  # red, green, blue
    fake = torch.full((3, 3, 2, 2), 0.2)
    text = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0]])
    return real, fake, text


def test_d_loss_labels_the_wrong_pairs_unconditional_logit_real() -> None:
    """Minimax family, weight u = 0.5: L = mean_i [ -log s(c_real) - (log(1 - s(c_fake)) +
    log(1 - s(c_wrong))) / 2 ] + u * mean_i [ (-log s(u_real) - log s(u_wrong)) / 2
    - log(1 - s(u_fake)) ], where the wrong pair's image is the real image, so u_wrong = u_real
    (labelled real as in the official trainer; planted bug: labelling it fake fails here)."""
    real, fake, text = _pairs()
    objective = GANObjective(GANConfig(gan_loss="minimax"))
    loss, logs, uncond = branch_d_loss(objective, StubBranch(), real, fake, text, uncond_weight=0.5)
    c_real, c_fake, c_wrong = [2.0, 3.0, 1.0], [0.4, 0.6, 0.2], [0.0, 0.0, 0.0]
    u_real, u_fake = 3 * (1 / 3), 3 * 0.2  # a one-hot colour: mean pixel 1/3
    cond = (
        sum(sp(-r) + 0.5 * (sp(f) + sp(w)) for r, f, w in zip(c_real, c_fake, c_wrong, strict=True))
        / 3
    )
    u_wrong = u_real  # the wrong pair's unconditional logit is the real image's
    expected_uncond = 0.5 * (sp(-u_real) + sp(-u_wrong)) + sp(u_fake)
    assert float(uncond) == pytest.approx(expected_uncond, rel=1e-5)
    assert float(loss) == pytest.approx(cond + 0.5 * expected_uncond, rel=1e-5)
    bug = 0.5 * (sp(-u_real) + sp(u_wrong)) + sp(u_fake)  # the wrong pair labelled fake
    assert float(uncond) != pytest.approx(bug, rel=1e-3)
    assert logs["D_wrong"] == pytest.approx(0.0)
    none, _, nothing = branch_d_loss(objective, StubBranch(), real, fake, text, uncond_weight=0)
    assert nothing is None and float(none) == pytest.approx(cond, rel=1e-5)


def test_g_loss_has_the_conditional_and_the_unconditional_term() -> None:
    """Non-saturating: -log s(c_fake) + u * -log s(u_fake), averaged over the batch; the
    gradient reaches the fakes."""
    real, fake, text = _pairs()
    fake = fake.clone().requires_grad_(True)
    objective = GANObjective(GANConfig(gan_loss="nonsaturating"))
    total, cond, uncond = branch_g_loss(
        objective, StubBranch(), real, fake, text, uncond_weight=2.0
    )
    expected_cond = sum(sp(-f) for f in (0.4, 0.6, 0.2)) / 3
    assert float(cond.detach()) == pytest.approx(expected_cond, rel=1e-5)
    assert float(uncond.detach()) == pytest.approx(sp(-0.6), rel=1e-5)
    assert float(total.detach()) == pytest.approx(expected_cond + 2 * sp(-0.6), rel=1e-5)
    total.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    only, _, none = branch_g_loss(objective, StubBranch(), real, fake, text, uncond_weight=0)
    assert none is None and float(only.detach()) == pytest.approx(expected_cond, rel=1e-5)


def test_colour_statistics_and_loss_by_hand() -> None:
    """Two pixels. Low: (1, 0, 0) and (0, 0, 0): mu (0.5, 0, 0), Sigma_rr = 0.25 (divided by N),
    the rest 0. High: (0, 1, 0) twice: mu (0, 1, 0), Sigma 0. L = 1 * MSE(mu) + 5 * MSE(Sigma)
    = (0.25 + 1) / 3 + 5 * 0.25^2 / 9 (the official code's mean squared errors); the lower
    image is detached (no gradient), the higher one gets it."""
    low = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]]]], requires_grad=True)
    high = torch.tensor([[[[0.0, 0.0]], [[1.0, 1.0]], [[0.0, 0.0]]]], requires_grad=True)
    mu, cov = colour_statistics(low)
    assert torch.allclose(mu, torch.tensor([[0.5, 0.0, 0.0]]))
    assert torch.allclose(cov, torch.diag(torch.tensor([0.25, 0.0, 0.0]))[None])
    loss = colour_consistency_loss([low, high])
    assert float(loss) == pytest.approx(1.25 / 3 + 5 * 0.0625 / 9, rel=1e-6)
    loss.backward()
    assert low.grad is None and high.grad is not None and high.grad.abs().sum() > 0
    means_only = colour_consistency_loss([low, high], covariance_weight=0.0)
    assert float(means_only) == pytest.approx(1.25 / 3, rel=1e-6)
    # three scales: the sum of the two consecutive pairs' terms
    three = colour_consistency_loss([low.detach(), high.detach(), low.detach()])
    assert float(three) == pytest.approx(2 * (1.25 / 3 + 5 * 0.0625 / 9), rel=1e-6)
    with pytest.raises(ValueError, match="at least two scales"):
        colour_consistency_loss([low])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"generator": "stackgan-v2", "colour_weight": -1.0}, "colour_weight: must be >= 0"),
        ({"generator": "stackgan-v2", "uncond_weight": -1.0}, "uncond_weight: must be >= 0"),
        ({"generator": "stackgan-v2", "stages": 2, "image_size": 32}, "use --stages 1"),
        ({"colour_weight": 1.0}, "colour_weight: needs --generator stackgan-v2"),
        ({"generator": "stackgan-v2", "colour_weight": 1.0, "image_size": 8}, "two branches"),
    ],
)
def test_bad_tree_options_are_one_line(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        StackGANConfig(data=tmp_path, **options)
    assert "\n" not in str(err.value)


def test_bad_colour_weight_through_the_cli(tmp_path: Path) -> None:
    make_captioned_shapes(tmp_path / "d", 3, size=16)
    args = ["train", "stackgan", "--data", str(tmp_path / "d"), "--generator", "stackgan-v2",
            "--colour-weight", "-1", "--run-dir", str(tmp_path / "run")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "colour_weight: must be >= 0" in result.output
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def tree_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stackgan-tree")
    make_captioned_shapes(root / "shapes", 8, size=16)
    cfg = StackGANConfig(
        data=root / "shapes", generator="stackgan-v2", colour_weight=1.0, residual_blocks=1,
        **TINY,
    )  # fmt: skip
    return train_tiny("stackgan", cfg, root / "run")


def test_tree_trains_and_samples_a_prompt(tree_run: Path) -> None:
    """Two steps: the D and G logs have the unconditional and colour terms; ``sample
    --prompt`` gives full-size images (the last branch's)."""
    log = (tree_run / "metrics.jsonl").read_text()
    for key in ("D_uncond", "G_uncond", "colour", "kl", "D_wrong"):
        assert f'"{key}"' in log, key
    images = Sampler.from_checkpoint(tree_run)(2, seed=0, prompt="a red circle")
    assert images[0].size == (16, 16)


def test_tree_exports_with_parity(tree_run: Path, tmp_path: Path) -> None:
    """The ONNX graph (z, sentence) -> the full-size image matches PyTorch, prompt included."""
    from translate.export.onnx import FP32_TOLERANCE, export_onnx

    exported = export_onnx(tree_run, tmp_path / "g.onnx")
    assert exported.checked_with is not None
    assert max(d for _, d in exported.checks) <= FP32_TOLERANCE
    torch_sampler, onnx_sampler = (
        Sampler.from_checkpoint(tree_run),
        Sampler.from_checkpoint(exported.path),
    )
    inputs = torch_sampler.inputs(3, seed=1, prompt="a green cross")
    assert inputs[1].shape == (3, 8)  # the sentence vector
    out = torch_sampler.generate(*inputs)
    assert out.shape == (3, 3, 16, 16)
    assert float((out - onnx_sampler.generate(*inputs)).abs().max()) <= FP32_TOLERANCE


def test_each_loss_reaches_all_of_its_network(tmp_path: Path) -> None:
    """DDP's declaration (``ddp_unused_parameters = False``): D's loss gives every D parameter
    (both heads of each branch) a gradient, G's loss every G parameter."""
    from translate_stackgan.tree import build_tree

    torch.manual_seed(0)
    cfg = StackGANConfig(data=tmp_path, generator="stackgan-v2", residual_blocks=1, **TINY)
    d_args = {"text_dim": 8, "channels": 4, "text_out": 4}
    models = build_tree(cfg, d_args)
    g, d = models["G"], models["D"]
    sentence, real = torch.randn(4, 8), torch.rand(4, 3, 16, 16) * 2 - 1
    fakes = levels(g(torch.randn(4, 8, 1, 1), sentence, sample=True)[0], d.k)
    reals = [F.avg_pool2d(real, 2), real]
    objective = GANObjective(GANConfig(gan_loss="nonsaturating"))
    pairs = list(zip(d.branches, reals, fakes, strict=True))
    loss_d = sum(
        branch_d_loss(objective, b, r, f, sentence, uncond_weight=1.0)[0] for b, r, f in pairs
    )
    loss_d.backward(retain_graph=True)
    assert [n for n, p in d.named_parameters() if p.grad is None] == []
    loss_g = sum(
        branch_g_loss(objective, b, r, f, sentence, uncond_weight=1.0)[0] for b, r, f in pairs
    )
    (loss_g + colour_consistency_loss(fakes)).backward()
    assert [n for n, p in g.named_parameters() if p.grad is None] == []
