"""The 2-D ring of Gaussians: a seconds-long behavioural check of a GAN family on CPU.

The classic mode-collapse benchmark (Metz et al. 2017, "Unrolled GANs"; Srivastava et al.
2017, VEEGAN): real data is a mixture of ``modes`` Gaussians (std ``std``) evenly spaced on a
circle of radius ``radius``; G and D are small MLPs. A sample is *high quality* when it lies
within 3 std of its nearest mode, and a mode is *covered* when at least ``min_share`` of the
samples are high-quality samples of that mode.

Training goes through exactly the code a plugin uses: the engine's ``apply_gan_transforms``
(spectral norm, minibatch std), ``build_optimizer`` (Adam or wgan's RMSprop), ``TrainContext``
(n_critic skipping, weight clipping) with a ``GANObjective`` (family, penalties, lazy
regularisation, instance noise, gradient normalisation), and the engine's ``ModelEMA``. The step
below is written the way a plugin writes its ``train_step``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from translate.config import GANConfig, TrainConfig
from translate.engine.context import TrainContext
from translate.engine.ema import ModelEMA
from translate.engine.schedule import lr_factor
from translate.engine.transforms import apply_gan_transforms, check_gan_compatible
from translate.losses.objective import GANObjective

__all__ = ["RingResult", "RingTask", "mlp", "train_ring"]


@dataclass(frozen=True)
class RingTask:
    """The data, the networks and the training budget of one ring run.

    The optimiser settings are the TTUR recipe of SAGAN (Zhang et al. 2019): Adam with
    ``beta1 = 0``, ``beta2 = 0.9`` and a discriminator learning rate four times G's, scaled up
    for this small problem; the LR decays linearly to zero over the second half, as in pix2pix.
    """

    modes: int = 8
    radius: float = 2.0
    std: float = 0.1
    z_dim: int = 2
    hidden: int = 128
    layers: int = 2
    activation: str = "relu"
    batch_size: int = 256
    steps: int = 1000
    lr: float = 1e-3
    lr_d: float | None = 4e-3
    beta1: float = 0.0
    beta2: float = 0.9
    lr_decay_start: float = 0.5
    eval_samples: int = 2500
    min_share: float = 0.01
    seed: int = 0
    #: let the family's paper optimiser settings (wgan: RMSprop 5e-5; wgan-gp: Adam 1e-4,
    #: betas (0, 0.9), one lr) replace the task's, as ``translate.train`` does for options the
    #: user leaves unset; False: the task's lr, lr_d and betas are the user's
    family_defaults: bool = True

    def centres(self) -> Tensor:
        angles = torch.arange(self.modes, dtype=torch.float32) * (2 * math.pi / self.modes)
        return self.radius * torch.stack([angles.cos(), angles.sin()], 1)  # (modes, 2)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` real points, (n, 2)."""
        which = torch.randint(self.modes, (n,), generator=generator)
        noise = torch.randn(n, 2, generator=generator) * self.std
        return self.centres()[which] + noise


@dataclass(frozen=True)
class RingResult:
    modes_covered: int
    high_quality: float  # share of samples within 3 std of a mode
    seconds: float
    d_loss: float
    g_loss: float


def mlp(
    *, in_features: int, out_features: int, hidden: int, layers: int, activation: str = "relu"
) -> nn.Sequential:
    """``layers`` hidden Linear + ReLU (or LeakyReLU(0.2)) layers of width ``hidden``, then a
    Linear."""
    blocks: list[nn.Module] = []
    width = in_features
    for _ in range(layers):
        act = nn.ReLU() if activation == "relu" else nn.LeakyReLU(0.2)
        blocks += [nn.Linear(width, hidden), act]
        width = hidden
    blocks.append(nn.Linear(width, out_features))
    return nn.Sequential(*blocks)


