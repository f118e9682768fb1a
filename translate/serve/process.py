"""``translate serve`` as a child process on a free loopback port (tests, benchmarks, notebooks).

    with ServerProcess(["--checkpoint", "runs/pix2pix-..."]) as server:
        httpx.post(f"{server.url}/v1/models/pix2pix/translate", content=png_bytes)

Started with ``python -m translate.cli serve``; ready once ``/readyz`` answers 200; stopped
with SIGTERM (uvicorn finishes in-flight requests first). Output goes to a log file, so a
chatty server never blocks on a full pipe.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A ``translate serve`` child process; ``url`` is its base URL once started."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 120.0,
        log_path: Path | None = None,
        api_key: str | None = None,
        launcher: Sequence[str] | None = None,
    ) -> None:
        self.args = list(args)
        # what runs the CLI (``serve ARGS`` follow): a script may patch the package first
        self.launcher = list(launcher or [sys.executable, "-m", "translate.cli"])
        self.host = host
        self.port = port or free_port(host)
        self.env = {**os.environ, **(env or {})}
        # the key the server wants (for the readiness check): given, or from its environment
        self.api_key = api_key or self.env.get("TRANSLATE_API_KEY") or None
        if api_key:
            self.args += ["--api-key", api_key]
        self.startup_timeout = startup_timeout
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="translate-serve-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def auth_headers(self) -> dict[str, str]:
        """``Authorization`` for the server's API key (empty without one)."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("server not started")
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> ServerProcess:
        cmd = [*self.launcher, "serve", *self.args]
        cmd += ["--host", self.host, "--port", str(self.port)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"translate serve exited with {self.proc.returncode}:\n{self.log()[-4000:]}"
                )
            ready = urllib.request.Request(f"{self.url}/readyz", headers=self.auth_headers)
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(ready, timeout=2) as res,
            ):
                if res.status == 200:
                    return self
            time.sleep(0.2)
        self.stop(timeout=10)
        raise RuntimeError(f"translate serve not ready in {self.startup_timeout} s:\n{self.log()}")

    def peak_rss_bytes(self) -> int | None:
        """The server's peak resident memory so far (Linux: VmHWM), or None."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return None

    def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Send ``sig`` and wait for the exit (killed after ``timeout`` s); the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
