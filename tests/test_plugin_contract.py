"""Every discovered plugin, first- or third-party, passes the same contract test on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from translate.registry import discover, load_plugin
from translate.testing import check_plugin_contract

PLUGINS = sorted(discover())


def test_first_party_plugins_are_discovered() -> None:
    assert "pix2pix" in PLUGINS


@pytest.mark.parametrize("name", PLUGINS)
def test_plugin_contract(name: str, tmp_path: Path) -> None:
    report = check_plugin_contract(load_plugin(name), tmp_path)
    assert report["losses"]
