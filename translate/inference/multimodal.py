"""Many answers per input: a model whose inference module takes a code after its image
(``ConditionInput.distribution``: bicyclegan's z, munit's style) translates one image K times
with K codes drawn from N(0, I) by a seed, or once in the style of a reference image.

``translate run img.png -c RUN --samples K [--seed S] [--grid]`` and ``--style-from ref.png``
use it; the codes are module inputs, so the same calls work on the PyTorch and ONNX backends
(the reference's encoder too: ``translate export`` writes it as its own graph,
``translate.loading.code_encoder``). The same
seed gives the same K codes, and sample s is the same for any K > s (Zhu et al. 2017, Sec. 5:
"we randomly sample latent codes"; Huang et al. 2018, Sec. 5: styles from N(0, I)).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from torch import Tensor

from translate.conditioning import codes, draw_codes
from translate.errors import ConfigError, DataError
from translate.inference.image_io import pil_to_tensor
from translate.inference.translator import Translator
from translate.loading.code_encoder import reference_side
from translate.plugin import ConditionInput

__all__ = [
    "MAX_SAMPLES",
    "check_samples",
    "check_seed",
    "code_input",
    "grid",
    "style_code",
    "translate_samples",
]

#: Most samples one request or command draws per input.
MAX_SAMPLES = 64
SEED_LIMIT = 2**64  # torch.Generator.manual_seed takes [0, 2**64)


def check_samples(k: int, option: str = "--samples") -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_SAMPLES:
        raise ConfigError(f"{option}: must be an integer from 1 to {MAX_SAMPLES}, got {k!r}")
    return k


def check_seed(seed: int | None, option: str = "--seed") -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ConfigError(f"{option}: must be an integer from 0 to 2**64 - 1, got {seed!r}")
    return seed


def code_input(translator: Translator, option: str = "--samples") -> ConditionInput:
    """The model's one code input; one line naming ``option`` for a model without."""
    found = codes(translator.conditions)
    if len(found) != 1:
        raise ConfigError(
            f"{option}: {translator.name} takes no code (plugin {translator.meta.get('plugin')} "
            "gives one answer per input)"
            if not found
            else f"{option}: {translator.name} takes {len(found)} codes; name one"
        )
    return found[0]


def style_code(
    translator: Translator, reference: Image.Image, source: str = "--style-from"
) -> Tensor:
    """The code (1, dim) of a reference image, from the plugin's ``code_encoder``."""
    cond = code_input(translator, source)
    encoder = translator.code_encoder
    if encoder is None:
        raise ConfigError(
            f"{source}: {translator.name} has no code encoder here (an ONNX export needs its "
            ".encoder.onnx beside it; a checkpoint of a plugin with one has it)"
        )
    req = translator.requirements
    side = max(req.minimum, req.multiple_of)
    if min(reference.size) < side:
        raise DataError(f"{source}: the reference is {reference.size[0]}x{reference.size[1]}; "
                        f"this model needs at least {side}x{side}")  # fmt: skip
    # at the training size (translate.loading.code_encoder), on either backend
    side = reference_side(translator.plugin_cfg, req)
    x = pil_to_tensor([reference.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)])
    device = getattr(encoder, "device", None) or next(encoder.parameters()).device
    with torch.no_grad():
        code = encoder(x.to(device)).float().cpu()
    if tuple(code.shape) != (1, cond.size):
        raise DataError(
            f"{source}: the encoder gave shape {tuple(code.shape)}, not (1, {cond.size})"
        )
    return code


def translate_samples(
    translator: Translator,
    images: Sequence[Image.Image],
    k: int,
    *,
    seed: int | None = None,
    code: Tensor | None = None,
) -> list[list[Image.Image]]:
    """For each image, its K translations (``code`` given: one, with that code (1, dim))."""
    cond = code_input(translator)
    check_seed(seed)
    rows = code if code is not None else draw_codes(cond, check_samples(k), seed)
    out: list[list[Image.Image]] = [[] for _ in images]
    for s in range(rows.shape[0]):
        results = translator.with_codes({cond.name: rows[s : s + 1]})(list(images))
        for i, image in enumerate(results):
            out[i].append(image)
    return out


def grid(images: Sequence[Image.Image]) -> Image.Image:
    """The samples of one input side by side (one row)."""
    w, h = images[0].size
    sheet = Image.new(images[0].mode, (w * len(images), h))
    for i, image in enumerate(images):
        sheet.paste(image, (i * w, 0))
    return sheet
