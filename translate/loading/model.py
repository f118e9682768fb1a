"""What every loader returns: ``LoadedModel`` (a PyTorch module) and ``LoadedOnnx`` (a file).

A loaded model is everything inference, export, serving and evaluation need to know about a
model, whatever it was loaded from: the plugin that prepares its input and output (PIL <-> a
(B, C, H, W) tensor in [-1, 1]), that plugin's config and inference options, the size
requirements of the module, and metadata for people (plugin, step, where it came from).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from torch import nn

from translate.config import config_from_dict
from translate.errors import CheckpointError, unknown_option
from translate.plugin import ConditionInput, PluginBase, SizeRequirements


def padded_size(size: int, req: SizeRequirements) -> int:
    """The smallest side >= ``size`` (and >= ``req.minimum``) that is a multiple of the module's."""
    target = max(size, req.minimum)
    return -(-target // req.multiple_of) * req.multiple_of


def parse_options(plugin: Any, options: Mapping[str, Any] | None) -> Any:
    """The plugin's inference options from a dict; unknown names list the valid ones."""
    cls = plugin.inference_config_cls
    options = dict(options or {})
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in options if k not in valid]
    if unknown:
        raise unknown_option(unknown[0], valid, owner=f"plugin {plugin.name}")
    return config_from_dict(cls, options)


def probe_channels(plugin: Any, cfg: Any, req: SizeRequirements) -> int:
    """Channels of the module's input: the plugin's ``input_channels(cfg)`` when it has one,
    else its ``preprocess`` on a blank image."""
    if callable(getattr(plugin, "input_channels", None)):
        return int(plugin.input_channels(cfg))
    side = padded_size(max(req.minimum, req.multiple_of), req)
    return int(plugin.preprocess([Image.new("RGB", (side, side))], cfg).shape[1])


def plugin_conditions(plugin: Any, cfg: Any) -> tuple[ConditionInput, ...]:
    """The plugin's conditioning inputs for ``cfg`` (none for a plugin without the hook)."""
    hook = getattr(plugin, "condition_inputs", None)
    return tuple(hook(cfg)) if callable(hook) and cfg is not None else ()


def latent_prior(plugin: Any, cfg: Any) -> str:
    """What a generating plugin's latents are drawn from (``Plugin.latent_prior``; normal for a
    plugin without the hook)."""
    hook = getattr(plugin, "latent_prior", None)
    return str(hook(cfg)) if callable(hook) else "normal"


def uses_instance_norm(module: nn.Module) -> bool:
    """Whether tiling can shift brightness (per-tile statistics; see ``inference.tiling``)."""
    return any(isinstance(m, nn.modules.instancenorm._InstanceNorm) for m in module.modules())


def check_held(module: nn.Module, models: Mapping[str, nn.Module], held: list[str], source: Path):
    """Refuse an inference module that uses a model whose weights were not loaded (a CycleGAN
    import holding one generator, asked for the other direction): it would run random weights."""
    used = {id(p) for p in module.parameters()}
    missing = [
        n for n, m in models.items() if n not in held and used & {id(p) for p in m.parameters()}
    ]
    if missing:
        raise CheckpointError(
            f"{source}: these options need model {missing[0]!r}, which it does not hold "
            f"(it has {', '.join(held)})"
        )


class DefaultImageIO(PluginBase):
    """RGB <-> [-1, 1] conversion for a model without an installed plugin of its own (an
    ONNX file whose plugin is missing, a spandrel file)."""

    config_cls = dict
    dataset_kind = "single"

    def __init__(self, name: str, requirements: SizeRequirements | None = None) -> None:
        self.name = name  # type: ignore[misc]
        self._req = requirements or SizeRequirements()

    def size_requirements(self, cfg: Any) -> SizeRequirements:
        return self._req

    def input_channels(self, cfg: Any) -> int:
        return 3


@dataclass
class LoadedModel:
    """A model rebuilt in PyTorch for inference: the plugin's inference module (eval mode,
    EMA weights where present) and its context.

    ``source`` is what was loaded (a checkpoint folder or a weights file); ``weights_file`` the
    file whose contents the weights are (what an export cache is keyed on)."""

    source: Path
    plugin: Any
    plugin_cfg: Any
    meta: dict[str, Any]
    opts: Any
    models: dict[str, nn.Module]
    module: nn.Module
    ema: list[str]  # models whose EMA weights were loaded
    weights_file: Path | None = None

    @property
    def requirements(self) -> SizeRequirements:
        return self.plugin.size_requirements(self.plugin_cfg)

    @property
    def in_channels(self) -> int:
        return probe_channels(self.plugin, self.plugin_cfg, self.requirements)

    @property
    def instance_norm(self) -> bool:
        return uses_instance_norm(self.module)

    @property
    def conditions(self) -> tuple[ConditionInput, ...]:
        """The vectors ``module`` takes after its input (``Plugin.condition_inputs``)."""
        return plugin_conditions(self.plugin, self.plugin_cfg)


@dataclass
class LoadedOnnx:
    """An exported ONNX file with what its metadata says (no session yet: the backend makes
    one for its device)."""

    path: Path
    plugin: Any
    plugin_cfg: Any
    meta: dict[str, Any]
    opts: Any
    requirements: SizeRequirements
    in_channels: int
    instance_norm: bool
    fp16: bool
    metadata: dict[str, str] = field(default_factory=dict)
    #: the model's inputs after the first, each (B, size), from its ``conditions`` metadata
    conditions: tuple[ConditionInput, ...] = ()
    #: a generating model's latent shape (its first input is (B, *latent_shape))
    latent_shape: tuple[int, ...] | None = None
    #: what its latents are drawn from (``Plugin.latent_prior``): normal or uniform
    latent_prior: str = "normal"

    @property
    def source(self) -> Path:
        return self.path
