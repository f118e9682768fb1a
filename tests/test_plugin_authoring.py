"""What a plugin author relies on: a default dataset for every kind, and validation that
reports a plugin lacking what its kind requires when it is loaded (``translate plugins`` and
``translate train`` exit with code 2) rather than as a traceback in training."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.test_cli import assert_user_error
from tests.test_registry import install_dist, site  # noqa: F401 (fixture)
from translate.cli.main import app
from translate.config import PairedDataConfig
from translate.data import build_dataset
from translate.data.paired import LabelMapDataset, PairedDataset
from translate.data.single import SingleDataset
from translate.errors import PluginError
from translate.plugin import PluginBase
from translate.registry import load_plugin
from translate.testing import LABEL_COLOURS, check_plugin_contract, make_labels, make_single

# A `single` plugin that writes no build_dataset: a denoiser trained on noised copies of the
# default dataset's images. {config_base} and {extra} vary to make it invalid.
SINGLE = """
from __future__ import annotations
from dataclasses import dataclass
from pathlib import Path
from translate.config import SingleDataConfig, opt
from translate.plugin import PluginBase


@dataclass(frozen=True)
class DenoiseConfig({config_base}):
    width: int = opt(8, "Hidden channels.")


class DenoisePlugin(PluginBase[DenoiseConfig]):
    name = "{name}"
    config_cls = DenoiseConfig
    dataset_kind = "single"

    def build_models(self, cfg):
        from torch import nn
        g = nn.Sequential(nn.Conv2d(3, cfg.width, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(cfg.width, 3, 3, padding=1), nn.Tanh())
        d = nn.Sequential(nn.Conv2d(3, cfg.width, 4, 2, 1), nn.LeakyReLU(0.2),
                          nn.Conv2d(cfg.width, 1, 3, padding=1))
        return {{"G": g, "D": d}}

    def train_step(self, ctx, batch, cfg):
        import torch
        clean = batch["image"]
        noisy = (clean + 0.2 * torch.randn_like(clean)).clamp(-1, 1)
        with ctx.autocast():
            fake = ctx.models["G"](noisy)
            loss_d, logs = ctx.gan.discriminator_loss(ctx.models["D"], clean, fake)
        ctx.optimize("D", loss_d)
        with ctx.frozen("D"), ctx.autocast():
            loss_g, logs_g = ctx.gan.generator_loss(ctx.models["D"], fake, clean)
            l1 = (fake.float() - clean).abs().mean()
        ctx.optimize("G", loss_g + 10 * l1)
        return {{**logs, **logs_g, "G_L1": l1.item()}}
{extra}
    def tiny_config(self, data_root: Path) -> DenoiseConfig:
        return DenoiseConfig(data=data_root, load_size=40, crop_size=32)


plugin = DenoisePlugin()
"""

INFERENCE = """
    def inference_module(self, models, cfg, opts):
        return models["G"]
"""


def single_plugin(name: str, config_base: str = "SingleDataConfig", extra: str = INFERENCE):
    return SINGLE.format(name=name, config_base=config_base, extra=extra)


def test_single_plugin_without_build_dataset_trains_on_the_default_dataset(
    site: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    install_dist(
        site,
        "translate-denoise",
        "tp_denoise",
        single_plugin("denoise"),
        {"denoise": "tp_denoise:plugin"},
    )
    importlib.invalidate_caches()
    plugin = load_plugin("denoise")
    assert "build_dataset" not in type(plugin).__dict__
    data = make_single(tmp_path / "photos", size=40)
    dataset = plugin.build_dataset(plugin.tiny_config(data), "train")
    assert isinstance(dataset, SingleDataset) and len(dataset) == 6

    run_dir = tmp_path / "run"
    trained = CliRunner().invoke(
        app,
        ["train", "denoise", "--data", str(data), "--load-size", "40", "--crop-size", "32",
         "--max-steps", "3", "--log-every", "1", "--no-progress", "--run-dir", str(run_dir)],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(np.isfinite(r["G_L1"]) for r in records)


@pytest.mark.parametrize(
    ("config_base", "extra", "needle"),
    [
        # a single-kind config without the data fields and no build_dataset of its own
        ("", INFERENCE, "DenoiseConfig lacks data, load_size, crop_size, flip"),
        # no inference_module: run and export would fail
        ("SingleDataConfig", "", "inference_module is not implemented"),
    ],
    ids=["no-data-fields", "no-inference-module"],
)
def test_invalid_plugin_is_reported_at_load_and_fails_plugins(
    site: Path,  # noqa: F811
    config_base: str,
    extra: str,
    needle: str,
) -> None:
    install_dist(site, "translate-broken", "tp_broken", single_plugin("broken", config_base,
                 extra), {"broken": "tp_broken:plugin"})  # fmt: skip
    importlib.invalidate_caches()
    with pytest.raises(PluginError, match=needle):
        load_plugin("broken")

    runner = CliRunner()
    listing = runner.invoke(app, ["plugins"])
    # the valid plugins are still listed; the invalid one makes the command fail in one line
    assert "pix2pix" in listing.output and "broken" in listing.output
    assert_user_error(listing, "plugin 'broken' from distribution translate-broken", needle)
    # and training it fails before anything is built, also in one line
    assert_user_error(runner.invoke(app, ["train", "broken", "--help"]), needle)


def test_contract_check_validates_a_plugin_object_first(tmp_path: Path) -> None:
    from translate_pix2pix import Pix2PixPlugin

    class NoInference(Pix2PixPlugin):
        inference_module = PluginBase.inference_module

    with pytest.raises(AssertionError, match="inference_module is not implemented"):
        check_plugin_contract(NoInference(), tmp_path)
    assert not (tmp_path / "data").exists()  # refused before any data or training


def test_plugins_exits_zero_when_every_plugin_is_valid() -> None:
    listing = CliRunner().invoke(app, ["plugins"])
    assert listing.exit_code == 0, listing.output


def test_single_dataset_splits_and_seeded_augmentation(tmp_path: Path) -> None:
    make_single(tmp_path / "d" / "train", n=4, size=48)
    make_single(tmp_path / "d" / "val", n=2, size=48)
    cfg_fields = dict(data=tmp_path / "d", load_size=40, crop_size=32, flip=True)
    cfg = type("Cfg", (), cfg_fields)
    train, val = build_dataset("single", cfg, "train"), build_dataset("single", cfg, "val")
    assert (len(train), len(val)) == (4, 2)
    item = train[(1, 123)]
    assert set(item) == {"image", "path"} and item["image"].shape == (3, 32, 32)
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    # the sampler's (index, seed): the same seed gives the same crop, another seed another
    assert (train[(1, 123)]["image"] == item["image"]).all()
    assert any((train[(1, s)]["image"] != item["image"]).any() for s in range(5))
    # a folder without train/ is the training set and has no validation split
    flat = type("Cfg", (), {**cfg_fields, "data": tmp_path / "d" / "val"})
    assert len(build_dataset("single", flat, "train")) == 2
    assert build_dataset("single", flat, "val") is None


def test_labels_default_keeps_exact_label_colours(tmp_path: Path) -> None:
    data = make_labels(tmp_path / "labels")
    cfg = PairedDataConfig(data=data, load_size=45, crop_size=40)
    dataset = build_dataset("labels", cfg, "train")
    assert isinstance(dataset, LabelMapDataset)
    allowed = {tuple(c) for c in LABEL_COLOURS}

    def colours(x) -> set[tuple[int, ...]]:
        pixels = x.add(1).mul(127.5).round().int().permute(1, 2, 0).reshape(-1, 3)
        return {tuple(p) for p in pixels.tolist()}

    for i in range(len(dataset)):
        item = dataset[(i, 1000 + i)]
        assert item["input"].shape == item["target"].shape == (3, 40, 40)
        assert colours(item["input"]) <= allowed  # resized nearest: no blended colours
    # the paired default (bilinear) would have invented colours between classes
    paired = PairedDataset(data / "train", load_size=45, crop_size=40)
    assert not colours(paired[(0, 1000)]["input"]) <= allowed
