"""Where ``translate run`` writes: names that never overwrite an input or each other, the
output format (``--ext``), and the atomic write.

Naming (stated in ``translate run --help``): ``<out>/<stem>[_<suffix>].<ext>``. The suffix
defaults to none when writing to another folder and to ``out`` when the output folder holds
an input (``translate run DIR -o DIR`` writes ``good_out.png`` next to ``good.png``); ``--ext``
is PNG by default, ``auto`` keeps each input's format. Inputs that would still get one name
(``a.png`` and ``a.jpg``) keep their input extension in it (``a_png.png``, ``a_jpg.png``).
A name that is still taken by two inputs, or that is an input file, is refused up front with
one line: nothing is translated, nothing is overwritten.
"""

from __future__ import annotations

import errno
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from translate.atomic import atomic_path, describe_os_error, remove_stale, temp_name
from translate.errors import ConfigError, OutputError

#: ``--ext`` choices; ``auto`` keeps the input's format.
EXT_CHOICES = ("auto", "png", "jpg", "webp")

#: PIL format of each output extension (``auto`` may keep any format PIL reads and writes).
FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}

#: Formats that keep an alpha channel.
ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF"})

DEFAULT_FOLDER = Path("translated")
SUFFIX_NEXT_TO_INPUTS = "out"  # Real-ESRGAN's default suffix


@dataclass(frozen=True)
class Output:
    """One input file and where its result goes (``format``: PIL's name)."""

    source: Path
    path: Path
    format: str


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def names_folder(out: str | os.PathLike | None) -> bool:
    """Whether an output name as typed ends in a path separator (``out/multi.tif/``): the user
    means a folder, whatever its suffix (``Path`` drops the trailing slash)."""
    text = os.fspath(out) if out is not None else ""
    return text.endswith(("/", os.sep))


def _single_file_target(
    files: Sequence[Path], out: Path | None, folder: bool = False
) -> Path | None:
    """``out`` when it names one image file for a single input (by its suffix, and not
    written as a folder), else None."""
    if folder or out is None or len(files) != 1:
        return None
    if out.suffix.lower() in FORMATS and not out.is_dir():
        return out
    return None


def plan_outputs(
    files: Sequence[Path],
    out: Path | None,
    *,
    suffix: str | None = None,
    ext: str | None = None,
    out_is_folder: bool = False,
) -> list[Output]:
    """The output of each input (see the module docstring); refuses names that are inputs or
    that two inputs share (``OutputError``), before anything is translated. ``ext`` None: PNG
    (or the suffix of ``out`` naming one file). ``out_is_folder``: ``out`` is a folder even
    when its name has an image suffix (typed with a trailing slash: ``names_folder``)."""
    if ext is not None and ext not in EXT_CHOICES:
        raise ConfigError(f"--ext: {ext!r} is not one of {', '.join(EXT_CHOICES)}")
    single = _single_file_target(files, out, out_is_folder)
    if single is not None:
        fmt = FORMATS[single.suffix.lower()]
        if ext not in (None, "auto") and FORMATS["." + ext] != fmt:
            raise ConfigError(f"--ext {ext}: --out {single} names a {fmt} file")
        plan = [Output(files[0], single, fmt)]
    else:
        folder = out if out is not None else DEFAULT_FOLDER
        if suffix is None:
            beside = folder.exists() and any(_same_file(folder, f.parent) for f in files)
            suffix = SUFFIX_NEXT_TO_INPUTS if beside else ""
        tail = f"_{suffix}" if suffix else ""
        ext = ext or "png"

        def target(source: Path, tag: str = "") -> Output:
            extension = source.suffix.lower() if ext == "auto" else "." + ext
            return Output(source, folder / f"{source.stem}{tag}{tail}{extension}", "")

        by_name: dict[Path, list[Path]] = defaultdict(list)
        for source in files:
            by_name[target(source).path].append(source)
        plan = []
        for source in files:
            chosen = target(source)
            if len(by_name[chosen.path]) > 1:  # a.png and a.jpg: keep the input extension
                chosen = target(source, "_" + source.suffix.lower().lstrip("."))
            plan.append(Output(source, chosen.path, FORMATS[chosen.path.suffix.lower()]))
    seen: dict[Path, Path] = {}
    for item in plan:
        key = item.path.resolve()
        if key in seen:
            raise OutputError(
                f"{item.path}: both {seen[key]} and {item.source} would be written here; "
                "translate them separately or rename one"
            )
        seen[key] = item.source
        if item.path.exists():
            clash = next((f for f in files if _same_file(item.path, f)), None)
            if clash is not None:
                raise OutputError(
                    f"{item.path}: is the input {clash}; refusing to overwrite it "
                    "(give another --out or a --suffix)"
                )
    return plan


def prepare_folder(folder: Path) -> None:
    """Check that ``folder`` (or, when it does not exist yet, its nearest existing parent,
    where it will be created at the first write) takes a file, before any translation is
    spent; remove temporaries that killed runs left in it. Failures name the path
    (``OutputError``); nothing is created."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        probe = temp_name(existing / "write-check")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write ({describe_os_error(exc)})") from exc
    remove_stale(folder)


def save_output(image: Image.Image, output: Output) -> str | None:
    """Write ``image`` atomically (a temporary name, then rename: a failure leaves no partial
    file and the previous file unchanged). Returns a note when something could not be kept
    (alpha in a JPEG)."""
    note = None
    if image.mode in ("RGBA", "LA") and output.format not in ALPHA_FORMATS:
        note = (
            f"{output.path}: transparency dropped ({output.format} has none; "
            "--ext png or webp keeps it)"
        )
        image = image.convert("RGB")
    params = {"quality": 95} if output.format in ("JPEG", "WEBP") else {}
    with atomic_path(output.path) as tmp:
        image.save(tmp, format=output.format, **params)
    return note
