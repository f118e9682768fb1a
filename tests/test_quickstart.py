"""The README's quick start, parsed from README.md and run in a temporary folder: every line of
its code block (the install line skipped), the commented ``curl`` line sent to the served model.

The first slow test changes ``--max-steps 200`` to 2 and appends a tiny U-Net to the ``train`` line
and serves the app in-process; the slow one runs the block verbatim (200 steps of the default
pix2pix) and ``translate serve`` as a real process on a free port. Both check that
``translate run`` wrote the translated image and that the service returns the same pixels."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import TINY_PIX2PIX
from translate.cli.main import app

README = Path(__file__).resolve().parents[1] / "README.md"
runner = CliRunner()


def quickstart_lines() -> list[str]:
    """The lines of the first ``bash`` block under "## Quick start" (continuations joined)."""
    section = README.read_text().split("## Quick start", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def quickstart_commands() -> list[list[str]]:
    """The block as argv lists: ``translate ...`` and ``curl ...`` (from its comment); the
    install line is skipped; any other line fails the test (the README would be untested)."""
    commands = []
    for line in quickstart_lines():
        if "pip install" in line:
            continue
        argv = shlex.split(line.removeprefix("# ") if line.startswith("# curl ") else line)
        assert argv[0] in ("translate", "curl"), f"quick start line not understood: {line}"
        commands.append(argv)
    return commands


def test_the_block_is_what_the_tests_expect() -> None:
    kinds = [argv[1] if argv[0] == "translate" else argv[0] for argv in quickstart_commands()]
    assert kinds == ["datasets", "train", "run", "serve", "curl"]
    assert any('pip install -e ".[serve]"' in line for line in quickstart_lines())


def curl(argv: list[str], post) -> Path:
    """``curl --data-binary @FILE URL -o OUT`` through ``post(path, body)``."""
    body = Path(argv[argv.index("--data-binary") + 1].removeprefix("@")).read_bytes()
    url = next(a for a in argv if a.startswith("http://"))
    res = post("/" + url.split("/", 3)[3], body)
    assert res.status_code == 200, res.text
    out = Path(argv[argv.index("-o") + 1])
    out.write_bytes(res.content)
    return out


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def check_outputs(served: Path) -> np.ndarray:
    translated = Path("translated/000.png")
    assert translated.is_file(), "translate run wrote no translated image"
    out = pixels(translated)
    assert out.shape == pixels(Path("demo/inputs/000.png")).shape
    assert pixels(served).tobytes() == out.tobytes()  # the service gives run's pixels
    return out


@pytest.mark.slow  # about 8 s of CPU: imports, the demo set, two steps, curves, run and serve
def test_the_quick_start_runs_with_a_tiny_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from translate.serve import LoadSettings
    from translate.serve.app import create_app
    from translate.serve.config import ServeConfig
    from translate.serve.server import load_models

    monkeypatch.chdir(tmp_path)
    served, client_model = None, None
    for argv in quickstart_commands():
        if argv[0] == "curl":
            with TestClient(create_app([client_model], ServeConfig(access_log=False))) as c:
                served = curl(argv, lambda path, body: c.post(path, content=body))
            continue
        args = argv[1:]
        if args[0] == "train":
            args[args.index("--max-steps") + 1] = "2"
            args += TINY_PIX2PIX
        if args[0] == "serve":  # in-process: the models translate serve would load
            checkpoint = args[args.index("--checkpoint") + 1]
            (client_model,) = load_models(checkpoints=[checkpoint], settings=LoadSettings())
            assert client_model.name == "pix2pix"  # the name the curl line uses
            continue
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{shlex.join(argv)}: {result.output}"
    assert served is not None
    check_outputs(served)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # 200 steps of the default pix2pix (256x256 U-Net): minutes on a shared CPU
def test_the_quick_start_runs_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    monkeypatch.chdir(tmp_path)
    server = None
    port = free_port()
    try:
        for argv in quickstart_commands():
            if argv[0] == "curl":
                base = f"http://127.0.0.1:{port}"
                for _ in range(600):
                    try:
                        if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert server.poll() is None, server.stdout.read()
                    time.sleep(0.5)
                argv = [a.replace("http://127.0.0.1:8000", base) for a in argv]
                served = curl(argv, lambda path, body, b=base: httpx.post(b + path, content=body))
                continue
            if argv[1] == "serve":  # a real server on a free port, in the background
                cmd = [sys.executable, "-m", "translate", *argv[1:], "--port", str(port)]
                server = subprocess.Popen(
                    cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
                continue
            result = runner.invoke(app, argv[1:])
            assert result.exit_code == 0, f"{shlex.join(argv)}: {result.output}"
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    out = check_outputs(served).astype(float)
    # 200 steps learned the task: the output is nearer the photo than the label map it got
    pair = pixels(Path("demo/val/000.png")).astype(float)
    photo, labels = pair[:, : pair.shape[1] // 2], pair[:, pair.shape[1] // 2 :]
    assert np.abs(out - photo).mean() < 0.5 * np.abs(labels - photo).mean()
    assert os.path.isdir("runs/quickstart/checkpoints")


def test_serve_without_its_extra_names_it_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now fails
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    (line,) = result.output.splitlines()
    assert line.startswith("error: translate serve needs the serve extra (fastapi")
    assert line.endswith('pip install "translate[serve]" (from a clone: pip install -e ".[serve]")')
