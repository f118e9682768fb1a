"""Inference speed of every plugin's default generator on each backend, side by side.

For each discovered plugin, its default config (data paths are dummies: the weights are random,
which does not change the speed) builds the models; the plugin's inference module runs through
the real inference path (``Translator.translate_tensor``: padding, backend call, crop) at each
size, batch 1, on every variant in one process, so the ratios compare like with like:

    CPU:  torch-fp32 (eager), torch-bf16 (autocast), ort-cpu (ONNX Runtime, CPU provider)
    GPU:  torch-fp16 (autocast), ort-cuda, ort-tensorrt   (only when CUDA is present)

Torch variants run channels-last, as ``translate run`` does. The variants are timed
alternately (round robin), so load from other processes hits all of them alike. Prints
milliseconds per image (median of --reps timed runs after --warmup untimed ones; at sizes above
512 --reps-large runs), images per second, the median per-round ratio to torch-fp32 (or, with
``--reference``, to the reference's eval-mode forward of its default pix2pix/CycleGAN
generator, from ``../shared/reference``) and the PSNR of each output against torch-fp32's.

    python benchmarks/inference.py                              # a few minutes on 2 threads
    python benchmarks/inference.py --plugins pix2pix --sizes 256 --reps 1 --warmup 0  # smoke
    python benchmarks/inference.py --memory --plugins pix2pix   # tiled 4096x4096 peak memory
    python benchmarks/inference.py --plugins pix2pix cyclegan --sizes 256 --reference

``--memory`` runs each plugin's default generator on one --memory-size square image (default
4096) with tiling (--tile-size, default the automatic 1024) in a child process per backend and
prints its peak resident memory (VmHWM) and the part added by inference.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CPU_VARIANTS = ("torch-fp32", "torch-bf16", "ort-cpu")
GPU_VARIANTS = ("torch-fp16", "ort-cuda", "ort-tensorrt")


def default_model(name: str, root: Path) -> Any:
    """The plugin's default generator as a LoadedModel (random weights, dummy data paths)."""
    from translate.config import config_from_dict
    from translate.loading import LoadedModel
    from translate.registry import load_plugin

    plugin = load_plugin(name)
    required = {
        f.name: str(root / f.name)
        for f in dataclasses.fields(plugin.config_cls)
        if "Path" in str(f.type)  # data folders; an optional number (None: automatic) stays
        and (
            f.default is None
            or f.default == ()  # a repeatable option that must be given (superres --data)
            or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        )
    }
    cfg = config_from_dict(plugin.config_cls, required)
    models = plugin.build_models(cfg)
    for model in models.values():
        model.eval()
    opts = plugin.inference_config_cls()
    module = plugin.inference_module(models, cfg, opts)
    meta = {"plugin": name, "step": 0}
    return LoadedModel(root, plugin, cfg, meta, opts, models, module, [])


def make_translator(
    loaded: Any, variant: str, onnx_path: Path | None, size: int, threads: int
) -> Any:
    import torch

    from translate.inference.backends import OnnxBackend, TorchBackend, TrtProfile
    from translate.inference.translator import Translator
    from translate.loading.model import probe_channels

    req = loaded.requirements
    channels = probe_channels(loaded.plugin, loaded.plugin_cfg, req)
    if variant.startswith("torch"):
        device = torch.device("cuda" if variant == "torch-fp16" else "cpu")
        amp = {"torch-fp32": "none", "torch-bf16": "bf16", "torch-fp16": "fp16"}[variant]
        backend: Any = TorchBackend(loaded.module.to(device), device, amp=amp)
    else:
        device_name = {"ort-cpu": "cpu", "ort-cuda": "cuda", "ort-tensorrt": "tensorrt"}[variant]
        profile = TrtProfile(channels=channels, min_side=size, opt_side=size, max_side=size)
        backend = OnnxBackend(onnx_path, device=device_name, threads=threads, profile=profile)
    return Translator(
        backend,
        plugin=loaded.plugin,
        plugin_cfg=loaded.plugin_cfg,
        requirements=req,
        meta=loaded.meta,
        opts=loaded.opts,
        in_channels=channels,
        tile_size=0,
        batch_size=1,
    )


