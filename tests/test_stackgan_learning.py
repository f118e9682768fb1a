"""stackgan learns (slow): on synthetic captioned shapes ("a red circle": 4 colours x 4 shapes at
random positions, 32 px, ``translate.text.synthetic``) the DAMSM-pretrained text encoder
retrieves a caption's image among 16 far above chance, and generated images of held-out
prompts (a caption template never seen in training) have the prompt's colour and shape by a
simple rule (chance 1/16); StackGAN++'s tree (``--generator stackgan-v2``) draws the prompt's
colour, and its branches (8, 16, 32 px) agree in colour. Bars and per-seed figures: see each
test's docstring."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from translate.text.synthetic import (
    COLOURS,
    SHAPES,
    STACKGAN_SHAPES_MODEL,
    TEMPLATES,
    make_captioned_shapes,
    read_shape,
)

pytestmark = pytest.mark.slow
SEED = int(os.environ.get("STACKGAN_TEST_SEED", "0"))  # the seeds of the bars: 0 (CI), 1, 2


def batch_of(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    keys = ("image", "tokens", "length")
    return {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in keys}


def test_text_encoder_retrieves_the_captioned_image(tmp_path: Path) -> None:
    """DAMSM pretraining (200 steps, batch 32) of the GRU text encoder and the small image
    encoder on 256 shapes captioned with three templates; retrieval of held-out images by
    captions of the fourth template, among groups of 16 images (one per colour and shape:
    chance 1/16 = 0.06). Measured (seeds 0, 1, 2; shared machine): 0.61, 0.94, 0.45 (before
    pretraining 0.05, 0.06, 0.02); bar 0.3, about 5x chance."""
    from translate.text.captions import (
        CaptionedImages,
        all_captions,
        build_vocabulary,
        caption_batches,
    )
    from translate.text.damsm import pretrain_text, retrieval_accuracy
    from translate.text.encoder import GRUTextEncoder, ImageEncoder, text_features

    torch.manual_seed(SEED)
    make_captioned_shapes(tmp_path / "train", 256, size=32, seed=SEED, templates=TEMPLATES[1:])
    make_captioned_shapes(tmp_path / "test", 64, size=32, seed=SEED + 1000, templates=TEMPLATES[:1])
    vocab = build_vocabulary(all_captions(tmp_path / "train"))
    data = CaptionedImages(tmp_path / "train", size=32, vocabulary=vocab, flip=False)
    test = CaptionedImages(tmp_path / "test", size=32, vocabulary=vocab, train=False)
    text, image = GRUTextEncoder(vocab_size=len(vocab), dim=64, word_dim=32), ImageEncoder(dim=64)
    batches = caption_batches(data, 32, seed=SEED)
    held_out = batch_of([test[(i, 0)] for i in range(64)])  # 4 groups of all 16 kinds

    def accuracy() -> float:
        with torch.no_grad():
            return retrieval_accuracy(text_features(text, held_out)[0], image(held_out["image"])[1])

    before = accuracy()
    pretrain_text(text, image, batches, steps=200)
    after = accuracy()
    print(f"seed {SEED}: retrieval {before:.3f} -> {after:.3f}")
    assert after >= 0.3, f"retrieval {after:.2f} (before pretraining {before:.2f}; chance 0.06)"


def train_shapes(root: Path, generator: str, steps: int, **options: Any) -> Path:
    from translate_stackgan import StackGANConfig

    from translate.config import GANConfig, TrainConfig, config_from_dict
    from translate.engine.loop import Trainer
    from translate.registry import load_plugin

    torch.manual_seed(SEED)
    make_captioned_shapes(root / "data", 256, size=32, seed=SEED, templates=TEMPLATES[1:])
    model = {**STACKGAN_SHAPES_MODEL, **options}
    cfg = StackGANConfig(data=root / "data", generator=generator, **model)
    plugin = load_plugin("stackgan")
    train = config_from_dict(
        TrainConfig,
        {"max_steps": steps, "batch_size": 32, "progress": False, "device": "cpu",
         "seed": SEED, "lr_decay_start": 1.0, "sample_every": 10**6, "checkpoint_every": 10**6},
    )  # fmt: skip
    gan = config_from_dict(GANConfig, dict(plugin.gan_defaults))
    Trainer(plugin, cfg, train, gan, run_dir=root / "run").run()
    return root / "run"


def prompt_accuracy(run: Path, per_prompt: int = 8) -> tuple[float, float, float]:
    """The shares of samples of the held-out template's 16 prompts whose (colour and shape,
    colour, shape), read by ``read_shape``, are the prompt's."""
    from translate.evaluation_text import prompt_accuracy as shares
    from translate.evaluation_text import template_samples
    from translate.inference.sampling import Sampler

    samples = template_samples(Sampler.from_checkpoint(run), TEMPLATES[0], per_prompt, seed=100)
    overall = shares(*samples)[1]
    return overall["prompt_accuracy"], overall["colour_accuracy"], overall["shape_accuracy"]


