"""``translate datasets``: the downloader against a real HTTP server on 127.0.0.1 (no mock of
the transport): a full download, an interrupted one resumed with a Range request, a server that
ignores Range, a bad checksum refused in one line with nothing left behind, the checksum
recorded on first download and enforced after; the catalogue's errors; the demo set."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from translate.cli.main import app
from translate.datasets import catalog, download, fetch, write_demo
from translate.datasets.catalog import DatasetEntry
from translate.datasets.demo import LABELS
from translate.errors import DataError

runner = CliRunner()


def toy_archive() -> bytes:
    """A .tar.gz of ``toy/train/000.png`` (noise, so it does not compress to nothing)."""
    png = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(png, format="PNG")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo("toy/train/000.png")
        info.size = len(png.getvalue())
        tar.addfile(info, io.BytesIO(png.getvalue()))
    return out.getvalue()


class Server:
    """Serves ``payload`` at /toy.tar.gz. ``cut_after``: send the full Content-Length but
    only that many bytes, then drop the connection. ``honour_range``: answer Range with 206."""

    def __init__(self) -> None:
        self.payload = toy_archive()
        self.cut_after: int | None = None
        self.honour_range = True
        self.ranges: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/toy.tar.gz":
                    self.send_error(404)
                    return
                server.ranges.append(self.headers.get("Range"))
                body, start = server.payload, 0
                rng = self.headers.get("Range")
                if rng and server.honour_range:
                    start = int(rng.removeprefix("bytes=").rstrip("-"))
                    if start >= len(body):
                        self.send_response(416)
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                rest = body[start:]
                if server.cut_after is not None:
                    rest = rest[: server.cut_after]
                    server.cut_after = None  # once
                    self.wfile.write(rest)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(rest)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/toy.tar.gz"

    def __enter__(self) -> Server:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as s:
        yield s


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_full_download_is_checked_and_renamed_into_place(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "toy.tar.gz"
    got = download(server.url, dest, sha256=sha(server.payload), progress=False)
    assert got == sha(server.payload) and dest.read_bytes() == server.payload
    assert not (tmp_path / "toy.tar.gz.part").exists()
    assert server.ranges == [None]


def test_an_interrupted_download_resumes_where_it_stopped(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "toy.tar.gz"
    half = len(server.payload) // 2
    server.cut_after = half
    with pytest.raises(DataError, match=r"interrupted after .* run the same command again"):
        download(server.url, dest, progress=False)
    part = tmp_path / "toy.tar.gz.part"
    assert part.stat().st_size == half and not dest.exists()
    got = download(server.url, dest, sha256=sha(server.payload), progress=False)
    assert server.ranges == [None, f"bytes={half}-"]  # the second request asked for the rest
    assert dest.read_bytes() == server.payload and got == sha(server.payload)
    assert not part.exists()


def test_a_server_that_ignores_range_is_read_from_the_start(server: Server, tmp_path: Path) -> None:
    server.honour_range = False
    part = tmp_path / "toy.tar.gz.part"
    part.write_bytes(b"stale bytes of an older file")
    got = download(server.url, tmp_path / "toy.tar.gz", progress=False)
    assert got == sha(server.payload)
    assert (tmp_path / "toy.tar.gz").read_bytes() == server.payload


def test_a_bad_checksum_is_refused_and_nothing_is_left(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        download(server.url, tmp_path / "toy.tar.gz", sha256="0" * 64, progress=False)
    assert "checksum mismatch" in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def toy_entry(server: Server, monkeypatch: pytest.MonkeyPatch) -> DatasetEntry:
    entry = DatasetEntry("toy", server.url, "paired", "a toy set", "translate train ...")
    monkeypatch.setattr(catalog, "CATALOG", (*catalog.CATALOG, entry))
    return entry


def test_fetch_unpacks_records_the_checksum_and_enforces_it_later(
    server: Server, toy_entry: DatasetEntry, tmp_path: Path
) -> None:
    folder = fetch("toy", root=tmp_path, progress=False)
    assert folder == tmp_path / "toy" and (folder / "train" / "000.png").is_file()
    recorded = tmp_path / "archives" / "toy.tar.gz.sha256"
    assert recorded.read_text().split()[0] == sha(server.payload)  # recorded on first download
    assert not (tmp_path / "archives" / "toy.tar.gz").exists()  # the archive is not kept
    assert fetch("toy", root=tmp_path, progress=False) == folder  # fetched: nothing downloaded
    assert len(server.ranges) == 1
    server.payload = server.payload[:-1] + b"x"  # the file changed on the server
    result = runner.invoke(app, ["datasets", "fetch", "toy", "--dir", str(tmp_path), "--force"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        f"error: toy.tar.gz: checksum mismatch (sha256 {sha(server.payload)[:12]}..., "
        f"expected {recorded.read_text()[:12]}...); the download was removed"
    )
    assert (folder / "train" / "000.png").is_file()  # the fetched set is untouched
    assert sorted(p.name for p in (tmp_path / "archives").iterdir()) == ["toy.tar.gz.sha256"]


def test_fetch_through_the_cli_prints_the_folder(toy_entry: DatasetEntry, tmp_path: Path) -> None:
    result = runner.invoke(app, ["datasets", "fetch", "toy", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(tmp_path / "toy")


def test_unknown_names_and_unreachable_servers_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["datasets", "fetch", "horse2zebr", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "did you mean 'horse2zebra'?" in result.output and "Traceback" not in result.output
    with pytest.raises(DataError, match=r"cannot connect .* translate datasets demo"):
        download("http://127.0.0.1:9/none.zip", tmp_path / "none.zip", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_the_catalogue_lists_the_standard_sets() -> None:
    result = runner.invoke(app, ["datasets", "list"])
    assert result.exit_code == 0
    for name in ("facades", "maps", "cityscapes", "horse2zebra", "monet2photo", "sr-benchmarks"):
        assert f"\n{name} " in "\n" + result.output
    assert all(e.url.startswith(("http://", "https://")) for e in catalog.CATALOG)


def test_the_demo_set_is_paired_in_the_facades_layout(tmp_path: Path) -> None:
    result = runner.invoke(app, ["datasets", "demo", str(tmp_path / "demo"), "--size", "32"])
    assert result.exit_code == 0, result.output
    train = sorted((tmp_path / "demo" / "train").iterdir())
    assert len(train) == 40 and len(list((tmp_path / "demo" / "val").iterdir())) == 8
    val = np.asarray(Image.open(tmp_path / "demo" / "val" / "003.png"))
    alone = np.asarray(Image.open(tmp_path / "demo" / "inputs" / "003.png"))
    assert np.array_equal(alone, val[:, 32:])  # the inputs are the validation label maps
    pair = np.asarray(Image.open(train[0]))
    assert pair.shape == (32, 64, 3)
    photo, labels = pair[:, :32].astype(int), pair[:, 32:]
    colours = {tuple(c) for c in labels.reshape(-1, 3)}
    assert colours <= set(LABELS) and len(colours) >= 2  # flat class colours
    # the photo follows the label map: where the label is the background, the photo is grey-blue
    background = (labels == LABELS[0]).all(-1)
    assert abs(photo[background].mean(0) - photo[~background].mean(0)).max() > 20
    again = runner.invoke(app, ["datasets", "demo", str(tmp_path / "demo")])
    assert again.exit_code == 2 and "already exists and is not empty" in again.output
    assert write_demo(tmp_path / "other", size=32, n_train=1, n_val=1, seed=0).is_dir()
