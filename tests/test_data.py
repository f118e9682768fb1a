"""Paired layouts, aligned augmentation, resumable sampling, image decoding."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from translate.data.images import image_size, load_rgb
from translate.data.paired import PairedDataset, split_folder
from translate.data.sampler import ResumableSampler
from translate.errors import DataError
from translate.testing import make_paired


def test_side_by_side_and_folder_layouts_agree(tmp_path: Path) -> None:
    side = make_paired(tmp_path / "side", n_train=3, n_val=0)
    folders = tmp_path / "folders"
    for path in sorted((side / "train").iterdir()):
        ab = np.asarray(Image.open(path))
        for name, half in (("A", ab[:, :32]), ("B", ab[:, 32:])):
            (folders / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(half).save(folders / name / path.name)
    a = PairedDataset(side / "train", load_size=32, crop_size=32, train=False)
    b = PairedDataset(split_folder(folders, "train"), load_size=32, crop_size=32, train=False)
    assert len(a) == len(b) == 3
    for i in range(3):
        assert torch.equal(a[i]["input"], b[i]["input"])
        assert torch.equal(a[i]["target"], b[i]["target"])


def test_direction_swaps_input_and_target(tmp_path: Path) -> None:
    root = make_paired(tmp_path / "d", n_train=2, n_val=0)
    a2b = PairedDataset(root / "train", direction="a2b", load_size=32, crop_size=32, train=False)
    b2a = PairedDataset(root / "train", direction="b2a", load_size=32, crop_size=32, train=False)
    assert torch.equal(a2b[0]["input"], b2a[0]["target"])
    assert torch.equal(a2b[0]["target"], b2a[0]["input"])


def test_augmentation_is_identical_for_both_images_and_seeded(tmp_path: Path) -> None:
    """A|B with identical halves stays identical after resize, random crop and flip."""
    folder = tmp_path / "same"
    folder.mkdir()
    rng = np.random.default_rng(0)
    half = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(np.concatenate([half, half], 1)).save(folder / "x.png")
    ds = PairedDataset(folder, load_size=48, crop_size=32, flip=True, train=True)
    crops = []
    for seed in range(6):
        item = ds[(0, seed)]
        assert item["input"].shape == (3, 32, 32)
        assert torch.equal(item["input"], item["target"])
        assert torch.equal(item["input"], ds[(0, seed)]["input"])  # same seed, same crop
        crops.append(item["input"])
    assert any(not torch.equal(crops[0], c) for c in crops[1:])  # seeds differ, crops differ
    assert item["input"].min() >= -1 and item["input"].max() <= 1


def test_sampler_resumes_the_same_stream() -> None:
    full = list(islice(iter(ResumableSampler(5, seed=3)), 17))
    resumed = list(islice(iter(ResumableSampler(5, seed=3, position=7)), 10))
    assert resumed == full[7:]
    # every epoch is a permutation
    assert sorted(i for i, _ in full[:5]) == list(range(5))
    assert len({s for _, s in full}) == 17


def test_split_folders(tmp_path: Path) -> None:
    root = make_paired(tmp_path / "d", n_train=2, n_val=1)
    assert split_folder(root, "train") == root / "train"
    assert split_folder(root, "val") == root / "val"
    flat = tmp_path / "flat"
    flat.mkdir()
    assert split_folder(flat, "train") == flat
    assert split_folder(flat, "val") is None


def test_odd_width_side_by_side_is_refused(tmp_path: Path) -> None:
    Image.new("RGB", (33, 16)).save(tmp_path / "odd.png")
    with pytest.raises(DataError, match=r"odd\.png: width 33 is odd"):
        PairedDataset(tmp_path)


def test_missing_partner_is_named(tmp_path: Path) -> None:
    for side, names in (("A", ["x", "y"]), ("B", ["x"])):
        (tmp_path / side).mkdir()
        for n in names:
            Image.new("RGB", (8, 8)).save(tmp_path / side / f"{n}.png")
    with pytest.raises(DataError, match=r"y\.png: no image with the same name in .*B"):
        PairedDataset(tmp_path)


def test_rgba_and_grayscale_become_rgb(tmp_path: Path) -> None:
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    Image.new("L", (4, 4), 77).save(tmp_path / "gray.png")
    clear = np.asarray(load_rgb(tmp_path / "clear.png"))
    assert clear.shape == (4, 4, 3) and (clear == 255).all()  # transparent -> white
    assert (np.asarray(load_rgb(tmp_path / "gray.png")) == 77).all()


def test_header_size_reads_no_pixels_and_follows_exif(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Headers are read without decoding the pixels (PIL's PNG ``getexif`` would), and a
    phone photo's size is the upright one (EXIF orientation 6: width and height swap)."""
    from PIL import PngImagePlugin

    png = tmp_path / "a.png"
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(png)
    decoded = []
    real_load = PngImagePlugin.PngImageFile.load
    monkeypatch.setattr(
        PngImagePlugin.PngImageFile, "load", lambda im: decoded.append(1) or real_load(im)
    )
    assert image_size(png) == (50, 30)
    assert decoded == []
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(tmp_path / "phone.jpg", exif=exif)
    assert image_size(tmp_path / "phone.jpg") == (30, 50)
    assert load_rgb(tmp_path / "phone.jpg").size == (30, 50)
