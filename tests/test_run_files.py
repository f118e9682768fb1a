"""``translate run`` on the files people really have: each row of the real-world matrix
(README, Errors) through the CLI, on files made here; asserting the exit code, the one line
and that no input or earlier output changed."""

from __future__ import annotations

import errno
import io
import os
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from tests.conftest import TINY_PIX2PIX_OPTIONS
from translate.cli.main import app
from translate.engine.loop import prepare
from translate.testing import make_paired

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny pix2pix run (inputs padded to multiples of 32), one step."""
    root = tmp_path_factory.mktemp("p2p")
    data = make_paired(root / "data", n_train=2, n_val=1)
    opts = dict(TINY_PIX2PIX_OPTIONS, max_steps=1, progress=False, run_dir=root / "run")
    prepare("pix2pix", data=data, **opts).run()
    return root / "run"


def photo(h: int = 24, w: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def snapshot(*paths: Path) -> dict[Path, bytes]:
    """Every file's bytes (files given, and under folders given): compared before and after."""
    files = [p for f in paths for p in ([f] if f.is_file() else sorted(f.rglob("*")))]
    return {p: p.read_bytes() for p in files if p.is_file()}


def dead_pid() -> int:
    """The id of a process that has exited."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def run(*args: str | Path) -> object:
    """``translate run ARGS``; every input and the checkpoint (any existing path given, other
    than the ``-o`` target) must be byte for byte unchanged afterwards, whatever happened."""
    tokens = [str(a) for a in args]
    out = tokens[tokens.index("-o") + 1] if "-o" in tokens else None
    watched = [Path(t) for t in tokens if t != out and not t.startswith("-") and Path(t).exists()]
    before = snapshot(*watched)
    result = runner.invoke(app, ["run", *tokens])
    assert snapshot(*watched) == before, "an input or the checkpoint changed"
    return result


def error_line(result: object, *needles: str, code: int = 2) -> str:
    """The single ``error:`` line (exit code ``code``, no traceback) containing ``needles``."""
    assert result.exit_code == code, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def png16(array: np.ndarray) -> bytes:
    """A 16-bit PNG of ``array`` (uint16, (H, W) grayscale or (H, W, 3) RGB) written by hand:
    PIL cannot write 16-bit RGB; it reads 16-bit grayscale as mode I;16."""
    h, w = array.shape[:2]
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    colour_type = 2 if array.ndim == 3 else 0
    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))


def bomb_png(side: int = 100_000) -> bytes:
    """A PNG whose header declares side x side pixels (a few dozen bytes on disk)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def truncated_jpeg(path: Path, seed: int = 0) -> Path:
    buf = io.BytesIO()
    Image.fromarray(photo(64, 64, seed)).save(buf, "JPEG", quality=90)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


# ---------------------------------------------------------------------------- names
def test_run_into_the_input_folder_never_overwrites_an_input(run_dir: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(photo()).save(photos / "good.png")
    before = snapshot(photos)
    ran = run(photos, "-c", run_dir, "-o", photos)
    assert ran.exit_code == 0, ran.output
    assert (photos / "good_out.png").is_file()  # the default suffix next to inputs
    assert snapshot(photos) == {**before, photos / "good_out.png": ANY_BYTES}
    assert before[photos / "good.png"] == (photos / "good.png").read_bytes()

    # an explicit empty suffix would write over the input: refused, nothing changed
    before = snapshot(photos)
    error_line(run(photos, "-c", run_dir, "-o", photos, "--suffix", ""), "good.png", "input")
    assert snapshot(photos) == before
    # so is --out naming the input file itself
    good = photos / "good.png"
    error_line(run(good, "-c", run_dir, "-o", good), "good.png", "refusing to overwrite")
    assert snapshot(photos) == before


class _Any(bytes):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, bytes)

    __hash__ = bytes.__hash__


ANY_BYTES = _Any()


