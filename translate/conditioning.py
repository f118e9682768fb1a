"""Conditioning inputs: the vectors a plugin's inference module takes after its image or latent.

A plugin declares them (``Plugin.condition_inputs(cfg)``, each a ``translate.plugin.
ConditionInput``: stargan's target label, cgan's class); this module turns the names a user gives
(``--to blond,young``, ``--class 7``) into those vectors, checking them against the model's
names with a did-you-mean, and (de)serialises the declarations to the ONNX metadata, where the
exported model takes each vector as an input of its own (``translate.export.onnx``). So one
module, one ONNX file and one served model cover every domain or class, on PyTorch and ONNX
Runtime alike.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from translate.errors import CheckpointError, ConfigError
from translate.plugin import ConditionInput

__all__ = [
    "ConditionInput",
    "codes",
    "did_you_mean",
    "draw_codes",
    "encode",
    "expand",
    "from_metadata",
    "one_hots",
    "option_names",
    "split_options",
    "to_metadata",
    "values_from_options",
]


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest known name (ignoring case), or ``""``."""
    lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.5)
    return f"; did you mean {lower[close[0]]!r}?" if close else ""


def check_name(cond: ConditionInput, name: str) -> int:
    """The index of ``name`` among the condition's names; one line naming the option and the
    known names otherwise."""
    if name not in cond.names:
        raise ConfigError(
            f"--{cond.option}: unknown {cond.noun} {name!r}{did_you_mean(name, cond.names)} "
            f"(this model's {cond.noun}s: {', '.join(cond.names)})"
        )
    return cond.names.index(name)


def encode_code(cond: ConditionInput, value: str | None) -> list[float]:
    """A code's vector from comma-separated numbers (empty: zeros, the mean of N(0, I))."""
    text = (value or "").strip()
    if not text:
        return [0.0] * cond.size
    try:
        numbers = [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"--{cond.option}: expected {cond.size} comma-separated numbers"
        ) from None
    if len(numbers) != cond.size or not all(abs(v) < 1e6 for v in numbers):
        raise ConfigError(
            f"--{cond.option}: expected {cond.size} finite comma-separated numbers, got "
            f"{len(numbers)}"
        )
    return numbers


def codes(conds: Sequence[ConditionInput]) -> tuple[ConditionInput, ...]:
    """The conditions that are codes drawn from a distribution (``ConditionInput.is_code``)."""
    return tuple(c for c in conds if c.is_code)


def draw_codes(cond: ConditionInput, k: int, seed: int | None) -> Tensor:
    """``k`` codes (k, dim) from the condition's distribution, N(0, I); the same ``seed``
    gives the same codes (row s is the same for every k > s)."""
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    # one row at a time: CPU randn draws a block of 16 or more numbers by another algorithm,
    # so (k, dim) at once would change row s with k
    return torch.cat([torch.randn((1, cond.size), generator=gen) for _ in range(k)])


def encode(cond: ConditionInput, value: str | None) -> list[float]:
    """The vector for an option's value: comma-separated names, checked against the model's.
    A one-hot condition takes exactly one name (empty: its first); a multi-hot one (``multi``:
    attributes) any number (empty: none on). A code (``is_code``) takes numbers."""
    if cond.is_code:
        return encode_code(cond, value)
    names = [n.strip() for n in (value or "").split(",") if n.strip()]
    for name in names:
        check_name(cond, name)
    if not cond.multi:
        if len(names) > 1:
            raise ConfigError(
                f"--{cond.option}: this model takes one {cond.noun} at a time (it has "
                f"exclusive {cond.noun}s: {', '.join(cond.names)}); got {len(names)}"
            )
        names = names or list(cond.names[:1])
    return [float(n in names) for n in cond.names]


def option_names(conds: Sequence[ConditionInput]) -> set[str]:
    """The options that select condition values (free at run time, also for an ONNX file)."""
    return {c.option for c in conds}


def split_options(
    conds: Sequence[ConditionInput], options: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` as (fixed options, condition options)."""
    free = option_names(conds)
    fixed = {k: v for k, v in options.items() if k not in free}
    return fixed, {k: v for k, v in options.items() if k in free}


def values_from_options(conds: Sequence[ConditionInput], opts: Any) -> tuple[Tensor, ...]:
    """Each condition's vector (1, size) for the inference options ``opts`` (a dataclass, a
    mapping or None: the defaults)."""
    if isinstance(opts, Mapping):
        get = opts.get
    else:

        def get(name: str, default: Any = None) -> Any:
            return getattr(opts, name, default)

    return tuple(torch.tensor([encode(c, get(c.option, ""))]) for c in conds)


def one_hots(cond: ConditionInput, index: Tensor) -> Tensor:
    """(B,) entry indices -> (B, size) float32 one-hots."""
    return torch.nn.functional.one_hot(index.long(), cond.size).float()


def expand(values: Sequence[Tensor], batch: int) -> tuple[Tensor, ...]:
    """Condition vectors of one row (1, size) repeated for a batch (B, size); vectors that
    already have ``batch`` rows are kept."""
    return tuple(v if v.shape[0] == batch else v.expand(batch, -1) for v in values)


def to_metadata(conds: Sequence[ConditionInput]) -> str:
    """The declarations as the ONNX metadata value ``conditions`` (JSON)."""
    return json.dumps([{**dataclasses.asdict(c), "names": list(c.names)} for c in conds])


def from_metadata(text: str | None, *, source: Any = "model") -> tuple[ConditionInput, ...]:
    """The declarations an ONNX file's ``conditions`` metadata stores (none when absent)."""
    if not text:
        return ()
    try:
        items = json.loads(text)
        return tuple(
            ConditionInput(**{**item, "names": tuple(str(n) for n in item["names"])})  # older
            # files lack distribution and dim: their defaults are a named condition
            for item in items
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{source}: bad 'conditions' in its metadata ({exc})") from None
