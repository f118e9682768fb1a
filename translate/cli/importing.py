"""``translate import reference``: weights of other tools as self-describing checkpoints;
registered on the app in ``translate.cli.main``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from translate.cli.errors import report_errors

import_app = typer.Typer(
    rich_markup_mode=None,
    help="Turn weights made by other tools into translate checkpoints.",
    no_args_is_help=True,
)


@import_app.command("reference")
@report_errors
def reference_command(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Generator file(s) of pytorch-CycleGAN-and-pix2pix: latest_net_G.pth "
            "(pix2pix), or latest_net_G_A.pth and/or latest_net_G_B.pth (cycle_gan)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="New checkpoint folder to write.")],
    model: Annotated[
        str | None,
        typer.Option(
            help="The reference's --model: pix2pix or cycle_gan. "
            "[default: cycle_gan for *_G_A/*_G_B files, else pix2pix]",
            show_default=False,
        ),
    ] = None,
    net_g: Annotated[
        str | None,
        typer.Option(
            "--netG",
            help="unet_128, unet_256, resnet_6blocks or resnet_9blocks; checked against the "
            "weights. [default: read from the weights]",
            show_default=False,
        ),
    ] = None,
    norm: Annotated[
        str | None,
        typer.Option(
            help="batch, instance or none; checked against the weights. "
            "[default: read from the weights]",
            show_default=False,
        ),
    ] = None,
    dropout: Annotated[
        bool | None,
        typer.Option(
            "--dropout/--no-dropout",
            help="Whether it was trained with dropout (the reference's --no_dropout). "
            "[default: read from ResNet weights; for a U-Net, the reference's default: "
            "pix2pix with, cycle_gan without]",
            show_default=False,
        ),
    ] = None,
    direction: Annotated[
        str | None,
        typer.Option(
            help="AtoB / BtoA (or a2b / b2a): pix2pix's --direction; for one cycle_gan file "
            "not named *_G_A/*_G_B, the direction it translates. [default: AtoB]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Import generator weights of pytorch-CycleGAN-and-pix2pix; later run, export, serve and
    eval read the architecture from the checkpoint."""
    from translate.loading.importing import import_reference

    folder = import_reference(
        files, out, model=model, net_g=net_g, norm=norm, dropout=dropout, direction=direction
    )
    typer.echo(f"wrote {folder} (translate run IMAGE -c {folder})", err=True)
    typer.echo(str(folder))
