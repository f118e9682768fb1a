"""InfoGAN's networks and its mutual-information term (Chen et al. 2016, "InfoGAN:
Interpretable Representation Learning by Information Maximizing Generative Adversarial Nets").

The MNIST architecture of the paper's Table 1 (Appendix C), for any side S divisible by 4:

* G: FC 1024 BN ReLU, FC (S/4)^2 x 128 BN ReLU, upconv 64 4x4 /2 BN ReLU, upconv C 4x4 /2 tanh;
* D: conv 64 4x4 /2 lReLU, conv 128 4x4 /2 BN lReLU, FC 1024 BN lReLU, FC 1 (the real/fake
  logit); Q shares D's trunk up to the FC 1024 layer and adds FC 128 BN lReLU, FC (the codes'
  parameters: K category logits, and a mean, plus a log standard deviation with the ``nll``
  form, per continuous code).

``CodedGenerator`` is the inference module: ``forward(z, c, c1, c2, ...)`` with the noise and
each code an input of its own (the ONNX export's inputs).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

LEAK = 0.1  # the paper's leaky ReLU slope (Appendix C: "leaky rectified linear units ... 0.1")
CONTINUOUS_LOSSES = ("fixed", "nll")


class InfoGenerator(nn.Module):
    """cat([z, one-hot c, continuous codes]) (B, in_dim) -> images (B, C, S, S) in [-1, 1]."""

    def __init__(self, in_dim: int, image_size: int, channels: int = 3, hidden: int = 1024):
        super().__init__()
        self.side = image_size // 4
        self.fc = nn.Sequential(
            nn.Linear(in_dim, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(True),
            nn.Linear(hidden, 128 * self.side**2, bias=False),
            nn.BatchNorm1d(128 * self.side**2),
            nn.ReLU(True),
        )
        self.up = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(True),
            nn.ConvTranspose2d(64, channels, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.fc(x).view(-1, 128, self.side, self.side))


class InfoDiscriminator(nn.Module):
    """images (B, C, S, S) -> D's logit (B, 1); ``q`` -> the codes' parameters (Q on D's trunk)."""

    def __init__(
        self,
        image_size: int,
        categories: int,
        continuous: int,
        *,
        channels: int = 3,
        hidden: int = 1024,
        learn_std: bool = False,
    ) -> None:
        super().__init__()
        side = image_size // 4
        self.categories, self.continuous, self.learn_std = categories, continuous, learn_std
        self.trunk = nn.Sequential(
            nn.Conv2d(channels, 64, 4, 2, 1),
            nn.LeakyReLU(LEAK, True),
            nn.Conv2d(64, 128, 4, 2, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.LeakyReLU(LEAK, True),
            nn.Flatten(),
            nn.Linear(128 * side**2, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.LeakyReLU(LEAK, True),
        )
        self.head = nn.Linear(hidden, 1)
        outputs = categories + continuous * (2 if learn_std else 1)
        self.q_head = nn.Sequential(
            nn.Linear(hidden, 128, bias=False),
            nn.BatchNorm1d(128),
            nn.LeakyReLU(LEAK, True),
            nn.Linear(128, outputs),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))

    def q(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Q(c | x): category logits (B, K), continuous means (B, L) and, with a learnt
        variance, log standard deviations (B, L); None for the fixed unit variance."""
        out = self.q_head(self.trunk(x)).float()
        k, n = self.categories, self.continuous
        return out[:, :k], out[:, k : k + n], out[:, k + n :] if self.learn_std else None


class CodedGenerator(nn.Module):
    """G(z, c, c1, ..., cL) = G(cat([z, c, c1, ..., cL])): the noise (B, Z), the categorical
    code's one-hot (B, K) and each continuous code (B, 1) as inputs of their own."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.train(generator.training)

    def forward(self, z: Tensor, *codes: Tensor) -> Tensor:
        return self.generator(torch.cat([z, *(c.to(z.dtype) for c in codes)], 1))


def information_loss(
    q: tuple[Tensor, Tensor, Tensor | None],
    category: Tensor,
    continuous: Tensor,
    *,
    lambda_cat: float,
    lambda_cont: float,
) -> tuple[Tensor, dict[str, float]]:
    """lambda L_I (Chen et al. 2016, Eq. 4-6): minus the variational lower bound on I(c; G(z,
    c)), up to the constant H(c), as negative log-likelihoods of the drawn codes under Q:

    * categorical: cross-entropy -log Q(c | x), mean over the batch;
    * continuous: a factored Gaussian, -log N(c; mu, sigma^2) = log(2 pi)/2 + log sigma +
      (c - mu)^2 / (2 sigma^2), summed over the codes and averaged over the batch; sigma = 1
      (the authors' code's fixed standard deviation) unless Q predicts log sigma.

    Returns lambda_cat * L_cat + lambda_cont * L_cont and the logged terms (``MI_cat``: the
    bound on I(c; x) in nats, log K - L_cat)."""
    logits, mean, log_std = q
    cat = F.cross_entropy(logits, category)
    log_std = torch.zeros_like(mean) if log_std is None else log_std
    nll = (
        0.5 * math.log(2 * math.pi) + log_std + (continuous - mean) ** 2 / (2 * log_std.exp() ** 2)
    )
    cont = nll.sum(1).mean() if mean.shape[1] else mean.new_zeros(())
    logs = {"Q_cat": cat.item(), "Q_cont": cont.item()}
    logs["MI_cat"] = math.log(logits.shape[1]) - logs["Q_cat"]
    return lambda_cat * cat + lambda_cont * cont, logs


def init_weights(module: nn.Module) -> nn.Module:
    """DCGAN's initialisation (the paper names none): N(0, 0.02) weights, batch-norm scales
    N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module
