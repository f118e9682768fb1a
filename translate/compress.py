"""Self-supervised GAN compression: a channel-pruned generator trained against its dense parent.

Yu & Pool, "Self-Supervised GAN Compression" (NVIDIA 2020): one-shot pruning followed by plain
fine-tuning (or plain distillation) degrades GAN generators; instead the pruned generator is
trained with the dense generator's outputs as targets *and* the dense discriminator (initialised
from the trained one and kept training) on the usual data. Here:

1. ``compress(parent, keep=...)`` builds the parent's plugin with ``base_channels`` scaled by
   ``keep`` (``translate.nn.prune``: every layer keeps that fraction of its channels, chosen by
   importance) and with ``distill_from`` set to the parent checkpoint;
2. the plugin's ``initialize`` hook (``init_from_parent``) copies the surviving channels of the
   parent's generator into the small one and the parent's discriminator as is;
3. its ``train_step`` adds ``lambda_distill * L1(G_small(x), G_dense(x))`` (``teacher_output``)
   to its usual objective.

``method="finetune"`` is the baseline the paper compares with (its Table 1): the same pruning
and the same start (pruned G, dense D), trained on the plugin's usual objective alone
(``lambda_distill = 0``, no dense-G targets).

Training goes through the ordinary engine, so the result is an ordinary self-describing
checkpoint (its config holds the pruned width and the parent); ``meta.json`` additionally records
``compressed_from`` (parent, keep ratio, method). Plugins that support this declare a
``distill_from`` field in their config; others are refused with one line.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from translate.engine import checkpoint as ckpt
from translate.errors import ConfigError
from translate.nn.prune import PruneError, prunable, prune_into, pruned_width
from translate.registry import load_plugin

if TYPE_CHECKING:  # pragma: no cover
    from translate.engine.loop import Trainer

Method = Literal["distill", "finetune"]
METHODS: dict[str, str] = {
    "distill": "self-supervised GAN compression (Yu & Pool 2020): channel pruning, dense-G "
    "targets, dense D",
    "finetune": "one-shot channel pruning + fine-tuning on the usual objective (baseline: no "
    "dense-G targets), dense D",
}

# train options of the parent that a compression run does not inherit (its max_steps it does:
# the default budget of a compression run is its parent's)
_NOT_INHERITED = ("run_dir", "resume", "eval_every", "keep_best")


def supports_compression(plugin: Any) -> bool:
    """Whether ``plugin``'s config can describe a compressed model (``distill_from`` and
    ``base_channels`` fields)."""
    names = {f.name for f in dataclasses.fields(plugin.config_cls)}
    return {"distill_from", "base_channels"} <= names


def _parent_models(folder: str) -> Mapping[str, nn.Module]:
    """The parent checkpoint's models (EMA generators preferred), eval mode, on the CPU at
    first; loaded once per process (and again if its weights file changed)."""
    return _load_parent(folder, (Path(folder) / ckpt.WEIGHTS).stat().st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _load_parent(folder: str, mtime_ns: int) -> Mapping[str, nn.Module]:
    from translate.loading.checkpoint import load_checkpoint

    loaded = load_checkpoint(folder)
    for model in loaded.models.values():
        model.requires_grad_(False)
    return loaded.models


def _folder(parent: Path | str) -> str:
    return str(ckpt.resolve_checkpoint(Path(parent)).resolve())


def init_from_parent(
    models: Mapping[str, nn.Module], parent: Path | str, generators: Sequence[str]
) -> None:
    """Start a compression run: ``generators`` get the pruned parent generators, every other
    model (the discriminators) the parent's weights unchanged."""
    dense = _parent_models(_folder(parent))
    for name, model in models.items():
        if name not in dense:
            raise ConfigError(f"distill_from: {parent} holds no model {name!r}")
        try:
            if name in generators:
                prune_into(dense[name], model)
            else:
                model.load_state_dict(dense[name].state_dict())
        except (PruneError, RuntimeError) as exc:
            raise ConfigError(f"distill_from: {parent}: {name}: {exc}") from exc


def teacher_output(parent: Path | str, name: str, x: Tensor) -> Tensor:
    """The dense parent generator ``name`` applied to ``x`` (no gradient, eval mode): the
    self-supervised target of the compressed generator."""
    teacher = _parent_models(_folder(parent))[name]
    teacher.to(x.device)  # in place; a no-op after the first step
    with torch.no_grad():
        return teacher(x)


