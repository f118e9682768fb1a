"""Reference generators as our models: loaded directly, or imported once as a checkpoint.

``translate import reference latest_net_G_A.pth --model cycle_gan --netG resnet_9blocks --norm
instance -o runs/horse2zebra`` writes a self-describing checkpoint (``model.safetensors`` +
``meta.json``) of our ``pix2pix`` or ``cyclegan`` plugin, so every later ``run``, ``export``,
``serve`` and ``eval`` reads the architecture from it. ``translate run photo.png -c
latest_net_G.pth`` loads the same way without writing anything (architecture read from the
weights; the plugin from the file name: ``*_net_G_A.pth`` / ``*_net_G_B.pth`` are CycleGAN's
A -> B and B -> A generators, anything else is a pix2pix generator).

A CycleGAN import may hold one generator or both. The checkpoint lists the ones it has
(``models``), and its default ``--direction`` is that of the generator it holds; asking for the
other direction is refused by the loader rather than run with random weights.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

import translate
from translate.config import GANConfig, config_from_dict, config_to_dict
from translate.engine import checkpoint as ckpt
from translate.engine.device import resolve_device
from translate.errors import CheckpointError, ConfigError
from translate.loading.model import LoadedModel, check_held, parse_options
from translate.loading.reference import (
    MODELS,
    NET_GS,
    NORMS,
    ReferenceArch,
    detect,
    map_state_dict,
    read_state_dict,
)
from translate.registry import discover, load_plugin

_DIRECTIONS = {"a2b": "a2b", "b2a": "b2a", "AtoB": "a2b", "BtoA": "b2a"}


def _role(path: Path) -> str | None:
    """``a2b`` / ``b2a`` for CycleGAN's ``*_net_G_A`` / ``*_net_G_B`` files, else None."""
    found = re.search(r"net_G_([AB])\b", path.stem)
    return None if found is None else {"A": "a2b", "B": "b2a"}[found.group(1)]


def reference_plugin(path: Path) -> str:
    """The plugin a reference file loads as: ``cyclegan`` for ``*_net_G_A/B``, else pix2pix."""
    return MODELS["cycle_gan" if _role(path) else "pix2pix"]


def _check_flags(path: Path, arch: ReferenceArch, net_g: str | None, norm: str | None) -> None:
    if net_g is not None and net_g not in NET_GS:
        raise ConfigError(f"netG: {net_g!r} is not one of {', '.join(NET_GS)}")
    if norm is not None and norm not in NORMS:
        raise ConfigError(f"norm: {norm!r} is not one of {', '.join(NORMS)}")
    for flag, value, got in (("--netG", net_g, arch.net_g), ("--norm", norm, arch.norm)):
        if value is not None and value != got:
            raise ConfigError(
                f"{path}: a reference {arch.describe()} generator, not {flag} {value}"
            )
    if arch.in_channels != 3 or arch.out_channels != 3:
        raise CheckpointError(
            f"{path}: a {arch.in_channels} -> {arch.out_channels} channel generator; "
            "translate's pix2pix and cyclegan translate RGB to RGB (3 -> 3)"
        )


def _plugin_config(plugin: Any, arch: ReferenceArch, *, dropout: bool, direction: str) -> Any:
    """The plugin config of a reference generator (data folders are unknown: placeholders)."""
    values: dict[str, Any] = {
        "generator": "unet" if arch.net_g.startswith("unet") else "resnet",
        "unet_depth": 7 if arch.net_g == "unet_128" else 8,
        "resnet_blocks": 6 if arch.net_g == "resnet_6blocks" else 9,
        "base_channels": arch.ngf,
        "norm": arch.norm,
        "dropout": 0.5 if dropout else 0.0,
    }
    if plugin.name == "cyclegan":
        values |= {"domain_a": "(imported)", "domain_b": "(imported)"}
    else:
        values |= {"data": "(imported)", "direction": direction}
    try:
        return config_from_dict(plugin.config_cls, values)
    except ConfigError as exc:  # pragma: no cover - every reference generator fits
        raise CheckpointError(f"{plugin.name} cannot hold {arch.describe()} ({exc})") from exc


