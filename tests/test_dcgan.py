"""The dcgan plugin and `translate sample`: architecture per image size, config checks, the
sample command (grid, folder, no overwrite, errors), `run` refusing a generator, and the
truncation trick reducing sample diversity (measured)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from translate_dcgan import DCGANConfig
from typer.testing import CliRunner

from translate.cli.main import app
from translate.config import GANConfig, TrainConfig, config_from_dict
from translate.engine.loop import Trainer
from translate.errors import ConfigError
from translate.inference.sampling import Sampler, truncated_normal
from translate.nn.dcgan import DCGANDiscriminator, DCGANGenerator
from translate.registry import load_plugin
from translate.testing import make_single

runner = CliRunner()


@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_networks_map_latents_to_images_of_the_configured_size(size: int) -> None:
    G = DCGANGenerator(latent_dim=5, image_size=size, base_channels=4)
    D = DCGANDiscriminator(image_size=size, base_channels=4)
    x = G(torch.randn(2, 5, 1, 1))
    assert x.shape == (2, 3, size, size) and x.abs().max() <= 1
    assert D(x).shape == (2, 1, 1, 1)
    # the paper's guidelines: no pooling, no fully connected layers
    layers = [type(m).__name__ for m in [*G.modules(), *D.modules()]]
    assert not [n for n in layers if "Pool" in n or n == "Linear"]


@pytest.mark.parametrize(("field", "value"), [("image_size", 12), ("image_size", 4)])
def test_bad_sizes_name_the_field(field: str, value: int, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=field):
        DCGANConfig(data=tmp_path, **{field: value})


@pytest.mark.parametrize("name", ["dcgan", "cgan"])
def test_learning_rate_is_constant_unless_a_decay_is_asked_for(name: str, tmp_path: Path) -> None:
    """DCGAN (Radford et al. 2016, Sec. 4) and the cGANs after it keep Adam at 2e-4 for the whole
    run; a linear decay only with --lr-decay-start. The rates the optimisers use, step by step."""
    from translate.engine.loop import prepare
    from translate.testing import make_unpaired

    data = make_unpaired(tmp_path / "data", n=2, size=16)
    if name == "dcgan":
        data = data / "A"
    tiny = {"image_size": 16, "latent_dim": 8, "base_channels": 8, "batch_size": 2}
    tiny |= {"max_steps": 4, "progress": False, "amp": "none"}

    def rates(**options: object) -> list[float]:
        trainer = prepare(name, data=data, run_dir=tmp_path / "run", **tiny, **options)
        batch = torch.utils.data.default_collate([trainer.dataset[i] for i in range(2)])
        used = []
        for _ in range(4):
            trainer.train_step(batch)
            used.append(trainer.ctx.optimizers["G"].param_groups[0]["lr"])
        return used

    assert rates() == pytest.approx([2e-4] * 4)
    assert rates(lr_decay_start=0.5) == pytest.approx([2e-4, 2e-4, 2e-4, 1e-4])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dcgan run of two steps on tiny 16x16 images."""
    root = tmp_path_factory.mktemp("dcgan")
    plugin = load_plugin("dcgan")
    cfg = DCGANConfig(
        data=make_single(root / "data", n=4, size=16), image_size=16, latent_dim=8,
        base_channels=8,
    )  # fmt: skip
    train_cfg = config_from_dict(
        TrainConfig,
        {"max_steps": 2, "batch_size": 2, "progress": False, "device": "cpu",
         "run_dir": root / "run", "sample_every": 10**6},
    )  # fmt: skip
    Trainer(plugin, cfg, train_cfg, config_from_dict(GANConfig, {}), run_dir=root / "run").run()
    return root / "run"


def test_sample_writes_a_grid_and_a_folder_and_never_overwrites(
    run_dir: Path, tmp_path: Path
) -> None:
    grid = tmp_path / "grid.png"
    result = runner.invoke(app, ["sample", str(run_dir), "-n", "6", "--seed", "3", "-o", str(grid)])
    assert result.exit_code == 0, result.output
    assert Image.open(grid).size == (3 * 16, 2 * 16)  # 6 images: 3 columns, 2 rows
    before = grid.read_bytes()
    again = runner.invoke(app, ["sample", str(run_dir), "-n", "6", "-o", str(grid)])
    assert again.exit_code == 2 and "exists" in again.output
    assert len(again.output.strip().splitlines()) == 1 and grid.read_bytes() == before

    folder = tmp_path / "samples"
    result = runner.invoke(
        app, ["sample", str(run_dir), "-n", "5", "--seed", "3", "--truncation", "0.5",
              "-o", str(folder)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    files = sorted(folder.glob("*.png"))
    assert len(files) == 5 and Image.open(files[0]).size == (16, 16)


def test_same_seed_same_images(run_dir: Path) -> None:
    sampler = Sampler.from_checkpoint(run_dir)
    a, b, c = sampler(4, seed=1), sampler(4, seed=1), sampler(4, seed=2)
    assert [i.tobytes() for i in a] == [i.tobytes() for i in b]
    assert [i.tobytes() for i in a] != [i.tobytes() for i in c]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--truncation", "0"], "truncation: must be a finite number of at least"),
        (["--truncation", "1e-300"], "truncation: must be a finite number of at least"),
        (["-n", "0"], "n: must be at least 1"),
    ],
)
def test_bad_sample_options_are_one_line(
    run_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["sample", str(run_dir), *args, "-o", str(tmp_path / "g.png")])
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_run_refuses_a_generator_and_sample_refuses_a_translator(
    run_dir: Path, tmp_path: Path
) -> None:
    image = tmp_path / "in.png"
    Image.new("RGB", (16, 16)).save(image)
    result = runner.invoke(app, ["run", "-c", str(run_dir), str(image), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "translate sample" in result.output


def test_truncated_latents_stay_within_the_bound() -> None:
    z = truncated_normal((4000,), 0.5, torch.Generator().manual_seed(0))
    assert z.abs().max() <= 0.5
    assert z.std() > 0.25  # resampled, not clipped to the bound (uniform-ish on [-0.5, 0.5])
    assert (z.abs() > 0.49).float().mean() < 0.05


def test_truncation_reduces_sample_diversity(run_dir: Path) -> None:
    """Mean pairwise L2 distance between samples of the same model falls with T."""
    sampler = Sampler.from_checkpoint(run_dir)

    def diversity(truncation: float | None) -> float:
        x = sampler.sample_tensor(64, seed=0, truncation=truncation).flatten(1)
        return float(torch.pdist(x).mean())

    figures = [diversity(t) for t in (None, 1.0, 0.5, 0.1)]
    assert figures == sorted(figures, reverse=True), figures
    assert figures[-1] < 0.5 * figures[0], figures
