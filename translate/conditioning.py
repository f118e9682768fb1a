"""Conditioning inputs: the vectors a plugin's inference module takes after its image or latent.

A plugin declares them (``Plugin.condition_inputs(cfg)``, each a ``translate.plugin.
ConditionInput``: stargan's target label, cgan's class, InfoGAN's codes); this module turns the
names and values a user gives (``--to blond,young``, ``--class 7``, ``--code c=3``, ``--vary
c1=-2:2:9``) into those vectors, checking them against the model's names and ranges with a
did-you-mean, draws them at random for sampling, and (de)serialises the declarations to the
ONNX metadata, where the exported model takes each vector as an input of its own
(``translate.export.onnx``). So one module, one ONNX file and one served model cover every
domain, class or code, on PyTorch and ONNX Runtime alike.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from translate.errors import CheckpointError, ConfigError
from translate.plugin import ConditionInput

__all__ = [
    "CODE_OPTION",
    "ConditionInput",
    "bounds",
    "code_values",
    "codes",
    "did_you_mean",
    "draw",
    "draw_codes",
    "encode",
    "expand",
    "find_code",
    "from_metadata",
    "one_hots",
    "option_names",
    "parse_vary",
    "split_options",
    "to_json",
    "to_metadata",
    "values_from_options",
]


#: The option of inputs picked by their name, ``--code NAME=VALUE`` (InfoGAN's codes; any
#: declared input can be given this way, e.g. cgan's ``class_onehot``).
CODE_OPTION = "code"
#: Most columns a traversal (``--vary``) may have.
MAX_STEPS = 64


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
            f"{flag(cond)}: unknown {cond.noun} {name!r}{did_you_mean(name, cond.names)} "
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


def flag(cond: ConditionInput) -> str:
    """How errors name the option of ``cond``: ``--to``, or ``--code c1`` for a code."""
    return f"--{cond.option} {cond.name}" if cond.option == CODE_OPTION else f"--{cond.option}"


def bounds(cond: ConditionInput) -> tuple[float, float]:
    """The values a user may give a continuous input: its prior's range widened by its width on
    each side (traversals extrapolate: InfoGAN's Fig. 2 varies codes of U(-1, 1) from -2 to 2)."""
    width = cond.high - cond.low
    return cond.low - width, cond.high + width


def parse_real(cond: ConditionInput, text: str) -> float:
    """One value of a continuous input, finite and within ``bounds``; one line otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{flag(cond)}: {text.strip()!r} is not a number") from None
    lo, hi = bounds(cond)
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(
            f"{flag(cond)}: {text.strip()} is outside [{lo:g}, {hi:g}] (the code is drawn from "
            f"U({cond.low:g}, {cond.high:g}))"
        )
    return value


def encode(cond: ConditionInput, value: str | None) -> list[float]:
    """The vector for an option's value: comma-separated names, checked against the model's.
    A one-hot condition takes exactly one name (empty: its first); a multi-hot one (``multi``:
    attributes) any number (empty: none on); a continuous one a number per entry (empty: the
    middle of its prior's range); a code (``is_code``) numbers (empty: zeros)."""
    if cond.is_code:
        return encode_code(cond, value)
    if cond.continuous:
        parts = [p for p in (value or "").split(",") if p.strip()]
        if not parts:
            return [(cond.low + cond.high) / 2] * cond.size
        if len(parts) != cond.size:
            raise ConfigError(
                f"{flag(cond)}: takes {cond.size} number(s) ({', '.join(cond.names)}); got "
                f"{len(parts)}"
            )
        return [parse_real(cond, p) for p in parts]
    names = [n.strip() for n in (value or "").split(",") if n.strip()]
    for name in names:
        check_name(cond, name)
    if not cond.multi:
        if len(names) > 1:
            raise ConfigError(
                f"{flag(cond)}: this model takes one {cond.noun} at a time (it has "
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


def draw(cond: ConditionInput, n: int, generator: torch.Generator) -> Tensor:
    """``n`` random vectors (n, size) from the input's prior: a uniformly drawn one-hot, a
    multi-hot with each entry on with probability 1/2, or U(low, high) per entry."""
    if cond.continuous:
        return cond.low + (cond.high - cond.low) * torch.rand(n, cond.size, generator=generator)
    if cond.multi:
        return (torch.rand(n, cond.size, generator=generator) < 0.5).float()
    return one_hots(cond, torch.randint(0, cond.size, (n,), generator=generator))


def find_code(
    conds: Sequence[ConditionInput], name: str, *, option: str = CODE_OPTION
) -> ConditionInput:
    """The input called ``name`` (``--code NAME=...``, ``--vary NAME=...``); one line naming
    the model's inputs otherwise."""
    for cond in conds:
        if cond.name == name:
            return cond
    known = [c.name for c in conds]
    raise ConfigError(
        f"--{option}: unknown code {name!r}{did_you_mean(name, known)} (this model's codes: "
        f"{', '.join(known) or 'none'})"
    )


def _assignment(text: str, option: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ConfigError(f"--{option}: expected NAME=VALUE (e.g. c=3), got {text!r}")
    return name.strip(), value.strip()


def code_values(
    conds: Sequence[ConditionInput], codes: Mapping[str, str] | Sequence[str] | None
) -> dict[str, Tensor]:
    """The inputs a user fixed, by name: ``{"c": "3", "c1": "0.5"}`` or ``["c=3", "c1=0.5"]``
    (``--code``, repeated) -> {name: vector (1, size)}, each value checked (an entry's name for a
    one-hot or multi-hot input, numbers in range for a continuous one)."""
    if not codes:
        return {}
    pairs = (
        list(codes.items())
        if isinstance(codes, Mapping)
        else [_assignment(str(t), CODE_OPTION) for t in codes]
    )
    values: dict[str, Tensor] = {}
    for name, value in pairs:
        cond = find_code(conds, name)
        if name in values:
            raise ConfigError(f"--{CODE_OPTION} {name}: given twice")
        values[name] = torch.tensor([encode(cond, str(value))])
    return values


def parse_vary(conds: Sequence[ConditionInput], text: str) -> tuple[ConditionInput, Tensor]:
    """A traversal's varied input and its values, one row per column: ``c1=-2:2:9`` (a
    continuous input with one entry: STEPS evenly spaced values from START to STOP) or ``c``
    (a one-hot input: each of its entries in turn)."""
    name, sep, spec = text.partition("=")
    cond = find_code(conds, name.strip(), option="vary")
    if not cond.continuous:
        if cond.multi or spec.strip():
            raise ConfigError(
                f"--vary {cond.name}: a categorical code is varied over all its entries; give "
                "just its name" + (" (a multi-hot input cannot be varied)" if cond.multi else "")
            )
        return cond, torch.eye(cond.size)
    parts = spec.split(":")
    if not sep or len(parts) != 3 or cond.size != 1:
        raise ConfigError(
            f"--vary {cond.name}: expected {cond.name}=START:STOP:STEPS (e.g. "
            f"{cond.name}=-2:2:9), got {text!r}"
            + ("" if cond.size == 1 else f"; it has {cond.size} entries, varied one at a time")
        )
    start, stop = parse_real(cond, parts[0]), parse_real(cond, parts[1])
    try:
        steps = int(parts[2])
    except ValueError:
        steps = 0
    if not 2 <= steps <= MAX_STEPS:
        raise ConfigError(
            f"--vary {cond.name}: STEPS must be from 2 to {MAX_STEPS}, got {parts[2]!r}"
        )
    return cond, torch.linspace(start, stop, steps)[:, None]


def expand(values: Sequence[Tensor], batch: int) -> tuple[Tensor, ...]:
    """Condition vectors of one row (1, size) repeated for a batch (B, size); vectors that
    already have ``batch`` rows are kept."""
    return tuple(v if v.shape[0] == batch else v.expand(batch, -1) for v in values)


def to_json(cond: ConditionInput) -> dict[str, Any]:
    """A declaration as JSON-ready fields (the ONNX metadata's, the service's ``codes``)."""
    return {**dataclasses.asdict(cond), "names": list(cond.names)}


def to_metadata(conds: Sequence[ConditionInput]) -> str:
    """The declarations as the ONNX metadata value ``conditions`` (JSON)."""
    return json.dumps([to_json(c) for c in conds])


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
