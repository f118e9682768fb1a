"""Prompts: the text a user gives a text-conditioned model (``translate sample --prompt``, the
service's ``prompt``) turned into the vector its generator takes, by the text encoder the
checkpoint holds (``Plugin.text_encoder``) or, for an ONNX export, the text graph exported beside
it (``translate.loading.text_encoder``); checked where it enters, one line each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from translate.errors import ConfigError
from translate.plugin import ConditionInput

__all__ = [
    "MAX_PROMPT",
    "PROMPT_OPTION",
    "check_prompt",
    "prompt_encoder",
    "prompt_input",
    "prompt_vector",
    "prompt_vectors",
]

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


def prompt_encoder(loaded: Any) -> Any:
    """The text encoder of a loaded model: a checkpoint's (``Plugin.text_encoder``) or, for an
    ONNX export, its text graph beside it (``translate.loading.text_encoder``); both have
    ``encode(prompts) -> (B, size)``. One line when there is none."""
    models = getattr(loaded, "models", None)
    if models is None:  # an ONNX export: its text graph, when exported beside it
        from translate.loading.text_encoder import load_text_encoder, text_path

        encoder = load_text_encoder(loaded.path, loaded.metadata)
        if encoder is None:
            raise ConfigError(
                f"prompt: no text encoder {text_path(loaded.path).name} beside {loaded.source} "
                "(translate export writes it for a model with a built-in text encoder); give "
                "the text vector with --code text=... or sample the checkpoint"
            )
        return encoder
    encoder = loaded.plugin.text_encoder(models, loaded.plugin_cfg)
    if encoder is None:
        raise ConfigError(
            "prompt: this model holds no text encoder (trained on precomputed embeddings); "
            "give the embedding with --code text=..."
        )
    return encoder


def prompt_vectors(
    loaded: Any, conditions: Sequence[ConditionInput], prompts: Sequence[str]
) -> tuple[str, Tensor]:
    """(input name, vectors (B, size) float32 on the CPU) of ``prompts`` for a loaded model
    (a checkpoint or its ONNX export), each prompt checked."""
    cond = prompt_input(conditions, loaded.plugin.name)
    texts = [check_prompt(p) for p in prompts]
    encoder = prompt_encoder(loaded)
    with torch.inference_mode():
        vectors = encoder.encode(texts).float().cpu()
    if tuple(vectors.shape) != (len(texts), cond.size):
        raise TypeError(f"{loaded.plugin.name}'s text encoder gave {tuple(vectors.shape)}")
    return cond.name, vectors


def prompt_vector(
    loaded: Any, conditions: Sequence[ConditionInput], prompt: str, fixed: Mapping[str, Any]
) -> tuple[str, Tensor]:
    """(input name, vector (1, size)) of ``prompt`` for a loaded model (a checkpoint, or an
    ONNX export with its text graph beside it); ``fixed``: the inputs already given by name."""
    cond = prompt_input(conditions, loaded.plugin.name)
    if cond.name in fixed:
        raise ConfigError(f"--code {cond.name}: the text is given by --prompt too")
    return prompt_vectors(loaded, conditions, [prompt])
