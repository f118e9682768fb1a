"""Entry-point discovery with separately 'installed' distributions built in tmp_path.

A distribution here is what pip would leave in site-packages: a module plus a
``<name>-<version>.dist-info`` folder with METADATA and entry_points.txt, on sys.path.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from translate.cli.main import app
from translate.errors import PluginError
from translate.registry import discover, load_plugin
from translate.testing import check_plugin_contract, make_paired

THIRD_PARTY = """
from __future__ import annotations
from dataclasses import dataclass
from pathlib import Path
from translate.config import PairedDataConfig, opt
from translate.plugin import PluginBase, SizeRequirements


@dataclass(frozen=True)
class TinyConfig(PairedDataConfig):
    width: int = opt(8, "Hidden channels.")


class TinyPlugin(PluginBase[TinyConfig]):
    name = "{name}"
    description = "a third-party test plugin"
    config_cls = TinyConfig
    dataset_kind = "paired"
    api_version = {api}
    gan_defaults = {{"gan_loss": "lsgan"}}

    def build_models(self, cfg):
        from torch import nn
        g = nn.Sequential(nn.Conv2d(3, cfg.width, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(cfg.width, 3, 3, padding=1), nn.Tanh())
        d = nn.Sequential(nn.Conv2d(6, cfg.width, 4, 2, 1), nn.LeakyReLU(0.2),
                          nn.Conv2d(cfg.width, 1, 3, padding=1))
        return {{"G": g, "D": d}}

    def train_step(self, ctx, batch, cfg):
        import torch
        a, b = batch["input"], batch["target"]
        fake = ctx.models["G"](a)
        real, pair = torch.cat([a, b], 1), torch.cat([a, fake], 1)
        loss_d, logs = ctx.gan.discriminator_loss(ctx.models["D"], real, pair)
        ctx.optimize("D", loss_d)
        with ctx.frozen("D"):
            loss_g, logs_g = ctx.gan.generator_loss(ctx.models["D"], pair, real)
            l1 = (fake - b).abs().mean()
            ctx.optimize("G", loss_g + 10 * l1)
        return {{**logs, **logs_g, "L1": l1.item()}}

    def inference_module(self, models, cfg, opts):
        return models["G"]

    def tiny_config(self, data_root: Path) -> TinyConfig:
        return TinyConfig(data=data_root, load_size=32, crop_size=32)


plugin = TinyPlugin()
"""


def install_dist(
    root: Path, dist: str, module: str, source: str, entries: dict[str, str], version: str = "1.2.3"
) -> None:
    """Write a module and its dist-info (METADATA + entry_points.txt) into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entries.items())
    (info / "entry_points.txt").write_text(f"[translate.plugins]\n{lines}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An extra site-packages folder on sys.path; modules imported from it are forgotten."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    yield root
    for name in set(sys.modules) - before:
        if name.startswith("tp_"):
            del sys.modules[name]
    importlib.invalidate_caches()


def test_third_party_plugin_is_listed_trained_and_run(site: Path, tmp_path: Path) -> None:
    install_dist(
        site,
        "translate-tiny",
        "tp_tiny",
        THIRD_PARTY.format(name="tiny", api=1),
        {"tiny": "tp_tiny:plugin"},
    )
    importlib.invalidate_caches()
    info = discover()["tiny"]
    assert (info.distribution, info.version) == ("translate-tiny", "1.2.3")

    runner = CliRunner()
    listing = runner.invoke(app, ["plugins"])
    assert listing.exit_code == 0
    assert "tiny" in listing.output and "translate-tiny" in listing.output

    # the shared contract test applies unchanged to a third-party plugin
    check_plugin_contract(load_plugin("tiny"), tmp_path / "contract")

    data = make_paired(tmp_path / "data")
    run_dir = tmp_path / "run"
    trained = runner.invoke(
        app,
        [
            "train",
            "tiny",
            "--data",
            str(data),
            "--max-steps",
            "3",
            "--run-dir",
            str(run_dir),
            "--width",
            "4",
            "--load-size",
            "32",
            "--crop-size",
            "32",
            "--no-progress",
        ],
    )
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "out.png"
    ran = runner.invoke(
        app, ["run", str(data / "val" / "000.png"), "--checkpoint", str(run_dir), "--out", str(out)]
    )
    assert ran.exit_code == 0, ran.output
    assert out.is_file()


@pytest.mark.parametrize(
    ("source", "entry", "message"),
    [
        ("plugin = object()\n", "bad", "missing name, api_version, config_cls"),
        (THIRD_PARTY.format(name="other", api=1), "bad", "calls itself 'other'"),
        (THIRD_PARTY.format(name="bad", api=99), "bad", "API version 99"),
        ("raise ImportError('no such dependency')\n", "bad", "failed to import"),
    ],
)
def test_invalid_plugin_names_its_distribution(
    site: Path, source: str, entry: str, message: str
) -> None:
    install_dist(site, "broken-dist", "tp_broken", source, {entry: "tp_broken:plugin"})
    importlib.invalidate_caches()
    with pytest.raises(PluginError) as err:
        load_plugin(entry)
    assert "broken-dist" in str(err.value) and message in str(err.value)
    # the CLI reports it as one line with exit code 2
    result = CliRunner().invoke(app, ["train", entry, "--help"])
    assert result.exit_code == 2
    assert "broken-dist" in result.output and "Traceback" not in result.output


def test_two_distributions_with_one_name(site: Path) -> None:
    source = THIRD_PARTY.format(name="twin", api=1)
    install_dist(site, "first-dist", "tp_first", source, {"twin": "tp_first:plugin"})
    install_dist(site, "second-dist", "tp_second", source, {"twin": "tp_second:plugin"})
    importlib.invalidate_caches()
    with pytest.raises(PluginError, match="more than one distribution") as err:
        load_plugin("twin")
    assert "first-dist" in str(err.value) and "second-dist" in str(err.value)
    assert load_plugin("pix2pix").name == "pix2pix"  # the others still work


def test_unknown_plugin_suggests_the_closest() -> None:
    result = CliRunner().invoke(app, ["train", "pix2px"])
    assert result.exit_code == 2
    assert "unknown plugin 'pix2px'; did you mean 'pix2pix'?" in result.output
    assert "Traceback" not in result.output


def test_listing_does_not_import_torch() -> None:
    import subprocess

    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from translate.cli.main import app\n"
        "r = CliRunner().invoke(app, ['plugins'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'pix2pix' in r.output\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
