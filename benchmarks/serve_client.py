"""The client side shared by ``serve_load.py`` and ``serve_scenarios.py``: generated PNG
images, a percentile, and a bounded asynchronous load of POSTs on ``translate serve``.

Below both scripts (they import it; it imports neither), so the two never import each other.
"""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any


def make_images(n: int, size: int, seed: int = 0) -> list[bytes]:
    """``n`` distinct PNGs: smooth gradients with a few shapes (compress like photos do)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out = []
    yy, xx = np.mgrid[:size, :size] / size
    for _ in range(n):
        f = rng.uniform(1, 4, 3)
        base = np.stack([np.sin(f[c] * (xx + yy * c) * np.pi) for c in range(3)], -1)
        image = Image.fromarray(((base * 0.5 + 0.5) * 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x0, y0 = (int(v) for v in rng.integers(0, size - 8, 2))
            w, h = (int(v) for v in rng.integers(8, size // 2, 2))
            draw.rectangle(
                (x0, y0, x0 + w, y0 + h), fill=tuple(int(v) for v in rng.integers(0, 255, 3))
            )
        buf = io.BytesIO()
        image.save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def run_load(
    url: str, model: str, images: list[bytes], *, requests: int, concurrency: int, params: dict
) -> tuple[list[dict[str, Any]], float]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    results: list[dict[str, Any]] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                try:
                    res = await client.post(
                        f"/v1/models/{model}/translate",
                        content=images[i % len(images)],
                        headers={"Content-Type": "image/png"},
                        params=params,
                    )
                    status, headers = res.status_code, res.headers
                except httpx.HTTPError as exc:
                    status, headers = f"transport error ({exc.__class__.__name__})", {}
                results.append(
                    {
                        "status": status,
                        "latency": time.perf_counter() - started,
                        "server_ms": float(headers.get("x-processing-time-ms", "nan")),
                        "queue_ms": float(headers.get("x-queue-time-ms", "nan")),
                        "batch": int(headers.get("x-batch-size", "0")),
                    }
                )

        wall = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - wall
    return results, wall
