"""The documentation site (``mkdocs.yml``, ``tools/docs_hooks.py``): a page for every
discovered plugin (none listed by hand), the CLI reference covering every command, the
plugin guide's table of ``translate.nn`` constructors equal to the real signatures, and (slow)
``mkdocs build --strict`` without a warning."""

from __future__ import annotations

import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

needs_mkdocs = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None, reason='the docs extra (pip install -e ".[docs]")'
)


@needs_mkdocs
def test_every_discovered_plugin_gets_a_page_from_its_readme() -> None:
    import docs_hooks

    from translate.registry import discover

    pages = docs_hooks.plugin_pages()
    for name in discover():
        assert f"plugins/{name}.md" in pages
        assert f"[{name}]({name}.md)" in pages["plugins/index.md"]
    readme = (ROOT / "plugins" / "translate_cyclegan" / "README.md").read_text()
    assert pages["plugins/cyclegan.md"].splitlines()[0] == readme.splitlines()[0]
    # a plugin without a README (pix2pix): its package docstring
    assert "pix2pix (Isola et al. 2017)" in pages["plugins/pix2pix.md"]


@needs_mkdocs
def test_the_getting_started_page_is_the_readme_quick_start() -> None:
    import docs_hooks

    page = docs_hooks.getting_started()
    assert "translate datasets demo demo" in page and "## Datasets" in page
    assert "](docs/" not in page  # links into docs/ are rewritten for the site


def test_the_guides_nn_table_is_the_real_signatures() -> None:
    import translate.nn as nn

    guide = (ROOT / "docs" / "plugins.md").read_text().split("## 10. Building blocks", 1)[1]
    rows = re.findall(r"^\| `(\w+)` \| (.+?) \|$", guide, re.M)
    assert {name for name, _ in rows} >= {"UnetGenerator", "ResnetGenerator", "PatchDiscriminator"}
    for name, params in rows:
        signature = inspect.signature(getattr(nn, name))
        want = [
            p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
            for p in signature.parameters.values()
        ]
        got = re.findall(r"`([^`]+)`", params)
        assert [g.replace('"', "'") for g in got] == want, name


@pytest.mark.slow  # builds the whole site (mkdocstrings reads every documented module)
@needs_mkdocs
def test_the_site_builds_without_warnings(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING" not in result.stderr
    for page in ("index.html", "cli/index.html", "api/index.html", "plugins/pix2pix/index.html"):
        assert (tmp_path / page).is_file(), page
    assert "base_channels" in (tmp_path / "api" / "index.html").read_text()
