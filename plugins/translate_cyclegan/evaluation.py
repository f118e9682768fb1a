"""CycleGAN's evaluation protocol (``translate eval``, ``--eval-every``): FID/KID of each
direction's translations against the other domain's real images, and per image the
cycle-reconstruction L1 (Zhu et al. 2017, Sec. 5.1 uses FCN scores and AMT studies; we use
distribution metrics and the reconstruction error, which need no labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def evaluate(models: Any, folder: Path) -> Any:
    """Per direction: FID/KID of the translations against the real images of the other
    domain; per image: cycle-reconstruction L1 (G_B(G_A(a)) vs a, and the reverse)."""
    import numpy as np
    from PIL import Image

    from translate.data.images import list_images, load_rgb
    from translate.data.unpaired import find_domains
    from translate.errors import DataError
    from translate.evaluation import EvalItem, EvalSet
    from translate.metrics import l1

    domains = next(
        (d for split in ("test", "val", "train") if (d := find_domains(folder, split))),
        None,
    )
    if domains is None:
        raise DataError(f"{folder}: no testA/testB (or A/, B/) folders to evaluate")
    files = {side: list_images(d) for side, d in zip("AB", domains, strict=True)}
    real = {side: [load_rgb(p) for p in paths] for side, paths in files.items()}
    names = {side: [p.name for p in paths] for side, paths in files.items()}
    forward = {"A": models.open(direction="a2b"), "B": models.open(direction="b2a")}
    items, fakes = [], {}
    for side, other in (("A", "B"), ("B", "A")):
        fake = [im.convert("RGB") for im in forward[side](real[side])]
        rec = [im.convert("RGB") for im in forward[other](fake)]
        fakes[side] = fake
        for name, x, y, r in zip(names[side], real[side], fake, rec, strict=True):
            r = r if r.size == x.size else r.resize(x.size, Image.Resampling.BICUBIC)
            metric = {"cycle L1": l1(np.asarray(r), np.asarray(x))}
            shown = {f"real {side}": x, f"fake {other}": y, f"reconstructed {side}": r}
            items.append(EvalItem(f"{side}/{name}", shown, metric))
    return EvalSet(
        items, distributions={"A2B": (fakes["A"], real["B"]), "B2A": (fakes["B"], real["A"])}
    )