def test_same_stem_different_formats_get_different_names(run_dir: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(photo(seed=1)).save(photos / "a.png")
    Image.fromarray(photo(seed=2)).save(photos / "a.jpg")
    out = tmp_path / "out"
    ran = run(photos, "-c", run_dir, "-o", out)
    assert ran.exit_code == 0, ran.output
    assert sorted(p.name for p in out.iterdir()) == ["a_jpg.png", "a_png.png"]
    assert (out / "a_jpg.png").read_bytes() != (out / "a_png.png").read_bytes()

    # --ext auto keeps each input's format (the names no longer collide); --suffix is added
    auto = tmp_path / "auto"
    ran = run(photos, "-c", run_dir, "-o", auto, "--ext", "auto", "--suffix", "x2")
    assert ran.exit_code == 0, ran.output
    assert sorted(p.name for p in auto.iterdir()) == ["a_x2.jpg", "a_x2.png"]
    assert Image.open(auto / "a_x2.jpg").format == "JPEG"
    webp = tmp_path / "webp"
    assert run(photos / "a.png", "-c", run_dir, "-o", webp, "--ext", "webp").exit_code == 0
    assert Image.open(webp / "a.webp").format == "WEBP"
    error_line(run(photos, "-c", run_dir, "-o", out, "--ext", "gif"), "--ext", "'gif'")


def test_two_inputs_with_one_output_name_are_refused_before_anything_is_written(
    run_dir: Path, tmp_path: Path
) -> None:
    """x/a.png and y/a.png would both become out/a.png (and, disambiguated by extension, both
    a_png.png): one error line naming both, and nothing written (neither overwrites the other)."""
    for folder, seed in (("x", 1), ("y", 2)):
        (tmp_path / folder).mkdir()
        Image.fromarray(photo(seed=seed)).save(tmp_path / folder / "a.png")
    out = tmp_path / "out"
    result = run(tmp_path / "x" / "a.png", tmp_path / "y" / "a.png", "-c", run_dir, "-o", out)
    line = error_line(result, "would be written here", str(tmp_path / "x" / "a.png"))
    assert str(tmp_path / "y" / "a.png") in line
    assert not out.exists() or not any(out.iterdir())


# ---------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("shape", [(24, 40), (24, 40, 3)], ids=["grey", "rgb"])
def test_16bit_png_is_scaled_not_clipped(
    run_dir: Path, tmp_path: Path, shape: tuple[int, ...]
) -> None:
    values = np.random.default_rng(3).integers(0, 256, shape).astype(np.uint16)
    (tmp_path / "deep.png").write_bytes(png16(values * 257))  # 16-bit, full range
    Image.fromarray(values.astype(np.uint8)).save(tmp_path / "flat.png")  # the same, 8-bit
    out = tmp_path / "out"
    ran = run(tmp_path / "deep.png", tmp_path / "flat.png", "-c", run_dir, "-o", out)
    assert ran.exit_code == 0, ran.output
    # the model saw the same picture: before the fix it saw an (almost) all-white image
    deep, flat = (np.asarray(Image.open(out / f"{n}.png")) for n in ("deep", "flat"))
    assert np.array_equal(deep, flat)


def test_16bit_big_endian_tiff_is_scaled_not_clipped(run_dir: Path, tmp_path: Path) -> None:
    """A 16-bit big-endian TIFF (PIL mode I;16B) is scaled by 1/257 like a 16-bit PNG: the model
    sees the same picture as from the 8-bit file."""
    from translate.data.images import load_rgb

    values = np.random.default_rng(4).integers(0, 256, (24, 40)).astype(np.uint16)
    deep = Image.frombytes("I;16B", (40, 24), (values * 257).astype(">u2").tobytes())
    deep.save(tmp_path / "deep.tif")
    with Image.open(tmp_path / "deep.tif") as check:
        assert check.mode == "I;16B"
    Image.fromarray(values.astype(np.uint8)).save(tmp_path / "flat.png")
    assert np.array_equal(np.asarray(load_rgb(tmp_path / "deep.tif"))[..., 0], values)
    out = tmp_path / "out"
    ran = run(tmp_path / "deep.tif", tmp_path / "flat.png", "-c", run_dir, "-o", out)
    assert ran.exit_code == 0, ran.output
    deep_out, flat_out = (np.asarray(Image.open(out / f"{n}.png")) for n in ("deep", "flat"))
    assert np.array_equal(deep_out, flat_out)


def test_the_service_decodes_like_run(tmp_path: Path) -> None:
    """EXIF orientation and 16-bit scaling come from the one shared decoder."""
    from translate.inference.image_io import pil_to_tensor
    from translate.serve.images import decode

    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(photo(24, 40)).save(buf, "JPEG", exif=exif)
    assert decode(buf.getvalue()).size == (24, 40)
    # single-channel images stay as decoded (label ids); the RGB conversion that plugins'
    # preprocess uses scales 16 bits to 8
    grey = np.full((4, 5), 40000, np.uint16)
    assert np.asarray(pil_to_tensor([decode(png16(grey))])).max() == pytest.approx(
        round(40000 / 257) / 127.5 - 1
    )


def test_exif_orientation_is_applied(run_dir: Path, tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display (a phone held upright)
    Image.fromarray(photo(24, 40)).save(tmp_path / "phone.jpg", quality=95, exif=exif)
    upright = ImageOps.exif_transpose(Image.open(tmp_path / "phone.jpg"))
    upright.save(tmp_path / "upright.png")
    out = tmp_path / "out"
    ran = run(tmp_path / "phone.jpg", tmp_path / "upright.png", "-c", run_dir, "-o", out)
    assert ran.exit_code == 0, ran.output
    rotated = Image.open(out / "phone.png")
    assert rotated.size == (24, 40)  # upright, not sideways
    assert np.array_equal(np.asarray(rotated), np.asarray(Image.open(out / "upright.png")))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_kept_and_resized_bicubic(tmp_path: Path, mode: str) -> None:
    rgb = Image.fromarray(photo(10, 12))
    alpha = Image.fromarray(np.tile(np.linspace(0, 255, 12, dtype=np.uint8), (10, 1)), "L")
    image = rgb.convert("L" if mode == "LA" else "RGB")
    image.putalpha(alpha)
    image.save(tmp_path / "logo.png")
    out = tmp_path / "out"
    ran = run(tmp_path / "logo.png", "-o", out)  # the shipped x4 super-resolution model
    assert ran.exit_code == 0, ran.output
    result = Image.open(out / "logo.png")
    assert result.mode == "RGBA" and result.size == (48, 40)
    want = np.asarray(alpha.resize((48, 40), Image.Resampling.BICUBIC))
    assert np.array_equal(np.asarray(result.getchannel("A")), want)

    # a format without alpha says so in one line and writes the colours
    ran = run(tmp_path / "logo.png", "-o", out, "--ext", "jpg")
    assert ran.exit_code == 0, ran.output
    notes = [line for line in ran.output.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "transparency dropped" in notes[0]
    assert Image.open(out / "logo.jpg").mode == "RGB"


def test_outscale_resizes_super_resolution_output(run_dir: Path, tmp_path: Path) -> None:
    Image.fromarray(photo(10, 12)).save(tmp_path / "small.png")
    out = tmp_path / "out"
    ran = run(tmp_path / "small.png", "-o", out, "--outscale", "2.5")
    assert ran.exit_code == 0, ran.output
    assert Image.open(out / "small.png").size == (30, 25)
    other = tmp_path / "other"
    refused = run(tmp_path / "small.png", "-c", run_dir, "-o", other, "--outscale", "2")
    error_line(refused, "--outscale", "scale is 1")
    assert not other.exists()  # a refused run creates no output folder
    error_line(run(tmp_path / "small.png", "-o", other, "--outscale", "0"), "--outscale", "above 0")


# ---------------------------------------------------------------------------- bad files
def test_bomb_header_is_one_line(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "bomb.png").write_bytes(bomb_png())
    error_line(
        run(tmp_path / "bomb.png", "-c", run_dir, "-o", tmp_path / "out"), "bomb.png", "too large"
    )


def test_bad_files_in_a_folder_are_listed_and_the_rest_translated(
    run_dir: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(photo(seed=i)).save(photos / f"good{i}.png")
    (photos / "bomb.png").write_bytes(bomb_png())  # bad header
    truncated_jpeg(photos / "cut.jpg")  # good header, bad body: fails mid-job
    (photos / "text.png").write_text("not an image")
    before = snapshot(photos)
    out = tmp_path / "out"
    ran = run(photos, "-c", run_dir, "-o", out)
    line = error_line(ran, "3 of 6 inputs failed", "bomb.png", "cut.jpg", "text.png")
    assert "good" not in line
    assert sorted(p.name for p in out.iterdir()) == ["good0.png", "good1.png", "good2.png"]
    assert snapshot(photos) == before


# ---------------------------------------------------------------------------- outputs
def test_output_under_a_regular_file_is_one_line(run_dir: Path, tmp_path: Path) -> None:
    Image.fromarray(photo()).save(tmp_path / "in.png")
    (tmp_path / "file").write_text("x")
    error_line(
        run(tmp_path / "in.png", "-c", run_dir, "-o", tmp_path / "file" / "out"), "file", "Errno"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_one_line(run_dir: Path, tmp_path: Path) -> None:
    Image.fromarray(photo()).save(tmp_path / "in.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        error_line(
            run(tmp_path / "in.png", "-c", run_dir, "-o", locked), "locked", "Permission denied"
        )
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EACCES])
def test_failed_write_leaves_no_partial_file_and_keeps_the_earlier_output(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int
) -> None:
    Image.fromarray(photo()).save(tmp_path / "in.png")
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".in.png.tmp-{dead_pid()}"  # what a run killed mid-write leaves
    stale.write_bytes(b"\x89PNG")
    assert run(tmp_path / "in.png", "-c", run_dir, "-o", out).exit_code == 0
    assert not stale.exists()
    before = snapshot(out, tmp_path)
    real_save = Image.Image.save

    def full_disk(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        real_save(self, fp, *args, **kwargs)  # a partial file exists when the disk fills
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(Image.Image, "save", full_disk)
    code = 74 if err == errno.ENOSPC else 2  # a full disk has its own exit code
    ran = run(tmp_path / "in.png", "-c", run_dir, "-o", out)
    line = error_line(ran, str(out / "in.png"), code=code)
    assert os.strerror(err) in line
    assert snapshot(out, tmp_path) == before  # no temporary, the earlier output unchanged


# ---------------------------------------------------------------------------- options
def test_mistyped_options_suggest_core_and_plugin_options(run_dir: Path, tmp_path: Path) -> None:
    Image.fromarray(photo()).save(tmp_path / "in.png")
    error_line(
        run(tmp_path / "in.png", "-c", run_dir, "--tile", "512"),
        "--tile",
        "did you mean --tile-size",
    )
    error_line(
        run(tmp_path / "in.png", "-c", run_dir, "--test-time-dropot"),
        "did you mean --test-time-dropout",
    )
    ran = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "m.onnx"), "--fp-16"])
    error_line(ran, "did you mean --fp16")
    ran = runner.invoke(app, ["train", "pix2pix", "--data", str(tmp_path), "--lamda-l1", "5"])
    error_line(ran, "unknown option --lamda-l1; did you mean --lambda-l1")


def test_tiled_image_shows_a_progress_bar_on_a_terminal(run_dir: Path, tmp_path: Path) -> None:
    """Under a pseudo-terminal, a large tiled image shows a bar over its tiles with an ETA."""
    import pty
    import sys

    Image.fromarray(photo(128, 160)).save(tmp_path / "big.png")
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TRANSLATE_TEST_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "translate.cli", "run", str(tmp_path / "big.png"), "-c",
         str(run_dir), "-o", str(tmp_path / "out"), "--tile-size", "64", "--tile-overlap", "32"],
        stdout=subprocess.DEVNULL, stderr=follower, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    shown = b"".join(chunks).decode(errors="replace")
    assert proc.wait(timeout=120) == 0, shown
    assert "tiles" in shown and "eta" in shown, shown[-2000:]
    assert (tmp_path / "out" / "big.png").is_file()
