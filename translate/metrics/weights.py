"""Feature-network weights the user gives (nothing is downloaded): where to find them, how they
load (``torch.load(weights_only=True)``: a file that holds code is refused), and the one-line
errors when one is missing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from translate.errors import ConfigError


@dataclass(frozen=True)
class WeightsFile:
    option: str  # the CLI option that gives it
    env: str  # the environment variable that gives it
    what: str  # the file users have, and where they usually get it

    def resolve(self, given: Path | None) -> Path | None:
        """The file from the option, else the environment, else None (metric skipped)."""
        path = given if given is not None else os.environ.get(self.env) or None
        if path is None:
            return None
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: {self.option} file not found (expected {self.what})")
        return path

    def missing_note(self) -> str:
        return f"needs {self.option} FILE or ${self.env}: {self.what}"


INCEPTION = WeightsFile(
    option="--inception-weights",
    env="TRANSLATE_INCEPTION_WEIGHTS",
    what="the FID Inception-v3 weights pt_inception-2015-12-05-6726825d.pth, published with "
    "torch-fidelity's GitHub releases (the TF FID network ported to PyTorch)",
)

LPIPS = WeightsFile(
    option="--lpips-weights",
    env="TRANSLATE_LPIPS_WEIGHTS",
    what="a state dict of lpips.LPIPS(net='alex') (backbone and linear heads), made once on a "
    'machine with internet: python -c "import lpips, torch; '
    "torch.save(lpips.LPIPS(net='alex').state_dict(), 'lpips_alex.pth')\"",
)


def load_state_dict(path: Path, what: WeightsFile) -> dict[str, Any]:
    """A state dict of tensors from ``path``; pickled code is refused, never run."""
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ConfigError(
            f"{path}: refused: the file holds objects other than tensors (not loaded for safety)"
        ) from exc
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable weights file for {what.option} ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: expected a state dict for {what.option}")
    return state
