"""CLIP's text tower as a text encoder, loaded from a local folder the user gives.

CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision", Sec. 2.4) encodes a caption with a causal Transformer over byte-level BPE tokens
bracketed by start and end tokens; the end token's final (layer-normed) activation, linearly
projected, is the text embedding. GigaGAN (Kang et al. 2023, Fig. 4) conditions its generator
on this tower's per-token features (cross-attention) and its end-token embedding (the style
code), through a learned text transformer that is not built here; this encoder gives:

* the sentence vector: the tower's output at each caption's end token (the last attended
  position), through ``text_projection`` when the folder holds one
  (``CLIPTextModelWithProjection`` or a full ``CLIPModel``; ``text_embeds``), else the pooled
  hidden state (``CLIPTextModel``'s ``pooler_output``);
* the word features: every token's output through the same projection (so words and sentence
  share one space and one size), zero on padding, with the attention mask.

The folder is read by Hugging Face ``transformers`` (the ``clip`` extra) with
``local_files_only=True`` (nothing is downloaded), no remote code, and ``.bin`` weights only
through ``torch.load(weights_only=True)`` (loading runs no code from the folder). The tower is
frozen and always in eval mode. Its weights are not saved in a checkpoint: the run's config
records the folder's absolute path and a SHA-256 of the files ``transformers`` reads
(``clip_fingerprint``), the module's state holds that digest only, and loading refuses in one
line when the folder is gone or changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from translate.errors import ConfigError

__all__ = ["CLIPTextEncoder", "clip_fingerprint", "clip_folder_info", "clip_settings"]

#: The option naming the folder (every error about it starts so).
OPTION = "clip_path"
#: ``config.json`` model types this encoder reads.
_MODEL_TYPES = ("clip_text_model", "clip")
_CHUNK = 1 << 20
#: Tokenizer calls from the service's threads, one at a time (the Rust tokenizer refuses a
#: settings change while another thread encodes: "Already borrowed", transformers #47085).
_TOKENIZING = threading.Lock()


def _transformers() -> Any:
    """The ``transformers`` module; one line naming the option when it is not installed."""
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            "text_encoder: clip needs the transformers package (pip install 'translate[clip]')"
        ) from None
    return transformers


def _read_config(folder: Path) -> dict[str, Any]:
    """``folder``'s ``config.json``, checked to describe a CLIP (text) model."""
    if not folder.exists():
        raise ConfigError(f"{OPTION}: {folder}: no such folder")
    if not folder.is_dir():
        raise ConfigError(f"{OPTION}: {folder}: not a folder (give a CLIP text model's folder)")
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{OPTION}: {folder}: not a CLIP text model (no config.json; save one with "
            "transformers' save_pretrained)"
        ) from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{OPTION}: {path}: unreadable ({exc.__class__.__name__})") from None
    kind = config.get("model_type") if isinstance(config, dict) else None
    if kind not in _MODEL_TYPES:
        raise ConfigError(
            f"{OPTION}: {folder}: not a CLIP text model (config.json model_type {kind!r}; "
            f"expected one of {', '.join(_MODEL_TYPES)})"
        )
    return config


def _with_projection(config: dict[str, Any]) -> bool:
    """Whether the folder's weights hold ``text_projection`` (a full CLIP model or a text
    model with projection)."""
    arch = config.get("architectures") or []
    return config["model_type"] == "clip" or "CLIPTextModelWithProjection" in arch


def clip_folder_info(folder: Path) -> tuple[int, int]:
    """(feature size, most tokens) of the CLIP text model in ``folder``, from its config."""
    config = _read_config(folder)
    try:
        text = (config.get("text_config") or {}) if config["model_type"] == "clip" else config
        hidden = int(text.get("hidden_size", 512))
        dim = int(config.get("projection_dim", 512)) if _with_projection(config) else hidden
        return dim, int(text.get("max_position_embeddings", 77))
    except (AttributeError, TypeError, ValueError):
        raise ConfigError(
            f"{OPTION}: {folder}: config.json's sizes (hidden_size, projection_dim, "
            "max_position_embeddings) are not integers"
        ) from None


def clip_settings(folder: Path | str) -> tuple[str, int, str]:
    """(absolute path, feature size, ``clip_fingerprint``) of the CLIP folder a new run
    names: what its config records."""
    path = Path(folder).expanduser().resolve()
    return str(path), clip_folder_info(path)[0], clip_fingerprint(path)


def _hashed_files(folder: Path) -> list[Path]:
    """What ``transformers`` reads: the configuration, tokenizer and weights files (safetensors
    when present, as it prefers them, else PyTorch ``.bin`` files)."""
    text = sorted(p for p in folder.iterdir() if p.suffix in (".json", ".txt") and p.is_file())
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    return text + weights


def clip_fingerprint(folder: Path) -> str:
    """SHA-256 (hex) of ``folder``'s model and tokenizer files, names included."""
    _read_config(folder)
    try:
        files = _hashed_files(folder)
        stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
        return _digest(str(folder.resolve()), stamp)
    except OSError as exc:
        name = Path(exc.filename).name if exc.filename else folder.name
        raise ConfigError(f"{OPTION}: {folder}: cannot read {name} ({exc.strerror})") from None


