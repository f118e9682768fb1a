"""BicycleGAN learns many answers per paired input (Zhu et al. 2017): A is a grey shape, B the
same shape in one of four colours (``tests/multimodal_shapes.py``). After a few CPU minutes,
the K = 8 samples of a held-out grey shape (codes drawn by seed) come in several colours
(nearest colour of the mean inside the shape) and keep its shape (mask IoU), and the code E
gives a red reference (``--style-from``) draws red.

Batch norm in G and D, none in E, He init (``--norm batch --encoder-norm none --init
kaiming``): with instance norm everywhere (the paper's default) flat colours lose their scale
in E and z's constant channels are normalised away in G (2 colours after 600-1500 steps). An
E without normalisation needs a scale-keeping init: under the official one (xavier, gain 0.02)
its pooled features start at std 2.5e-8 and its codes of the four colours 1e-10 apart, and E
never told red from yellow (a difference in the green channel alone): seeds 0, 1, 2 gave 3, 3, 2
of 4 references their own colour, seed 0's red gave yellow (this test failed there).

Calibrated over seeds 0-2 (2000 steps, batch 8, lr 5e-4, widths 16; 1060-1090 s of training
each on the shared 2-core machine, four jobs at once, 2026-12-07), on 8 held-out inputs:

* inputs whose 8 samples cover >= 3 colours: 7, 7, 8 of 8 (mean colours 3.25, 3.25, 3.5);
* mask IoU of all samples: 0.923, 0.900, 0.936 (worst input's mean 0.900, 0.849, 0.910);
* references whose code gives their own colour: 4, 3, 4 of 4 (seed 1: yellow gives red); a
  red reference gives red in all three.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.multimodal_shapes import judge_translator, make_shapes
from translate.engine.loop import prepare
from translate.inference.translator import Translator


@pytest.mark.slow
def test_samples_cover_the_colours_keep_the_shape_and_follow_a_reference(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = make_shapes(tmp_path / "data", n=64, seed=0)
    prepare(
        "bicyclegan", data=data, load_size=32, crop_size=32, unet_depth=5, base_channels=16,
        encoder_channels=16, encoder_blocks=3, encoder_norm="none", norm="batch", init="kaiming",
        disc_channels=16, disc_layers=2, batch_size=8, max_steps=2000, lr=5e-4, progress=False,
        run_dir=tmp_path / "run", device="cpu", seed=0,
    ).run()  # fmt: skip
    r = judge_translator(Translator.from_checkpoint(tmp_path / "run", device="cpu", amp="none"))
    covered, ious, style = r["covered"], r["ious"], r["style"]
    # the K = 8 samples of most inputs cover >= 3 of the 4 colours (calibration: >= 7 of 8)
    assert sum(c >= 3 for c in covered) >= 5, covered
    # the shape is kept (calibration: >= 0.900 over all samples, >= 0.849 per input)
    assert np.mean(ious) >= 0.8, ious
    assert min(np.mean(i) for i in ious) >= 0.7, ious
    # --style-from: a red reference's code gives red (calibration: always), and most
    # references their own colour (calibration: 3 or 4 of 4)
    assert style[0][0] == 0, style
    assert sum(c == want for want, (c, _) in enumerate(style)) >= 3, style
