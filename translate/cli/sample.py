"""``translate sample``: new images from a generating model (dcgan, cgan, infogan, bigan), a
grid or a folder.

A thin wrapper over ``translate.inference.sampling`` (``Sampler``, ``save_samples``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from translate.cli.errors import report_errors


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
        Path,
        typer.Option(
            "--out", "-o", help="A grid image (name ending in .png/.jpg) or a folder of PNGs."
        ),
    ],
    n: Annotated[
        int | None,
        typer.Option(
            "-n",
            "--n",
            help="How many images (with --vary: rows). \\[default: 64]",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the latents (same seed, same images).")
    ] = None,
    truncation: Annotated[
        float | None,
        typer.Option(
            help="Truncation trick: resample latent entries with |z| > T (less diversity, "
            "more typical images; e.g. 0.5)."
        ),
    ] = None,
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
            "Runtime). \\[default: what the model is]",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
) -> None:
    """Draw N new images from a generating model and save them as a grid or a folder."""
    from translate.inference.sampling import Sampler, save_samples

    sampler = Sampler.from_checkpoint(run, device=device, backend=backend)
    columns = None
    if vary is not None:
        images, columns = sampler.traversal(
            vary, rows=n, seed=seed, truncation=truncation, class_name=class_name, codes=code
        )
    else:
        images = sampler(
            64 if n is None else n,
            seed=seed,
            truncation=truncation,
            class_name=class_name,
            codes=code,
        )
    paths = save_samples(images, out, overwrite=overwrite, columns=columns)
    where = paths[0] if len(paths) == 1 else out
    typer.echo(f"wrote {len(images)} samples to {where}")
