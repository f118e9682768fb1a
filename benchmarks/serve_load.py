"""A bounded load on ``translate serve`` over loopback: latency, throughput, errors, memory.

Starts ``translate serve`` as a child process on a free 127.0.0.1 port, waits until it is
ready, sends --warmup untimed requests, then --requests POSTs of --size x --size PNG images with
--concurrency in flight (httpx, asyncio), and prints:

    latency p50 / p95 / p99 / max (client side, ms), throughput (requests/s, images/s),
    status counts (5xx must be 0: the exit code is 1 otherwise), the server-side processing
    and queueing times, micro-batch sizes, and the server's resident memory (before the load
    and its peak, VmHWM).

    python benchmarks/serve_load.py                          # a tiny pix2pix trained here
    python benchmarks/serve_load.py --checkpoint runs/pix2pix-... --requests 300 --concurrency 8
    python benchmarks/serve_load.py --model NAME --backend onnx --workers 2

Without --checkpoint/--model/--onnx a tiny pix2pix (U-Net depth 5, 8 channels) is trained for
two steps on generated data in a temporary folder: that measures the service's own overhead.

    python benchmarks/serve_load.py --scenario all      # the load-and-abuse scenarios a, b, c

runs the scenarios of ``benchmarks/serve_scenarios.py`` instead (each on its own server):
(a) 300 mixed-size requests at concurrency 8, (b) 8 concurrent 4096x4096 PNGs against
--max-memory, (c) 50 slow-body connections beside normal requests; the exit code is 1 when a
check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import sys
import tempfile
from pathlib import Path

from serve_client import make_images, percentile, run_load


def tiny_checkpoint(root: Path) -> Path:
    from translate.engine.loop import prepare
    from translate.testing import make_paired

    trainer = prepare(
        "pix2pix",
        data=make_paired(root / "data"),
        load_size=36,
        crop_size=32,
        unet_depth=5,
        base_channels=8,
        disc_channels=8,
        disc_layers=2,
        max_steps=2,
        progress=False,
        run_dir=root / "run",
    )
    return trainer.run()


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", help="Run or checkpoint folder to serve.")
    source.add_argument("--model", help="A shipped model by name.")
    source.add_argument("--onnx", help="An .onnx file from translate export.")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--size", type=int, default=256, help="Image side in pixels.")
    parser.add_argument("--distinct", type=int, default=16, help="Distinct images sent in turn.")
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="translate serve --workers")
    parser.add_argument("--max-batch", type=int, default=4, help="translate serve --max-batch")
    parser.add_argument("--queue-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="Server intra-op threads.")
    parser.add_argument("--backend", default=None, help="torch or onnx")
    parser.add_argument("--format", default="png", help="Output format: png, jpeg, webp.")
    parser.add_argument(
        "--scenario", choices=["a", "b", "c", "all"], help="Run a load-and-abuse scenario."
    )
    parser.add_argument("--max-memory", default="2G", help="Scenario b: translate serve's.")
    parser.add_argument("--read-timeout", type=float, default=5.0, help="Scenario c.")
    args = parser.parse_args()

    import httpx

    from translate.serve.process import ServerProcess

    tmp = tempfile.TemporaryDirectory(prefix="serve-load-")
    if args.checkpoint:
        serve_args = ["--checkpoint", f"bench={args.checkpoint}"]
        what = args.checkpoint
    elif args.model:
        serve_args = ["--model", args.model]
        what = f"shipped model {args.model}"
    elif args.onnx:
        serve_args = ["--onnx", f"bench={args.onnx}"]
        what = args.onnx
    else:
        print("training a tiny pix2pix (2 steps) to serve ...", file=sys.stderr)
        serve_args = ["--checkpoint", f"bench={tiny_checkpoint(Path(tmp.name))}"]
        what = "tiny pix2pix (U-Net depth 5, 8 channels, trained 2 steps)"
    model = args.model or "bench"
    serve_args += ["--workers", str(args.workers), "--max-batch", str(args.max_batch)]
    serve_args += ["--queue-size", str(args.queue_size), "--no-access-log"]
    if args.threads is not None:
        serve_args += ["--threads", str(args.threads)]
    if args.backend:
        serve_args += ["--backend", args.backend]
    if args.scenario:
        import serve_scenarios as sc

        print(f"model: {what}; {os.cpu_count()} CPUs, loopback", file=sys.stderr)
        run = {"a", "b", "c"} if args.scenario == "all" else {args.scenario}
        passed = []
        if "a" in run:
            passed.append(sc.scenario_a(serve_args, model))
        if "b" in run:
            passed.append(sc.scenario_b(serve_args, model, args.max_memory))
        if "c" in run:
            passed.append(sc.scenario_c(serve_args, model, args.read_timeout))
        tmp.cleanup()
        return 0 if all(passed) else 1
    serve_args += ["--tile-size", "0"]  # the images are small; never tile

    images = make_images(args.distinct, args.size)
    params = {"format": args.format}
    with ServerProcess(serve_args, startup_timeout=600) as server:
        asyncio.run(
            run_load(server.url, model, images, requests=args.warmup, concurrency=2, params=params)
        )
        rss_before = rss_bytes(server.pid)
        results, wall = asyncio.run(
            run_load(
                server.url,
                model,
                images,
                requests=args.requests,
                concurrency=args.concurrency,
                params=params,
            )
        )
        peak = server.peak_rss_bytes()
        listed = httpx.get(f"{server.url}/v1/models").json()["models"][0]
    tmp.cleanup()

    codes = collections.Counter(str(r["status"]) for r in results)
    ok = [r for r in results if r["status"] == 200]
    server_errors = sum(n for code, n in codes.items() if not code.isdigit() or int(code) >= 500)
    lat = [r["latency"] * 1000 for r in ok]
    batches = collections.Counter(r["batch"] for r in ok)
    cpu = os.cpu_count()
    print(f"model: {what} ({listed['plugin']}, backend {listed['backend']} on {listed['device']})")
    print(
        f"load: {args.requests} requests, {args.concurrency} concurrent, {args.size}x{args.size} "
        f"PNG in, {args.format} out; server --workers {args.workers} --max-batch "
        f"{args.max_batch} --threads {args.threads or 'default'}; {cpu} CPUs, loopback"
    )
    if lat:
        print(
            f"latency ms: p50 {percentile(lat, 0.5):.1f}  p95 {percentile(lat, 0.95):.1f}  "
            f"p99 {percentile(lat, 0.99):.1f}  max {max(lat):.1f}  mean {statistics.mean(lat):.1f}"
        )
        server_ms = [r["server_ms"] for r in ok]
        queue_ms = [r["queue_ms"] for r in ok]
        print(
            f"server-side ms: processing p50 {percentile(server_ms, 0.5):.1f} "
            f"p95 {percentile(server_ms, 0.95):.1f}; queued p50 {percentile(queue_ms, 0.5):.1f} "
            f"p95 {percentile(queue_ms, 0.95):.1f}"
        )
    print(
        f"throughput: {len(ok) / wall:.2f} requests/s "
        f"({len(ok) * args.size * args.size / wall / 1e6:.2f} Mpixel/s) over {wall:.1f} s"
    )
    print(f"status: {dict(sorted(codes.items()))}; 5xx/transport errors: {server_errors}")
    print(f"micro-batch sizes: {dict(sorted(batches.items()))}")
    mb = 1024 * 1024
    before = f"{rss_before / mb:.0f} MiB" if rss_before else "?"
    print(
        f"server RSS: {before} after warm-up, peak {peak / mb:.0f} MiB" if peak else "server RSS: ?"
    )
    return 1 if server_errors else 0


if __name__ == "__main__":
    sys.exit(main())
