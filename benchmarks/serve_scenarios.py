"""The load-and-abuse scenarios of ``benchmarks/serve_load.py --scenario a|b|c|all``.

Each scenario starts its own ``translate serve`` (so its peak RSS is its own) and prints
throughput, latency p50/p99, status counts and the server's peak resident memory (VmHWM), then
one line ``check: ... PASS|FAIL``:

a. 300 requests of mixed sizes (96 to 1024 pixels a side) at concurrency 8: no 5xx.
b. 8 concurrent 4096x4096 PNGs (about 200 KB each: they inflate to 48 MB of pixels) against
   ``--max-memory``: the peak RSS stays within it.
c. 50 slow-body connections (a byte a second) while normal 256x256 requests run at
   concurrency 2: every slow connection is closed within ``--read-timeout`` (plus 2 s), and
   the normal requests' p99 stays under twice its value measured idle just before.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

from serve_client import make_images, percentile, run_load

from translate.serve.process import ServerProcess

MIB = 1024 * 1024


def summarize(title: str, results: list[dict[str, Any]], wall: float, peak: int | None) -> dict:
    codes = collections.Counter(str(r["status"]) for r in results)
    ok = [r["latency"] * 1000 for r in results if r["status"] == 200]
    p50 = percentile(ok, 0.5) if ok else float("nan")
    p99 = percentile(ok, 0.99) if ok else float("nan")
    errors = sum(n for code, n in codes.items() if not code.isdigit() or int(code) >= 500)
    peak_text = f"{peak / MIB:.0f} MiB" if peak else "?"
    print(
        f"[{title}] {len(results)} requests in {wall:.1f} s: {len(ok) / wall:.2f} requests/s; "
        f"latency ms p50 {p50:.0f} p99 {p99:.0f}; status {dict(sorted(codes.items()))}; "
        f"peak server RSS {peak_text}"
    )
    return {"p50": p50, "p99": p99, "errors": errors, "codes": codes}


def check(title: str, ok: bool, text: str) -> bool:
    print(f"[{title}] check: {text}: {'PASS' if ok else 'FAIL'}")
    return ok


def mixed_images(per_size: int = 3) -> list[bytes]:
    sizes = (96, 192, 256, 384, 512, 768, 1024)
    by_size = [make_images(per_size, s, seed=s) for s in sizes]
    return [group[i] for i in range(per_size) for group in by_size]  # sizes interleaved


def scenario_a(serve_args: list[str], model: str) -> bool:
    images = mixed_images()
    with ServerProcess(serve_args, startup_timeout=600) as server:
        results, wall = asyncio.run(
            run_load(server.url, model, images, requests=300, concurrency=8, params={})
        )
        peak = server.peak_rss_bytes()
    stats = summarize("a: 300 mixed sizes, concurrency 8", results, wall, peak)
    return check("a", stats["errors"] == 0, "no 5xx or transport error")


def scenario_b(serve_args: list[str], model: str, max_memory: str) -> bool:
    images = make_images(2, 4096)
    print(f"[b] 4096x4096 PNGs of {len(images[0]) // 1024} KB; --max-memory {max_memory}")
    args = [*serve_args, "--max-memory", max_memory, "--request-timeout", "1800"]
    with ServerProcess(args, startup_timeout=600) as server:
        results, wall = asyncio.run(
            run_load(server.url, model, images, requests=8, concurrency=8, params={})
        )
        peak = server.peak_rss_bytes()
        stated = next(
            (line for line in server.log().splitlines() if line.startswith("memory:")), ""
        )
    print(f"[b] server: {stated}")
    summarize("b: 8 concurrent 4096x4096", results, wall, peak)
    batches = collections.Counter(r["batch"] for r in results if r["status"] == 200)
    print(f"[b] batch sizes: {dict(sorted(batches.items()))}")
    from translate.serve.budget import parse_bytes

    bound = parse_bytes(max_memory)
    return check(
        "b",
        peak is not None and peak <= bound and all(r["status"] == 200 for r in results),
        f"all 200 and peak RSS {(peak or 0) / MIB:.0f} MiB <= --max-memory {bound / MIB:.0f} MiB",
    )


async def slow_body(host: str, port: int, model: str, key: int) -> tuple[float, bytes]:
    """A POST whose body comes a byte a second: (seconds until the server closed, status line)."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"POST /v1/models/{model}/translate HTTP/1.1\r\nHost: x\r\nX-Slow: {key}\r\n"
        "Content-Type: image/png\r\nContent-Length: 100000\r\n\r\n".encode()
    )

    async def trickle() -> None:
        try:
            while True:
                writer.write(b"\0")
                await writer.drain()
                await asyncio.sleep(1.0)
        except (ConnectionError, OSError):
            return

    dripping = asyncio.ensure_future(trickle())
    answer = b""
    try:
        while chunk := await reader.read(65536):
            answer += chunk
    except (ConnectionError, OSError):
        pass
    dripping.cancel()
    writer.close()
    return time.perf_counter() - started, answer.split(b"\r\n", 1)[0]


def scenario_c(serve_args: list[str], model: str, read_timeout: float) -> bool:
    images = make_images(8, 256)
    args = [*serve_args, "--read-timeout", str(read_timeout)]
    with ServerProcess(args, startup_timeout=600) as server:
        asyncio.run(run_load(server.url, model, images, requests=8, concurrency=2, params={}))
        idle, idle_wall = asyncio.run(
            run_load(server.url, model, images, requests=60, concurrency=2, params={})
        )

        async def abused() -> tuple[list, float, list]:
            slow = [
                asyncio.ensure_future(slow_body(server.host, server.port, model, i))
                for i in range(50)
            ]
            await asyncio.sleep(0.5)  # all 50 connected and trickling
            normal, wall = await run_load(
                server.url, model, images, requests=60, concurrency=2, params={}
            )
            return normal, wall, await asyncio.gather(*slow)

        normal, wall, closed = asyncio.run(abused())
        peak = server.peak_rss_bytes()
    base = summarize("c: idle, 256x256, concurrency 2", idle, idle_wall, None)
    loaded = summarize("c: with 50 slow-body connections", normal, wall, peak)
    times = [t for t, _ in closed]
    lines = collections.Counter(line.decode(errors="replace") for _, line in closed)
    print(
        f"[c] slow connections closed after {min(times):.1f}-{max(times):.1f} s "
        f"(--read-timeout {read_timeout:g}); their answers: {dict(lines)}"
    )
    ratio = loaded["p99"] / base["p99"]
    ok_closed = check(
        "c", max(times) <= read_timeout + 2, f"all 50 closed within {read_timeout + 2:g} s"
    )
    ok_p99 = check(
        "c",
        ratio < 2 and loaded["errors"] == 0,
        f"normal p99 {loaded['p99']:.0f} ms vs idle {base['p99']:.0f} ms: x{ratio:.2f} < 2",
    )
    return ok_closed and ok_p99
