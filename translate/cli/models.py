"""``translate models`` (the shipped models) and ``translate eval`` (a plugin's evaluation
protocol on a model); registered on the app in ``translate.cli.main``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from translate.cli.errors import report_errors
from translate.fields import INT_MAX


@report_errors
def models_command() -> None:
    """List the shipped models (usable offline: translate run --model NAME)."""
    from rich.console import Console

    from translate.shipped import DEFAULT_MODEL, list_models, search_roots

    models = list_models()
    console = Console()
    if not models:
        roots = ", ".join(str(r) for r in search_roots())
        console.print(f"no shipped models found (looked in {roots})", highlight=False)
        return
    # plain lines, not a table: names and paths must never be wrapped or cut
    for m in models:
        name = f"{m.name} (default)" if m.name == DEFAULT_MODEL else m.name
        console.print(f"{name}  plugin {m.plugin}, x{m.scale}: {m.description}", highlight=False)
        console.print(f"    {m.path}", highlight=False, soft_wrap=True)


@report_errors
def eval_command(
    ctx: typer.Context,
    plugin: Annotated[str, typer.Argument(help="Plugin whose evaluation protocol to run.")],
    data: Annotated[
        list[Path],
        typer.Option("--data", "-d", metavar="<path>", help="Folder of test images (repeatable)."),
    ],
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            "-c",
            help="Run or checkpoint folder, an .onnx file, or a weights file (.pth, .safetensors).",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="A shipped model by name. [default: the plugin's]"),
    ] = None,
    backend: Annotated[str | None, typer.Option(help="torch or onnx.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    per_image: Annotated[bool, typer.Option(help="Also print one row per image.")] = False,
    report: Annotated[
        Path | None,
        typer.Option(help="Write an HTML results page (index.html) and metrics.json here."),
    ] = None,
    inception_weights: Annotated[
        Path | None,
        typer.Option(
            help="Inception-v3 FID weights (pt_inception-2015-12-05-6726825d.pth) for FID/KID; "
            "or $TRANSLATE_INCEPTION_WEIGHTS. Without them FID/KID are skipped."
        ),
    ] = None,
    lpips_weights: Annotated[
        Path | None,
        typer.Option(
            help="LPIPS (AlexNet) state dict for LPIPS; or $TRANSLATE_LPIPS_WEIGHTS. "
            "Without it LPIPS is skipped."
        ),
    ] = None,
    samples: Annotated[
        int | None,
        typer.Option(
            help="dcgan/cgan: samples to draw (seed 0). [default: as many as real images]",
            min=1,
            max=INT_MAX,
        ),
    ] = None,
    classifier: Annotated[
        Path | None,
        typer.Option(
            help="cgan: a TorchScript classifier of the model's classes (RGB in [0, 1] at the "
            "model's size -> logits) for class accuracy; default: a logistic regression fitted "
            "on --data."
        ),
    ] = None,
) -> None:
    """Evaluate a model with its plugin's protocol: pix2pix/label2image L1, PSNR, SSIM, LPIPS
    and FID/KID of outputs vs targets; cyclegan FID/KID per direction and cycle L1; superres
    PSNR/SSIM on Y beside bicubic, and LPIPS; dcgan/cgan FID/KID of samples vs --data (the
    training images) and, for cgan, the class accuracy of the samples. The plugin's run
    options (e.g. cyclegan's --direction b2a) follow, as for translate run."""
    from rich.console import Console
    from rich.table import Table

    from translate.cli.options import parse_extra_options
    from translate.cli.run import core_options
    from translate.evaluation import MetricWeights, evaluate
    from translate.registry import load_plugin

    options = parse_extra_options(
        load_plugin(plugin).inference_config_cls,
        list(ctx.args),
        core=core_options(ctx),
        owner=f"plugin {plugin}",
    )
    weights = MetricWeights.resolve(inception=inception_weights, lpips=lpips_weights)
    evaluation = evaluate(
        plugin,
        data,
        checkpoint=checkpoint,
        model=model,
        backend=backend,
        device=device,
        weights=weights,
        samples=samples,
        classifier=classifier,
        options=options,
    )
    console = Console()
    console.print(f"model: {evaluation.model}", highlight=False)
    for result in evaluation.results:
        means = result.means
        table = Table("image", *means, title=f"{result.folder} ({len(result.rows)} images)")
        if per_image:
            for row in result.rows:
                figures = (f"{float(row[k]):.4f}" if k in row else "" for k in means)
                table.add_row(str(row["image"]), *figures)
        table.add_row("[bold]mean", *(f"[bold]{v:.4f}" for v in means.values()))
        console.print(table)
        for note in result.notes:
            console.print(f"note: {note}", highlight=False, soft_wrap=True)
    if report is not None:
        from translate.report import write_report

        console.print(f"report: {write_report(evaluation, report)}", highlight=False)