@lru_cache(maxsize=8)
def _digest(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    """The hash of the files ``stamp`` lists (cached while their sizes and times hold)."""
    sha = hashlib.sha256()
    for name, _, _ in stamp:
        sha.update(name.encode() + b"\0")
        with open(Path(folder) / name, "rb") as fh:
            while block := fh.read(_CHUNK):
                sha.update(block)
    return sha.hexdigest()


class CLIPTextEncoder(nn.Module):
    """captions (a list of B strings) -> words (B, L, D), sentence (B, D), mask (B, L) bool,
    with L = ``max_words`` tokens (start and end included; longer captions are cut, keeping
    the end token) and D the projection's size (the hidden size without one).

    ``fingerprint``: the folder's ``clip_fingerprint`` the caller recorded; a folder that no
    longer matches it is refused (the checkpoint holds the digest, not the tower)."""

    #: ``text_features`` hands this encoder the captions' text, not vocabulary indices.
    reads_text = True

    def __init__(self, *, folder: Path | str, max_words: int, fingerprint: str = "") -> None:
        super().__init__()
        folder = Path(folder)
        try:
            config = _read_config(folder)
        except ConfigError as exc:
            if not fingerprint:
                raise
            raise ConfigError(
                f"{exc} (the model was trained with this folder's CLIP text tower; the checkpoint "
                "records the folder, not the weights: restore it)"
            ) from None
        digest = clip_fingerprint(folder)
        if fingerprint and digest != fingerprint:
            raise ConfigError(
                f"{OPTION}: {folder} changed since this model was trained (SHA-256 "
                f"{digest[:12]}, recorded {fingerprint[:12]}); the checkpoint records the "
                "folder, not the weights: restore the folder it was trained with"
            )
        _, most = clip_folder_info(folder)
        if not 3 <= max_words <= most:
            raise ConfigError(
                f"max_words: CLIP reads 3 to {most} tokens (start and end included), "
                f"got {max_words}"
            )
        self.max_words = max_words
        self.tokenizer, self.tower = _load(folder, _with_projection(config))
        self.tower.requires_grad_(False).eval()
        code = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8)
        self.register_buffer("fingerprint", code)
        # the tower's weights stay out of the state (the folder holds them)
        self.register_state_dict_post_hook(_drop_tower)
        self.register_load_state_dict_post_hook(_tower_not_missing)

    def train(self, mode: bool = True) -> CLIPTextEncoder:
        super().train(mode)
        self.tower.eval()  # frozen: no dropout, whatever the engine asks
        return self

    def tokenize(self, captions: Sequence[str]) -> tuple[Tensor, Tensor]:
        """(ids (B, L) int64, attention mask (B, L) int64) padded to ``max_words``."""
        with _TOKENIZING:  # a fast tokenizer's padding and truncation settings are shared state
            out = self.tokenizer(
                list(captions),
                padding="max_length",
                truncation=True,
                max_length=self.max_words,
                return_tensors="pt",
            )
        return out["input_ids"], out["attention_mask"]

    def forward(self, ids: Tensor, attention: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mask = attention.bool()
        hidden = self.tower(input_ids=ids, attention_mask=attention).last_hidden_state
        projection = getattr(self.tower, "text_projection", None)
        words = projection(hidden) if projection is not None else hidden  # (B, L, D)
        end = mask.long().sum(1).clamp(min=1) - 1  # the end token: the last attended position
        sentence = words[torch.arange(words.shape[0], device=words.device), end]
        return words * mask[..., None], sentence, mask

    def encode_text(
        self, captions: Sequence[str], device: torch.device | str | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``forward`` on the tokenized ``captions`` (on ``device``, default the tower's)."""
        dev = device if device is not None else self.fingerprint.device
        ids, attention = self.tokenize(captions)
        return self(ids.to(dev), attention.to(dev))


def _load(folder: Path, projection: bool) -> tuple[Any, nn.Module]:
    """(tokenizer, text model) from ``folder``, never downloading."""
    transformers = _transformers()
    cls = transformers.CLIPTextModelWithProjection if projection else transformers.CLIPTextModel
    log = transformers.utils.logging
    level, bars = log.get_verbosity(), log.is_progress_bar_enabled()
    log.set_verbosity_error()  # a full CLIPModel's unused vision weights
    log.disable_progress_bar()  # "Loading weights" on stderr
    try:
        local = {"local_files_only": True, "trust_remote_code": False}  # no download, no code
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), **local)
        config = transformers.AutoConfig.from_pretrained(str(folder), **local)
        if config.model_type == "clip":  # a whole CLIPModel: its text half and projection
            config.text_config.projection_dim = config.projection_dim
            config = config.text_config
        model = cls.from_pretrained(str(folder), config=config, weights_only=True, **local)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ...
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ConfigError(
            f"{OPTION}: {folder}: cannot load a CLIP text model and its tokenizer "
            f"({exc.__class__.__name__}: {first})"
        ) from None
    finally:
        log.set_verbosity(level)
        if bars:
            log.enable_progress_bar()
    logging.getLogger("translate").info("text encoder: CLIP text tower from %s", folder)
    return tokenizer, model


def _drop_tower(module: nn.Module, state: dict[str, Any], prefix: str, meta: Any) -> None:
    for key in [k for k in state if k.startswith(f"{prefix}tower.")]:
        del state[key]


def _tower_not_missing(module: nn.Module, keys: Any) -> None:
    keys.missing_keys[:] = [k for k in keys.missing_keys if ".tower." not in f".{k}"]
