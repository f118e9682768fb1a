"""``translate run``: translate image files with a checkpoint, an ONNX export or a shipped
model.

Real-world folders are the case it is built for: outputs never overwrite an input or each
other (``translate.inference.outputs``), every file is written atomically, a damaged file is
reported and the others still translated (``2 of 200 inputs failed: ...``, exit code 2), and
a large tiled image shows a progress bar over its tiles.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from PIL import Image

from translate.cli.errors import report_errors
from translate.config_train import AMP_HELP, DEFAULT_AMP
from translate.errors import ConfigError, DataError
from translate.fields import INT_MAX

if TYPE_CHECKING:
    from translate.loading.identify import ModelRef

#: How many failed files the final error line names (the count covers all of them).
LISTED_FAILURES = 10


def split_plugin_tokens(inputs: list[Path], extra: list[str]) -> tuple[list[Path], list[str]]:
    """Plugin options are unknown to typer, so a variadic argument may have taken them."""
    tokens = [str(p) for p in inputs] + list(extra)
    first = next((i for i, t in enumerate(tokens) if t.startswith("--")), len(tokens))
    return [Path(t) for t in tokens[:first]], tokens[first:]


def core_options(ctx: typer.Context) -> list[str]:
    """The command's own flags (for did-you-mean on a mistyped one)."""
    return [o for p in ctx.command.params for o in getattr(p, "opts", []) if o.startswith("--")]


def plugin_options(
    model: Path | ModelRef, tokens: list[str], *, core: Sequence[str] = ()
) -> dict[str, Any]:
    """``--name value`` tokens parsed against the inference options of ``model``'s plugin
    (a checkpoint or run folder, an exported .onnx file, or a weights file; best identified
    once by the caller, ``translate.loading.identify``)."""
    from translate.cli.options import parse_extra_options
    from translate.errors import PluginError
    from translate.loading import plugin_name
    from translate.loading.spandrel_file import SPANDREL
    from translate.plugin import NoOptions
    from translate.registry import load_plugin

    name = plugin_name(model)
    if name == SPANDREL:  # no plugin and no options of its own
        return parse_extra_options(NoOptions, tokens, core=core, owner="a spandrel model")
    try:
        plugin = load_plugin(name)
    except PluginError as exc:
        if not tokens:
            return {}
        raise ConfigError(f"{tokens[0]}: plugin {name!r} is not installed ({exc})") from exc
    return parse_extra_options(
        plugin.inference_config_cls, tokens, core=core, owner=f"plugin {name}"
    )


class RunProgress:
    """On a terminal (stderr), a bar over files and, while a large image is tiled, one over
    its tiles, each with an ETA; silent otherwise."""

    def __init__(self, total: int, *, show: bool = True) -> None:
        self.bar: Any = None
        self.tiles: Any = None
        if sys.stderr.isatty() and show:
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
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.files = self.bar.add_task("images", total=total, visible=total > 1)

    def __enter__(self) -> RunProgress:
        if self.bar is not None:
            self.bar.start()
        return self

    def tile(self, done: int, total: int) -> None:
        """``Translator``'s ``on_tile`` callback: (tiles done, tiles of this image)."""
        if self.bar is None:
            return
        if self.tiles is None:
            self.tiles = self.bar.add_task("tiles", total=total)
        self.bar.update(self.tiles, completed=done, total=total)
        if done >= total:
            self.bar.remove_task(self.tiles)
            self.tiles = None

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.files, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _resize_output(
    image: Image.Image, size: tuple[int, int], outscale: float | None
) -> Image.Image:
    """``--outscale``: the model's output resized to ``outscale`` times the input (Lanczos)."""
    if outscale is None:
        return image
    want = (max(1, round(size[0] * outscale)), max(1, round(size[1] * outscale)))
    return image if image.size == want else image.resize(want, Image.Resampling.LANCZOS)


def _failure_line(failures: list[str], total: int) -> str:
    listed = "; ".join(failures[:LISTED_FAILURES])
    more = len(failures) - LISTED_FAILURES
    return f"{len(failures)} of {total} inputs failed: {listed}" + (
        f"; and {more} more" if more > 0 else ""
    )


