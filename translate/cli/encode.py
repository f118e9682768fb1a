"""``translate encode``: images to a generating model's latents (bigan's encoder), one file.

A thin wrapper over ``translate.inference.encoding`` (``Encoder``, ``save_latents``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from translate.cli.errors import report_errors


@report_errors
def encode_command(
    inputs: Annotated[
        list[Path], typer.Argument(help="Images or folders of images (sorted by name).")
    ],
    checkpoint: Annotated[
        Path,
        typer.Option(
            "--checkpoint",
            "-c",
            help="Run or checkpoint folder of a model with an encoder (bigan).",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="latents.npy ((N, Z) float32, in input order) or latents.safetensors (tensor "
            "'latents', file names in its metadata).",
        ),
    ],
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Encode images into the latents of a model with an encoder; G of them reconstructs them."""
    from translate.data.images import load_rgb
    from translate.inference.encoding import LATENT_SUFFIXES, Encoder, save_latents
    from translate.inference.image_io import collect_inputs

    if out.suffix.lower() not in LATENT_SUFFIXES:
        from translate.errors import ConfigError

        raise ConfigError(f"--out: {out} should end in .npy or .safetensors")
    files = collect_inputs(inputs)
    encoder = Encoder.from_checkpoint(checkpoint, device=device)
    latents = encoder.encode([load_rgb(f) for f in files])
    save_latents(latents, files, out, overwrite=overwrite)
    typer.echo(f"wrote {len(files)} latents of shape {tuple(latents.shape[1:])} to {out}")