#: GAN steps of the learning test and its bars (calibrated over seeds 0-2, see the docstring)
STEPS, BAR, COLOUR_BAR = 800, 0.1, 0.7


def test_stackgan_draws_held_out_prompts(tmp_path: Path) -> None:
    """Stage I (32 px, widths 32, text 64-d, DAMSM 200 steps) trained 800 steps, batch 32, on
    256 shapes captioned with three templates; 8 samples of each of the 16 prompts of the
    fourth, held-out template ("a red circle"); the shares whose colour and shape (by rule)
    are the prompt's (chance 1/16), and whose colour is (chance 1/4).

    Measured (this script's runs, shared 2-core machine): seed 0: joint 0.30, colour
    1.00, shape 0.30; seed 1: joint 0.16, colour 0.89, shape 0.20; seed 2: joint 0.20, colour
    0.91, shape 0.23 (400 steps, seed 1: joint 0.25, colour 0.95, shape 0.27). The colour is
    learnt; the shape is not within this CPU budget (seed 0 at 1918 steps: colour 1.00,
    shape 0.27; seed 1 at 1572: 1.00, 0.26), so the
    joint bar is 0.1 (1.6x chance), the colour bar 0.7: below the issue's 70% joint target.
    As CI runs it on December 7 (seed 0, two threads, 55 s): joint 0.22, colour 1.00."""
    run = train_shapes(tmp_path, "stackgan", STEPS)
    joint, colour, shape = prompt_accuracy(run)
    print(f"seed {SEED}: joint {joint:.3f}, colour {colour:.3f}, shape {shape:.3f}")
    assert colour >= COLOUR_BAR, f"colour accuracy {colour:.2f} < {COLOUR_BAR} (chance 0.25)"
    assert joint >= BAR, f"prompt accuracy {joint:.2f} < {BAR} (chance 0.06)"


def scale_agreement(run: Path, per_prompt: int = 8) -> tuple[float, float, float]:
    """stackgan-v2, over the samples of the held-out template's 16 prompts: the share whose
    lowest (8 px, nearest-up-sampled) and full-size (32 px) images read (``read_shape``) as the
    same colour; the mean absolute difference (levels, 0-255) of the two images' mean colours;
    and that difference between the full-size image and another prompt's 8-px image (the
    reference of a disagreement)."""
    import numpy as np
    from PIL import Image
    from torch.nn import functional as F
    from translate_stackgan.gigagan import levels

    from translate.inference.sampling import Sampler

    def picture(x: torch.Tensor) -> Image.Image:
        pixels = ((x + 1) * 127.5).clamp(0, 255).round().byte().permute(1, 2, 0).numpy()
        return Image.fromarray(np.ascontiguousarray(pixels))

    sampler = Sampler.from_checkpoint(run)
    tree = sampler.module.stage1
    same, low, high = 0, [], []
    for colour, shape in itertools.product(COLOURS, SHAPES):
        prompt = TEMPLATES[0].format(c=colour, s=shape)
        z, text = sampler.inputs(per_prompt, seed=100, prompt=prompt)
        with torch.no_grad():
            images = levels(tree(z, text)[0], tree.k)
        up = F.interpolate(images[0], size=images[-1].shape[-1], mode="nearest")
        for a, b in zip(up, images[-1], strict=True):
            same += read_shape(picture(a))[0] == read_shape(picture(b))[0]
        low.append(images[0].mean((2, 3)))
        high.append(images[-1].mean((2, 3)))
    lows, highs = torch.cat(low), torch.cat(high)
    gap = float((lows - highs).abs().mean()) * 127.5
    other = float((lows.roll(per_prompt, 0) - highs).abs().mean()) * 127.5
    return same / len(lows), gap, other


