"""The plugin's own tests: translate's contract check, plus what is specific to colourisation."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from translate_colorize import ColorizeConfig

from translate.errors import ConfigError
from translate.registry import load_plugin
from translate.testing import check_plugin_contract


def test_plugin_contract(tmp_path: Path) -> None:
    # found through the entry point (as translate finds it), then built, trained two steps,
    # checkpointed, reloaded, resumed, run at an odd size and exported to ONNX
    result = check_plugin_contract(load_plugin("colorize"), tmp_path)
    assert result["output_shape"][1] == 3  # grayscale in, colour out
    assert "G_L1" in result["losses"]


def test_input_is_the_luminance_of_any_image() -> None:
    plugin = load_plugin("colorize")
    cfg = plugin.tiny_config(Path("photos"))
    rgb = Image.new("RGB", (8, 8), (200, 40, 90))
    x = plugin.preprocess([rgb, rgb.convert("L")], cfg)  # colour or grayscale: same input
    assert x.shape == (2, 1, 8, 8) and (x[0] - x[1]).abs().max() < 0.01


def test_bad_crop_is_a_one_line_config_error() -> None:
    with pytest.raises(ConfigError, match="crop_size: 40 is not a multiple of 2\\*\\*unet_depth"):
        ColorizeConfig(data=Path("photos"), load_size=48, crop_size=40, unet_depth=5)
