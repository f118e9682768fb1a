"""``translate sample``: new images from a generating model (dcgan, cgan, infogan, bigan, ...),
a grid or a folder; with ``--vary``, a traversal grid of a code (``translate.inference.
traversal``).

A thin wrapper over ``translate.inference.sampling`` (``Sampler``, ``save_samples``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from translate.cli.errors import report_errors
from translate.fields import INT_MAX, SEED_MAX


@report_errors
def sample_command(
    run: Annotated[
        Path,
        typer.Argument(
            help="Run or checkpoint folder of a generating model (dcgan, cgan), or its .onnx "
            "export (runs in ONNX Runtime)."
        ),
    ],
    out: Annotated[
        str,  # a string: a trailing "/" (a folder is meant) must survive
        typer.Option(
            "--out",
            "-o",
            help="A grid image (name ending in .png/.jpg) or a folder of PNGs (any other name, "
            "or one ending in /), written a chunk at a time with progress; Ctrl-C keeps what "
            "was written.",
        ),
    ],
    n: Annotated[
        int | None,
        typer.Option(
            "-n",
            "--n",
            help="How many images (with --interpolate or --vary: rows). [default: 64]",
            show_default=False,
            max=INT_MAX,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of the latents (same seed, same images).", min=0, max=SEED_MAX),
    ] = None,
    truncation: Annotated[
        float | None,
        typer.Option(
            help="Truncation trick: latents from N(0, 1) truncated to [-T, T] (less "
            "diversity, more typical images; e.g. 0.5; at least 1.2e-38)."
        ),
    ] = None,
    interpolate: Annotated[
        int | None,
        typer.Option(
            help="Write latent walks instead: N rows of K frames each between two random "
            "latents (slerp in z, or lerp in w with --walk w).",
            metavar="K",
        ),
    ] = None,
    walk: Annotated[
        str, typer.Option(help="Space of --interpolate: z (slerp) or w (lerp; StyleGAN2).")
    ] = "z",
    class_name: Annotated[
        str | None,
        typer.Option(
            "--class", help="Class to draw (a class-conditional model, cgan); default: random."
        ),
    ] = None,
    code: Annotated[
        list[str] | None,
        typer.Option(
            "--code",
            help="Fix a code or other input by name, NAME=VALUE, repeatable (InfoGAN: --code "
            "c=3 --code c1=0.5); default: drawn per image.",
        ),
    ] = None,
    prompt: Annotated[
        str | None,
        typer.Option(
            help="Text to draw (a text-conditioned model, stackgan), e.g. 'a red circle'; "
            "encoded by the checkpoint's text encoder.",
        ),
    ] = None,
    vary: Annotated[
        str | None,
        typer.Option(
            help="Write a traversal grid: this code along the columns, NAME=START:STOP:STEPS "
            "(c1=-2:2:9) or a categorical NAME; rows: each category of a free categorical "
            "code, else -n rows (default 8) of other noise.",
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    backend: Annotated[
        str | None,
        typer.Option(
            help="torch or onnx (a checkpoint's cached, parity-checked export in ONNX "
            "Runtime). [default: what the model is]",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
) -> None:
    """Draw N new images from a generating model and save them as a grid or a folder."""
    from translate.errors import ConfigError
    from translate.inference.outputs import names_folder
    from translate.inference.sampling import (
        GRID_MAX,
        GRID_SUFFIXES,
        Sampler,
        save_samples,
        write_sample_folder,
    )

    if interpolate is not None and class_name is not None:
        raise ConfigError("interpolate: walks draw their classes; drop --class")
    if interpolate is not None and (code or vary is not None):
        raise ConfigError("interpolate: walks draw their codes; drop --code and --vary")
    if prompt is not None and (interpolate is not None or vary is not None):
        raise ConfigError("prompt: not with --interpolate or --vary (they draw their inputs)")
    rows = n
    n = 64 if n is None else n
    target = Path(out)
    as_grid = target.suffix.lower() in GRID_SUFFIXES and not names_folder(out)
    if as_grid and n > GRID_MAX:
        raise ConfigError(
            f"-n {n}: a grid holds at most {GRID_MAX} images (it is built in memory); "
            f"give a folder (-o {target.with_suffix('')}/) for more"
        )
    sampler = Sampler.from_checkpoint(run, device=device, backend=backend)
    if vary is not None:  # a traversal: one code along the columns
        from translate.inference.traversal import traversal

        images, columns = traversal(
            sampler, vary, rows=rows, seed=seed, truncation=truncation, class_name=class_name,
            codes=code,
        )  # fmt: skip
        paths = save_samples(images, target, overwrite=overwrite, columns=columns)
        typer.echo(f"wrote {len(images)} samples to {paths[0] if len(paths) == 1 else target}")
        return
    if interpolate is not None:  # n rows of K frames: one grid, or a folder of frames
        frames = sampler.walk(n, interpolate, seed=seed, truncation=truncation, space=walk)
        images = sampler.plugin.postprocess(frames, sampler.plugin_cfg)
        paths = save_samples(images, target, overwrite=overwrite, columns=interpolate)
        typer.echo(f"wrote {len(images)} samples to {paths[0] if len(paths) == 1 else target}")
        return
    if as_grid:
        images = sampler(
            n, seed=seed, truncation=truncation, class_name=class_name, codes=code, prompt=prompt
        )
        save_samples(images, target, overwrite=overwrite)
        typer.echo(f"wrote {n} samples to {target}")
        return
    with SampleProgress(n) as progress:
        written = write_sample_folder(
            sampler, n, target, seed=seed, truncation=truncation, class_name=class_name,
            codes=code, overwrite=overwrite, progress=progress, prompt=prompt,
        )  # fmt: skip
    typer.echo(f"wrote {written} samples to {target}")


class SampleProgress:
    """A bar on a terminal (stderr); a line every 10 s otherwise, for long runs in logs."""

    def __init__(self, total: int) -> None:
        import sys
        import time

        self.total, self.clock = total, time.monotonic
        self.last = self.clock()
        self.bar: Any = None
        if sys.stderr.isatty():
            from rich.progress import Progress

            self.bar = Progress(transient=True)
            self.task = self.bar.add_task("sample", total=total)

    def __enter__(self) -> SampleProgress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __call__(self, written: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=written)
        elif self.clock() - self.last > 10:
            self.last = self.clock()
            typer.echo(f"sample: {written}/{self.total}", err=True)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
