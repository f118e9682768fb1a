"""Super-resolution and restoration files of other projects, through spandrel.

`spandrel <https://github.com/chaiNNer-org/spandrel>`_ (MIT) recognises the architecture of a
weights file from its keys and shapes and builds the network: ESRGAN / Real-ESRGAN (RRDBNet),
Real-ESRGAN Compact, SwinIR, HAT, DAT, SPAN, OmniSR and the others of its main package, each
under a permissive licence. Architectures with non-commercial licences live in the separate
``spandrel-extra-arches`` package, which translate neither installs nor registers.

What translate runs from it: image-to-image models (spandrel's purposes ``SR`` and
``Restoration``) with RGB input and output. A loaded file becomes a ``LoadedModel`` whose
module maps [-1, 1] to [-1, 1] like ours (spandrel's models take and give [0, 1]; the output is
clamped as spandrel's own call does), with spandrel's size requirements (``multiple_of``,
``minimum``) and scale, so padding, tiling, ``--backend onnx``, ``export``, ``serve`` and (for
``SR`` models) ``translate eval superres`` treat it like one of ours. Refused in one line: face
models (``FaceSR``), inpainting, other channel counts, and models that need square inputs.
Files are read with ``torch.load(weights_only=True)`` (never spandrel's TorchScript path).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from translate.errors import CheckpointError
from translate.loading.model import DefaultImageIO, LoadedModel
from translate.plugin import SizeRequirements

SPANDREL = "spandrel"
PURPOSES = ("SR", "Restoration")


@dataclass(frozen=True)
class SpandrelConfig:
    """What a spandrel file is (stored as ``plugin_config`` in an ONNX export's metadata)."""

    architecture: str
    purpose: str
    scale: int
    multiple_of: int = 1
    minimum: int = 1
    tiling: str = "supported"

    @property
    def evaluate_as(self) -> str | None:
        """The plugin whose evaluation protocol fits: ``superres`` for an SR model."""
        return "superres" if self.purpose == "SR" and self.scale > 1 else None

    @property
    def requirements(self) -> SizeRequirements:
        return SizeRequirements(
            multiple_of=self.multiple_of, minimum=self.minimum, scale=self.scale
        )


class SpandrelModule(nn.Module):
    """A spandrel model behind our convention: (B, 3, H, W) in [-1, 1] -> (B, 3, sH, sW) in
    [-1, 1]. Calls the model as spandrel's ``ImageModelDescriptor`` does (its per-architecture
    call, output clamped to [0, 1]), without its padding: the Translator pads."""

    def __init__(self, descriptor: Any) -> None:
        super().__init__()
        self.model = descriptor.model
        # spandrel's per-architecture call (most are model(x)); kept for equal outputs
        self._call = getattr(descriptor, "_call_fn", None)

    def forward(self, x: Tensor) -> Tensor:
        image = (x + 1) / 2  # (B, 3, H, W) in [0, 1]
        out = self._call(self.model, image) if self._call is not None else self.model(image)
        return out.clamp(0, 1) * 2 - 1


def _refuse(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: {what}; translate runs RGB image-to-image models")


def load_spandrel(path: Path, state: Mapping[str, Tensor], *, device: str = "cpu") -> LoadedModel:
    """``state`` (read from ``path``) as a spandrel model, or a one-line CheckpointError."""
    import spandrel

    from translate.engine.device import resolve_device

    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(
            spandrel.canonicalize_state_dict(dict(state))
        )
    except spandrel.UnsupportedModelError:
        raise CheckpointError(
            f"{path}: not a model translate knows (neither a pytorch-CycleGAN-and-pix2pix "
            "generator nor an architecture spandrel recognises)"
        ) from None
    except Exception as exc:  # an architecture's own loader failing on odd shapes
        raise CheckpointError(f"{path}: spandrel cannot build it ({exc})") from None
    arch = descriptor.architecture.name
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise _refuse(path, f"a {arch} model of purpose {descriptor.purpose}")
    if descriptor.purpose not in PURPOSES:
        raise _refuse(path, f"a {arch} {descriptor.purpose} model (face restoration)")
    if (descriptor.input_channels, descriptor.output_channels) != (3, 3):
        channels = f"{descriptor.input_channels} -> {descriptor.output_channels} channel"
        raise _refuse(path, f"a {channels} {arch} model")
    size = descriptor.size_requirements
    if size.square:
        raise _refuse(path, f"a {arch} model that needs square inputs")
    cfg = SpandrelConfig(
        architecture=arch,
        purpose=descriptor.purpose,
        scale=int(descriptor.scale),
        multiple_of=int(size.multiple_of),
        minimum=max(1, int(size.minimum)),
        tiling=descriptor.tiling.name.lower(),
    )
    module = SpandrelModule(descriptor).to(resolve_device(device)).eval()
    meta = {
        "plugin": SPANDREL,
        "name": f"spandrel {arch} x{cfg.scale}",
        "architecture": arch,
        "tags": list(descriptor.tags),
        "source": str(path),
    }
    plugin = DefaultImageIO(SPANDREL, cfg.requirements)
    return LoadedModel(path, plugin, cfg, meta, None, {"G": module}, module, [], path)
