"""Latent traversals: one code varied along a grid's columns, everything else fixed per row.

InfoGAN's figures (Chen et al. 2016, Fig. 2): rows are the categories of the categorical code
(or draws of the noise), columns the values of the varied code, e.g. ``translate sample RUN
--vary c1=-2:2:9`` (9 values of c1 from -2 to 2). Works for any generating model whose inputs
are declared (``Plugin.condition_inputs``), on PyTorch or an ONNX export (``Sampler``).
"""

from __future__ import annotations

import torch
from PIL import Image

from translate.conditioning import code_values, parse_vary
from translate.errors import ConfigError
from translate.inference.sampling import Codes, Sampler

__all__ = ["TRAVERSAL_ROWS", "traversal"]

#: Rows of a traversal grid without a free categorical code to give one row per category.
TRAVERSAL_ROWS = 8


def traversal(
    sampler: Sampler,
    vary: str,
    *,
    rows: int | None = None,
    seed: int | None = None,
    truncation: float | None = None,
    class_name: str | None = None,
    codes: Codes = None,
) -> tuple[list[Image.Image], int]:
    """A latent traversal (Chen et al. 2016, Fig. 2): the code ``vary`` names (``c1=-2:2:9``:
    9 values from -2 to 2; ``c``: each category) along the columns, everything else fixed
    along a row. Rows: one per category of the first categorical code that neither ``vary``
    nor ``codes`` fixes (the same noise and codes in every row), or ``rows`` (default 8)
    draws of the noise and free codes. Returns the images row by row and the columns."""
    varied, values = parse_vary(sampler.conditions, vary)
    fixed = code_values(sampler.conditions, codes)
    if varied.name in fixed or (varied is sampler.class_input and class_name is not None):
        raise ConfigError(f"--vary {varied.name}: also fixed by --code/--class")
    taken = {varied.name, *fixed, *([sampler.class_input.name] if class_name else [])}
    free = [c for c in sampler.conditions if not (c.continuous or c.multi or c.name in taken)]
    by_category = free[0] if free and rows is None else None
    count = by_category.size if by_category else rows or TRAVERSAL_ROWS
    base = sampler.inputs(
        1 if by_category else count,
        seed=seed,
        truncation=truncation,
        class_name=class_name,
        codes=codes,
    )
    base = tuple(t.expand(count, *t.shape[1:]).clone() for t in base)
    columns = len(values)
    inputs = [t.repeat_interleave(columns, 0) for t in base]
    for i, cond in enumerate(sampler.conditions):
        if cond is by_category:
            inputs[1 + i] = torch.eye(count).repeat_interleave(columns, 0)
        if cond is varied:
            inputs[1 + i] = values.repeat(count, 1)
    images = sampler.generate(*inputs, truncation=truncation)
    return sampler.plugin.postprocess(images, sampler.plugin_cfg), columns
