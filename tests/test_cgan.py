"""The cgan plugin: the three discriminator conditionings, class folders, `translate sample
--class` (with did-you-mean), the class one-hot the sampler feeds beside the latent, and
`translate sample` of the ONNX export (the class a second input)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from translate_cgan import CGANConfig
from translate_cgan.nets import ConditionalDiscriminator
from typer.testing import CliRunner

from tests.conftest import train_tiny
from translate.cli.main import app
from translate.errors import ConfigError, DataError
from translate.inference.sampling import Sampler
from translate.registry import load_plugin
from translate.testing import make_single, make_unpaired

runner = CliRunner()


@pytest.mark.parametrize("conditioning", ["concat", "acgan", "projection"])
def test_discriminator_uses_the_class(conditioning: str) -> None:
    """Same image, another class: another logit (concat, projection); AC-GAN's logit ignores
    the class and its classifier head gives K logits."""
    torch.manual_seed(0)
    D = ConditionalDiscriminator(
        image_size=16, n_classes=3, conditioning=conditioning, base_channels=4
    ).eval()
    assert_uses_the_class(D, conditioning)


def assert_uses_the_class(disc: ConditionalDiscriminator, conditioning: str) -> None:
    """One 16x16 image under class 0 and class 2 (3 classes): the logits differ (concat,
    projection) or, for acgan, are equal and the classifier head gives 3 logits."""
    image = torch.rand(2, 3, 16, 16) * 2 - 1
    maps = [torch.zeros(2, 3, 16, 16) for _ in range(2)]
    maps[0][:, 0], maps[1][:, 2] = 1, 1
    a, b = (disc(torch.cat([m, image], 1)) for m in maps)
    assert a.shape == (2, 1, 1, 1)
    if conditioning == "acgan":
        assert torch.equal(a, b)
        assert disc.classify(torch.cat([maps[0], image], 1)).shape == (2, 3)
    else:
        assert not torch.allclose(a, b)


def tiny_run(root: Path, data: Path, conditioning: str = "projection") -> Path:
    cfg = CGANConfig(
        data=data, image_size=16, latent_dim=8, base_channels=8, conditioning=conditioning
    )
    return train_tiny("cgan", cfg, root / "run")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cgan")
    return tiny_run(root, make_unpaired(root / "shapes", n=4, size=16), "acgan")


def test_classes_come_from_the_folders_and_the_step_logs_the_class_loss(run_dir: Path) -> None:
    sampler = Sampler.from_checkpoint(run_dir)
    assert sampler.classes == ["A", "B"]
    assert sampler.latent_shape == (8, 1, 1)  # the noise; the class is an input of its own
    log = (run_dir / "metrics.jsonl").read_text()
    assert '"D_cls"' in log and '"G_cls"' in log  # acgan: the auxiliary classifier trains
    z, onehot = sampler.inputs(3, seed=0, class_name="B")
    assert z.shape == (3, 8, 1, 1) and torch.equal(onehot, torch.tensor([[0.0, 1.0]] * 3))
    drawn = sampler.inputs(200, seed=0)[1]
    assert torch.equal(drawn.sum(1), torch.ones(200)) and 0.3 < drawn[:, 0].mean() < 0.7


def test_sample_class_through_the_cli(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.png"
    args = ["sample", str(run_dir), "-n", "4", "--class", "B", "--seed", "0", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (32, 32)
    # the CLI draws what the API draws for the same class and seed
    expected = Sampler.from_checkpoint(run_dir)(4, seed=0, class_name="B")
    assert Image.open(out).crop((16, 0, 32, 16)).tobytes() == expected[1].tobytes()


def test_unknown_class_suggests_the_closest(run_dir: Path, tmp_path: Path) -> None:
    args = ["sample", str(run_dir), "--class", "b", "-o", str(tmp_path / "x.png")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "unknown class 'b'; did you mean 'B'?" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_class_on_an_unconditional_model_is_refused(tmp_path: Path) -> None:
    plugin = load_plugin("dcgan")
    cfg = plugin.tiny_config(make_single(tmp_path / "data", n=2, size=16))
    models = plugin.build_models(cfg)
    from translate.loading.model import LoadedModel

    loaded = LoadedModel(tmp_path, plugin, cfg, {}, None, models, models["G"].eval(), [])
    with pytest.raises(ConfigError, match="unconditional"):
        Sampler(loaded).inputs(2, class_name="A")


def test_data_and_class_errors_are_one_line(tmp_path: Path) -> None:
    one = tmp_path / "one"
    make_single(one / "only", n=2, size=16)
    plugin = load_plugin("cgan")
    with pytest.raises(DataError, match="one sub-folder of images per class"):
        plugin.finalize_config(CGANConfig(data=one))
    two = make_unpaired(tmp_path / "two", n=2, size=16)
    with pytest.raises(ConfigError, match="did you mean 'A'"):
        plugin.finalize_config(CGANConfig(data=two, classes="A,a"))
    with pytest.raises(ConfigError, match="conditioning"):
        CGANConfig(data=two, conditioning="cat")  # type: ignore[arg-type]


def test_sample_the_onnx_export_through_the_cli(run_dir: Path, tmp_path: Path) -> None:
    """`translate export` writes the latent and the class as two inputs; `translate sample
    model.onnx --class B` runs it in ONNX Runtime and draws what PyTorch draws (same seed)."""
    import numpy as np
    import onnx

    model = tmp_path / "cgan.onnx"
    assert runner.invoke(app, ["export", str(run_dir), "-o", str(model)]).exit_code == 0
    inputs = {i.name: i for i in onnx.load(str(model)).graph.input}
    assert list(inputs) == ["input", "class_onehot"]
    assert [d.dim_value for d in inputs["class_onehot"].type.tensor_type.shape.dim][1:] == [2]
    out = tmp_path / "b.png"
    args = ["sample", str(model), "-n", "4", "--class", "B", "--seed", "0", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    on_onnx = Sampler.from_checkpoint(model)
    assert on_onnx.backend.kind == "onnx" and on_onnx.classes == ["A", "B"]
    expected = Sampler.from_checkpoint(run_dir)(4, seed=0, class_name="B")
    sheet = np.asarray(Image.open(out), np.int16)
    want = np.asarray(expected[1], np.int16)
    assert np.abs(sheet[:16, 16:32] - want).max() <= 1  # ORT == PyTorch within a grey level
    # the class reaches the ONNX graph: another class, other images from the same latents
    a, b = (on_onnx.sample_tensor(4, seed=0, class_name=c) for c in ("A", "B"))
    assert (a - b).abs().max() > 1e-3
    bad = runner.invoke(app, ["sample", str(model), "--class", "b", "-o", str(tmp_path / "x.png")])
    assert bad.exit_code == 2 and "did you mean 'B'?" in bad.output