def method_of(lambda_distill: float) -> Method:
    """The compression method a config describes: no weight on the dense-G targets is the
    fine-tuning baseline."""
    return "distill" if lambda_distill > 0 else "finetune"


def compression_meta(
    distill_from: Path | str | None, base_channels: int, lambda_distill: float
) -> dict[str, Any]:
    """``{"compressed_from": {parent, keep, method, description}}`` for a compressed model's
    meta.json."""
    if distill_from is None:
        return {}
    parent = str(distill_from)
    keep: float | None = None
    try:
        theirs = ckpt.read_meta(ckpt.resolve_checkpoint(Path(parent)))["plugin_config"]
        keep = base_channels / int(theirs["base_channels"])
    except Exception:  # the parent moved away: still record where it came from
        keep = None
    method = method_of(lambda_distill)
    record = {"parent": parent, "keep": keep, "method": method, "description": METHODS[method]}
    return {"compressed_from": record}


def prepare_compress(
    parent: Path | str,
    *,
    keep: float,
    method: Method = "distill",
    steps: int | None = None,
    run_dir: Path | str | None = None,
    **train_options: Any,
) -> Trainer:
    """The trainer of a compression run: the generator(s) of checkpoint ``parent`` pruned to
    ``keep`` of their channels, to be trained for ``steps`` (default: the parent's budget).
    ``.run()`` returns the final checkpoint; an interrupted run resumes like any other
    (``prepare(plugin, resume=run_dir)``, ``translate train PLUGIN --resume RUN``).

    ``method``: ``"distill"`` (Yu & Pool 2020) or ``"finetune"`` (the baseline: the usual
    objective only). ``train_options`` override the parent's training settings (``lr``,
    ``batch_size``, ...) and the plugin's ``lambda_distill``.

    Raises:
        ConfigError: ``keep`` outside (0, 1], an unknown ``method`` or one that contradicts
            ``lambda_distill``, or the parent's plugin or generator is one the pruner does not
            understand.
    """
    from translate.engine.loop import prepare

    folder = ckpt.resolve_checkpoint(Path(parent))
    meta = ckpt.read_meta(folder)
    plugin = load_plugin(meta["plugin"])
    if not supports_compression(plugin):
        raise ConfigError(
            f"{folder}: plugin {plugin.name!r} does not support compression "
            "(supported: plugins with U-Net/ResNet generators and a distill_from option: "
            "pix2pix, cyclegan, label2image --generator global)"
        )
    if not 0 < keep <= 1:
        raise ConfigError(f"keep: must be in (0, 1], got {keep}")
    if method not in METHODS:
        raise ConfigError(f"method: must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "finetune":
        if train_options.get("lambda_distill", 0) != 0:
            raise ConfigError("lambda_distill: method 'finetune' trains without the dense targets")
        train_options = {**train_options, "lambda_distill": 0.0}
    cfg = dict(meta["plugin_config"])
    if cfg.get("distill_from"):
        raise ConfigError(f"{folder}: already a compressed model; compress its dense parent")
    dense = _parent_models(_folder(folder))
    generators = [k for k in dense if k.startswith("G")]
    for name in generators:
        if not prunable(dense[name]):
            raise ConfigError(
                f"{folder}: cannot prune {name} ({type(dense[name]).__name__}); the pruner "
                "understands plain U-Net and ResNet generators"
            )
    cfg["base_channels"] = pruned_width(int(cfg["base_channels"]), keep)
    cfg["distill_from"] = str(folder.resolve())
    inherited = {k: v for k, v in meta.get("train_config", {}).items() if k not in _NOT_INHERITED}
    options = {**inherited, **meta.get("gan_config", {}), **cfg, **train_options}
    if steps is not None:
        options["max_steps"] = steps
    if run_dir is not None:
        options["run_dir"] = Path(run_dir)
    return prepare(plugin.name, **options)


def compress(
    parent: Path | str,
    *,
    keep: float,
    method: Method = "distill",
    steps: int | None = None,
    run_dir: Path | str | None = None,
    **train_options: Any,
) -> Path:
    """Compress the generator(s) of checkpoint ``parent`` (``prepare_compress``) and train them;
    returns the final checkpoint."""
    return prepare_compress(
        parent, keep=keep, method=method, steps=steps, run_dir=run_dir, **train_options
    ).run()