#: stackgan-v2's GAN steps and bars (calibrated over seeds 0-2, see the docstring)
TREE_STEPS, TREE_COLOUR_BAR, TREE_SAME_BAR = 400, 0.5, 0.5


def test_stackgan_v2_draws_the_prompts_colour_at_every_scale(tmp_path: Path) -> None:
    """StackGAN++'s tree (branches 8, 16, 32 px, widths 32, residual blocks 1, text 64-d,
    DAMSM 200 steps, --uncond-weight 1, --colour-weight 1) trained TREE_STEPS steps, batch 32,
    on the shapes of the stage-I test; 8 samples of each held-out prompt: the share whose
    colour (by rule, on the 32-px image) is the prompt's (chance 1/4), and the colour gap
    between each sample's 8-px and 32-px images (``scale_agreement``).

    Measured (shared 2-core machine, two other jobs running; 590-880 s a seed there): seed 0:
    colour 0.74 (joint 0.20, shape 0.27), 8 vs 32 px read as one colour 0.75, mean-colour gap
    15.0 levels (another prompt's 18.3); seed 1: colour 0.90 (0.31, 0.34), one colour 0.84,
    gap 7.3 (13.1); seed 2: colour 0.68 (0.16, 0.25), one colour 0.69, gap 17.1 (18.6). Bars:
    colour 0.5 (2x chance), one colour 0.5 (chance about 0.25). The mean-colour gap is
    reported, not tested: the white background dominates an image's mean colour, so it is
    close to the gap between different prompts' images."""
    options = {"colour_weight": 1.0, "residual_blocks": 1}
    run = train_shapes(tmp_path, "stackgan-v2", TREE_STEPS, **options)
    joint, colour, shape = prompt_accuracy(run)
    same, gap, other = scale_agreement(run)
    print(
        f"seed {SEED}: joint {joint:.3f}, colour {colour:.3f}, shape {shape:.3f}; "
        f"8 vs 32 px: same colour {same:.3f}, mean-colour gap {gap:.1f} levels "
        f"(another prompt's {other:.1f})"
    )
    assert colour >= TREE_COLOUR_BAR, f"colour accuracy {colour:.2f} < {TREE_COLOUR_BAR}"
    assert same >= TREE_SAME_BAR, f"8 and 32 px read as one colour {same:.2f} < {TREE_SAME_BAR}"


#: --generator gigagan's GAN steps and bars (calibrated over seeds 0-2, see the docstring)
GIGA_STEPS, GIGA_COLOUR_BAR, GIGA_BAR = 600, 0.6, 0.1


def test_gigagan_draws_the_prompts_colour(tmp_path: Path) -> None:
    """GigaGAN's blocks (``--generator gigagan``: adaptive kernels, 4 a layer; self- and
    cross-attention up to 16 px; outputs at 8, 16, 32 px), widths from 64 (``--g-channels 8``),
    text 64-d, DAMSM 200 steps, trained GIGA_STEPS steps, batch 32, on the shapes of the
    stage-I test; 8 samples of each held-out prompt: the shares whose colour (chance 1/4) and
    whose colour and shape (chance 1/16) are the prompt's.

    Measured (one thread a run, three at once on the shared 2-core machine, 305 s of training
    each): seed 0: colour 1.00, joint 0.26, shape 0.26; seed 1: 0.88, 0.33, 0.33; seed 2:
    1.00, 0.25, 0.25; this test as CI runs it (seed 0, 118 s): colour 1.00, joint 0.25. Bars:
    colour 0.6, joint 0.1. With a tanh on the summed toRGB outputs (before December 7) one run
    of four collapsed to blank white images (seed 0 at one thread: D loss 0.03, colour 0.00);
    this test's seed 0 passed with it (colour 1.00, joint 0.49). G's output is now linear, as
    StyleGAN2's (``test_gigagan_outputs_are_the_linear_torgb_sum``)."""
    run = train_shapes(tmp_path, "gigagan", GIGA_STEPS, g_channels=8)
    joint, colour, shape = prompt_accuracy(run)
    print(f"seed {SEED}: joint {joint:.3f}, colour {colour:.3f}, shape {shape:.3f}")
    assert colour >= GIGA_COLOUR_BAR, f"colour accuracy {colour:.2f} < {GIGA_COLOUR_BAR}"
    assert joint >= GIGA_BAR, f"prompt accuracy {joint:.2f} < {GIGA_BAR} (chance 0.06)"
