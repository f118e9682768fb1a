"""MkDocs hooks of the documentation site (``mkdocs.yml``): pages generated from what exists, so
the site never lists a fixed set of plugins or commands and cannot drift from the code.

- ``index.md``: the README's quick start and Datasets sections (one source for both);
- ``cli.md``: every command's ``--help`` (the group tree walked, each plugin's ``train``
  command included), rendered at 100 columns;
- ``plugins/<name>.md``: one page per discovered plugin, its README (first-party
  ``plugins/translate_<name>/README.md``, or the README beside a third-party package);
- ``service.md``: the README's Service section, and the endpoints of the app's OpenAPI schema.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def section(text: str, start: str, stop: str | None = None) -> str:
    """``text`` from the line ``start`` up to the next heading ``stop`` (a prefix)."""
    body = text.split(start + "\n", 1)[1]
    if stop is not None:
        body = body.split("\n" + stop, 1)[0]
    return start + "\n" + body


def relink(markdown: str, base: Path, page: Path) -> str:
    """Relative links of a file at ``base``, rewritten for a page at ``page`` in the docs:
    targets inside ``docs/`` stay links; anything else becomes its text (the site holds no
    other files); web links and anchors are kept."""

    def fix(match: re.Match[str]) -> str:
        bang, label, target = match.groups()
        if re.match(r"^[a-z]+:|^#", target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = (base / path).resolve()
        docs = ROOT / "docs"
        if resolved.is_relative_to(docs) and resolved.exists():
            rel = Path(*[".."] * (len(page.parent.parts))) / resolved.relative_to(docs)
            return f"{bang}[{label}]({rel.as_posix()}{'#' + anchor if anchor else ''})"
        return label if not bang else f"*({label})*"

    return LINK.sub(fix, markdown)


def generated(config: Any, name: str, text: str) -> File:
    return File.generated(config, name, content=text)


def getting_started() -> str:
    readme = (ROOT / "README.md").read_text()
    quick = section(readme, "## Quick start", "Run the tests")
    datasets = section(readme, "### Datasets", "### ")
    text = "# Getting started\n\n" + quick.split("\n", 1)[1] + "\n" + datasets.replace("###", "##")
    text += (
        "\n## Next\n\n- [CLI reference](cli.md): every command and option.\n"
        "- [Python API](api.md): `Translator`, the building blocks, the plugin contract.\n"
        "- [Writing a plugin](plugins.md), and one page per [plugin](plugins/index.md).\n"
        "- [Service API](service.md): `translate serve`'s endpoints.\n"
    )
    return relink(text, ROOT, Path("index.md"))


def cli_reference() -> str:
    import click
    import typer
    from typer.testing import CliRunner

    from translate.cli.main import app

    root = typer.main.get_command(app)
    runner = CliRunner()
    out = ["# CLI reference", "", "Every command's `--help`, generated from the code.", ""]

    def walk(path: list[str], cmd: click.Command) -> None:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
        title = " ".join(["translate", *path])
        out.extend([f"## `{title}`", "", "```text", result.output.rstrip(), "```", ""])
        if hasattr(cmd, "list_commands"):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                walk([*path, name], cmd.get_command(ctx, name))

    walk([], root)
    return "\n".join(out)


def plugin_readme(module: str) -> Path | None:
    """The README of the package holding ``module`` (beside it, or one or two folders up)."""
    folder = Path(importlib.import_module(module).__file__).resolve().parent
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / "README.md").is_file() and candidate != ROOT:
            return candidate / "README.md"
    return None


def readme_entry(name: str) -> str:
    """What the top-level README's "## Plugins" section says about plugin ``name`` (its
    paragraphs that name it in code or bold), relinked for a plugin page."""
    readme = (ROOT / "README.md").read_text()
    part = section(readme, "## Plugins", "## ")
    paragraphs = [p for p in part.split("\n\n") if f"`{name}`" in p or f"**{name}**" in p]
    return relink("\n\n".join(paragraphs), ROOT, Path("plugins") / f"{name}.md") + "\n"


def plugin_pages() -> dict[str, str]:
    from translate.registry import discover

    pages: dict[str, str] = {}
    rows = []
    for name, info in sorted(discover().items()):
        readme = plugin_readme(info.target.split(":")[0])
        page = Path("plugins") / f"{name}.md"
        if readme is None:  # no README: the package's docstring and the README's plugin list
            doc = importlib.import_module(info.target.split(":")[0]).__doc__ or ""
            text = f"# {name}\n\n{inspect.cleandoc(doc)}\n\n{readme_entry(name)}"
        else:
            text = relink(readme.read_text(), readme.parent, page)
        pages[page.as_posix()] = text
        rows.append(f"| [{name}]({name}.md) | {info.distribution} {info.version} |")
    index = ["# Plugins", "", "The installed model families (`translate plugins`).", ""]
    index += ["| plugin | distribution |", "| --- | --- |", *rows, ""]
    pages["plugins/index.md"] = "\n".join(index)
    return pages


def service_page() -> str:
    readme = (ROOT / "README.md").read_text()
    text = "# Service API\n\n" + section(readme, "## Service", "## ").split("\n", 1)[1]
    try:
        from translate.serve.app import create_app
        from translate.serve.config import ServeConfig

        schema = create_app([], ServeConfig(access_log=False)).openapi()
    except ImportError:  # the serve extra is missing: the README's table only
        return relink(text, ROOT, Path("service.md"))
    rows = [
        f"| `{method.upper()} {path}` | {op.get('summary', '')} |"
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
    ]
    text += "\n## Endpoints of the OpenAPI schema\n\n| endpoint | summary |\n| --- | --- |\n"
    text += "\n".join(rows) + "\n"
    return relink(text, ROOT, Path("service.md"))


def on_config(config: Any) -> Any:
    """The nav's Plugins section: the index, then one page per discovered plugin."""
    from translate.registry import discover

    entries: list[Any] = ["plugins/index.md"]
    entries += [{name: f"plugins/{name}.md"} for name in sorted(discover())]
    config["nav"] = [e for e in config["nav"] if "Plugins" not in e] + [{"Plugins": entries}]
    return config


def on_files(files: Files, config: Any) -> Files:
    pages = {
        "index.md": getting_started(),
        "cli.md": cli_reference(),
        "service.md": service_page(),
        **plugin_pages(),
    }
    for name, text in pages.items():
        files.append(generated(config, name, text))
    return files
