"""House rules checked on the source tree (docs/architecture.md): no import circles, lazy
(function-level) imports included; module sizes; which layer of ``translate/`` may import which.

The import graph is read with ``ast``, so nothing is imported: ``translate/`` as
``translate.*``, ``plugins/<pkg>/`` as ``<pkg>.*``, ``benchmarks/*.py`` by their bare names (the
scripts import their neighbours). Imports under ``if TYPE_CHECKING:`` never run and are left out;
a module importing its own package's ``__init__`` is Python's normal order, not a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TREES = ("translate", "plugins", "benchmarks")


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[0] in ("plugins", "benchmarks"):
        parts = parts[1:]
    return ".".join(parts).removesuffix(".__init__")


def modules(root: Path, trees=TREES) -> dict[str, Path]:
    return {
        module_name(root, p): p
        for tree in trees
        for p in sorted((root / tree).rglob("*.py"))
        if "tests" not in p.relative_to(root).parts
    }


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node, inside functions too, outside ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        children = list(ast.iter_child_nodes(node))
        if _is_type_checking(node):
            children = node.orelse  # the body never runs
        stack.extend(children)


def import_graph(root: Path, trees=TREES) -> dict[str, set[str]]:
    mods = modules(root, trees)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rpartition(".")[0]
        for node in _imports(ast.parse(p.read_text(), str(p))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                own_init = mods.get(t, p).name == "__init__.py" and m.startswith(t + ".")
                if t in mods and t != m and not own_init:
                    edges[m].add(t)
    return edges


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    for start in sorted(edges):
        if start in state:
            continue
        state[start] = 1
        path, its = [start], [iter(sorted(edges[start]))]
        while its:  # an iterative depth-first search: no recursion limit on a deep tree
            v = next(its[-1], None)
            if v is None:
                state[path.pop()] = 2
                its.pop()
            elif state.get(v) == 1:
                cycles.append([*path[path.index(v) :], v])
            elif v not in state:
                state[v] = 1
                path.append(v)
                its.append(iter(sorted(edges[v])))
    return cycles


def test_no_import_cycles_lazy_imports_included():
    cycles = find_cycles(import_graph(ROOT))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_detector_finds_a_planted_lazy_cycle(tmp_path):
    pkg = tmp_path / "translate" / "pkg"
    pkg.mkdir(parents=True)
    (tmp_path / "translate" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from translate.pkg.a import f\n")
    (pkg / "a.py").write_text("from translate.pkg.b import g\n\ndef f():\n    return g()\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from translate.pkg import a\n"
        "\n\ndef g():\n    from . import c\n\n    return c\n"
    )
    (pkg / "c.py").write_text("def h():\n    import translate.pkg.a\n")
    cycles = find_cycles(import_graph(tmp_path, ("translate",)))
    assert cycles == [["translate.pkg.a", "translate.pkg.b", "translate.pkg.c", "translate.pkg.a"]]
    (pkg / "c.py").write_text("def h():\n    pass\n")  # the TYPE_CHECKING import is no circle
    assert find_cycles(import_graph(tmp_path, ("translate",))) == []


@pytest.mark.parametrize(("tree", "limit"), [("translate", 500), ("plugins", 300)])
def test_module_sizes(tree, limit):
    over = {
        str(p.relative_to(ROOT / tree)): n
        for p in sorted((ROOT / tree).rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > limit
    }
    assert not over, f"{tree}/ modules over {limit} lines (split by concept): {over}"


#: docs/architecture.md: each layer imports only layers below it (data lowest, serve/cli top);
#: inference and export are peers and never import each other. Modules outside these
#: packages (translate/errors.py, config.py, compress.py, ...) are not ranked.
LAYERS = {
    "data": 0,
    "nn": 1,
    "losses": 1,
    "plugin": 2,  # translate/plugin.py (the contract) and every plugins/translate_<name>
    "engine": 3,
    "loading": 4,
    "inference": 5,
    "export": 5,
    "serve": 6,
    "cli": 6,
    "datasets": 6,  # translate datasets: data to train on, fetched into loading's cache folder
}
#: Upward imports that exist today, each lazy and named here so that no new one slips in.
KNOWN_UPWARD = {
    # PluginBase's default preprocess/postprocess read and write images as inference does
    ("translate.plugin", "translate.inference.image_io"),
    # superres's --distill-from reads its dense parent's checkpoint
    ("translate_superres.plugin", "translate.engine"),
    ("translate_superres.plugin", "translate.engine.checkpoint"),
    ("translate_superres.plugin", "translate.loading.checkpoint"),
}


def layer(module: str) -> str | None:
    head, _, rest = module.partition(".")
    if head.startswith("translate_"):
        return "plugin"
    return rest.partition(".")[0] if head == "translate" and rest.split(".")[0] in LAYERS else None


def layering_violations(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    bad = []
    for module, targets in sorted(edges.items()):
        here = layer(module)
        for target in sorted(targets):
            there = layer(target)
            if here is None or there is None or (module, target) in KNOWN_UPWARD:
                continue
            peers = {here, there} == {"inference", "export"}
            if LAYERS[there] > LAYERS[here] or peers:
                bad.append((module, target))
    return bad


def test_each_layer_imports_only_layers_below_it():
    bad = layering_violations(import_graph(ROOT))
    assert not bad, "imports against the layering (docs/architecture.md):\n" + "\n".join(
        f"{m} -> {t}" for m, t in bad
    )


def test_the_layering_check_finds_a_planted_upward_import():
    edges = {"translate.loading.model": {"translate.export.onnx", "translate.engine.device"}}
    edges["translate.export.onnx"] = {"translate.loading.model", "translate.inference.tiling"}
    assert layering_violations(edges) == [
        ("translate.export.onnx", "translate.inference.tiling"),
        ("translate.loading.model", "translate.export.onnx"),
    ]