def run_command(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="Image files or folders of images.")],
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            "-c",
            help="Run folder, checkpoint folder, an .onnx file from translate export, or a "
            "weights file (.pth, .safetensors) of pytorch-CycleGAN-and-pix2pix or an "
            "architecture spandrel knows (ESRGAN, Real-ESRGAN, SwinIR, ...).",
        ),
    ] = None,
    out: Annotated[
        str | None,  # a string: its trailing "/" (a folder is meant) must survive
        typer.Option(
            "--out",
            "-o",
            help="Output folder (or file, for one input; a name ending in / is always a "
            "folder). Outputs are named "
            "<stem>[_<suffix>].<ext>; two inputs that would share a name (a.png, a.jpg with "
            "--ext png) keep their extension in it (a_png.png, a_jpg.png); an input is never "
            "overwritten. [default: translated/]",
        ),
    ] = None,
    suffix: Annotated[
        str | None,
        typer.Option(
            help="Added to output names as _<suffix>. [default: none; 'out' when the output "
            "folder holds the inputs]",
            show_default=False,
        ),
    ] = None,
    ext: Annotated[
        str | None,
        typer.Option(
            help="Output format: png, jpg, webp, or auto (the input's format). [default: png; "
            "for --out FILE its suffix]",
            show_default=False,
        ),
    ] = None,
    outscale: Annotated[
        float | None,
        typer.Option(
            help="Super-resolution models: resize the output to this factor of the input "
            "(Lanczos), e.g. 2 with a x4 model. [default: the model's scale]",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="torch or onnx (ONNX Runtime; a checkpoint is exported once to the user "
            "cache). [default: torch; onnx for an .onnx file]"
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (onnx also: tensorrt).")] = "auto",
    tile_size: Annotated[
        int | None,
        typer.Option(
            help="Tile side in input pixels for large images (0: never tile). "
            "[default: 1024-pixel tiles for images above 1 megapixel]",
            show_default=False,
            min=0,
            max=INT_MAX,
        ),
    ] = None,
    tile_overlap: Annotated[
        int | None,
        typer.Option(
            help="Overlap of neighbouring tiles. [default: a quarter of the tile]",
            min=0,
            max=INT_MAX,
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(help="Same-size images translated together.", min=1, max=INT_MAX)
    ] = 4,
    amp: Annotated[str, typer.Option(help=AMP_HELP)] = DEFAULT_AMP,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="A shipped model by name (translate models). [default: the shipped default "
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
    samples: Annotated[
        int | None,
        typer.Option(
            help="Multimodal models (bicyclegan, munit): K translations of each input, with K "
            "codes drawn from N(0, I), written as <name>_s0 ... <name>_s<K-1>. [default: one, "
            "with the zero code]",
            show_default=False,
            max=INT_MAX,  # the range itself: translate.inference.multimodal (1 to 64)
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of the --samples codes (same seed, same outputs).", max=2**64 - 1),
    ] = None,
    grid: Annotated[
        bool, typer.Option("--grid", help="With --samples: one image per input, samples in a row.")
    ] = False,
    style_from: Annotated[
        Path | None,
        typer.Option(help="Multimodal models: translate in the style of this reference image."),
    ] = None,
    skip_existing: Annotated[
        bool,
        typer.Option(
            "--skip-existing",
            help="Skip inputs whose output exists already (outputs are written atomically, "
            "so an existing one is complete): a rerun of a stopped job does only the rest.",
        ),
    ] = False,
    nproc_per_node: Annotated[
        int | None,
        typer.Option(
            help="Translate on N local processes (one GPU each on CUDA), each input by exactly "
            "one; under torchrun, give the count to torchrun instead.",
            min=1,
            max=INT_MAX,
        ),
    ] = None,
) -> None:
    """Translate images with a trained model (the shipped default when none is given).
    Plugin options (e.g. --direction) follow. A file that cannot be read is reported at the
    end (exit code 2) while the others are translated."""
    from translate.cli.run_shards import command_line, launch_run, pick_gpu, shard_block
    from translate.engine.launcher import env_rank
    from translate.inference.image_io import (
        attach_alpha,
        collect_inputs,
        read_input_alpha,
        read_size,
    )
    from translate.inference.outputs import (
        Output,
        names_folder,
        plan_outputs,
        prepare_folder,
        save_output,
    )
    from translate.inference.translator import Translator
    from translate.loading.identify import identify

    rank, local_rank, world = env_rank()
    if nproc_per_node is not None and nproc_per_node > 1:
        if world > 1:
            raise ConfigError("--nproc-per-node: this process is already one of torchrun's")
        raise typer.Exit(launch_run(nproc_per_node, command_line(ctx)))
    if checkpoint is not None and model is not None:
        raise ConfigError("give --checkpoint or --model, not both")
    if outscale is not None and not outscale > 0:
        raise ConfigError(f"--outscale: must be above 0, got {outscale}")
    if checkpoint is None:
        from translate.shipped import resolve_model

        checkpoint = resolve_model(model)
    paths, extra = split_plugin_tokens(inputs, ctx.args)
    files = collect_inputs(paths)
    ref = identify(checkpoint)  # once: the option parser and the loader share it
    options = plugin_options(ref, extra, core=core_options(ctx))
    target = None if out is None else Path(out)
    plan = plan_outputs(files, target, suffix=suffix, ext=ext, out_is_folder=names_folder(out))
    for folder in dict.fromkeys(item.path.parent for item in plan):
        prepare_folder(folder)
    # this process's inputs (all of them in one process), less those already written
    todo = list(shard_block(len(files), rank, world, batch_size))
    if skip_existing:
        todo = [i for i in todo if not _written(plan[i], samples, grid, style_from)]
    if world > 1 and backend != "onnx":
        pick_gpu(local_rank)
    translator = Translator.from_checkpoint(
        ref,
        device=device,
        options=options,
        backend=backend,
        amp=amp,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
        batch_size=batch_size,
    )
    if outscale is not None and translator.requirements.scale == 1:
        raise ConfigError("--outscale: applies to super-resolution models; this model's scale is 1")
    if samples is not None or seed is not None or grid or style_from is not None:
        mine = [files[i] for i in todo], [plan[i] for i in todo]
        _run_multimodal(translator, *mine, samples, seed, grid, style_from)
        return
    if preview is not None:
        if not callable(getattr(translator.plugin, "preview", None)):
            raise ConfigError(f"--preview: plugin {translator.meta['plugin']} has no preview")
        prepare_folder(preview)
    if rank == 0:
        typer.echo(f"model: {translator.describe()} from {checkpoint}", err=True)

    failures: list[str] = []
    readable, sizes = [], []
    for i in todo:  # headers only: batches are planned before decoding
        try:
            sizes.append(read_size(files[i]))
            readable.append(i)
        except DataError as exc:
            failures.append(str(exc))

    def translate_each(images: list[Image.Image], names: list[int]) -> list[Image.Image | None]:
        """A batch that failed (a plugin refused one image): one image at a time."""
        results: list[Image.Image | None] = []
        for image, i in zip(images, names, strict=True):
            try:
                results.append(translator([image], on_tile=progress.tile)[0])
            except DataError as exc:
                failures.append(f"{files[i]}: {exc}" if str(files[i]) not in str(exc) else str(exc))
                results.append(None)
        return results

    with RunProgress(len(todo), show=rank == 0) as progress:  # rank 0: its own share
        progress.advance(len(todo) - len(readable))
        for batch in translator.batches(sizes):
            idx, images, alphas = [], [], []
            for i in (readable[j] for j in batch):
                try:  # single-channel files stay as decoded: label maps' values are class ids
                    image, alpha = read_input_alpha(files[i])
                except DataError as exc:  # a truncated body: the header was fine
                    failures.append(str(exc))
                    continue
                idx.append(i)
                images.append(image)
                alphas.append(alpha)
            try:
                results: list[Image.Image | None] = list(translator(images, on_tile=progress.tile))
            except DataError:
                results = translate_each(images, idx)
            for i, image, alpha, result in zip(idx, images, alphas, results, strict=True):
                if result is None:
                    continue
                result = _resize_output(result, image.size, outscale)
                if alpha is not None:
                    result = attach_alpha(result, alpha)
                note = save_output(result, plan[i])
                if note:
                    typer.echo(f"note: {note}", err=True)
                typer.echo(str(plan[i].path))
            if preview is not None and images:
                for i, shown in zip(idx, translator.preview(images), strict=True):
                    shown_at = preview / f"{plan[i].path.stem}.png"
                    save_output(shown, Output(files[i], shown_at, "PNG"))
            progress.advance(len(batch))
    if failures:
        raise DataError(_failure_line(failures, len(todo)))


def _written(item: Any, samples: int | None, grid: bool, style_from: Path | None) -> bool:
    """Whether ``--skip-existing`` skips ``item``: its output(s) exist."""
    if samples is None or grid or style_from is not None:
        return item.path.exists()
    stem, ext = item.path.stem, item.path.suffix
    return all(item.path.with_name(f"{stem}_s{i}{ext}").exists() for i in range(samples))


def _run_multimodal(
    translator: Any,
    files: list[Path],
    plan: list[Any],
    samples: int | None,
    seed: int | None,
    grid: bool,
    style_from: Path | None,
) -> None:
    """``--samples K [--seed S] [--grid]`` or ``--style-from REF``: K outputs per input
    (``translate.inference.multimodal``), named <name>_s<i> or one row per input."""
    from translate.inference import multimodal
    from translate.inference.image_io import read_image
    from translate.inference.outputs import Output, save_output

    multimodal.code_input(translator, "--style-from" if style_from else "--samples")
    code = None
    if style_from is not None:
        if samples is not None or seed is not None or grid:
            raise ConfigError(
                "--style-from: gives one output per input; drop --samples/--seed/--grid"
            )
        code = multimodal.style_code(translator, read_image(style_from))
    k = multimodal.check_samples(samples if samples is not None else 1)
    multimodal.check_seed(seed)
    if grid and samples is None:
        raise ConfigError("--grid: applies with --samples K")
    failures: list[str] = []
    for path, item in zip(files, plan, strict=True):
        try:
            outs = multimodal.translate_samples(
                translator, [read_image(path)], k, seed=seed, code=code
            )[0]
        except DataError as exc:
            failures.append(str(exc))
            continue
        if code is not None or grid:
            targets = [(multimodal.grid(outs) if grid else outs[0], item.path)]
        else:
            stem, ext = item.path.stem, item.path.suffix
            targets = [(o, item.path.with_name(f"{stem}_s{i}{ext}")) for i, o in enumerate(outs)]
        for image, target in targets:
            save_output(image, Output(path, target, item.format))
            typer.echo(str(target))
    if failures:
        raise DataError(_failure_line(failures, len(files)))


run = report_errors(run_command)
