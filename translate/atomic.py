"""Atomic writes: build a file or folder under a temporary name, fsync, rename into place.

One helper for everything translate writes that a user keeps: translated images
(``translate run``), checkpoint folders and their ``LATEST`` pointer. A failure (read-only
folder, a path under a regular file, a full disk) leaves no partial file and never touches the
previous version; it is raised as one ``OutputError`` line naming the path and the OS error
(``DiskFull``, exit code 74, when the disk or quota is full). Libraries that write through
their own C code (safetensors, ``torch.save`` to a path) report a full disk as their own
exception types: writers here hand them a Python file object, so the ``OSError`` reaches us.

Temporaries are named ``.<name>.tmp-<pid>`` next to their target. A process killed with
``kill -9`` cannot remove its own, so ``remove_stale`` deletes those whose process is gone
(called when a run starts or resumes, and before ``translate run`` writes into a folder).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from translate.errors import DiskFull, OutputError

#: ``.<name>.tmp-<pid>`` (this module), and ``.tmp-<name>-<pid>`` (checkpoints before 0.2)
_STALE = (
    re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)$"),
    re.compile(r"^\.(?:tmp|old)-(?P<name>.+)-(?P<pid>\d+)$"),
)


def temp_name(path: Path, kind: str = "tmp") -> Path:
    """The temporary sibling of ``path`` owned by this process."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}")


def default_file_mode() -> int:
    """0666 less the process umask: what ``open()`` would have created (``safetensors`` and
    ``tempfile`` create 0600 files, which a service account in the group cannot read)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    if path.is_dir():
        for child in path.iterdir():
            _fsync_tree(child)
        fsync_dir(path)
    else:
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


#: OS errors that mean "no room left" (a full disk, an exhausted quota): ``DiskFull``.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def write_error(path: Path, exc: OSError) -> OutputError:
    """The one-line error for a failed write of ``path``: ``DiskFull`` (exit 74) when the disk
    or quota is full, else ``OutputError`` (exit 2)."""
    cls = DiskFull if exc.errno in NO_SPACE else OutputError
    return cls(f"{path}: cannot write ({describe_os_error(exc)})")


def describe_os_error(exc: OSError) -> str:
    """``[Errno 28] No space left on device`` without the file name (the caller names it)."""
    if exc.errno is not None and exc.strerror:
        return f"[Errno {exc.errno}] {exc.strerror}"
    return str(exc) or type(exc).__name__


@contextlib.contextmanager
def atomic_path(path: Path, *, folder: bool = False, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to (a file, or with ``folder`` an
    empty folder to fill); on success it is fsynced and renamed over ``path``, replacing a
    previous version only at that moment. On any error the temporary is removed and the
    previous ``path`` is left as it was; ``OSError`` becomes ``OutputError``."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
        if folder:
            tmp.mkdir()
        yield tmp
        if not folder:
            os.chmod(tmp, default_file_mode())
        else:
            for child in tmp.iterdir():
                if child.is_file():
                    os.chmod(child, default_file_mode())
        if fsync:
            _fsync_tree(tmp)
        if folder and path.exists():  # a folder cannot be renamed over a non-empty one
            old = temp_name(path, "old")
            _remove(old)
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
        if fsync:
            fsync_dir(path.parent)
    except OSError as exc:
        _remove(tmp)
        raise write_error(path, exc) from exc
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale(folder: Path) -> list[Path]:
    """Delete ``.<name>.tmp-<pid>`` / ``.<name>.old-<pid>`` entries in ``folder`` whose process
    no longer runs (left by ``kill -9`` or a power cut); returns what was removed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _STALE[0].match(entry.name) or _STALE[1].match(entry.name)
        if match and not _alive(int(match["pid"])):
            _remove(entry)
            removed.append(entry)
    return removed
