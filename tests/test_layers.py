"""The house's layering: loading below inference and export, which never import each other.

Each module is imported alone in a fresh interpreter (``sys.modules`` of this test process
already holds everything), and the other side must not have been imported; and no import
statement anywhere in either package, lazy ones inside functions included, names the other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import translate

INFERENCE = "translate.inference.translator"
EXPORT = "translate.export.onnx"


def _imported_after(module: str) -> set[str]:
    """The translate modules a fresh interpreter holds after importing ``module``."""
    listing = "print('\\n'.join(m for m in sys.modules if m.startswith('translate')))"
    code = f"import sys, {module}; {listing}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        (INFERENCE, "translate.export"),  # so translate.loading does not import it either
        (EXPORT, "translate.inference"),  # nor does it import inference
    ],
)
def test_module_does_not_import_the_other_layer(module: str, forbidden: str) -> None:
    imported = _imported_after(module)
    assert module in imported
    leaked = sorted(m for m in imported if m == forbidden or m.startswith(forbidden + "."))
    assert not leaked, f"importing {module} imported {leaked}"


def _imports(package: Path) -> list[tuple[str, str]]:
    """(file, imported module) for every import statement under ``package``."""
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found += [(path.name, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append((path.name, node.module))
    return found


@pytest.mark.parametrize(("package", "other"), [("inference", "export"), ("export", "inference")])
def test_no_import_statement_names_the_other_layer(package: str, other: str) -> None:
    root = Path(translate.__file__).parent
    bad = [(f, m) for f, m in _imports(root / package) if m.startswith(f"translate.{other}")]
    assert not bad, f"translate.{package} imports translate.{other}: {bad}"
