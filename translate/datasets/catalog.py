"""The datasets ``translate datasets fetch`` knows, at their official release locations.

pix2pix's paired sets (Isola et al. 2017) and CycleGAN's unpaired sets (Zhu et al. 2017) are the
archives their authors publish at Berkeley (the URLs their download scripts use); the DIV2K
super-resolution sets are published by ETH Zurich (Agustsson & Timofte 2017), and the Set5 /
Set14 / B100 / Urban100 benchmarks as the archive EDSR's authors publish (Lim et al. 2017).
Sizes are not listed here: the server states each archive's size when the download starts.

No checksum is published for these archives, so none is built in: the first download records
its SHA-256 in the cache (``<archive>.sha256``) and every later download of the same archive is
checked against it (``--sha256`` checks against a value you trust instead). An entry whose
``sha256`` is set is checked against it always.

Licences: every set here is for non-commercial research use under its authors' terms (CMP
Facades, Cityscapes, Google Maps imagery, ImageNet/Flickr photos, WikiArt paintings, BSDS):
fetching them is the user's agreement with those terms; translate redistributes none.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from translate.errors import ConfigError

PIX2PIX = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{}.tar.gz"
CYCLEGAN = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{}.zip"
DIV2K = "http://data.vision.ee.ethz.ch/cvl/DIV2K/{}.zip"


@dataclass(frozen=True)
class DatasetEntry:
    """One downloadable dataset: ``name`` (what ``fetch`` takes), its archive ``url``, the
    layout it unpacks to (``kind``: paired A|B, unpaired trainA/trainB, or HR images for
    super-resolution), what it holds and how to train on it."""

    name: str
    url: str
    kind: str
    what: str
    train: str
    sha256: str | None = None

    @property
    def archive(self) -> str:
        """The archive's file name (the URL's last part)."""
        return self.url.rsplit("/", 1)[-1]


def _pix2pix(name: str, what: str, direction: str) -> DatasetEntry:
    return DatasetEntry(
        f"{name}", PIX2PIX.format(name), "paired", what,
        f"translate train pix2pix --data DIR/{name} --direction {direction}",
    )  # fmt: skip


def _cyclegan(name: str, what: str) -> DatasetEntry:
    return DatasetEntry(
        f"{name}-cyclegan" if name in ("facades", "maps", "cityscapes") else name,
        CYCLEGAN.format(name), "unpaired", what,
        f"translate train cyclegan --domain-a DIR/{name}/trainA --domain-b DIR/{name}/trainB",
    )  # fmt: skip


CATALOG: tuple[DatasetEntry, ...] = (
    _pix2pix("facades", "CMP Facades: 400 train / 100 val / 106 test, photo|label map", "b2a"),
    _pix2pix("cityscapes", "Cityscapes: 2975 train / 500 val, photo|label map", "b2a"),
    _pix2pix("maps", "Google Maps: 1096 train / 1098 val, aerial photo|map", "a2b"),
    _pix2pix("edges2shoes", "UT Zappos50K shoes: edges|photo (about 50k pairs)", "a2b"),
    _pix2pix("edges2handbags", "Amazon handbags: edges|photo (about 137k pairs)", "a2b"),
    _pix2pix("night2day", "Transient Attributes webcams: night|day (about 17k pairs)", "a2b"),
    _cyclegan("horse2zebra", "ImageNet horses (1067) and zebras (1334), 256x256"),
    _cyclegan("apple2orange", "ImageNet apples and oranges, 256x256"),
    _cyclegan("summer2winter_yosemite", "Flickr Yosemite photos, summer and winter"),
    _cyclegan("monet2photo", "Monet paintings (WikiArt) and Flickr landscapes"),
    _cyclegan("cezanne2photo", "Cezanne paintings (WikiArt) and Flickr landscapes"),
    _cyclegan("ukiyoe2photo", "Ukiyo-e prints (WikiArt) and Flickr landscapes"),
    _cyclegan("vangogh2photo", "Van Gogh paintings (WikiArt) and Flickr landscapes"),
    _cyclegan("iphone2dslr_flower", "Flickr flower photos: iPhone and DSLR (shallow depth)"),
    _cyclegan("facades", "CMP Facades as two unpaired folders (photos, label maps)"),
    _cyclegan("maps", "Google Maps as two unpaired folders (aerial photos, maps)"),
    _cyclegan("cityscapes", "Cityscapes as two unpaired folders (photos, label maps)"),
    DatasetEntry(
        "div2k-train",
        DIV2K.format("DIV2K_train_HR"),
        "superres",
        "DIV2K: 800 2K-resolution training images (HR)",
        "translate train superres --data DIR/DIV2K_train_HR --scale 4",
    ),
    DatasetEntry(
        "div2k-valid",
        DIV2K.format("DIV2K_valid_HR"),
        "superres",
        "DIV2K: 100 2K-resolution validation images (HR)",
        "translate eval superres -c RUN --data DIR/DIV2K_valid_HR",
    ),
    DatasetEntry(
        "sr-benchmarks",
        "https://cv.snu.ac.kr/research/EDSR/benchmark.tar",
        "superres",
        "Set5, Set14, B100, Urban100 (HR and bicubic LR), as published with EDSR",
        "translate eval superres -c RUN --data DIR/benchmark/Set5/HR",
    ),
)


def find_dataset(name: str) -> DatasetEntry:
    """The entry called ``name``; an unknown name is a one-line ``ConfigError`` with a
    suggestion and the list."""
    by_name = {e.name: e for e in CATALOG}
    if name in by_name:
        return by_name[name]
    close = difflib.get_close_matches(name, list(by_name), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(
        f"unknown dataset {name!r}; {hint}available: {', '.join(by_name)} "
        "(or translate datasets demo for a synthetic set)"
    )
