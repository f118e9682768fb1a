"""The cyclegan plugin: config, unpaired data, the training step, inference in both directions,
and a learning test on a tiny synthetic unpaired task (red discs <-> blue discs)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from translate_cyclegan import CycleGANConfig, CycleGANInference
from typer.testing import CliRunner

from tests.conftest import load_folder
from translate.cli.main import app
from translate.config import GANConfig, TrainConfig, config_from_dict
from translate.data.unpaired import UnpairedDataset, find_domains, sibling_split
from translate.engine.loop import Trainer
from translate.errors import ConfigError, DataError
from translate.inference.translator import Translator
from translate.registry import load_plugin
from translate.testing import make_unpaired

runner = CliRunner()

# fmt: off
TINY = [
    "--crop-size", "32", "--load-size", "36", "--resnet-blocks", "2", "--base-channels", "8",
    "--disc-channels", "8", "--disc-layers", "2", "--no-progress", "--log-every", "1",
]
# fmt: on


@pytest.fixture
def unpaired(tmp_path: Path) -> Path:
    return make_unpaired(tmp_path / "discs", n=6)


def tiny_trainer(data: Path, run_dir: Path, **train: object) -> Trainer:
    plugin = load_plugin("cyclegan")
    cfg = plugin.tiny_config(data)
    train_cfg = config_from_dict(
        TrainConfig,
        {
            **plugin.train_defaults,
            "max_steps": 2,
            "batch_size": 2,
            "progress": False,
            "device": "cpu",
            "run_dir": run_dir,
            **train,
        },
    )
    gan_cfg = config_from_dict(GANConfig, dict(plugin.gan_defaults))
    return Trainer(plugin, cfg, train_cfg, gan_cfg, run_dir=run_dir)


# ---------------------------------------------------------------------------- config
def test_config_requires_both_domains(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="domain_a"):
        CycleGANConfig()
    with pytest.raises(ConfigError, match="domain_b"):
        config_from_dict(CycleGANConfig, {"domain_a": str(tmp_path)})


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"load_size": 200}, "load_size"),
        ({"generator": "unet", "unet_depth": 6, "crop_size": 40, "load_size": 40}, "crop_size"),
        ({"crop_size": 30, "load_size": 36}, "crop_size"),
        ({"crop_size": 4, "load_size": 4}, "crop_size"),
        ({"lambda_cycle": -1}, "lambda_cycle"),
        ({"lambda_identity": -0.5}, "lambda_identity"),
        ({"pool_size": -1}, "pool_size"),
    ],
)
def test_config_rejects_bad_values(tmp_path: Path, values: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        config_from_dict(CycleGANConfig, {"domain_a": tmp_path, "domain_b": tmp_path, **values})


def test_paper_defaults() -> None:
    plugin = load_plugin("cyclegan")
    cfg = CycleGANConfig(domain_a=Path("A"), domain_b=Path("B"))
    assert (cfg.generator, cfg.resnet_blocks, cfg.norm, cfg.disc_layers) == (
        "resnet",
        9,
        "instance",
        3,
    )
    assert (cfg.lambda_cycle, cfg.lambda_identity, cfg.pool_size) == (10.0, 0.5, 50)
    assert (cfg.load_size, cfg.crop_size, cfg.flip) == (286, 256, True)
    assert plugin.gan_defaults["gan_loss"] == "lsgan"
    assert plugin.train_defaults["lr_decay_start"] == 0.5
    for f in dataclasses.fields(CycleGANConfig):
        assert f.metadata.get("help"), f"{f.name} has no help text"


def test_cli_missing_domain_is_one_line_error(unpaired: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["train", "cyclegan", "--domain-a", str(unpaired / "A"), "--run-dir", str(tmp_path / "r")],
    )
    assert result.exit_code == 2, result.output
    assert "error: domain_b" in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------------------- data
def test_unpaired_dataset_items(unpaired: Path, tmp_path: Path) -> None:
    # domains of different sizes and counts; a grayscale and an RGBA image are converted to RGB
    extra = tmp_path / "moreB"
    extra.mkdir()
    for f in sorted((unpaired / "B").iterdir()):
        Image.open(f).resize((40, 48)).save(extra / f.name)
    Image.new("L", (40, 40), 128).save(extra / "gray.png")
    Image.new("RGBA", (40, 40), (0, 0, 255, 128)).save(extra / "rgba.png")
    ds = UnpairedDataset(unpaired / "A", extra, load_size=36, crop_size=32)
    assert len(ds) == 8  # the larger domain
    item = ds[(7, 123)]
    assert item["A"].shape == item["B"].shape == (3, 32, 32)
    assert item["A"].min() >= -1 and item["A"].max() <= 1
    assert item["path_a"].endswith("001.png")  # 7 % 6
    # reproducible from (index, seed); B is an independent draw that changes with the seed
    again = ds[(7, 123)]
    assert torch.equal(item["A"], again["A"]) and item["path_b"] == again["path_b"]
    drawn = {ds[(0, seed)]["path_b"] for seed in range(40)}
    assert len(drawn) > 4
    for name in ("gray.png", "rgba.png"):
        j = [p.name for p in ds.b_files].index(name)
        evaluation = UnpairedDataset(unpaired / "A", extra, load_size=36, crop_size=32, train=False)
        assert evaluation[j]["B"].shape == (3, 32, 32)
        assert evaluation[j]["path_b"].endswith(name)  # evaluation pairs serially


def test_layouts(tmp_path: Path) -> None:
    make_unpaired(tmp_path / "plain", n=2)
    assert find_domains(tmp_path / "plain", "train") == (tmp_path / "plain/A", tmp_path / "plain/B")
    assert find_domains(tmp_path / "plain", "val") is None
    release = tmp_path / "release"  # the CycleGAN release: trainA, trainB, testA, testB
    release.mkdir()
    for split in ("train", "test"):
        make_unpaired(tmp_path / split, n=2)
        for domain in ("A", "B"):
            (tmp_path / split / domain).rename(release / f"{split}{domain}")
    assert find_domains(release, "test") == (release / "testA", release / "testB")
    assert sibling_split(release / "trainA", "val") == release / "testA"
    assert sibling_split(tmp_path / "plain/A", "val") is None
    ds = UnpairedDataset.from_root(release, "train", load_size=32, crop_size=32)
    assert ds is not None and len(ds) == 2
    # the plugin's sample grids come from testA/testB when they exist
    plugin = load_plugin("cyclegan")
    cfg = plugin.tiny_config(release)
    cfg = dataclasses.replace(cfg, domain_a=release / "trainA", domain_b=release / "trainB")
    val = plugin.build_dataset(cfg, "val")
    assert val is not None and val.a_dir == release / "testA"
    assert plugin.build_dataset(plugin.tiny_config(tmp_path / "plain"), "val") is None


def test_bad_data_fails_up_front(unpaired: Path, tmp_path: Path) -> None:
    (unpaired / "B" / "broken.png").write_text("not an image")
    with pytest.raises(DataError, match=r"broken\.png"):
        UnpairedDataset(unpaired / "A", unpaired / "B")
    with pytest.raises(DataError, match="does not exist"):
        UnpairedDataset(unpaired / "A", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        UnpairedDataset(tmp_path / "empty", unpaired / "A")


# ---------------------------------------------------------------------------- step
def test_each_generator_pass_runs_once(unpaired: Path, tmp_path: Path) -> None:
    trainer = tiny_trainer(unpaired, tmp_path / "run")
    calls = {name: 0 for name in trainer.models}

    def counter(name: str):
        def hook(*_: object) -> None:
            calls[name] += 1

        return hook

    for name, model in trainer.models.items():
        model.register_forward_hook(counter(name))
    batch = torch.utils.data.default_collate([trainer.dataset[(i, i)] for i in range(2)])
    losses = trainer.plugin.train_step(trainer.ctx, batch, trainer.plugin_cfg)
    assert set(losses) == {
        "G_adv_A",
        "G_adv_B",
        "cycle_A",
        "cycle_B",
        "idt_A",
        "idt_B",
        "D_A",
        "D_B",
    }
    assert all(isinstance(v, float) and np.isfinite(v) for v in losses.values())
    # G_A: fake B, rec B, identity (on a CPU; batched into two calls on CUDA); D: one pass for
    # G's loss, two (real, pooled fake) for D's
    assert calls == {"G_A": 3, "G_B": 3, "D_A": 3, "D_B": 3}
    assert vars(trainer.plugin) == {}, "the plugin keeps state between steps"
    assert {len(p.images) for p in trainer.ctx.pools.values()} == {2}

    no_identity = dataclasses.replace(trainer.plugin_cfg, lambda_identity=0.0)
    calls.update(dict.fromkeys(calls, 0))
    losses = trainer.plugin.train_step(trainer.ctx, batch, no_identity)
    assert calls["G_A"] == calls["G_B"] == 2 and losses["idt_A"] == 0.0

    # a critic-only step (--n-critic): one graph-free pass per generator, G untouched
    calls.update(dict.fromkeys(calls, 0))
    g_before = [p.clone() for p in trainer.models["G_A"].parameters()]
    d_before = [p.clone() for p in trainer.models["D_A"].parameters()]
    trainer.ctx.update_generator = False
    losses = trainer.plugin.train_step(trainer.ctx, batch, trainer.plugin_cfg)
    assert set(losses) == {"D_A", "D_B"} and calls == {"G_A": 1, "G_B": 1, "D_A": 2, "D_B": 2}
    g_after, d_after = trainer.models["G_A"].parameters(), trainer.models["D_A"].parameters()
    assert all(torch.equal(a, b) for a, b in zip(g_before, g_after, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(d_before, d_after, strict=True))


def test_sample_grid_columns(unpaired: Path, tmp_path: Path) -> None:
    trainer = tiny_trainer(unpaired, tmp_path / "run")
    batch = trainer._sample_batch()
    with torch.no_grad():
        columns = trainer.plugin.sample_columns(trainer.models, batch, trainer.plugin_cfg)
    assert len(columns) == 6  # real A | fake B | rec A | real B | fake A | rec B
    assert all(c.shape == batch["A"].shape for c in columns)
    assert columns[0] is batch["A"] and columns[3] is batch["B"]


def test_train_then_run_both_directions(unpaired: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "cyclegan",
            "--domain-a",
            str(unpaired / "A"),
            "--domain-b",
            str(unpaired / "B"),
            "--run-dir",
            str(run_dir),
            "--max-steps",
            "2",
            "--sample-every",
            "2",
            *TINY,
        ],
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((run_dir / "checkpoints" / "step_0000002" / "meta.json").read_text())
    assert meta["gan_config"]["gan_loss"] == "lsgan" and meta["models"] == [
        "G_A",
        "G_B",
        "D_A",
        "D_B",
    ]
    grid = Image.open(run_dir / "samples" / "step_0000002.png")
    assert grid.width > 6 * 32 > grid.width - 6 * 8  # six columns

    outputs = {}
    image = unpaired / "A" / "000.png"
    for direction in ("a2b", "b2a"):
        out = tmp_path / f"{direction}.png"
        ran = runner.invoke(
            app,
            [
                "run",
                str(image),
                "--checkpoint",
                str(run_dir),
                "--out",
                str(out),
                "--direction",
                direction,
            ],
        )
        assert ran.exit_code == 0, ran.output
        outputs[direction] = np.asarray(Image.open(out))
        assert outputs[direction].shape == (32, 32, 3)
    assert not np.array_equal(outputs["a2b"], outputs["b2a"])
    bad = runner.invoke(
        app, ["run", str(image), "--checkpoint", str(run_dir), "--direction", "x2y"]
    )
    assert bad.exit_code == 2 and "direction" in bad.output

    translators = {
        d: Translator.from_checkpoint(run_dir, device="cpu", options={"direction": d})
        for d in ("a2b", "b2a")
    }
    assert translators["a2b"].module is not translators["b2a"].module
    tiny = Image.fromarray(np.full((5, 7, 3), 90, np.uint8))  # padded up to the 8x8 minimum
    assert translators["b2a"](tiny)[0].size == (7, 5)
    assert CycleGANInference().direction == "a2b"


# ---------------------------------------------------------------------------- learning
# Thresholds, from measurements on the 2-core CPU (one thread, seed 0, about 25 s): after 300
# steps 100% of held-out images are judged right both ways, each with a colour margin of at
# least 0.54, and the cycle L1 is about 0.045 (in [-1, 1] units). After 60 steps none is judged
# right (cycle L1 about 0.2); after 120, b2a passes but a2b gets 2%. The bars (90%, margin 0.25,
# cycle L1 < 0.1) leave room for float differences across machines; a half-trained model fails.
LEARN_STEPS = 300
MIN_JUDGED = 0.9
COLOUR_MARGIN = 0.25  # mean target channel minus mean source channel inside the disc, in [0, 1]
MAX_CYCLE_L1 = 0.1


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_learns_red_discs_to_blue_discs_and_back(tmp_path: Path) -> None:
    data = make_unpaired(tmp_path / "train", n=32, size=32, seed=0)
    held_out = make_unpaired(tmp_path / "held_out", n=50, size=32, seed=1)
    plugin = load_plugin("cyclegan")
    cfg = dataclasses.replace(plugin.tiny_config(data), load_size=32)  # positions vary already
    train_cfg = config_from_dict(
        TrainConfig,
        {
            "max_steps": LEARN_STEPS,
            "batch_size": 4,
            "lr_decay_start": 0.5,
            "seed": 0,
            "log_every": 50,
            "sample_every": 10**6,
            "checkpoint_every": 10**6,
            "progress": False,
            "device": "cpu",
            "run_dir": tmp_path / "run",
        },
    )
    gan_cfg = config_from_dict(GANConfig, dict(plugin.gan_defaults))
    start = time.perf_counter()
    folder = Trainer(plugin, cfg, train_cfg, gan_cfg, run_dir=tmp_path / "run").run()
    seconds = time.perf_counter() - start
    a2b = Translator.from_checkpoint(folder, device="cpu", options={"direction": "a2b"})
    b2a = Translator.from_checkpoint(folder, device="cpu", options={"direction": "b2a"})

    # (source folder, forward, backward, source channel, target channel): red = 0, blue = 2
    for name, source, forward, backward, src, dst in (
        ("a2b", held_out / "A", a2b, b2a, 0, 2),
        ("b2a", held_out / "B", b2a, a2b, 2, 0),
    ):
        x = load_folder(source)  # (N, 3, 32, 32) in [-1, 1]
        translated = forward.translate_tensor(x)
        reconstructed = backward.translate_tensor(translated)
        disc = (x[:, src] > 0).float()  # where the source disc is
        area = disc.sum((1, 2))
        colour = (translated + 1) / 2  # [0, 1]
        margin = ((colour[:, dst] - colour[:, src]) * disc).sum((1, 2)) / area
        judged = (margin > COLOUR_MARGIN).float().mean().item()
        cycle_l1 = (reconstructed - x).abs().mean().item()
        report = f"{name}: judged {judged:.0%}, cycle L1 {cycle_l1:.3f}, trained in {seconds:.0f} s"
        assert judged >= MIN_JUDGED, report
        assert cycle_l1 < MAX_CYCLE_L1, report


def test_batched_identity_calls_train_exactly_like_six_separate_calls(
    unpaired: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, float64: torch.dtype
) -> None:
    """G_A on real A and on real B (identity) run as one call, likewise G_B: four generator
    calls per step instead of six, the same gradients (instance norm is per sample). In
    float64 (the ``float64`` fixture): in float32 the batch-2 and batch-4 convolutions may use
    different kernels (oneDNN on Intel AMX: loss differences up to 3e-4), so the tolerances
    below hold on any CPU only in double precision. A batched call that mixed the two halves
    (batch norm) differs by 1e-2 and more."""
    import sys

    from translate.engine.loop import prepare

    module = sys.modules["translate_cyclegan.plugin"]
    torch.set_num_threads(1)
    results = {}
    for batched in (True, False):
        monkeypatch.setattr(module, "BATCH_INDEPENDENT_CALLS", batched)
        trainer = prepare(
            "cyclegan",
            domain_a=str(unpaired / "A"),
            domain_b=str(unpaired / "B"),
            **{"load_size": 32, "crop_size": 32, "resnet_blocks": 2, "base_channels": 8},
            **{"disc_channels": 8, "batch_size": 2, "amp": "none", "channels_last": False},
            **{"max_steps": 3, "progress": False, "run_dir": tmp_path / f"run{batched}"},
            **{"sample_every": 10**9, "checkpoint_every": 10**9, "device": "cpu", "seed": 0},
        )
        calls: list[int] = []

        def count(module: object, inputs: tuple, output: object, calls: list = calls) -> None:
            calls.append(len(inputs[0]))

        for name in ("G_A", "G_B"):
            trainer.models[name].register_forward_hook(count)
        assert all(p.dtype == float64 for m in trainer.models.values() for p in m.parameters())
        batches = iter(trainer.loader())
        logs = [trainer.train_step(next(batches)) for _ in range(3)]
        assert len(calls) == (4 if batched else 6) * 3, calls
        weights = {
            f"{m}.{k}": v.clone()
            for m in ("G_A", "G_B", "D_A", "D_B")
            for k, v in trainer.models[m].state_dict().items()
        }
        results[batched] = weights, logs
    (batched_w, batched_logs), (separate_w, separate_logs) = results[True], results[False]
    for a, b in zip(batched_logs, separate_logs, strict=True):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12)
    # every weight (conv biases in front of an affine-free instance norm have a true gradient
    # of 0: Adam turns the rounding noise of either order into lr-sized steps, so not those)
    diff = {k: (batched_w[k] - separate_w[k]).abs().max().item() for k in batched_w}
    assert max(v for k, v in diff.items() if not k.endswith("bias")) < 1e-9, diff
