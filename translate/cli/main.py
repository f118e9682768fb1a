"""``translate``: train, run, export and list image-to-image translation models; ``models``
and ``eval`` live in ``translate.cli.models``, ``serve`` in ``translate.cli.serve``.

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
from translate.cli.errors import report_errors
from translate.cli.models import eval_command, models_command
from translate.cli.runs import runs_command
from translate.cli.serve import serve_command
from translate.errors import TranslateError


# ---------------------------------------------------------------------------- train
def build_train_command(name: str) -> Any:
    """``translate train <name>``: options generated from the plugin's and the core configs."""
    import inspect

    from translate.cli.options import given, options_for
    from translate.config import GANConfig, TrainConfig
    from translate.engine.loop import default_configs
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
    ]

    @report_errors
    def command(resume: Path | None = None, config: Path | None = None, **values: Any) -> None:
        from translate.engine.loop import prepare

        trainer = prepare(name, resume=resume, config_file=config, **given(values))
        action = "resuming" if resume else "training"
        typer.echo(
            f"{action} {name} on {trainer.device} from step {trainer.step} to "
            f"{trainer.train_cfg.max_steps}; run folder {trainer.run_dir}",
            err=True,
        )
        folder = trainer.run()
        typer.echo(f"done: step {trainer.step}; checkpoint {folder}", err=True)
        typer.echo(str(trainer.run_dir))

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = (plugin.description or name) + "."
    sub = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    sub.command(name)(command)
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
    name="translate",
    help="Image-to-image translation with GANs: train, run, evaluate, export and serve models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
