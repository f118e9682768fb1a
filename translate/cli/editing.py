"""``translate invert`` and ``translate drag``: edit images with a trained generator.

Thin wrappers over ``translate.inference.inversion`` (the StyleGAN2 projector) and
``translate.inference.dragging`` (DragGAN). Both write a folder ``-o PATH`` atomically:
``image.png``, ``latent.pt`` (``{"space", "latent", "noise"}``, readable by ``drag --latent``),
and for ``drag`` ``points.json`` and, with ``--frames``, ``frames/0001.png ...``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from translate.cli.errors import report_errors
from translate.fields import INT_MAX, SEED_MAX

RUN_HELP = "Run or checkpoint folder of a generating model (stylegan2; invert: dcgan, progan too)."
OUT_HELP = "Output folder (image.png, latent.pt, ...); refused if it exists, unless --overwrite."


def _bar(total: int, what: str) -> Any:
    """A rich progress bar on a terminal (stderr), else None."""
    import sys

    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        console=Console(stderr=True),
        transient=True,
    )
    bar.add_task(what, total=total, info="")
    return bar


def _load(run: Path, device: str) -> Any:
    from translate.engine.device import resolve_device
    from translate.inference.editing import editable
    from translate.loading import load

    return editable(load(run, device=str(resolve_device(device)), backend="torch"))


def _check_out(out: Path, overwrite: bool) -> None:
    from translate.errors import ConfigError

    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists (use --overwrite to replace it)")


def _save(out: Path, image: Any, state: dict[str, Any], extra: dict[str, Any]) -> None:
    """Write the folder atomically: image.png, latent.pt, and ``extra`` {name: PIL | str}."""
    import torch

    from translate.atomic import atomic_path
    from translate.inference.image_io import tensor_to_pil

    with atomic_path(out, folder=True) as tmp:
        tensor_to_pil(image.cpu())[0].save(tmp / "image.png")
        torch.save(state, tmp / "latent.pt")
        for name, value in extra.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            if isinstance(value, str):
                (tmp / name).write_text(value)
            else:
                value.save(tmp / name)


def _read_target(path: Path, size: int) -> Any:
    """The image as (1, 3, size, size) in [-1, 1]: centre-cropped to a square and resized
    (Lanczos) as the official projector does, said in one line."""
    from PIL import Image

    from translate.errors import DataError
    from translate.inference.image_io import pil_to_tensor, read_image

    if not path.is_file():
        raise DataError(f"{path}: image not found")
    image = read_image(path)
    w, h = image.size
    if (w, h) != (size, size):
        s = min(w, h)
        box = ((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)
        image = image.crop(box).resize((size, size), Image.Resampling.LANCZOS)
        typer.echo(f"note: {path} is {w}x{h}; centre-cropped and resized to {size}x{size}")
    return pil_to_tensor([image])


@report_errors
def invert_command(
    image: Annotated[Path, typer.Argument(help="The image to reproduce.")],
    run: Annotated[Path, typer.Option("--checkpoint", "-c", help=RUN_HELP)],
    out: Annotated[Path, typer.Option("--out", "-o", help=OUT_HELP)],
    wplus: Annotated[bool, typer.Option(help="Optimise w+ (one w per layer), not w.")] = False,
    steps: Annotated[int, typer.Option(help="Optimisation steps.", max=INT_MAX)] = 1000,
    lpips_weights: Annotated[
        Path | None, typer.Option(help="LPIPS (AlexNet) state dict: the distance optimised.")
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the noise maps and latent noise.", min=0, max=SEED_MAX)
    ] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """Find the latent (and noise maps) whose image reproduces IMAGE (StyleGAN2's projector)."""
    from translate.errors import ConfigError, DataError
    from translate.inference.image_io import tensor_to_pil
    from translate.inference.inversion import invert
    from translate.metrics.quality import psnr
    from translate.metrics.weights import LPIPS

    if steps < 1:
        raise ConfigError(f"--steps: must be at least 1, got {steps}")
    if not image.is_file():
        raise DataError(f"{image}: image not found")
    _check_out(out, overwrite)
    gen = _load(run, device)
    target = _read_target(image, gen.resolution)
    weights = LPIPS.resolve(lpips_weights)
    metric = None
    if weights is None:
        typer.echo(f"no LPIPS weights ({LPIPS.missing_note()}): optimising MSE + (1 - SSIM)")
    else:
        from translate.metrics.perceptual import LPIPSMetric

        metric = LPIPSMetric(weights, device=str(gen.device))
    bar = _bar(steps, "invert")

    def step(done: int, total: int, loss: float) -> None:
        if bar is not None:
            bar.update(bar.task_ids[0], completed=done, info=f"loss {loss:.4f}")

    if bar is not None:
        bar.start()
    try:
        result = invert(
            gen,
            target,
            steps=steps,
            wplus=wplus,
            seed=seed,
            lpips=None if metric is None else metric.distance,
            on_step=step,
        )
    finally:
        if bar is not None:
            bar.stop()
    state = {
        "space": gen.space,
        "latent": result.latent.cpu(),
        "noise": [n.cpu() for n in result.noise],
    }
    _save(out, result.image, state, {})
    a, b = tensor_to_pil(result.image.cpu())[0], tensor_to_pil(target)[0]
    import numpy as np

    line = f"wrote {out}: PSNR {psnr(np.asarray(a), np.asarray(b)):.2f} dB"
    if metric is not None:
        line += f", LPIPS {metric(a, b):.4f}"
    typer.echo(line)


def _point(text: str, option: str, size: int) -> tuple[float, float]:
    from translate.errors import ConfigError

    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{option}: expected x,y (pixels), got {text!r}") from None
    if not (0 <= x <= size - 1 and 0 <= y <= size - 1):
        raise ConfigError(f"{option}: {text} is outside the {size}x{size} image")
    return x, y


def _start_latent(gen: Any, seed: int | None, latent: Path | None) -> Any:
    import pickle

    import torch

    from translate.errors import ConfigError

    if (seed is None) == (latent is None):
        raise ConfigError("give exactly one of --seed S and --latent FILE")
    if latent is None:
        return gen.map(gen.draw(int(seed)))  # type: ignore[arg-type]
    if not latent.is_file():
        raise ConfigError(f"--latent: {latent}: file not found")
    try:
        state = torch.load(latent, map_location="cpu", weights_only=True)
        ws, noise = state["latent"], state.get("noise", [])
    except (pickle.UnpicklingError, RuntimeError, KeyError, TypeError, EOFError):
        raise ConfigError(f"--latent: {latent}: not a latent.pt of translate invert/drag") from None
    if state.get("space") != "w" or tuple(ws.shape) != (1, gen.num_ws, gen.G.mapping.w_dim):
        raise ConfigError(f"--latent: {latent}: not a w+ latent of this model")
    if noise:
        gen.set_noise([n.to(gen.device) for n in noise])
    return ws.to(gen.device)


@report_errors
def drag_command(
    run: Annotated[Path, typer.Option("--checkpoint", "-c", help=RUN_HELP)],
    out: Annotated[Path, typer.Option("--out", "-o", help=OUT_HELP)],
    handle: Annotated[list[str], typer.Option(help="A handle point x,y (pixels); repeat.")],
    target: Annotated[list[str], typer.Option(help="Its target x,y; one per --handle.")],
    seed: Annotated[
        int | None, typer.Option(help="Edit the image of this seed.", min=0, max=SEED_MAX)
    ] = None,
    latent: Annotated[
        Path | None, typer.Option(help="Edit this latent.pt (from translate invert).")
    ] = None,
    mask: Annotated[
        Path | None,
        typer.Option(help="Image: white where the image may change (the rest is kept)."),
    ] = None,
    steps: Annotated[int, typer.Option(help="At most this many steps.", max=INT_MAX)] = 300,
    lr: Annotated[float, typer.Option(help="Adam step size.")] = 2e-3,
    frames: Annotated[bool, typer.Option(help="Also write every step's image.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """Drag handle points of a generated image to their targets (DragGAN)."""
    import torch

    from translate.errors import ConfigError
    from translate.inference.dragging import drag
    from translate.inference.editing import StyleEditable
    from translate.inference.image_io import read_image, tensor_to_pil

    if len(handle) != len(target):
        raise ConfigError(f"--handle/--target: {len(handle)} handles but {len(target)} targets")
    if steps < 1:
        raise ConfigError(f"--steps: must be at least 1, got {steps}")
    if (seed is None) == (latent is None):
        raise ConfigError("give exactly one of --seed S and --latent FILE")
    _check_out(out, overwrite)
    gen = _load(run, device)
    if not isinstance(gen, StyleEditable):
        raise ConfigError(f"{run}: drag needs a style generator (stylegan2)")
    R = gen.resolution
    handles = torch.tensor([_point(h, "--handle", R) for h in handle])
    targets = torch.tensor([_point(t, "--target", R) for t in target])
    region = None
    if mask is not None:
        import numpy as np
        from PIL import Image

        img = read_image(mask).convert("L").resize((R, R), Image.Resampling.NEAREST)
        region = torch.from_numpy(np.asarray(img) > 127).float()
    ws = _start_latent(gen, seed, latent)
    shots: dict[str, Any] = {}
    bar = _bar(steps, "drag")

    def step(done: int, image: torch.Tensor, points: torch.Tensor) -> None:
        if frames:
            shots[f"frames/{done:04d}.png"] = tensor_to_pil(image.cpu())[0]
        if bar is not None:
            bar.update(bar.task_ids[0], completed=done, info=str(points.int().tolist()))

    if bar is not None:
        bar.start()
    try:
        result = drag(gen, ws, handles, targets, mask=region, steps=steps, lr=lr, on_step=step)
    finally:
        if bar is not None:
            bar.stop()
    points = {
        "handles": handles.tolist(),
        "targets": targets.tolist(),
        "points": result.points.tolist(),
        "steps": result.steps,
        "arrived": result.arrived,
    }
    noise = [n.detach().cpu() for n in gen.noise_buffers()]
    state = {"space": "w", "latent": result.latent.cpu(), "noise": noise}
    _save(out, result.image, state, {"points.json": json.dumps(points, indent=1), **shots})
    how = "every handle arrived" if result.arrived else "stopped before every handle arrived"
    typer.echo(f"wrote {out}: {result.steps} steps, {how}; points {result.points.int().tolist()}")
