"""What ``pip install translate`` pulls in, per platform (read from pyproject.toml)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _installed_on(platform: str) -> set[str]:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    env = {"sys_platform": platform, "platform_system": platform, "extra": ""}
    reqs = [Requirement(d) for d in deps]
    return {r.name for r in reqs if r.marker is None or r.marker.evaluate(env)}


@pytest.mark.parametrize(
    ("platform", "runtime"),
    [("linux", "onnxruntime-gpu"), ("win32", "onnxruntime-gpu"), ("darwin", "onnxruntime")],
)
def test_exactly_one_onnxruntime_per_platform(platform: str, runtime: str) -> None:
    """onnxruntime-gpu has wheels for Linux and Windows only; the two never install together
    (they provide the same module and break each other)."""
    found = _installed_on(platform) & {"onnxruntime", "onnxruntime-gpu"}
    assert found == {runtime}


def test_spandrel_without_its_non_commercial_extras() -> None:
    found = _installed_on("linux")
    assert "spandrel" in found and "spandrel-extra-arches" not in found
