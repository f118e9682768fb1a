"""Weight initialisation schemes for GAN generators and discriminators.

Follows the pix2pix / CycleGAN reference implementation (Isola et al., CVPR 2017; Zhu et al.,
ICCV 2017), which itself follows DCGAN (Radford et al., "Unsupervised Representation Learning
with Deep Convolutional Generative Adversarial Networks", ICLR 2016): weights of convolutions,
transposed convolutions and linear layers are drawn from

* ``"normal"``     -- N(0, gain^2), gain = 0.02 by default (DCGAN);
* ``"xavier"``     -- Xavier/Glorot normal with ``gain`` (Glorot & Bengio, AISTATS 2010);
* ``"kaiming"``    -- He normal, fan-in mode, a = 0 (He et al., ICCV 2015); ``gain`` is unused;
* ``"orthogonal"`` -- orthogonal matrix scaled by ``gain`` (Saxe et al., ICLR 2014);

their biases are zeroed; batch-norm scales are drawn from N(1, gain^2) and shifts zeroed. Other
parameters (instance norm without affine parameters has none; SAGAN's ``gamma``) are untouched.

Spectrally normalised layers (``torch.nn.utils.parametrizations.spectral_norm``) are
initialised through their unconstrained ``parametrizations.weight.original`` tensor, and their
power-iteration vectors are then re-estimated for the new weight.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

InitScheme = Literal["normal", "xavier", "kaiming", "orthogonal"]

INIT_SCHEMES: tuple[str, ...] = get_args(InitScheme)

_WEIGHTED = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)

# Power iterations used to re-estimate the spectral-norm singular vectors after re-initialising
# a weight (the same number torch runs when the parametrisation is registered).
_SN_POWER_ITERATIONS = 15


def _raw_weight(module: nn.Module) -> Tensor:
    """The trainable weight tensor: ``original`` for a parametrised weight, else ``weight``."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original  # type: ignore[union-attr,return-value]
    return module.weight  # type: ignore[return-value]


@torch.no_grad()
def _resync_spectral_norm(module: nn.Module) -> None:
    """Re-run the power iteration of every spectral-norm parametrisation of ``module.weight``.

    Without this the cached singular vectors ``_u`` / ``_v`` still belong to the weight drawn at
    construction, and the first forward passes would divide by a poor estimate of sigma.
    """
    if not parametrize.is_parametrized(module, "weight"):
        return
    original = module.parametrizations.weight.original  # type: ignore[union-attr]
    for param in module.parametrizations.weight:  # type: ignore[union-attr]
        power = getattr(param, "_power_method", None)
        reshape = getattr(param, "_reshape_weight_to_matrix", None)
        if callable(power) and callable(reshape) and original.ndim > 1:
            power(reshape(original), _SN_POWER_ITERATIONS)


@torch.no_grad()
def _init_weight(weight: Tensor, scheme: str, gain: float) -> None:
    if scheme == "normal":
        nn.init.normal_(weight, 0.0, gain)
    elif scheme == "xavier":
        nn.init.xavier_normal_(weight, gain=gain)
    elif scheme == "kaiming":
        nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
    else:  # orthogonal
        nn.init.orthogonal_(weight, gain=gain)


def init_weights(module: nn.Module, *, scheme: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialise every layer of ``module`` in place, as the pix2pix / CycleGAN reference does.

    Args:
        module: a network (all sub-modules are visited).
        scheme: ``"normal"``, ``"xavier"``, ``"kaiming"`` or ``"orthogonal"``.
        gain: standard deviation for ``"normal"``, gain for ``"xavier"`` / ``"orthogonal"``,
            and standard deviation of batch-norm scales around 1; must be positive.

    Returns:
        ``module`` itself, to allow ``net = init_weights(Net(...))``.

    Raises:
        ValueError: unknown ``scheme`` or non-positive ``gain``.
    """
    if scheme not in INIT_SCHEMES:
        choices = ", ".join(repr(s) for s in INIT_SCHEMES)
        raise ValueError(f"unknown init scheme {scheme!r}; expected one of {choices}")
    if not gain > 0:
        raise ValueError(f"init gain must be positive, got {gain!r}")

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, _WEIGHTED):
                _init_weight(_raw_weight(m), scheme, gain)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
                _resync_spectral_norm(m)
            elif isinstance(m, _BATCH_NORMS) and m.affine:
                nn.init.normal_(m.weight, 1.0, gain)
                nn.init.zeros_(m.bias)
    return module
