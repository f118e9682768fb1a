"""The training loop: build, step, log, sample, checkpoint, resume.

``train("pix2pix", data="facades", direction="b2a", max_steps=200)`` is the whole public API;
options are split by name across the plugin's config, ``TrainConfig`` and ``GANConfig``. The
plugin writes the GAN step (``train_step``); everything around it lives here.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from translate.config import (
    GANConfig,
    TrainConfig,
)
from translate.data.skipping import SkipUnreadable
from translate.engine import checkpoint as ckpt
from translate.engine.accumulate import MicroBatches, train_batches
from translate.engine.context import TrainContext, is_discriminator_group
from translate.engine.device import configure_device, resolve_amp
from translate.engine.distributed import Distributed, GradientSync, convert_sync_batchnorm
from translate.engine.ema import ModelEMA, half_life_decay
from translate.engine.interrupt import Interrupts, TrainingInterrupted, stopped_by
from translate.engine.run_log import MetricsLog, Progress, cut_metrics, save_grid
from translate.engine.run_state import (
    RANK_SEED,
    diverged,
    float_buffers,
    restore_run,
    run_meta,
    run_weights,
    save_run,
)
from translate.engine.schedule import lr_factor
from translate.engine.setup import build_optimizer, claim_run_dir, run_configs
from translate.engine.transforms import apply_gan_transforms, check_gan_compatible, is_generator
from translate.engine.validation import PeriodicEval
from translate.engine.watch import RunWatch, resolve_tensorboard
from translate.errors import (
    ConfigError,
    DataError,
    TrainingDiverged,
    TranslateError,
)
from translate.losses.objective import GANObjective
from translate.registry import load_plugin

log = logging.getLogger("translate.train")


class Trainer:
    """One training run of one plugin. ``run()`` trains until ``max_steps`` or Ctrl-C."""

    def __init__(
        self,
        plugin: Any,
        plugin_cfg: Any,
        train_cfg: TrainConfig,
        gan_cfg: GANConfig,
        *,
        run_dir: Path | None,
        resume_from: Path | None = None,
        overwrite: bool = False,
    ):
        self.plugin, self.plugin_cfg = plugin, plugin_cfg
        self.train_cfg, self.gan_cfg = train_cfg, gan_cfg
        # a torchrun worker joins the process group here; a single process is a world of one
        self.dist = Distributed.from_env(train_cfg.device, timeout_s=train_cfg.dist_timeout)
        new_here = resume_from is None and self.dist.is_main  # rank 0 claims a new run's folder
        fresh = new_here and not (run_dir is not None and Path(run_dir).exists())
        error: TranslateError | None = None
        claimed = Path(run_dir or resume_from.parent.parent) if resume_from is not None else None
        if new_here:  # run_dir None: runs/<plugin>-<time>; one holding a run: refused
            try:
                claimed = claim_run_dir(run_dir, plugin.name, overwrite=overwrite)
            except TranslateError as exc:
                error = exc
        self.run_dir = Path(self.dist.gather(str(claimed))[0])  # the other ranks take rank 0's
        self.device = self.dist.device
        try:
            if error is None:
                self._setup(resume_from)
        except TranslateError as exc:
            error = exc
            if getattr(exc, "agreed", False):  # raised on every rank already (in _setup)
                error = None
            if fresh:
                with contextlib.suppress(OSError):  # created for nothing: leave no trace
                    self.run_dir.rmdir()
            if error is None:
                raise
        # a user error on any rank stops every rank, with one message (rank 0 reports it)
        self.dist.agree(error)

    def _setup(self, resume_from: Path | None) -> None:
        plugin, plugin_cfg = self.plugin, self.plugin_cfg
        train_cfg, gan_cfg = self.train_cfg, self.gan_cfg
        self.amp, amp_reason = resolve_amp(train_cfg.amp, self.device)
        self.threads = configure_device(self.device, threads=train_cfg.threads)
        self.precision = {"none": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}[
            self.amp
        ] + f" ({amp_reason})"
        if train_cfg.sync_bn and self.dist.enabled and self.device.type != "cuda":
            raise ConfigError("sync_bn: SyncBatchNorm needs one GPU per process (CUDA)")
        torch.manual_seed(train_cfg.seed)
        if resume_from is None and callable(getattr(plugin, "finalize_config", None)):
            # a new run completes its config from the data once (label2image: the palette);
            # a resumed run keeps the one its checkpoint stored
            plugin_cfg = plugin.finalize_config(plugin_cfg)
            if not isinstance(plugin_cfg, plugin.config_cls):
                raise TypeError(f"{plugin.name}.finalize_config must return a config_cls")
            self.plugin_cfg = plugin_cfg

        dataset = plugin.build_dataset(plugin_cfg, "train")
        if dataset is None or len(dataset) == 0:
            raise DataError(f"{getattr(plugin_cfg, 'data', '?')}: no training images")
        # a file damaged past its header (a truncated JPEG) is skipped, not fatal
        self.dataset = SkipUnreadable(dataset)
        val_dataset = plugin.build_dataset(plugin_cfg, "val")
        self.val_dataset = None if val_dataset is None else SkipUnreadable(val_dataset)

        self.memory_format = (
            torch.channels_last if train_cfg.channels_last else torch.contiguous_format
        )
        # the GAN family's architectural stabilisers act on whatever the plugin built
        built = apply_gan_transforms(plugin.build_models(plugin_cfg), gan_cfg)
        initialize = getattr(plugin, "initialize", None)
        if resume_from is None and initialize is not None:
            initialize(built, plugin_cfg)  # e.g. start from a pretrained generator
        check_gan_compatible(built, gan_cfg, train_cfg)
        if train_cfg.sync_bn and self.dist.enabled:
            built = convert_sync_batchnorm(built)
        self.models: dict[str, nn.Module] = {
            k: m.to(self.device, memory_format=self.memory_format) for k, m in built.items()
        }
        # a data or model error on one rank only (a folder changed under it) must not leave the
        # others waiting in the broadcast: every rank agrees first, and all raise together
        self.dist.agree(None)
        self.dist.broadcast_models(self.models.values())  # every rank starts from rank 0's
        if self.dist.enabled:  # dropout, DiffAugment, noise: independent draws per rank
            torch.manual_seed(train_cfg.seed + RANK_SEED * self.dist.rank)
        if train_cfg.compile:
            for model in self.models.values():
                model.compile(mode=train_cfg.compile_mode)  # in place: same parameter names
        groups = plugin.param_groups(self.models)
        self.base_lr = {
            g: (train_cfg.lr_d or train_cfg.lr) if is_discriminator_group(g) else train_cfg.lr
            for g in groups
        }
        optimizers = {
            g: build_optimizer(params, lr=self.base_lr[g], train=train_cfg, gan=gan_cfg)
            for g, params in groups.items()
        }
        self.n_critic = gan_cfg.effective_n_critic
        if self.n_critic > 1 and not any(is_discriminator_group(g) for g in groups):
            raise ConfigError(
                f"n_critic: {self.n_critic} critic steps need a discriminator optimiser group "
                "(named D...); this plugin has none"
            )
        self.ctx = TrainContext(
            models=self.models,
            optimizers=optimizers,
            device=self.device,
            amp=self.amp,
            gan=GANObjective(gan_cfg),
            seed=train_cfg.seed,
            clip_value=gan_cfg.effective_clip_value,
            n_critic=self.n_critic,
            rank=self.dist.rank,
            ortho_reg=gan_cfg.ortho_reg,
            deferred_sync=train_cfg.deferred_sync,
            clip_grad_norm=gan_cfg.clip_grad_norm,
        )
        self.ctx.gan.rank, self.ctx.gan.world_size = self.dist.rank, self.dist.world_size
        if train_cfg.grad_accum > 1:  # K virtual ranks per process, world x K in all
            self.ctx.gan.world_size *= train_cfg.grad_accum
            self.ctx.micro = MicroBatches(
                train_cfg.grad_accum, ctx=self.ctx, rank=self.dist.rank, seed=train_cfg.seed,
                device=self.device,
            )  # fmt: skip
        self.ctx.gan.seed = train_cfg.seed
        generators = {k: m for k, m in self.models.items() if is_generator(k)}
        self.ema: ModelEMA | None = None
        if gan_cfg.ema_decay > 0 or gan_cfg.ema_kimg > 0:
            if not generators:
                option = "ema_decay" if gan_cfg.ema_decay > 0 else "ema_kimg"
                raise ConfigError(
                    f"{option}: this plugin builds no generator (no model named G...)"
                )
            self.ema = ModelEMA(generators, gan_cfg.ema_decay)
        self.step = 0
        self.samples_seen = 0  # global: over every process, so N processes resume as M
        if resume_from is not None:
            restore_run(self, resume_from)
        log.info("%s", self.settings())
        # DDP's reducers average each group's gradients (None in a single process)
        unused = getattr(plugin, "ddp_unused_parameters", True)  # declared per plugin
        sync = GradientSync(groups, self.device, find_unused=unused) if self.dist.enabled else None
        self.gradient_sync = sync
        if self.gradient_sync is not None:
            self.ctx.before_backward = self.gradient_sync.before_backward
        self.tensorboard = resolve_tensorboard(train_cfg.tensorboard)
        self.evaluator: PeriodicEval | None = None
        if train_cfg.eval_every > 0 and self.dist.is_main:
            self.evaluator = PeriodicEval(
                plugin, self.plugin_cfg, keep_best=train_cfg.keep_best, device=str(self.device)
            )
            self.evaluator.restore_best(self.run_dir / "checkpoints")
        self._buffers: list[tuple[torch.Tensor, torch.Tensor]] = []

    @property
    def global_batch_size(self) -> int:
        """Samples per optimisation step over every process: batch x world x grad-accum."""
        return self.train_cfg.batch_size * self.dist.world_size * self.train_cfg.grad_accum

    def settings(self) -> str:
        """One line of the effective objective and optimiser settings (family defaults
        resolved), printed when training starts."""
        gan, train = self.gan_cfg, self.train_cfg
        lr_d = train.lr_d or train.lr
        parts = [
            f"{self.plugin.name}: {gan.gan_loss}",
            f"n_critic {self.n_critic}",
            f"{gan.effective_optimizer} lr {train.lr:g} (D {lr_d:g})",
        ]
        if gan.effective_optimizer == "adam":
            parts.append(f"betas ({train.beta1:g}, {train.beta2:g})")
        if gan.effective_gp_weight:
            parts.append(f"gp {gan.effective_gp_weight:g}")
        if gan.effective_clip_value:
            parts.append(f"clip {gan.effective_clip_value:g}")
        return ", ".join(parts)

    def speed_summary(self) -> str:
        """One line: precision (and why), memory format, threads, compilation."""
        cfg = self.train_cfg
        layout = "channels-last" if cfg.channels_last else "contiguous (NCHW)"
        parts = [self.precision, layout]
        if self.device.type == "cpu":
            parts.append(f"{self.threads} threads")
        if cfg.compile:
            parts.append("torch.compile")
        return ", ".join(parts)

    # ------------------------------------------------------------------ state
    def meta(self) -> dict[str, Any]:
        return run_meta(self)

    def weights(self) -> dict[str, torch.Tensor]:
        """Every model's tensors, plus the EMA copies as ``ema.<model>.<param>``."""
        return run_weights(self)

    def save(self) -> Path:
        return save_run(self)

    # ------------------------------------------------------------------ loop
    def loader(self) -> Iterator[Any]:
        """Endless batches from the samples consumed so far (``--grad-accum K``: lists of K)."""
        return train_batches(
            self.dataset, self.train_cfg, self.dist, self.samples_seen, self.device
        )

    def to_device(self, batch: Any) -> Any:
        if isinstance(batch, torch.Tensor):
            batch = batch.to(self.device, non_blocking=True)
            return batch.contiguous(memory_format=self.memory_format) if batch.dim() == 4 else batch
        if isinstance(batch, dict):
            return {k: self.to_device(v) for k, v in batch.items()}
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.to_device(v) for v in batch)
        return batch

    def train_step(self, batch: Any) -> dict[str, float]:
        """One optimisation step at ``self.step`` (LR from the schedule); advances the step."""
        cfg = self.train_cfg
        factor = lr_factor(self.step, max_steps=cfg.max_steps, decay_start=cfg.lr_decay_start)
        hook = getattr(self.plugin, "lr_multiplier", None)  # a plugin's own schedule (munit)
        factor *= hook(self.step, self.plugin_cfg) if callable(hook) else 1.0
        for group, optimizer in self.ctx.optimizers.items():
            for pg in optimizer.param_groups:
                pg["lr"] = self.base_lr[group] * factor
        self.ctx.begin_step(self.step, max_steps=cfg.max_steps)  # n_critic, noise, lazy R1
        # running statistics change in the forward pass, before a NaN loss can be seen: keep
        # this step's starting values (a few KB) so a diverged run can still be saved
        self._buffers = [(b, b.detach().clone()) for b in float_buffers(self)]
        if self.ctx.micro is None:
            losses = self.plugin.train_step(self.ctx, self.to_device(batch), self.plugin_cfg)
        else:  # --grad-accum: K micro-batches as K virtual ranks; their losses averaged
            run = self.ctx.micro.run(
                lambda b: self.plugin.train_step(self.ctx, self.to_device(b), self.plugin_cfg),
                batch,
            )
            losses = {k: sum(r[k] for r in run) / len(run) for k in run[0]}
        if self.ctx.generator_stepped and self.ctx.last_ortho is not None:
            losses = {**losses, "G_ortho": self.ctx.last_ortho}  # --ortho-reg's weighted term
        if self.ema is not None and self.ctx.generator_stepped:
            decay = None  # identical on every rank: so are the weights
            if self.gan_cfg.ema_kimg > 0:
                decay = half_life_decay(
                    self.global_batch_size,
                    self.gan_cfg.ema_kimg,
                    self.samples_seen,
                    self.gan_cfg.ema_rampup,
                )
            self.ema.update(self.models, decay)
        ada = self.ctx.gan.ada
        if ada is not None:
            losses = {**losses, **self._adjust_ada(ada)}
        self.step += 1
        self.samples_seen += self.global_batch_size
        if self.ctx.deferred_sync and cfg.reads_device_at(self.step):
            self.ctx.check_finite(self.step)
        return {**losses, "lr": cfg.lr * factor}

    def _adjust_ada(self, ada: Any) -> dict[str, float]:
        """ADA's p for the logs and, every ``ada_interval`` steps, its adjustment from the
        sign statistics of every process (so p stays the same on all ranks)."""
        logs = {"ada_p": ada.p}
        if ada.adaptive and (self.step + 1) % ada.interval == 0:
            sign_sum, count = ada.pending()
            sums, counts = self.dist.average_logs({"rt": sign_sum}, {"rt": count})
            rt = ada.adjust(sums["rt"], counts["rt"])
            if rt is not None:
                logs["ada_rt"] = rt
        return logs

    def _sample_batch(self) -> Any:
        source = self.val_dataset if self.val_dataset is not None else self.dataset
        n = min(self.train_cfg.n_samples, len(source))
        items = [source[i] for i in range(n)]
        return self.to_device(torch.utils.data.default_collate(items))

    def sampling_models(self) -> dict[str, nn.Module]:
        """The models that make samples: the EMA generators when the EMA is on."""
        if self.ema is None:
            return dict(self.models)
        return {**self.models, **self.ema.models}

    def write_samples(self, batch: Any) -> Path:
        models = self.sampling_models()
        for m in models.values():
            m.eval()
        # a plugin's samples may draw random numbers; training must not see them (a resumed
        # run writes its samples at other steps than the run it continues)
        devices = [self.device] if self.device.type == "cuda" else []
        caption = getattr(self.plugin, "sample_caption", None)  # e.g. progan's resolution
        with torch.random.fork_rng(devices), torch.inference_mode(), self.ctx.autocast():
            columns = self.plugin.sample_columns(models, batch, self.plugin_cfg)
            text = caption(models, self.plugin_cfg) if caption else None
        for m in models.values():
            m.train()
        path = self.run_dir / "samples" / f"step_{self.step:07d}.png"
        save_grid(columns, path, caption=text)
        return path

    def run(self) -> Path:
        """Train to ``max_steps``; returns the final checkpoint folder (on every rank; rank 0
        wrote it). All ranks stop together on Ctrl-C at any of them."""
        try:
            return self._run()
        finally:
            self.dist.close()

    def _run(self) -> Path:
        cfg = self.train_cfg
        main = self.dist.is_main  # rank 0 writes the run's files
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for stale in ckpt.remove_stale_temporaries(self.run_dir):
                log.warning("removed %s, left by a process that no longer runs", stale)
            if self.step > 0:  # resumed: steps logged after the checkpoint will be logged again
                cut_metrics(self.run_dir / "metrics.jsonl", self.step)
        metrics = MetricsLog(
            self.run_dir / "metrics.jsonl", reduce=self.dist.average_logs, write=main
        )
        watch = RunWatch(
            self.run_dir,
            tensorboard=self.tensorboard and main,
            start_step=self.step,
            meta=self.meta(),
        )
        sample_batch = self._sample_batch() if main else None
        if cfg.progress and main:
            print(self.settings(), file=sys.stderr)
            print(f"speed: {self.speed_summary()}", file=sys.stderr, flush=True)
        progress = Progress(cfg.max_steps, self.step, cfg.progress and main)
        last_saved: Path | None = None
        with Interrupts(announce=main) as interrupts:
            try:
                for m in self.models.values():
                    m.train()
                batches = iter(self.loader())
                stop = False
                while self.step < cfg.max_steps and not stop:
                    try:
                        losses = self.train_step(next(batches))
                    except TrainingDiverged as exc:
                        raise diverged(self, exc, last_saved) from None
                    lr = losses.pop("lr")
                    metrics.add(losses)
                    if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                        rate = metrics.count / max(time.perf_counter() - metrics.last_time, 1e-9)
                        extra = {"lr": lr}
                        if self.dataset.skipped:  # damaged files replaced so far (total)
                            extra["skipped_samples"] = self.dataset.skipped
                        averages = metrics.flush(self.step, extra)
                        watch.scalars(metrics.last_record)
                        progress.update(self.step, rate, averages)
                    if main and self.step % cfg.sample_every == 0:
                        watch.samples(self.step, self.write_samples(sample_batch))
                    if self.step % cfg.checkpoint_every == 0:
                        last_saved = self.save()
                    if cfg.eval_every > 0 and self.step % cfg.eval_every == 0:
                        if last_saved is None or last_saved.name != f"step_{self.step:07d}":
                            last_saved = self.save()
                        if self.evaluator is not None:  # rank 0; the others wait for it
                            figures = self.evaluator(self.step, last_saved)
                            metrics.write({"step": self.step, "time": time.time(), **figures})
                            watch.scalars(metrics.last_record)
                        what = f"the evaluation at step {self.step}"
                        self.dist.wait_for_main(what, cfg.dist_timeout)
                    stop = interrupts.should_stop(self.dist)  # every rank stops at this step
                if stop:
                    folder = self.save()
                    raise TrainingInterrupted(  # (another rank's signal: reported as Ctrl-C)
                        f"{stopped_by(interrupts.signum)} at step {self.step}; state saved to "
                        f"{folder}; continue with: translate train {self.plugin.name} --resume "
                        f"{self.run_dir}",
                        signum=interrupts.signum,
                    )
            except BaseException:  # Ctrl-C, divergence, errors: the curves show how it ended
                if main:
                    watch.redraw()
                watch.close()
                raise
            finally:
                progress.close()
        grid = self.write_samples(sample_batch) if main else None
        if last_saved is None or last_saved.name != f"step_{self.step:07d}":
            last_saved = self.save()
        if grid is not None:
            watch.samples(self.step, grid)  # the final curves mark the final checkpoint
        watch.close()
        self.dist.barrier()  # the checkpoint is on disk when run() returns on any rank
        return last_saved


