"""Downloading a dataset archive: resumable, with a progress bar and a SHA-256 check, into the
user cache, then extracted next to it.

``download(url, dest)`` writes ``dest.part`` and, when it already exists (an interrupted
download), asks the server for the rest with an HTTP ``Range`` request and appends; a server
that ignores ``Range`` (200 instead of 206) is read again from the start. The SHA-256 is
computed while the bytes arrive; a mismatch removes the partial file and is one error line, so
nothing damaged is left behind. Only a complete, checked file is renamed to ``dest``.

``fetch(name)`` downloads a catalogue entry (``translate.datasets.catalog``) into
``datasets_dir()/archives/``, records or checks its checksum (the first download records it in
``<archive>.sha256``; later downloads must match it), unpacks it into a temporary folder and
renames that to ``datasets_dir()/<name>`` (no half-unpacked dataset under the final name), then
deletes the archive.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from translate.atomic import atomic_write_text
from translate.datasets.catalog import DatasetEntry, find_dataset
from translate.errors import DataError

#: ``$TRANSLATE_DATA_DIR`` moves the dataset cache (default: the user cache's ``datasets/``).
DATA_ENV = "TRANSLATE_DATA_DIR"
CHUNK = 1 << 16


def datasets_dir() -> Path:
    """Where fetched datasets go: ``$TRANSLATE_DATA_DIR``, else ``<user cache>/datasets``."""
    from translate.loading.onnx_cache import cache_dir

    override = os.environ.get(DATA_ENV)
    return Path(override) if override else cache_dir() / "datasets"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Bar:
    """A byte progress bar on a terminal (rich); one line at the start and end otherwise."""

    def __init__(self, label: str, total: int | None, done: int, show: bool | None) -> None:
        self.label, self.total = label, total
        self.show = True if show is None else show
        self.progress: Any = None
        if self.show and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                transient=True,
            )  # fmt: skip
            self.task = self.progress.add_task(label, total=total, completed=done)
        elif self.show:
            size = f"{total / 1e6:.1f} MB" if total else "size unknown"
            resume = f", resuming at {done / 1e6:.1f} MB" if done else ""
            print(f"downloading {label} ({size}{resume})", file=sys.stderr)

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def _open(url: str, offset: int, timeout: float) -> Any:
    headers = {"User-Agent": "translate-datasets"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        if exc.code == 416 and offset:  # nothing after offset: the part file is complete
            return None
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"{url}: cannot connect ({reason}); check the network, or use "
            "translate datasets demo for a synthetic set that needs none"
        ) from None


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    progress: bool | None = None,
    timeout: float = 30.0,
) -> str:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), check ``sha256`` when given, and
    return the file's SHA-256. A failed check removes the partial file (``DataError``); an
    interrupted transfer keeps it for the next call to resume (``DataError``)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, offset, timeout)
    digest = hashlib.sha256()
    total: int | None = offset
    if response is not None:
        if offset and response.status != 206:  # Range ignored: start again
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
    if offset:
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    done = offset
    try:
        mode = "ab" if offset else "wb"
        with _Bar(dest.name, total, done, progress) as bar, open(part, mode) as f:
            while response is not None:
                block = response.read(CHUNK)
                if not block:
                    break
                f.write(block)
                digest.update(block)
                done += len(block)
                bar.advance(len(block))
    except (OSError, http.client.HTTPException) as exc:
        raise DataError(
            f"{url}: download interrupted after {done} of {total or '?'} bytes ({exc}); "
            "run the same command again to resume"
        ) from None
    finally:
        if response is not None:
            response.close()
    if total is not None and done < total:
        raise DataError(
            f"{url}: download interrupted after {done} of {total} bytes (connection closed); "
            "run the same command again to resume"
        )
    got = digest.hexdigest()
    if sha256 is not None and got != sha256.lower():
        part.unlink(missing_ok=True)
        raise DataError(
            f"{dest.name}: checksum mismatch (sha256 {got[:12]}..., expected {sha256[:12]}...); "
            "the download was removed"
        )
    os.replace(part, dest)
    return got


def _unpack(archive: Path, into: Path) -> None:
    """Extract ``archive`` (.tar, .tar.gz, .zip) into the empty folder ``into``; members that
    would land outside it (absolute paths, ``..``, links out) are refused."""
    name = archive.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            root = into.resolve()
            for member in z.namelist():
                if not (into / member).resolve().is_relative_to(root):
                    raise DataError(f"{archive.name}: member {member!r} leaves the folder")
            z.extractall(into)
    else:
        with tarfile.open(archive) as t:
            t.extractall(into, filter="data")


def fetch(
    name: str | DatasetEntry,
    *,
    root: Path | None = None,
    sha256: str | None = None,
    force: bool = False,
    progress: bool | None = None,
) -> Path:
    """Download and unpack dataset ``name`` into ``root`` (default ``datasets_dir()``);
    returns its folder. An already fetched dataset is returned as it is unless ``force``."""
    entry = name if isinstance(name, DatasetEntry) else find_dataset(name)
    root = Path(root) if root is not None else datasets_dir()
    target = root / entry.name
    if target.is_dir() and not force:
        return target
    archive = root / "archives" / entry.archive
    recorded = archive.with_name(archive.name + ".sha256")
    expected = sha256 or entry.sha256
    if expected is None and recorded.is_file():
        expected = recorded.read_text().split()[0]
    if archive.is_file():  # downloaded before, not unpacked: check it all the same
        got = sha256_file(archive)
        if expected is not None and got != expected.lower():
            archive.unlink()
            raise DataError(
                f"{archive.name}: checksum mismatch (sha256 {got[:12]}..., expected "
                f"{expected[:12]}...); the file was removed"
            )
    else:
        got = download(entry.url, archive, sha256=expected, progress=progress)
    if not recorded.is_file():
        atomic_write_text(recorded, f"{got}  {entry.archive}\n")
    tmp = root / f".{entry.name}.unpacking-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        try:
            _unpack(archive, tmp)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
            archive.unlink()
            raise DataError(f"{archive.name}: not a readable archive ({exc}); removed") from None
        inner = list(tmp.iterdir())
        source = inner[0] if len(inner) == 1 and inner[0].is_dir() else tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(source, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    archive.unlink()
    return target