def build_reference(
    files: Sequence[Path | str],
    *,
    model: str | None = None,
    net_g: str | None = None,
    norm: str | None = None,
    dropout: bool | None = None,
    direction: str | None = None,
) -> tuple[Any, Any, dict[str, torch.nn.Module], list[str], dict[str, Any]]:
    """Plugin, plugin config, models, the names of those holding imported weights, and the
    meta fields describing the import; each file's architecture checked against the flags."""
    paths = [Path(f) for f in files]
    if not paths:
        raise ConfigError("give the reference generator file(s) to import")
    if model is None:
        model = "cycle_gan" if any(_role(p) for p in paths) else "pix2pix"
    if model not in MODELS:
        raise ConfigError(f"model: {model!r} is not one of {', '.join(MODELS)}")
    if direction is not None and direction not in _DIRECTIONS:
        raise ConfigError(f"direction: {direction!r} is not one of a2b, b2a, AtoB, BtoA")
    plugin = load_plugin(MODELS[model])
    if model == "pix2pix" and len(paths) != 1:
        raise ConfigError("pix2pix: import one generator file (latest_net_G.pth)")
    if len(paths) > 2:
        raise ConfigError("cycle_gan: import at most two generators (G_A and G_B)")
    states, archs, roles = [], [], []
    for path in paths:
        state = read_state_dict(path)
        arch = detect(state)
        if arch is None:
            raise CheckpointError(
                f"{path}: not a pytorch-CycleGAN-and-pix2pix generator ({', '.join(NET_GS)})"
            )
        _check_flags(path, arch, net_g, norm)
        role = _role(path) if model == "cycle_gan" else None
        if role is None:
            role = _DIRECTIONS[direction or "a2b"] if len(paths) == 1 else None
        if role is None:
            raise ConfigError(f"{path}: name the files *_net_G_A.pth and *_net_G_B.pth")
        states.append(state)
        archs.append(arch)
        roles.append(role)
    if len(set(roles)) != len(roles):
        raise ConfigError(f"two generators for direction {roles[0]}")
    if len(set(archs)) != 1:
        raise ConfigError(
            f"{paths[1]}: {archs[1].describe()}, but {paths[0]} is {archs[0].describe()}"
        )
    arch = archs[0]
    if arch.dropout is not None and dropout is not None and arch.dropout != dropout:
        raise ConfigError(f"{paths[0]}: a reference {arch.describe()} generator")
    use_dropout = arch.dropout if arch.dropout is not None else dropout
    if use_dropout is None:  # the reference's defaults: pix2pix with, cycle_gan without
        use_dropout = model == "pix2pix"
    cfg = _plugin_config(
        plugin, arch, dropout=use_dropout, direction=_DIRECTIONS[direction or "a2b"]
    )
    models = plugin.build_models(cfg)
    names = []
    for path, state, role in zip(paths, states, roles, strict=True):
        name = "G" if model == "pix2pix" else {"a2b": "G_A", "b2a": "G_B"}[role]
        models[name].load_state_dict(map_state_dict(state, arch, models[name], source=path))
        names.append(name)
    info = {
        "reference": {
            "model": model,
            "netG": arch.net_g,
            "norm": arch.norm,
            "ngf": arch.ngf,
            "dropout": use_dropout,
            "files": [
                {"name": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                for p in paths
            ],
        }
    }
    if model == "cycle_gan" and roles == ["b2a"]:
        info["inference_options"] = {"direction": "b2a"}
    return plugin, cfg, models, names, info


def _meta(plugin: Any, cfg: Any, names: list[str], info: dict[str, Any]) -> dict[str, Any]:
    found = discover().get(plugin.name)
    return {
        "plugin": plugin.name,
        "plugin_version": found.version if found else "?",
        "translate_version": translate.__version__,
        "torch_version": torch.__version__,
        "api_version": plugin.api_version,
        "step": 0,
        "models": names,
        "plugin_config": config_to_dict(cfg),
        # no engine transforms: the reference generators are plain
        "gan_config": config_to_dict(GANConfig(spectral_norm="none", self_attention="none")),
        "created": datetime.now().isoformat(timespec="seconds"),
        **info,
    }


def load_reference(
    path: Path | str, *, options: dict[str, Any] | None = None, device: str = "cpu"
) -> LoadedModel:
    """A reference generator file as a loaded model (architecture read from its weights)."""
    path = Path(path)
    plugin, cfg, models, names, info = build_reference([path])
    meta = _meta(plugin, cfg, names, info)
    opts = parse_options(plugin, {**meta.get("inference_options", {}), **(options or {})})
    dev = resolve_device(device)
    for m in models.values():
        m.to(dev).eval()
    module = plugin.inference_module(models, cfg, opts)
    check_held(module, models, names, path)
    return LoadedModel(path, plugin, cfg, meta, opts, models, module, [], path)


def import_reference(
    files: Sequence[Path | str],
    out: Path | str,
    *,
    model: str | None = None,
    net_g: str | None = None,
    norm: str | None = None,
    dropout: bool | None = None,
    direction: str | None = None,
) -> Path:
    """Write reference generator file(s) as a checkpoint folder ``out`` (which must not exist)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"out: {out} already exists; give a new folder")
    plugin, cfg, models, names, info = build_reference(
        files, model=model, net_g=net_g, norm=norm, dropout=dropout, direction=direction
    )
    weights = ckpt.flatten_state({n: models[n] for n in names})
    if out.exists():
        out.rmdir()  # empty: replaced atomically by the written folder
    return ckpt.write_checkpoint(
        out, weights=weights, meta=_meta(plugin, cfg, names, info), trainer_state=None
    )
