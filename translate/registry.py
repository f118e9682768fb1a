"""Plugin discovery over the ``translate.plugins`` entry-point group, with validation.

Listing reads distribution metadata only; ``load_plugin(name)`` imports one plugin and checks it
against the contract in ``translate.plugin``. First-party plugins are found exactly like
third-party ones: through the entry points their distribution declares.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from translate.data.configs import DATA_CONFIGS, DATA_FIELDS
from translate.errors import PluginError
from translate.plugin import (
    API_VERSION,
    DATASET_KINDS,
    REQUIRED_ATTRIBUTES,
    REQUIRED_METHODS,
    PluginBase,
)

GROUP = "translate.plugins"


@dataclass(frozen=True)
class PluginInfo:
    """One declared plugin, known from metadata alone (nothing imported)."""

    name: str
    distribution: str
    version: str
    target: str  # "module:attribute"
    entry_point: EntryPoint
    conflicts: tuple[str, ...] = ()  # other distributions declaring the same name


def _distribution_of(ep: EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    if dist is None:  # pragma: no cover - entry points always come from a distribution here
        return "<unknown>", "?"
    return dist.metadata["Name"] or "<unknown>", dist.version


def discover() -> dict[str, PluginInfo]:
    """All declared plugins by name. A name declared by two distributions is kept with its
    ``conflicts`` recorded: it fails when used, without breaking the other plugins."""
    found: dict[str, PluginInfo] = {}
    for ep in entry_points(group=GROUP):
        dist, version = _distribution_of(ep)
        info = PluginInfo(ep.name, dist, version, ep.value, ep)
        other = found.get(ep.name)
        if other is not None and (other.distribution, other.target) != (dist, ep.value):
            info = dataclasses.replace(other, conflicts=(*other.conflicts, f"{dist} ({ep.value})"))
        found[ep.name] = info
    return dict(sorted(found.items()))


def unknown_plugin_error(name: str, available: list[str]) -> PluginError:
    close = difflib.get_close_matches(name, available, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listing = ", ".join(available) if available else "none installed"
    return PluginError(f"unknown plugin {name!r}{hint} available: {listing}")


def contract_problems(plugin: Any) -> list[str]:
    """What ``plugin`` lacks against the contract of ``translate.plugin``, as short phrases
    (empty when it is valid): required members, API version, dataset kind, frozen config
    dataclasses, an ``inference_module`` of its own, and, when it keeps the default
    ``build_dataset``, the config fields its kind's default dataset reads."""
    missing = [a for a in REQUIRED_ATTRIBUTES if not hasattr(plugin, a)]
    missing += [m for m in REQUIRED_METHODS if not callable(getattr(plugin, m, None))]
    if missing:
        return [f"missing {', '.join(missing)}"]
    problems = []
    if plugin.api_version != API_VERSION:
        problems.append(
            f"it targets plugin API version {plugin.api_version}, "
            f"this translate provides version {API_VERSION}"
        )
    if plugin.dataset_kind not in DATASET_KINDS:
        problems.append(
            f"dataset_kind {plugin.dataset_kind!r} is not one of {', '.join(DATASET_KINDS)}"
        )
    for attr in ("config_cls", "inference_config_cls"):
        cls = getattr(plugin, attr, None)
        if attr == "inference_config_cls" and cls is None:
            continue
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            problems.append(f"{attr} must be a dataclass")
        elif not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            problems.append(f"{attr} {cls.__name__} must be frozen")
    if problems:
        return problems
    if _inherited(plugin, "inference_module"):
        problems.append("inference_module is not implemented (run and export call it)")
    if getattr(plugin, "generates", False) and _inherited(plugin, "latent_shape"):
        problems.append("it generates (generates = True) but has no latent_shape")
    if _inherited(plugin, "build_dataset"):
        fields = {f.name for f in dataclasses.fields(plugin.config_cls)}
        needed = DATA_FIELDS[plugin.dataset_kind]
        lacking = [name for name in needed if name not in fields]
        if lacking:
            problems.append(
                f"dataset_kind {plugin.dataset_kind!r} with the default build_dataset reads "
                f"config fields {', '.join(needed)}; {plugin.config_cls.__name__} lacks "
                f"{', '.join(lacking)} (extend translate.config."
                f"{DATA_CONFIGS[plugin.dataset_kind]} or implement build_dataset)"
            )
    return problems


def _inherited(plugin: Any, method: str) -> bool:
    """True when ``plugin`` keeps ``PluginBase``'s version of ``method``."""
    own = getattr(type(plugin), method, None)
    return isinstance(plugin, PluginBase) and own is getattr(PluginBase, method)


def validate_plugin(plugin: Any, info: PluginInfo) -> None:
    """Check a loaded plugin object against the contract; errors name the distribution."""
    where = f"plugin {info.name!r} from distribution {info.distribution} ({info.target})"
    problems = contract_problems(plugin)
    if problems:
        raise PluginError(f"{where} is invalid: {'; '.join(problems)}")
    if plugin.name != info.name:
        raise PluginError(
            f"{where} is invalid: it calls itself {plugin.name!r} but is registered as "
            f"{info.name!r}; the entry-point name and the plugin's name must match"
        )


@cache
def load_plugin(name: str) -> Any:
    """Import, validate and return the plugin registered as ``name``."""
    plugins = discover()
    info = plugins.get(name)
    if info is None:
        raise unknown_plugin_error(name, list(plugins))
    if info.conflicts:
        raise PluginError(
            f"plugin name {name!r} is declared by more than one distribution: "
            f"{info.distribution} ({info.target}) and {', '.join(info.conflicts)}; uninstall one"
        )
    try:
        plugin = info.entry_point.load()
    except Exception as exc:
        raise PluginError(
            f"plugin {name!r} from distribution {info.distribution} failed to import "
            f"({info.target}): {type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(plugin, type):  # a class was registered: instantiate it
        plugin = plugin()
    validate_plugin(plugin, info)
    return plugin
