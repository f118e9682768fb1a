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

    from translate.data.unpaired import load_domains
    from translate.evaluation import EvalItem, EvalSet
    from translate.metrics import l1

    names, real = load_domains(folder)
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
