"""Prompts: the text a user gives a text-conditioned model (``translate sample --prompt``, the
service's ``prompt``) turned into the vector its generator takes, by the text encoder the
checkpoint holds (``Plugin.encode_prompts``); checked where it enters, one line each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from translate.errors import ConfigError
from translate.plugin import ConditionInput

__all__ = ["MAX_PROMPT", "PROMPT_OPTION", "check_prompt", "prompt_input", "prompt_vector"]

#: The option of a text-conditioned model's text input.
PROMPT_OPTION = "prompt"
#: Longest prompt taken (characters).
MAX_PROMPT = 1000


def prompt_input(conditions: Sequence[ConditionInput], plugin: str) -> ConditionInput:
    """The model's text input (option ``prompt``); one line when it has none."""
    for cond in conditions:
        if cond.option == PROMPT_OPTION:
            return cond
    raise ConfigError(f"prompt: this model ({plugin}) is not text-conditioned; drop --prompt")


def check_prompt(prompt: str) -> str:
    """``prompt`` stripped; one line for an empty or too long one."""
    text = prompt.strip()
    if not text:
        raise ConfigError("prompt: empty; give a caption, e.g. --prompt 'a red circle'")
    if len(text) > MAX_PROMPT:
        raise ConfigError(f"prompt: at most {MAX_PROMPT} characters, got {len(text)}")
    return text


def prompt_vector(
    loaded: Any, conditions: Sequence[ConditionInput], prompt: str, fixed: Mapping[str, Any]
) -> tuple[str, Tensor]:
    """(input name, vector (1, size)) of ``prompt`` for a loaded model (a PyTorch checkpoint:
    an ONNX export holds no text encoder); ``fixed``: the inputs already given by name."""
    cond = prompt_input(conditions, loaded.plugin.name)
    text = check_prompt(prompt)
    if cond.name in fixed:
        raise ConfigError(f"--code {cond.name}: the text is given by --prompt too")
    models = getattr(loaded, "models", None)
    if models is None:
        raise ConfigError(
            f"prompt: {loaded.source} is an ONNX export, which takes the text vector "
            f"(--code {cond.name}=...); sample the checkpoint, which holds the text encoder"
        )
    with torch.inference_mode():
        vector = loaded.plugin.encode_prompts(models, loaded.plugin_cfg, [text])
    vector = vector.float().cpu()
    if tuple(vector.shape) != (1, cond.size):
        raise TypeError(f"{loaded.plugin.name}.encode_prompts gave {tuple(vector.shape)}")
    return cond.name, vector