def prepare(
    plugin_name: str,
    *,
    resume: Path | None = None,
    config_file: Path | None = None,
    overwrite: bool = False,
    **options: Any,
) -> Trainer:
    """Build a Trainer from flat options (CLI or notebook), a config file, or a run to resume.
    A new run's ``run_dir`` must not hold a run already, unless ``overwrite`` (which replaces
    it); a resumed run's ``max_steps`` must not be below the step it resumes from."""
    plugin = load_plugin(plugin_name)
    plugin_cfg, train_cfg, gan_cfg, folder = run_configs(
        plugin, options, resume=resume, config_file=config_file
    )
    if folder is not None:
        run_dir = folder.parent.parent if folder.parent.name == "checkpoints" else folder.parent
        return Trainer(plugin, plugin_cfg, train_cfg, gan_cfg, run_dir=run_dir, resume_from=folder)
    return Trainer(
        plugin, plugin_cfg, train_cfg, gan_cfg, run_dir=train_cfg.run_dir, overwrite=overwrite
    )


def train(
    plugin_name: str,
    *,
    resume: Path | None = None,
    config_file: Path | None = None,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Train ``plugin_name`` and return the final checkpoint folder (see ``prepare``)."""
    trainer = prepare(
        plugin_name, resume=resume, config_file=config_file, overwrite=overwrite, **options
    )
    return trainer.run()