def reference_generator(name: str, reference_dir: Path) -> Any:
    """The reference implementation's default generator for ``name`` (pix2pix: unet_256 with
    batch norm; cyclegan: resnet_9blocks with instance norm) in eval mode, or None."""
    code = reference_dir / "pytorch-CycleGAN-and-pix2pix"
    if name not in ("pix2pix", "cyclegan") or not code.is_dir():
        return None
    sys.path.insert(0, str(code))
    from models import networks  # the reference's own module, run as its users run it

    if name == "pix2pix":
        net = networks.define_G(3, 3, 64, "unet_256", "batch", True, "normal", 0.02)
    else:
        net = networks.define_G(3, 3, 64, "resnet_9blocks", "instance", False, "normal", 0.02)
    return net.eval()


def time_round_robin(calls: dict[str, Any], reps: int, warmup: int) -> dict[str, list[float]]:
    """Seconds of each call, alternating between them (load on a shared machine hits all)."""
    import torch

    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(reps):
        for key, call in calls.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            call()  # returns on the CPU: the copy back is timed too
            times[key].append(time.perf_counter() - start)
    return times


def psnr(a: Any, b: Any) -> float:
    """PSNR in dB of two outputs in [-1, 1] (peak 1 after mapping to [0, 1])."""
    mse = float(((a.float() - b.float()) / 2).pow(2).mean())
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def speed(args: argparse.Namespace) -> None:
    import torch

    from translate.export.onnx import export_loaded
    from translate.loading.model import probe_channels
    from translate.registry import discover

    torch.set_num_threads(args.threads)
    names = args.plugins or sorted(discover())
    variants = list(CPU_VARIANTS) + (list(GPU_VARIANTS) if torch.cuda.is_available() else [])
    if args.variants:
        variants = [v for v in variants if v in args.variants]
    print(
        f"# translate inference benchmark: torch {torch.__version__}, {args.threads} threads, "
        f"batch 1, median of {args.reps} alternating runs ({args.reps_large} above 512 px); "
        f"GPU: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}"
    )
    base_name = "reference" if args.reference else variants[0]
    print(
        f"{'plugin':10} {'size':>5} {'variant':13} {'ms/image':>10} {'images/s':>9} "
        f"{'vs ' + base_name:>13} {'PSNR vs fp32':>12}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            loaded = default_model(name, Path(tmp))
            onnx_path = Path(tmp) / f"{name}.onnx"
            if any(v.startswith("ort") for v in variants):
                result = export_loaded(loaded, onnx_path)
                print(f"# {name}: {result.summary()}", flush=True)
            channels = probe_channels(loaded.plugin, loaded.plugin_cfg, loaded.requirements)
            ref = reference_generator(name, args.reference_dir) if args.reference else None
            for size in args.sizes:
                reps = args.reps if size <= 512 else args.reps_large
                x = torch.rand(1, channels, size, size) * 2 - 1
                calls: dict[str, Any] = {}
                if ref is not None and channels == 3:

                    def reference_call(x: Any = x, ref: Any = ref) -> Any:
                        with torch.no_grad():  # the reference's eval-mode forward
                            return ref(x)

                    calls["reference"] = reference_call
                translators = {
                    v: make_translator(loaded, v, onnx_path, size, args.threads) for v in variants
                }
                for v, translator in translators.items():
                    calls[v] = lambda t=translator, x=x: t.translate_tensor(x)
                times = time_round_robin(calls, reps, args.warmup)
                fp32 = (
                    translators["torch-fp32"].translate_tensor(x) if "torch-fp32" in calls else None
                )
                base = times.get(base_name) or times[next(iter(times))]
                for key, ts in times.items():
                    ms = 1000 * statistics.median(ts)
                    ratio = statistics.median(t / b for t, b in zip(ts, base, strict=True))
                    quality = ""
                    if fp32 is not None and key in translators:
                        quality = f"{psnr(translators[key].translate_tensor(x), fp32):9.1f} dB"
                    print(
                        f"{name:10} {size:5d} {key:13} {ms:10.1f} {1000 / ms:9.2f} "
                        f"{ratio:12.2f}x {quality:>12}",
                        flush=True,
                    )
                del translators, calls
                loaded.module.cpu()


# ---------------------------------------------------------------------------- memory
def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM is reset by exec; ru_maxrss is not (a child
    started by a big parent reports the parent's peak), so it is only the fallback."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def memory_child(args: argparse.Namespace) -> None:
    """One backend, one big image, tiled: prints a JSON line of peak RSS figures."""
    import torch

    from translate.inference.translator import Translator

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        if args.onnx is not None:  # the real path for an exported model: no torch model built
            translator = Translator.from_onnx(
                args.onnx, device="cpu", threads=args.threads, tile_size=args.tile_size
            )
        else:
            loaded = default_model(args.plugin, Path(tmp))
            translator = make_translator(loaded, "torch-fp32", None, 0, args.threads)
            translator.tile_size = args.tile_size  # None: the automatic rule
        channels = translator.in_channels
        x = torch.rand(1, channels, args.memory_size, args.memory_size) * 2 - 1
        before = peak_rss_mb()
        start = time.perf_counter()
        tiles: list[int] = []
        y = translator.translate_tensor(x, on_tile=lambda done, total: tiles.append(total))
        seconds = time.perf_counter() - start
        print(
            json.dumps(
                {
                    "tiles": tiles[-1] if tiles else 0,
                    "output": list(y.shape),
                    "peak_rss_mb": round(peak_rss_mb()),
                    "peak_before_mb": round(before),
                    "seconds": round(seconds, 1),
                }
            )
        )


def memory(args: argparse.Namespace) -> None:
    """Each backend in its own process, so that ru_maxrss is that backend's peak; the ONNX
    file is exported here first, so that the export's own memory is not counted."""
    from translate.export.onnx import export_loaded
    from translate.registry import discover

    names = args.plugins or sorted(discover())
    print(
        f"# tiled {args.memory_size}x{args.memory_size} input, tile "
        f"{ {None: 'auto (1024)', 0: 'none (untiled)'}.get(args.tile_size, args.tile_size) }, "
        f"{args.threads} threads; peak RSS of the process in "
        "MB, and before inference (model loaded, input tensor made)"
    )
    print(f"{'plugin':10} {'backend':7} {'tiles':>5} {'peak RSS':>9} {'before':>7} {'s':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            onnx_path = Path(tmp) / f"{name}.onnx"
            export_loaded(default_model(name, Path(tmp)), onnx_path)
            for backend in ("torch", "onnx"):
                cmd = [sys.executable, __file__, "--memory-child", "--plugin", name]
                cmd += ["--memory-size", str(args.memory_size), "--threads", str(args.threads)]
                if backend == "onnx":
                    cmd += ["--onnx", str(onnx_path)]
                if args.tile_size is not None:
                    cmd += ["--tile-size", str(args.tile_size)]
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    last = (done.stderr.strip().splitlines() or ["?"])[-1]
                    print(f"{name:10} {backend:7} failed: {last}")
                    continue
                r = json.loads(done.stdout.strip().splitlines()[-1])
                print(
                    f"{name:10} {backend:7} {r['tiles']:5d} {r['peak_rss_mb']:9d} "
                    f"{r['peak_before_mb']:7d} {r['seconds']:7.1f}",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plugins", nargs="*", help="default: every discovered plugin")
    parser.add_argument("--sizes", nargs="*", type=int, default=[256, 1024])
    parser.add_argument("--variants", nargs="*", help=f"subset of {CPU_VARIANTS + GPU_VARIANTS}")
    parser.add_argument("--reps", type=int, default=5, help="timed runs at sizes <= 512")
    parser.add_argument("--reps-large", type=int, default=1, help="timed runs above 512 px")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also time the reference's eval-mode generator forward (pix2pix, cyclegan) and "
        "give every ratio against it",
    )
    parser.add_argument(
        "--reference-dir",
        type=Path,
        default=next(
            (
                u / "shared" / "reference"
                for u in Path(__file__).resolve().parents[2:4]
                if (u / "shared" / "reference").is_dir()
            ),
            Path(__file__).resolve().parents[2] / "shared" / "reference",
        ),
    )
    parser.add_argument("--memory", action="store_true", help="tiled peak-memory run instead")
    parser.add_argument("--memory-size", type=int, default=4096)
    parser.add_argument("--tile-size", type=int, default=None)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plugin", help=argparse.SUPPRESS)
    parser.add_argument("--onnx", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args)
    elif args.memory:
        memory(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
