"""``translate``: train, run, export and list image-to-image translation models; ``run``
lives in ``translate.cli.run``, ``models`` and ``eval`` in ``translate.cli.models``, ``serve``
in ``translate.cli.serve``.

Commands are thin wrappers over importable functions (``translate.train``,
``translate.Translator``). User errors print one line (``error: ...``) and exit with code 2;
nothing here prints a traceback for them.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import translate
from translate.cli.compress import compress_command
from translate.cli.datasets import datasets_app
from translate.cli.editing import drag_command, invert_command
from translate.cli.encode import encode_command
from translate.cli.errors import OneLineErrors, report_errors
from translate.cli.importing import import_app
from translate.cli.models import eval_command, models_command
from translate.cli.run import core_options, plugin_options, run
from translate.cli.runs import runs_command
from translate.cli.sample import sample_command
from translate.cli.serve import serve_command
from translate.errors import TranslateError
from translate.fields import INT_MAX


# ---------------------------------------------------------------------------- train
def build_train_command(name: str) -> Any:
    """``translate train <name>``: options generated from the plugin's and the core configs."""
    import inspect

    from translate.cli.options import given, options_for
    from translate.config import GANConfig, TrainConfig
    from translate.engine.setup import default_configs
    from translate.registry import load_plugin

    plugin = load_plugin(name)
    train_defaults, gan_defaults = default_configs(plugin)
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [
        *options_for(plugin.config_cls),
        *options_for(GANConfig, gan_defaults),
        *options_for(TrainConfig, train_defaults),
        inspect.Parameter(
            "resume",
            kw,
            default=None,
            annotation=Annotated[
                Path | None,
                typer.Option(
                    help="Continue a run (its folder or a checkpoint): full trainer state."
                ),
            ],
        ),
        inspect.Parameter(
            "overwrite",
            kw,
            default=False,
            annotation=Annotated[
                bool,
                typer.Option(
                    "--overwrite",
                    help="Replace the run already in --run-dir (its checkpoints, metrics, "
                    "samples); without it such a folder is refused.",
                ),
            ],
        ),
        inspect.Parameter(
            "config",
            kw,
            default=None,
            annotation=Annotated[
                Path | None,
                typer.Option(
                    help="JSON or TOML file of options; command-line options override it."
                ),
            ],
        ),
        inspect.Parameter(
            "nproc_per_node",
            kw,
            default=None,
            annotation=Annotated[
                int | None,
                typer.Option(
                    help="Train one run on N local processes (one GPU each, or CPU processes), "
                    "as torchrun --standalone --nproc-per-node N would; --batch-size is per "
                    "process. Several machines: see the README (torchrun)."
                ),
            ],
        ),
    ]

    @report_errors
    def command(
        ctx: typer.Context,
        resume: Path | None = None,
        overwrite: bool = False,
        config: Path | None = None,
        nproc_per_node: int | None = None,
        **values: Any,
    ) -> None:
        from translate.cli.train import train_command
        from translate.errors import ConfigError, unknown_option

        if ctx.args:  # typer lets unknown options through: one line, with a did-you-mean
            token = ctx.args[0]
            if not token.startswith("-"):
                raise ConfigError(f"unexpected argument {token!r}")
            raise unknown_option(
                token.split("=", 1)[0],
                [o for p in ctx.command.params for o in getattr(p, "opts", [])],
                owner=f"translate train {name}",
            )
        options = given(values)
        if overwrite:
            options["overwrite"] = True
        train_command(name, resume, config, options, nproc_per_node)

    ctx_param = inspect.Parameter(
        "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
    )
    command.__signature__ = inspect.Signature([ctx_param, *params])  # type: ignore[attr-defined]
    command.__doc__ = (plugin.description or name) + "."
    sub = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    sub.command(name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
        command
    )
    return typer.main.get_command(sub)


class TrainGroup(TyperGroup):
    """Lists plugins from entry-point metadata; imports one only when its command runs."""

    def list_commands(self, ctx: Any) -> list[str]:
        from translate.registry import discover

        return list(discover())

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        from translate.registry import discover, unknown_plugin_error

        try:
            if cmd_name not in discover():
                raise unknown_plugin_error(cmd_name, list(discover()))
            return build_train_command(cmd_name)
        except TranslateError as exc:
            typer.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        return None  # pragma: no cover