def evaluate(task: RingTask, points: Tensor) -> tuple[int, float]:
    """(modes covered, share of high-quality samples) of generated ``points`` (n, 2)."""
    dist = torch.cdist(points.float(), task.centres())  # (n, modes)
    nearest, which = dist.min(1)
    good = nearest < 3 * task.std
    counts = torch.bincount(which[good], minlength=task.modes)
    covered = int((counts >= task.min_share * len(points)).sum())
    return covered, float(good.float().mean())


def _step(ctx: TrainContext, task: RingTask, real: Tensor) -> dict[str, float]:
    """One training step, as a plugin's ``train_step`` writes it."""
    G, D = ctx.models["G"], ctx.models["D"]
    z = torch.randn(real.shape[0], task.z_dim)
    with torch.set_grad_enabled(ctx.update_generator):
        fake = G(z)
    loss_d, logs = ctx.gan.discriminator_loss(D, real, fake)
    ctx.optimize("D", loss_d)
    if ctx.update_generator:
        with ctx.frozen("D"):
            loss_g, logs_g = ctx.gan.generator_loss(D, fake, real)
            ctx.optimize("G", loss_g)
        logs.update(logs_g)
    return logs


def train_ring(gan: GANConfig, task: RingTask | None = None) -> RingResult:
    """Train on the ring with ``gan``'s family and stabilisers; evaluate G (its EMA if on)."""
    from translate.engine.setup import build_optimizer

    task = task or RingTask()
    torch.manual_seed(task.seed)
    data_rng = torch.Generator().manual_seed(task.seed + 1)
    models: dict[str, nn.Module] = {
        "G": mlp(
            in_features=task.z_dim,
            out_features=2,
            hidden=task.hidden,
            layers=task.layers,
            activation=task.activation,
        ),
        "D": mlp(
            in_features=2,
            out_features=1,
            hidden=task.hidden,
            layers=task.layers,
            activation=task.activation,
        ),
    }
    apply_gan_transforms(models, gan)
    # the family's paper settings win over the task's, as in ``translate.train`` (wgan: 5e-5;
    # wgan-gp: Adam 1e-4, betas (0, 0.9))
    family = gan.family_train_defaults if task.family_defaults else {}
    lr = family.get("lr", task.lr)
    lr_d = family.get("lr_d", task.lr_d)
    train = TrainConfig(
        batch_size=task.batch_size,
        lr=lr,
        lr_d=lr_d,
        beta1=family.get("beta1", task.beta1),
        beta2=family.get("beta2", task.beta2),
    )
    check_gan_compatible(models, gan, train)
    optimizers = {
        "G": build_optimizer(list(models["G"].parameters()), lr=lr, train=train, gan=gan),
        "D": build_optimizer(list(models["D"].parameters()), lr=lr_d or lr, train=train, gan=gan),
    }
    ctx = TrainContext(
        models=models,
        optimizers=optimizers,
        device=torch.device("cpu"),
        amp="none",
        gan=GANObjective(gan),
        seed=task.seed,
        clip_value=gan.effective_clip_value,
        n_critic=gan.effective_n_critic,
    )
    ema = ModelEMA({"G": models["G"]}, gan.ema_decay) if gan.ema_decay > 0 else None
    start = time.perf_counter()
    logs: dict[str, float] = {}
    last_g = float("nan")
    base_lr = {"G": lr, "D": lr_d or lr}
    for step in range(task.steps):
        factor = lr_factor(step, max_steps=task.steps, decay_start=task.lr_decay_start)
        for group, optimizer in optimizers.items():
            for pg in optimizer.param_groups:
                pg["lr"] = base_lr[group] * factor
        ctx.begin_step(step, max_steps=task.steps)
        logs = _step(ctx, task, task.sample(task.batch_size, data_rng))
        last_g = logs.get("G_adv", last_g)
        if ema is not None and ctx.generator_stepped:
            ema.update(models)
    seconds = time.perf_counter() - start
    G = ema.models["G"] if ema is not None else models["G"]
    with torch.no_grad():
        z = torch.randn(task.eval_samples, task.z_dim, generator=data_rng)
        covered, good = evaluate(task, G(z))
    return RingResult(covered, good, seconds, logs.get("D_loss", float("nan")), last_g)
