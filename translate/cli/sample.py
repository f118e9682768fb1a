"""``translate sample``: new images from a generating model (dcgan, cgan), a grid or a folder.

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
    n: Annotated[int, typer.Option("-n", "--n", help="How many images.")] = 64,
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
    from translate.errors import ConfigError
    from translate.inference.sampling import Sampler, save_samples

    if interpolate is not None and class_name is not None:
        raise ConfigError("interpolate: walks draw their classes; drop --class")
    sampler = Sampler.from_checkpoint(run, device=device, backend=backend)
    if interpolate is None:
        images = sampler(n, seed=seed, truncation=truncation, class_name=class_name)
        paths = save_samples(images, out, overwrite=overwrite)
    else:
        frames = sampler.walk(n, interpolate, seed=seed, truncation=truncation, space=walk)
        images = sampler.plugin.postprocess(frames, sampler.plugin_cfg)
        paths = save_samples(images, out, overwrite=overwrite, columns=interpolate)
    where = paths[0] if len(paths) == 1 else out
    typer.echo(f"wrote {len(images)} samples to {where}")
