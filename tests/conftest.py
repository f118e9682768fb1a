"""Shared fixtures: tiny datasets written to tmp_path (nothing from ../shared, no network)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from translate.registry import load_plugin
from translate.testing import make_paired

# TRANSLATE_TEST_THREADS=1 lets several test processes share 2 cores without oversubscription
torch.set_num_threads(int(os.environ.get("TRANSLATE_TEST_THREADS", "2")))


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """Derived files (the ONNX export cache) go to a temporary folder, not the user's cache."""
    patch = pytest.MonkeyPatch()
    patch.setenv("TRANSLATE_CACHE_DIR", str(tmp_path_factory.mktemp("translate-cache")))
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def _fresh_plugin_cache():
    """Plugins may be (un)installed by a test: never reuse a loaded one across tests."""
    load_plugin.cache_clear()
    yield
    load_plugin.cache_clear()


@pytest.fixture
def float64():
    """Networks, data and every new tensor in float64 for the test: two computation orders
    that agree mathematically (batched vs separate calls, tiles vs the whole image, two
    processes vs one) then agree to ~1e-12 on any CPU, whichever kernels oneDNN picks for each
    shape; in float32 those choices alone differ by up to ~1e-4 (seen on Intel AMX)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch.float64
    torch.set_default_dtype(before)


@pytest.fixture
def paired_data(tmp_path: Path) -> Path:
    return make_paired(tmp_path / "facades", n_train=6, n_val=2)


# a pix2pix that trains a step in well under a second (U-Net depth 5: inputs pad to 32)
TINY_PIX2PIX_OPTIONS = dict(
    load_size=36, crop_size=32, unet_depth=5, base_channels=8, disc_channels=8, disc_layers=2
)

# a CycleGAN (ResNet-1, width 4) that trains a step in well under a second
TINY_CYCLEGAN_OPTIONS = dict(
    load_size=36, crop_size=32, resnet_blocks=1, base_channels=4, disc_channels=4, disc_layers=1
)

TINY_PIX2PIX = [
    "--unet-depth",
    "5",
    "--crop-size",
    "32",
    "--load-size",
    "36",
    "--base-channels",
    "8",
    "--disc-channels",
    "8",
    "--disc-layers",
    "2",
    "--no-progress",
    "--log-every",
    "1",
]


def load_folder(folder: Path) -> torch.Tensor:
    """Every image of ``folder`` (sorted by name), as one (N, 3, H, W) batch in [-1, 1]."""
    images = [np.asarray(Image.open(f).convert("RGB")) for f in sorted(folder.iterdir())]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


@pytest.fixture
def one_thread():
    """For the learning tests: 32x32 tensors gain nothing from a second thread, and on a shared
    2-core CPU a spinning second thread makes them 2-4x slower; one thread also fixes the float
    results."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """Headless Chromium through chromedriver (``tests/test_serve_browser.py``'s WebDriver),
    one per test module; skipped without it, a failure under CI."""
    from tests.test_serve_browser import WebDriver, find_browser

    chromium, driver = find_browser()
    wd = WebDriver(chromium, driver, tmp_path_factory.mktemp("wd") / "chromedriver.log")
    yield wd
    wd.quit()


@pytest.fixture(scope="module")
def lpips_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random LPIPS (AlexNet) state dict with non-negative heads: a working metric file
    without downloads (test_evaluation, the multimodal diversity tests, test_editing's
    inversion). The backbone keeps its signed random weights: with every weight made
    non-negative, a dark image leaves AlexNet's first ReLUs all dead (no gradient, many
    images at one distance), and inverting through it made LPIPS rise, 0.013 -> 0.069."""
    import lpips

    torch.manual_seed(0)
    net = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False)
    for name, p in net.named_parameters():  # the linear heads are non-negative when trained
        if name.startswith("lin"):
            p.data.abs_()
    path = tmp_path_factory.mktemp("weights") / "lpips_alex.pth"
    torch.save(net.state_dict(), path)
    return path


def train_tiny(plugin_name: str, cfg: object, run_dir: Path) -> Path:
    """Train ``cfg`` of ``plugin_name`` for two steps (batch 4, CPU, the plugin's GAN defaults,
    a sample grid at step 2); the run folder."""
    from translate.config import GANConfig, TrainConfig, config_from_dict
    from translate.engine.loop import Trainer
    from translate.registry import load_plugin

    plugin = load_plugin(plugin_name)
    train_cfg = config_from_dict(
        TrainConfig,
        {"max_steps": 2, "batch_size": 4, "progress": False, "device": "cpu",
         "run_dir": run_dir, "sample_every": 2},
    )  # fmt: skip
    gan = config_from_dict(GANConfig, dict(plugin.gan_defaults))
    Trainer(plugin, cfg, train_cfg, gan, run_dir=run_dir).run()
    return run_dir