app = typer.Typer(
    rich_markup_mode=None,
    cls=OneLineErrors,
    name="translate",
    help="Image-to-image translation with GANs: train, run, evaluate, export and serve models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
train_app = typer.Typer(
    rich_markup_mode=None,
    cls=TrainGroup,
    help="Train a model; translate train PLUGIN --help lists its options.",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")
app.add_typer(import_app, name="import")
app.add_typer(datasets_app, name="datasets")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"translate {translate.__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


# ---------------------------------------------------------------------------- plugins
@app.command("plugins")
@report_errors
def plugins_command(
    name: Annotated[str | None, typer.Argument(help="Show one plugin's options.")] = None,
) -> None:
    """List installed plugins (name, distribution, version, dataset kind); exits with code 2
    after the listing when a plugin is invalid, naming it and what it lacks."""
    from rich.console import Console
    from rich.table import Table

    from translate.registry import discover, load_plugin, unknown_plugin_error

    found = discover()
    console = Console()
    if name is None:
        table = Table("plugin", "distribution", "version", "data", "description")
        invalid: list[TranslateError] = []
        for info in found.values():
            try:
                plugin = load_plugin(info.name)
                kind, desc = plugin.dataset_kind, plugin.description
            except TranslateError as exc:
                kind, desc = "-", "[red]invalid (see below)"
                invalid.append(exc)
            table.add_row(info.name, info.distribution, info.version, kind, desc)
        console.print(table)
        if invalid:  # the valid ones are listed and usable; the exit code flags the rest
            raise type(invalid[0])("; ".join(str(exc) for exc in invalid))
        return
    if name not in found:
        raise unknown_plugin_error(name, list(found))
    import dataclasses

    plugin = load_plugin(name)
    console.print(f"[bold]{name}[/bold]: {plugin.description} ({plugin.dataset_kind} data)")
    for title, cls in (
        ("training options", plugin.config_cls),
        ("run options", plugin.inference_config_cls),
    ):
        fields = dataclasses.fields(cls)
        console.print(f"\n{title}:" + ("" if fields else " none"))
        for f in fields:
            default = "" if f.default is dataclasses.MISSING else f" [default: {f.default}]"
            flag = "--" + f.name.replace("_", "-")
            console.print(f"  {flag:24} {f.metadata.get('help', '')}{default}", highlight=False)
    console.print(f"\nCore training options: translate train {name} --help")


# ---------------------------------------------------------------------------- run
app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)(run)


# ---------------------------------------------------------------------------- export
@app.command(
    "export",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@report_errors
def export_command(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="Run or checkpoint folder, or a weights file (.pth, .safetensors) of "
            "pytorch-CycleGAN-and-pix2pix or an architecture spandrel knows."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The .onnx file to write.")] = Path(
        "model.onnx"
    ),
    fp16: Annotated[
        bool, typer.Option("--fp16", help="Half-precision weights and arithmetic (fp32 I/O).")
    ] = False,
    opset: Annotated[
        int | None,
        typer.Option(
            help="ONNX opset. [default: the exporter's]", show_default=False, min=1, max=INT_MAX
        ),
    ] = None,
    exporter: Annotated[
        str, typer.Option(help="dynamo (torch.export) or torchscript (legacy tracer).")
    ] = "dynamo",
    encoder: Annotated[
        bool,
        typer.Option(
            "--encoder",
            help="Export the encoder instead of the generator (bigan: images -> latents; "
            "bicyclegan, munit: a reference image -> its code).",
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace an existing --out file, and a side graph beside it (m.encoder.onnx, "
            "m.text.onnx); refused without it."
        ),
    ] = False,
) -> None:
    """Export a model to ONNX (dynamic batch and size, metadata), checked against PyTorch.
    Plugin options (e.g. --direction b2a) follow."""
    from translate.errors import ConfigError, refuse_existing
    from translate.export.onnx import export_onnx
    from translate.loading.identify import identify

    if ctx.args and not ctx.args[0].startswith("--"):
        raise ConfigError(f"unexpected argument {ctx.args[0]!r}")
    refuse_existing([out], overwrite=overwrite)  # before loading (side graphs: export_onnx)
    ref = identify(checkpoint)  # once, for the options and the export
    options = plugin_options(ref, list(ctx.args), core=core_options(ctx))
    typer.echo(f"exporting {checkpoint} ...", err=True)
    if encoder:
        from translate.inference.encoding import export_encoder

        if options or fp16 or exporter != "dynamo":
            raise ConfigError(
                "--encoder: exports the fp32 encoder with dynamo; give no other options"
            )
        from translate.loading import load_module
        from translate.loading.code_encoder import code_encoder_of, export_code_encoder

        loaded = load_module(ref, device="cpu")
        if code_encoder_of(loaded) is not None:
            result = export_code_encoder(loaded, out, opset=opset)
        else:
            result = export_encoder(checkpoint, out, opset=opset)
    else:
        result = export_onnx(
            ref, out, options=options, fp16=fp16, opset=opset, exporter=exporter,
            overwrite=overwrite,
        )  # fmt: skip
    typer.echo(result.summary(), err=True)
    typer.echo(str(result.path))


app.command("models")(models_command)
app.command(
    "eval",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)(eval_command)
app.command("serve")(serve_command)
app.command("runs")(runs_command)
app.command("sample")(sample_command)
app.command("encode")(encode_command)
app.command("compress")(compress_command)
app.command("invert")(invert_command)
app.command("drag")(drag_command)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - outside any command
        sys.exit(130)