train_app = typer.Typer(
    cls=TrainGroup,
    help="Train a model; translate train PLUGIN --help lists its options.",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")


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
    """List installed plugins (name, distribution, version, dataset kind)."""
    from rich.console import Console
    from rich.table import Table

    from translate.registry import discover, load_plugin, unknown_plugin_error

    found = discover()
    console = Console()
    if name is None:
        table = Table("plugin", "distribution", "version", "data", "description")
        for info in found.values():
            try:
                plugin = load_plugin(info.name)
                kind, desc = plugin.dataset_kind, plugin.description
            except TranslateError as exc:
                kind, desc = "-", f"[red]invalid: {exc}"
            table.add_row(info.name, info.distribution, info.version, kind, desc)
        console.print(table)
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
            default = "" if f.default is dataclasses.MISSING else f" \\[default: {f.default}]"
            flag = "--" + f.name.replace("_", "-")
            console.print(f"  {flag:24} {f.metadata.get('help', '')}{default}", highlight=False)
    console.print(f"\nCore training options: translate train {name} --help")


# ---------------------------------------------------------------------------- run
def _split_plugin_tokens(inputs: list[Path], extra: list[str]) -> tuple[list[Path], list[str]]:
    """Plugin options are unknown to typer, so a variadic argument may have taken them."""
    tokens = [str(p) for p in inputs] + list(extra)
    first = next((i for i, t in enumerate(tokens) if t.startswith("--")), len(tokens))
    return [Path(t) for t in tokens[:first]], tokens[first:]


def _plugin_options(model: Path, tokens: list[str]) -> dict[str, Any]:
    """``--name value`` tokens parsed against the inference options of ``model``'s plugin
    (a checkpoint or run folder, or an exported .onnx file)."""
    from translate.cli.options import parse_extra_options
    from translate.errors import CheckpointError, ConfigError, PluginError
    from translate.loading import plugin_name
    from translate.registry import load_plugin

    name = plugin_name(model)
    try:
        plugin = load_plugin(name)
    except PluginError as exc:
        if not tokens:
            return {}
        raise ConfigError(f"{tokens[0]}: plugin {name!r} is not installed ({exc})") from exc
    except CheckpointError:
        raise
    return parse_extra_options(plugin.inference_config_cls, tokens)


class _Progress:
    """A rich progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, total: int, description: str) -> None:
        self.bar: Any = None
        if sys.stderr.isatty() and total > 1:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.task = self.bar.add_task(description, total=total)

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


@app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@report_errors
def run_command(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="Image files or folders of images.")],
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            "-c",
            help="Run folder, checkpoint folder, or an .onnx file from translate export.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output folder (or file, for one input). \\[default: translated/]"
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="torch or onnx (ONNX Runtime; a checkpoint is exported once to the user "
            "cache). \\[default: torch; onnx for an .onnx file]"
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (onnx also: tensorrt).")] = "auto",
    tile_size: Annotated[
        int | None,
        typer.Option(
            help="Tile side in input pixels for large images (0: never tile). "
            "\\[default: 1024-pixel tiles for images above 1 megapixel]",
            show_default=False,
        ),
    ] = None,
    tile_overlap: Annotated[
        int | None,
        typer.Option(help="Overlap of neighbouring tiles. \\[default: a quarter of the tile]"),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Same-size images translated together.")] = 4,
    amp: Annotated[
        str, typer.Option(help="torch backend: none, bf16 (CPU or CUDA) or fp16 (CUDA).")
    ] = "none",
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="A shipped model by name (translate models). \\[default: the shipped default "
            "when no --checkpoint is given]",
            show_default=False,
        ),
    ] = None,
    preview: Annotated[
        Path | None,
        typer.Option(
            help="Also write what the model was given to this folder (label2image: the parsed "
            "label map in its palette's colours), as <name>.png."
        ),
    ] = None,
) -> None:
    """Translate images with a trained model (the shipped default when none is given).
    Plugin options (e.g. --direction) follow."""
    from translate.errors import ConfigError
    from translate.inference.image_io import collect_inputs, output_path, read_input, read_size
    from translate.inference.translator import Translator

    if checkpoint is not None and model is not None:
        raise ConfigError("give --checkpoint or --model, not both")
    if checkpoint is None:
        from translate.shipped import resolve_model

        checkpoint = resolve_model(model)
    paths, extra = _split_plugin_tokens(inputs, ctx.args)
    files = collect_inputs(paths)
    options = _plugin_options(checkpoint, extra)
    translator = Translator.from_checkpoint(
        checkpoint,
        device=device,
        options=options,
        backend=backend,
        amp=amp,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
        batch_size=batch_size,
    )
    sizes = [read_size(path) for path in files]  # headers only: bad files fail up front
    single_file = out is not None and len(files) == 1 and output_path(out) is not None
    out_dir = (out.parent if single_file else out) if out is not None else Path("translated")
    out_dir.mkdir(parents=True, exist_ok=True)
    if preview is not None:
        if not callable(getattr(translator.plugin, "preview", None)):
            raise ConfigError(f"--preview: plugin {translator.meta['plugin']} has no preview")
        preview.mkdir(parents=True, exist_ok=True)
    typer.echo(f"model: {translator.describe()} from {checkpoint}", err=True)
    with _Progress(len(files), "translating") as progress:
        for idx in translator.batches(sizes):
            # single-channel files stay as decoded: label maps' values are class ids
            images = [read_input(files[i]) for i in idx]
            results = translator(images)
            for i, result in zip(idx, results, strict=True):
                target = out if single_file and out else out_dir / f"{files[i].stem}.png"
                result.save(target)
                typer.echo(str(target))
            if preview is not None:
                for i, shown in zip(idx, translator.preview(images), strict=True):
                    shown.save(preview / f"{files[i].stem}.png")
            progress.advance(len(idx))


# ---------------------------------------------------------------------------- export
@app.command(
    "export",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@report_errors
def export_command(
    ctx: typer.Context,
    checkpoint: Annotated[Path, typer.Argument(help="Run folder or checkpoint folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The .onnx file to write.")] = Path(
        "model.onnx"
    ),
    fp16: Annotated[
        bool, typer.Option("--fp16", help="Half-precision weights and arithmetic (fp32 I/O).")
    ] = False,
    opset: Annotated[
        int | None, typer.Option(help="ONNX opset. \\[default: the exporter's]", show_default=False)
    ] = None,
    exporter: Annotated[
        str, typer.Option(help="dynamo (torch.export) or torchscript (legacy tracer).")
    ] = "dynamo",
) -> None:
    """Export a model to ONNX (dynamic batch and size, metadata), checked against PyTorch.
    Plugin options (e.g. --direction b2a) follow."""
    from translate.errors import ConfigError
    from translate.export.onnx import export_onnx

    if ctx.args and not ctx.args[0].startswith("--"):
        raise ConfigError(f"unexpected argument {ctx.args[0]!r}")
    options = _plugin_options(checkpoint, list(ctx.args))
    typer.echo(f"exporting {checkpoint} ...", err=True)
    result = export_onnx(
        checkpoint, out, options=options, fp16=fp16, opset=opset, exporter=exporter
    )
    typer.echo(result.summary(), err=True)
    typer.echo(str(result.path))


app.command("models")(models_command)
app.command("eval")(eval_command)
app.command("serve")(serve_command)
app.command("runs")(runs_command)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - outside any command
        sys.exit(130)
