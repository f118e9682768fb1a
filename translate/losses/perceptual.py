"""VGG-19 perceptual loss from a user-supplied weights file (nothing is downloaded).

Johnson et al. 2016 / SRGAN (Ledig et al. 2017, Eq. 5): distances between VGG-19 (Simonyan &
Zisserman 2015) feature maps of the output and the target. Two weightings are used in the
papers, both L1 here:

- ``PIX2PIXHD_LAYERS``: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 weighted 1/32, 1/16, 1/8,
  1/4, 1 (pix2pixHD, Wang et al. 2018, Sec. 4; SPADE, Park et al. 2019, with lambda 10).
- ``ESRGAN_LAYERS``: conv5_4 *before* its activation (ESRGAN, Wang et al. 2018, Sec. 3.3:
  pre-activation features are denser and keep brightness consistent).
- ``MUNIT_LAYERS`` with ``distance="in_mse"``: the *domain-invariant* perceptual loss of MUNIT
  (Huang et al. 2018, App. B): the mean squared distance between instance-normalised features
  (``instance_normalized_mse``), which removes each channel's mean and variance (the style)
  and keeps the content; relu4_4, the last ReLU of block 4 (the official code: VGG-16's relu4_3).

The network is torchvision's ``vgg19`` ``features`` (only the layers needed are built; the
classifier's 120 M parameters never are); the weights file is its state dict (``.pth``/``.pt``
loaded with ``weights_only=True``, or ``.safetensors``), e.g. torchvision's ImageNet weights
``vgg19-dcbb9e9d.pth`` saved once on a machine that can download them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.errors import ConfigError

#: layer index in ``vgg19().features`` -> weight
PIX2PIXHD_LAYERS: dict[int, float] = {1: 1 / 32, 6: 1 / 16, 11: 1 / 8, 20: 1 / 4, 29: 1.0}
ESRGAN_LAYERS: dict[int, float] = {34: 1.0}  # conv5_4, before the ReLU at 35
MUNIT_LAYERS: dict[int, float] = {26: 1.0}  # relu4_4
DISTANCES = ("l1", "in_mse")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_features(last: int) -> nn.Sequential:
    """torchvision's VGG-19 ``features`` layers ``0..last``, same indices, random weights."""
    from torchvision.models.vgg import cfgs, make_layers

    return nn.Sequential(*list(make_layers(cfgs["E"]).children())[: last + 1])


def _read_state(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise ConfigError(f"vgg_weights: {path}: file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any decoding failure is the file's fault
        raise ConfigError(f"vgg_weights: cannot read {path} ({exc.__class__.__name__})") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"vgg_weights: {path} is not a torchvision VGG-19 state dict")
    return state


def instance_normalized_mse(fake: Tensor, real: Tensor, eps: float = 1e-5) -> Tensor:
    """mean((IN(fake) - IN(real))^2) of feature maps (B, C, H, W): each channel of each image
    normalised to zero mean and unit (biased) variance first (Huang et al. 2018, App. B)."""
    return F.mse_loss(F.instance_norm(fake, eps=eps), F.instance_norm(real, eps=eps))


class VGGLoss(nn.Module):
    """Weighted distance between VGG-19 features of ``fake`` and ``real`` (B, 3, H, W) in
    [-1, 1], ImageNet-normalised inside: L1 (``distance="l1"``) or MUNIT's instance-normalised
    MSE (``"in_mse"``); frozen and always in eval mode. Gradients flow to ``fake``."""

    def __init__(
        self, weights: Path, layers: dict[int, float] | None = None, distance: str = "l1"
    ) -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ConfigError(f"distance: {distance!r} is not one of {', '.join(DISTANCES)}")
        self.distance = F.l1_loss if distance == "l1" else instance_normalized_mse
        self.layers = dict(layers or PIX2PIXHD_LAYERS)
        last = max(self.layers)
        self.features = vgg19_features(last)
        state = _read_state(Path(weights))
        features = {
            k[len("features.") :]: v
            for k, v in state.items()
            if k.startswith("features.") and int(k.split(".")[1]) <= last
        }
        try:
            self.features.load_state_dict(features)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ConfigError(
                f"vgg_weights: {weights} is not a torchvision VGG-19 state dict ({first})"
            ) from exc
        self.requires_grad_(False)
        self.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def train(self, mode: bool = True) -> VGGLoss:
        return super().train(False)  # a fixed feature extractor: no mode switching

    def _activations(self, x: Tensor) -> list[Tensor]:
        h = ((x.float() + 1) / 2 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.layers:
                out.append(h)
        return out

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        with torch.no_grad():
            targets = self._activations(real)
        loss = fake.new_zeros((), dtype=torch.float32)
        weights = [self.layers[i] for i in sorted(self.layers)]
        for w, f, r in zip(weights, self._activations(fake), targets, strict=True):
            loss = loss + w * self.distance(f, r)
        return loss


@lru_cache(maxsize=4)
def _cached(
    weights: str, layers: tuple[tuple[int, float], ...], device: str, distance: str
) -> VGGLoss:
    return VGGLoss(Path(weights), dict(layers), distance).to(device)


def vgg_loss(
    weights: Path, *, layers: dict[int, float], device: torch.device | str, distance: str = "l1"
) -> VGGLoss:
    """The frozen loss network, built once per weights file, weighting, device and distance.
    It is a fixed loss, not a model: never checkpointed, never optimised."""
    return _cached(str(weights), tuple(sorted(layers.items())), str(device), distance)
