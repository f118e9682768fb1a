"""``translate compress``: a smaller generator trained against its dense parent, or the report
of what it saves (thin wrappers over ``translate.compress`` and ``translate.compress_report``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from translate.cli.errors import report_errors
from translate.fields import INT_MAX, SEED_MAX

#: --report's largest image side (a 65536 x 65536 image is 12 GB of activations per layer).
MAX_SIDE = 16384


@report_errors
def compress_command(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="The dense run or checkpoint to compress; with --report, the compressed one."
        ),
    ],
    keep: Annotated[
        float, typer.Option(help="Fraction of every generator layer's channels to keep.")
    ] = 0.5,
    method: Annotated[
        Literal["distill", "finetune"],
        typer.Option(
            help="distill: learn the dense generator's outputs next to the usual objective "
            "(Yu & Pool 2020); finetune: the baseline, the usual objective alone."
        ),
    ] = "distill",
    steps: Annotated[
        int | None,
        typer.Option(
            help="Training steps of the compressed model. [default: the parent's]",
            min=1,
            max=INT_MAX,
        ),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(help="Run folder. [default: runs/<plugin>-<timestamp>]", show_default=False),
    ] = None,
    lambda_distill: Annotated[
        float | None,
        typer.Option(help="Weight of the L1 to the dense outputs. [default: the plugin's]"),
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate. [default: the parent's]")] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Random seed of the run. [default: the parent's]", min=0, max=SEED_MAX),
    ] = None,
    report: Annotated[
        bool,
        typer.Option(
            "--report",
            help="Compare CHECKPOINT (a compressed model) with its dense parent: parameters, "
            "GFLOPs per image, ONNX size, latency in PyTorch and ONNX Runtime (CPU).",
        ),
    ] = False,
    size: Annotated[int, typer.Option(help="Image side for --report.", min=1, max=MAX_SIDE)] = 256,
    eval_data: Annotated[
        Path | None,
        typer.Option(help="With --report: also run the plugin's evaluation on this folder."),
    ] = None,
) -> None:
    """Compress a model's generator by structured channel pruning, trained against the dense
    generator's outputs and the dense discriminator (Yu & Pool 2020; pix2pix, cyclegan,
    label2image --generator global)."""
    if report:
        from translate.compress_report import compression_report, format_report

        typer.echo(format_report(compression_report(checkpoint, size=size, eval_data=eval_data)))
        return
    from translate.compress import compress

    options = {"lambda_distill": lambda_distill, "lr": lr, "seed": seed}
    folder = compress(
        checkpoint,
        keep=keep,
        method=method,
        steps=steps,
        run_dir=run_dir,
        **{k: v for k, v in options.items() if v is not None},
    )
    typer.echo(str(folder))
