"""The adversarial objective of a training step, assembled from a ``GANConfig``.

Plugins call ``discriminator_loss(D, real, fake)`` and ``generator_loss(D, fake, real)``; every
stabiliser that acts on what D sees or on the losses lives here, so it applies to every plugin:

* the adversarial family (``translate.losses.adversarial``), with one-sided label smoothing;
* gradient penalties GP / R1 / R2 (``translate.losses.regularizers``), optionally lazy, and
  ProGAN's drift term ``epsilon_drift * E[D(x)^2]`` on the real scores (every step);
* gradient normalisation of D's output (GN-GAN, ``translate.nn.gradnorm``);
* DiffAugment (``translate.losses.augment``) or ADA (``translate.losses.ada``, images only) and
  annealed instance noise on D's inputs, real and fake alike, in both steps;
* feature matching on D's intermediate features.

``unconditional_gan_step`` is the plain step of a generator from noise (dcgan, transgan).

A conditional discriminator sees ``cat([condition, image])``: callers pass
``condition_channels`` (the condition's channel count), and then penalties and gradient
normalisation take the gradient with respect to the image channels only, and DiffAugment and
instance noise act on the image channels only (the condition keeps its values and only follows
the image's translation, ``translate.losses.augment``).

The engine calls ``begin_step(step, max_steps)`` before each training step (noise schedule, lazy
penalties); the objective holds no device or optimiser state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from translate.config import GANConfig
from translate.losses.ada import AdaptiveAugment
from translate.losses.adversarial import AdversarialLoss, Logits, adversarial_loss, logit_scales
from translate.losses.augment import AugmentParams, DiffAugment
from translate.losses.lazy import lazy_scale
from translate.losses.regularizers import Discriminator, gradient_penalty, r1_penalty, r2_penalty
from translate.nn.gradnorm import gradient_normalized

__all__ = ["GANObjective", "feature_matching_loss", "log_values"]


def _mean_logit(logits: Logits) -> Tensor:
    """Mean logit, averaged over scales like the losses (a diagnostic for the logs)."""
    return torch.stack([s.detach().float().mean() for s in logit_scales(logits)]).mean()


def log_values(values: Mapping[str, Tensor], *, deferred: bool = False) -> dict[str, Any]:
    """Loss values for the logs. By default floats, read with one device sync for all of them
    (one stack + tolist instead of an ``.item()`` each). ``deferred`` (``--deferred-sync``):
    detached float32 scalars left on the device; the engine adds them up there and reads them
    once per log interval, so a GPU step has no host sync."""
    scalars = [v.detach().float().reshape(()) for v in values.values()]
    if deferred:
        return dict(zip(values, scalars, strict=True))
    return dict(zip(values, torch.stack(scalars).tolist(), strict=True)) if scalars else {}


def _split_features(features: object) -> list[list[Tensor]]:
    """``forward_features`` output as per-scale lists: ``[f1, ..., logits]`` or a list of them."""
    if not isinstance(features, (list, tuple)) or not features:
        raise TypeError("forward_features must return a non-empty list of tensors (or of lists)")
    if all(isinstance(f, Tensor) for f in features):
        return [list(features)]
    return [list(scale) for scale in features]  # type: ignore[arg-type]


def feature_matching_loss(fake_features: object, real_features: object, *, paired: bool) -> Tensor:
    """Feature matching between D's features of generated and real data.

    ``paired`` (fake ``i`` is a rendering of the same input as real ``i``, as in pix2pix):
    pix2pixHD's loss (Wang et al. 2018, Eq. 4), the L1 distance between the features of each
    pair. Otherwise Salimans et al. 2016 (Sec. 3.1): the squared distance between the batch means
    of the features. Averaged over layers and scales; the last item of each scale (the logits)
    is left out, and real features carry no gradient. pix2pixHD weights its layers by
    ``4 / (n_layers + 1)`` with lambda = 10, i.e. ``feature_matching = 40`` here.
    """
    fake_scales, real_scales = _split_features(fake_features), _split_features(real_features)
    if len(fake_scales) != len(real_scales):
        raise ValueError("real and fake features have different numbers of scales")
    per_scale: list[Tensor] = []
    for fakes, reals in zip(fake_scales, real_scales, strict=True):
        layers = list(zip(fakes[:-1], reals[:-1], strict=True))
        if not layers:
            raise ValueError("forward_features returned only the logits: no features to match")
        terms = []
        for f, r in layers:
            f, r = f.float(), r.detach().float()
            if paired:
                terms.append(F.l1_loss(f, r))
            else:
                terms.append(F.mse_loss(f.mean(0), r.mean(0)))
        per_scale.append(torch.stack(terms).mean())
    return torch.stack(per_scale).mean()


class GANObjective:
    """Discriminator and generator losses of the configured GAN family and regularisers.

    The discriminator loss is the family's ``d_loss`` plus, when their weights are positive,
    ``gp_weight * GP`` (Gulrajani et al. 2017, Eq. 3), ``r1_gamma / 2 * R1`` and
    ``r2_gamma / 2 * R2`` (Mescheder et al. 2018, Eqs. 9-10), each times ``penalty_interval`` on
    the steps where the lazy penalties run (Karras et al. 2020, Sec. 3.1) and absent on the
    others. ``real`` and ``fake`` are whatever the discriminator takes (conditional callers
    concatenate the condition).
    """

    def __init__(self, config: GANConfig | None = None) -> None:
        self.config = config if config is not None else GANConfig()
        self.adversarial: AdversarialLoss = adversarial_loss(
            self.config.gan_loss, label_smoothing=self.config.label_smoothing
        )
        self.gp_weight = float(self.config.effective_gp_weight)
        self.r1_gamma = float(self.config.r1_gamma)
        self.r2_gamma = float(self.config.r2_gamma)
        self.epsilon_drift = float(self.config.epsilon_drift)
        self.feature_matching_weight = float(self.config.feature_matching)
        self.gradient_norm = bool(self.config.gradient_norm)
        policy = self.config.diff_augment_policy
        self.augment: DiffAugment | None = DiffAugment(policy) if policy else None
        #: ADA (``translate.losses.ada``): its p is engine state, adjusted by the Trainer
        self.ada: AdaptiveAugment | None = None
        if self.config.ada_enabled:
            self.ada = AdaptiveAugment(
                self.config.ada_pipeline,
                p=self.config.ada_p or 0.0,
                target=self.config.ada_target or None,
                interval=self.config.ada_interval,
                kimg=self.config.ada_kimg,
            )
        #: std of the instance noise at this step (``begin_step``)
        self.noise_std = float(self.config.instance_noise)
        #: factor of the penalties at this step: ``penalty_interval`` or 0 (lazy regularisation)
        self.penalty_scale = 1.0
        #: this process's rows of the global batch (distributed runs) and the run's seed: the
        #: GP interpolation weights are drawn for the global batch from (seed, step), so N
        #: processes with batch B draw what one process with batch N * B draws
        self.rank, self.world_size, self.seed = 0, 1, 0
        self._step = self._draws = 0
        #: ``--deferred-sync``: the logs stay on the device (``log_values``); set by the engine
        self.deferred_logs = False

    def logs(self, values: Mapping[str, Tensor]) -> dict[str, Any]:
        """``values`` for a step's logs (plugins' own terms too): floats, or device scalars
        under ``--deferred-sync`` (see ``log_values``)."""
        return log_values(values, deferred=self.deferred_logs)

    @property
    def relativistic(self) -> bool:
        """Whether ``generator_loss`` needs real data."""
        return self.adversarial.relativistic

    def begin_step(self, step: int, max_steps: int) -> None:
        """Set the per-step schedules: annealed instance noise and the lazy penalties."""
        cfg = self.config
        if cfg.instance_noise > 0:
            span = cfg.instance_noise_steps or max_steps
            self.noise_std = cfg.instance_noise * max(0.0, 1.0 - step / max(span, 1))
        self.penalty_scale = lazy_scale(step, cfg.penalty_interval)
        self._step, self._draws = step, 0

    def _interpolation_weights(self, n: int) -> Tensor:
        """GP's ``eps ~ U[0, 1]`` for this process's ``n`` rows of the global batch."""
        # one stream per (seed, step, draw of the step): CycleGAN's two critics differ
        key = [self.seed, self._step, self._draws]
        self._draws += 1
        generator = torch.Generator().manual_seed(
            int(np.random.SeedSequence(key).generate_state(1)[0])
        )
        draws = torch.rand(n * self.world_size, generator=generator)
        return draws[self.rank * n : (self.rank + 1) * n]

    # ------------------------------------------------------------------ what D sees
    def _view(self, x: Tensor, params: AugmentParams | None = None, cond: int = 0) -> Tensor:
        """D's input: DiffAugment (a fresh draw unless ``params``) then instance noise, on the
        image channels (after the first ``cond``); the condition only follows the geometry."""
        if self.augment is not None:
            draw = params if params is not None else self.augment.sample(x)
            x = self.augment.apply(x, draw, condition_channels=cond)
        if self.ada is not None:  # the images only, never a condition map
            x = self.ada(x) if not cond else torch.cat([x[:, :cond], self.ada(x[:, cond:])], 1)
        if self.noise_std > 0:
            noise = self.noise_std * torch.randn_like(x[:, cond:])
            x = x + noise if not cond else torch.cat([x[:, :cond], x[:, cond:] + noise], 1)
        return x

    def _logits(self, D: Discriminator, x: Tensor, cond: int = 0) -> Logits:  # noqa: N803
        if self.gradient_norm:
            return gradient_normalized(D, x, condition_channels=cond)
        return D(x)

    # ------------------------------------------------------------------ losses
    def discriminator_loss(
        self,
        D: Discriminator,  # noqa: N803 - the papers' name for the discriminator
        real: Tensor,
        fake: Tensor,
        *,
        condition_channels: int = 0,
    ) -> tuple[Tensor, dict[str, float]]:
        """Total discriminator loss and its float logs.

        ``fake`` is detached here so the D step never backpropagates into G. Logs: ``D_loss``
        (total), ``D_adv``, ``D_real`` / ``D_fake`` (mean logits), ``drift`` (the unweighted
        E[D(x)^2], when ``epsilon_drift`` > 0), and ``gp`` / ``r1`` / ``r2`` (unweighted
        penalties) for the penalties computed at this step only. Real and fake
        are augmented independently (Zhao et al. 2020); penalties are taken at D's actual
        (augmented, noisy) inputs. ``condition_channels``: see the module docstring.
        """
        cond = condition_channels
        real = self._view(real.detach(), cond=cond)
        fake = self._view(fake.detach(), cond=cond)
        real_logits = self._logits(D, real, cond)
        fake_logits = self._logits(D, fake, cond)
        adv = self.adversarial.d_loss(real_logits, fake_logits)
        if self.ada is not None:  # the overfitting heuristic r_t = E[sign(D(real))]
            self.ada.observe(
                torch.cat([s.reshape(s.shape[0], -1) for s in logit_scales(real_logits)], 1)
            )
        total = adv
        logs: dict[str, Tensor] = {
            "D_adv": adv,
            "D_real": _mean_logit(real_logits),
            "D_fake": _mean_logit(fake_logits),
        }
        if self.epsilon_drift > 0:  # Karras et al. 2018, App. A.1: eps * D(x)^2 on reals
            drift = torch.stack(
                [s.float().square().mean() for s in logit_scales(real_logits)]
            ).mean()
            total = total + self.epsilon_drift * drift
            logs["drift"] = drift
        scale = self.penalty_scale
        if scale > 0:
            if self.gp_weight > 0:
                gp = gradient_penalty(
                    D,
                    real,
                    fake,
                    condition_channels=cond,
                    eps=self._interpolation_weights(real.shape[0]),
                )
                total = total + scale * self.gp_weight * gp
                logs["gp"] = gp
            if self.r1_gamma > 0:
                r1 = r1_penalty(D, real, condition_channels=cond)
                total = total + scale * 0.5 * self.r1_gamma * r1
                logs["r1"] = r1
            if self.r2_gamma > 0:
                r2 = r2_penalty(D, fake, condition_channels=cond)
                total = total + scale * 0.5 * self.r2_gamma * r2
                logs["r2"] = r2
        logs["D_loss"] = total
        return total, self.logs(logs)

    def generator_loss(
        self,
        D: Discriminator,  # noqa: N803
        fake: Tensor,
        real: Tensor | None = None,
        *,
        paired: bool = False,
        condition_channels: int = 0,
    ) -> tuple[Tensor, dict[str, float]]:
        """Generator loss (adversarial, plus weighted feature matching) and its logs.

        Logs: ``G_adv`` and, with ``feature_matching > 0``, ``G_fm`` (unweighted). ``real`` is
        needed by relativistic families and by feature matching; its logits and features are
        computed without a graph, since they carry no gradient to G. ``paired`` says whether
        ``fake[i]`` and ``real[i]`` show the same content (pix2pix: yes; CycleGAN: no); it
        picks the feature-matching variant (see ``feature_matching_loss``). One augmentation
        draw is shared by fake and real, so paired features are compared under one transform.
        """
        need_real = self.adversarial.relativistic or self.feature_matching_weight > 0
        if need_real and real is None:
            why = (
                f"the {self.adversarial.name} generator loss is relativistic"
                if self.adversarial.relativistic
                else "feature matching compares D's features of real and generated data"
            )
            raise ValueError(f"{why}: pass the real batch (real=...)")
        cond = condition_channels
        params = self.augment.sample(fake) if self.augment is not None else None
        fake_in = self._view(fake, params, cond)
        real_in = None
        if need_real and real is not None:
            same_batch = real.shape[0] == fake.shape[0]
            real_in = self._view(real.detach(), params if same_batch else None, cond)
        fm_weight = self.feature_matching_weight
        fake_features = real_features = None
        if fm_weight > 0:
            assert real_in is not None
            fake_features = _forward_features(D, fake_in)
            with torch.no_grad():
                real_features = _forward_features(D, real_in)
        if fake_features is not None and not self.gradient_norm:
            # the last feature of each scale is the logits: no second forward pass
            fake_logits: Logits = _logits_of(fake_features)
            real_logits: Logits | None = _logits_of(real_features)
        else:
            fake_logits = self._logits(D, fake_in, cond)
            real_logits = None
            if real_in is not None and self.adversarial.relativistic:
                with torch.no_grad():
                    real_logits = self._logits(D, real_in, cond)
        loss = self.adversarial.g_loss(fake_logits, real_logits)
        logs: dict[str, Tensor] = {"G_adv": loss}
        if fm_weight > 0:
            fm = feature_matching_loss(fake_features, real_features, paired=paired)
            loss = loss + fm_weight * fm
            logs["G_fm"] = fm
        return loss, self.logs(logs)

    def feature_matching(
        self,
        D: Discriminator,  # noqa: N803
        fake: Tensor,
        real: Tensor,
        *,
        paired: bool,
        condition_channels: int = 0,
    ) -> Tensor:
        """The unweighted feature-matching loss alone, for plugins that weight it themselves
        (``D`` must have ``forward_features``; one augmentation draw for both batches)."""
        cond = condition_channels
        params = self.augment.sample(fake) if self.augment is not None else None
        same_batch = real.shape[0] == fake.shape[0]
        fake_features = _forward_features(D, self._view(fake, params, cond))
        with torch.no_grad():
            real_in = self._view(real.detach(), params if same_batch else None, cond)
            real_features = _forward_features(D, real_in)
        return feature_matching_loss(fake_features, real_features, paired=paired)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.adversarial!r}, gp_weight={self.gp_weight}, "
            f"r1_gamma={self.r1_gamma}, r2_gamma={self.r2_gamma})"
        )


def _forward_features(D: Discriminator, x: Tensor) -> object:  # noqa: N803
    features = getattr(D, "forward_features", None)
    if not callable(features):
        raise ValueError(
            f"feature matching needs a discriminator with forward_features(x); "
            f"{type(D).__name__} has none"
        )
    return features(x)


def _logits_of(features: object) -> Logits:
    scales = _split_features(features)
    logits = [scale[-1] for scale in scales]
    return logits[0] if len(logits) == 1 and isinstance(features[-1], Tensor) else logits  # type: ignore[index]


def unconditional_gan_step(ctx: Any, real: Tensor, z: Tensor) -> dict[str, float]:
    """One step of the plain GAN game between ``ctx.models["G"]`` (latents ``z`` -> images) and
    ``ctx.models["D"]`` on ``real`` images, with the configured objective (Goodfellow et al.
    2014 and every core family and regulariser): D's loss on (real, G(z) detached), then, on a
    generator step, G's loss with D frozen. The step of dcgan and transgan."""
    G, D = ctx.models["G"], ctx.models["D"]
    # on a critic-only step (--n-critic N) G is not updated: build no graph through it
    with ctx.autocast(), torch.set_grad_enabled(ctx.update_generator):
        fake = G(z)
    with ctx.autocast():  # the objective detaches the fake for D's loss
        loss_d, logs = ctx.gan.discriminator_loss(D, real, fake)
    ctx.optimize("D", loss_d)
    if not ctx.update_generator:
        return logs
    with ctx.frozen("D"), ctx.autocast():
        loss_g, logs_g = ctx.gan.generator_loss(D, fake, real, paired=False)
    ctx.optimize("G", loss_g)
    return {**logs, **logs_g}
