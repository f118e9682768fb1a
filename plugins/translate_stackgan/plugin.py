"""The stackgan plugin: images from text (Zhang et al. 2017, "StackGAN: Text to Photo-realistic
Image Synthesis with Stacked Generative Adversarial Networks").

A caption is encoded to a sentence embedding phi_t (``translate.text``: a BiGRU pretrained
with AttnGAN's DAMSM loss by ``--pretrain-text`` then frozen, a frozen CLIP text tower
(``--text-encoder clip``), or given embeddings). Conditioning augmentation draws c_hat ~
N(mu(phi_t), Sigma(phi_t)) (Sec. 3.1) and G's loss adds lambda * D_KL(N(mu, Sigma) || N(0, I))
(Eq. 3 and 5). Stage I draws a low-resolution image from (z, c_hat) (Sec. 3.2); with
``--stages 2``, stage II redraws it 4x larger from the stage-I image and its own c_hat
(Sec. 3.3), trained after ``stage1_steps`` with stage I fixed (Sec. 4, as the paper trains
the stages in turn). Each stage's discriminator is matching-aware (Reed et al. 2016): real
images with their text are real; generated images, and real images with another sample's
text, are fake (``translate.losses.matching``). The adversarial family is the core's
(default: the paper's minimax loss; every core family and regulariser applies).

``--generator stackgan-v2`` is StackGAN++'s tree (Zhang et al. 2018, ``translate_stackgan.tree``):
branches at three scales, a D per branch with conditional and unconditional logits and the
colour-consistency term. ``--generator gigagan`` swaps G for GigaGAN's blocks at small scale
(``translate_stackgan.gigagan``) and D for its multi-scale matching-aware D.

The inference module is G(z, text) with z (B, Z, 1, 1) and the text vector (B, T) declared as a
conditioning input; ``translate sample --prompt "a red circle"`` fills it from the stored text
encoder (``text_encoder``), and the ONNX export takes it as an input of its own; ``translate
export`` writes the text encoder as a graph of its own beside it (``model.text.onnx``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from translate.plugin import ConditionInput, PluginBase
from translate_stackgan.config import StackGANConfig

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor, nn
    from torch.utils.data import Dataset

    from translate.plugin import StepContext


class StackGANPlugin(PluginBase[StackGANConfig]):
    name = "stackgan"
    description = "Text to image: StackGAN's CA, stages, matching-aware D; StackGAN++; GigaGAN"
    config_cls = StackGANConfig
    dataset_kind = "single"  # a folder of images with same-stem captions
    generates = True
    ddp_unused_parameters = False  # one group a network, each loss reaches all of it (DDP)
    # the official code's BCE: D's minimax loss, G's non-saturating one (real labels on fakes)
    gan_defaults: ClassVar[Mapping[str, Any]] = {"gan_loss": "nonsaturating"}
    # Adam 2e-4 for G and D, beta1 0.5, batch 64 (Sec. 4); halved every lr_halve_every steps
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "batch_size": 64,
        "max_steps": 20_000,
        "lr_decay_start": 1.0,
    }

    # ------------------------------------------------------------------ config and data
    def finalize_config(self, cfg: StackGANConfig) -> StackGANConfig:
        """The built-in encoder's vocabulary from the training captions, or the precomputed
        embeddings' size."""
        import dataclasses

        from translate.data.paired import split_folder
        from translate.text.captions import all_captions, build_vocabulary, load_embeddings

        if cfg.text_encoder == "clip":  # the tower's size; the run records its path and hash
            from translate.text.clip import clip_settings

            path, dim, digest = clip_settings(cfg.clip_path)
            done = {"clip_path": path, "clip_hash": digest, "pretrain_text": False}
            return dataclasses.replace(cfg, text_dim=dim, **done)
        if cfg.precomputed:
            table = load_embeddings(Path(cfg.embeddings))
            dim = next(iter(table.values())).shape[1]
            return dataclasses.replace(cfg, text_dim=int(dim), pretrain_text=False)
        folder = split_folder(Path(cfg.data), "train")
        words = build_vocabulary(all_captions(folder))
        return dataclasses.replace(cfg, vocabulary=" ".join(words))

    def build_dataset(self, cfg: StackGANConfig, split: str) -> Dataset | None:
        from translate.data.paired import split_folder
        from translate.text.captions import CaptionedImages

        folder = split_folder(Path(cfg.data), split)
        if folder is None:
            return None
        return CaptionedImages(
            folder,
            size=cfg.image_size,
            vocabulary=cfg.words,
            max_words=cfg.max_words,
            flip=cfg.flip,
            train=split == "train",
            embeddings=Path(cfg.embeddings) if cfg.precomputed else None,
        )

    def condition_inputs(self, cfg: StackGANConfig) -> tuple[ConditionInput, ...]:
        """The text vector (B, T): the sentence embedding (gigagan: sentence, words and mask
        packed), from ``--prompt``; drawn from N(0, I) without one."""
        return (ConditionInput("text", "prompt", (), distribution="normal", dim=cfg.text_size),)

    def latent_shape(self, cfg: StackGANConfig) -> tuple[int, ...]:
        return (cfg.latent_dim, 1, 1)

    # ------------------------------------------------------------------ models
    def build_models(self, cfg: StackGANConfig) -> dict[str, nn.Module]:
        from translate.text.clip import CLIPTextEncoder
        from translate.text.encoder import GRUTextEncoder, ImageEncoder
        from translate_stackgan import gigagan, nets, tree

        if not cfg.precomputed and cfg.text_encoder == "gru" and len(cfg.words) < 3:
            from translate.errors import ConfigError

            raise ConfigError("vocabulary: empty; the run's captions fill it (give --data)")
        models: dict[str, nn.Module] = {}
        e, s1 = cfg.text_dim, cfg.stage1_size
        d_args = {"text_dim": e, "channels": cfg.d_channels, "text_out": cfg.d_text_dim}
        if cfg.generator == "gigagan":
            models["G"] = gigagan.GigaGANGenerator(
                latent_dim=cfg.latent_dim, text_dim=e, condition_dim=cfg.condition_dim,
                image_size=s1, channels=cfg.g_channels, kernels=cfg.kernels,
                heads=cfg.attention_heads, attention_max=cfg.attention_max,
            )  # fmt: skip
            models["D"] = gigagan.MultiScaleDiscriminator(image_size=s1, **d_args)
        elif cfg.generator == "stackgan-v2":
            models.update(tree.build_tree(cfg, d_args))
        else:
            models["G"] = nets.StageIGenerator(
                latent_dim=cfg.latent_dim, text_dim=e, condition_dim=cfg.condition_dim,
                image_size=s1, channels=cfg.g_channels,
            )  # fmt: skip
            models["D"] = nets.MatchingDiscriminator(image_size=s1, **d_args)
        if cfg.damsm_weight > 0:  # AttnGAN's image encoder, pretrained with T, then fixed
            models["I"] = ImageEncoder(dim=e).requires_grad_(False)
        if cfg.stages == 2:
            models["G2"] = nets.StageIIGenerator(
                text_dim=e, condition_dim=cfg.condition_dim, channels=cfg.g_channels // 2,
                residual_blocks=cfg.residual_blocks,
            )  # fmt: skip
            models["D2"] = nets.MatchingDiscriminator(image_size=cfg.image_size, **d_args)
        if cfg.text_encoder == "clip":  # frozen; its weights stay in --clip-path's folder
            models["T"] = CLIPTextEncoder(
                folder=cfg.clip_path, max_words=cfg.max_words, fingerprint=cfg.clip_hash
            )
        elif not cfg.precomputed:
            models["T"] = GRUTextEncoder(vocab_size=len(cfg.words), dim=e, word_dim=cfg.word_dim)
        return models

    def lr_multiplier(self, step: int, cfg: StackGANConfig) -> float:
        """1/2 every ``lr_halve_every`` steps (Sec. 4: every 100 epochs)."""
        return 0.5 ** (step // cfg.lr_halve_every) if cfg.lr_halve_every else 1.0

    def param_groups(self, models: Mapping[str, nn.Module]) -> dict[str, list[nn.Parameter]]:
        """One optimiser per network; the text and image encoders are fixed during the GAN
        (AttnGAN's)."""
        return {k: list(m.parameters()) for k, m in models.items() if k not in ("T", "I")}

    def initialize(self, models: Mapping[str, nn.Module], cfg: StackGANConfig) -> None:
        """``--pretrain-text``: DAMSM pretraining of the text encoder on the training data."""
        if cfg.precomputed or not cfg.pretrain_text or cfg.pretrain_steps == 0:
            return
        import logging

        from translate.text.captions import caption_batches
        from translate.text.damsm import pretrain_text
        from translate.text.encoder import ImageEncoder

        batches = caption_batches(self.build_dataset(cfg, "train"), cfg.pretrain_batch)
        image = models["I"] if "I" in models else ImageEncoder(dim=cfg.text_dim)
        log = logging.getLogger("translate").info
        pretrain_text(models["T"], image.requires_grad_(True), batches,
                      steps=cfg.pretrain_steps, log=log)  # fmt: skip
        image.requires_grad_(False)

    # ------------------------------------------------------------------ training
    def text(
        self, models: Mapping[str, nn.Module], batch: Any, cfg: StackGANConfig
    ) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor]:
        """((phi_t (B, E) for D, words, mask), G's text vector (B, T)) of a caption batch (no
        gradient)."""
        import torch

        from translate.text.encoder import pack_text, text_features

        device = next(models["G"].parameters()).device
        with torch.no_grad():
            sentence, words, mask = text_features(models.get("T"), batch, device)
        g_text = sentence if cfg.generator != "gigagan" else pack_text(sentence, words, mask)
        return (sentence, words, mask), g_text

    def train_step(self, ctx: StepContext, batch: Any, cfg: StackGANConfig) -> dict[str, float]:
        import torch
        from torch.nn import functional as F

        from translate.losses.matching import matching_aware_d_loss
        from translate_stackgan.gigagan import n_scales, pyramid
        from translate_stackgan.nets import ca_kl, damsm_term, with_text
        from translate_stackgan.tree import tree_step

        real = batch["image"]  # (B, 3, S, S) in [-1, 1]
        text, g_text = self.text(ctx.models, batch, cfg)
        sentence = text[0]
        z = torch.randn(real.shape[0], cfg.latent_dim, 1, 1, device=real.device)
        if cfg.generator == "stackgan-v2":  # the tree's branches and their D terms
            return tree_step(ctx, real, text, z, cfg)
        second = cfg.stages == 2 and ctx.step >= cfg.stage1_steps
        G, D = (
            (ctx.models["G2"], ctx.models["D2"]) if second else (ctx.models["G"], ctx.models["D"])
        )
        names = ("G2", "D2") if second else ("G", "D")
        with ctx.autocast(), torch.set_grad_enabled(ctx.update_generator):
            if second:  # stage I is fixed while stage II trains
                with torch.no_grad():
                    low = ctx.models["G"](z, g_text)[0]
                fake, mu, logvar = G(low, g_text, sample=True)
            else:
                fake, mu, logvar = G(z, g_text, sample=True)
                real = (
                    F.interpolate(real, size=cfg.stage1_size, mode="area")
                    if cfg.stages == 2
                    else real
                )
        if cfg.generator == "gigagan":
            real = pyramid(real, n_scales(cfg.image_size))
        e = cfg.text_dim
        with ctx.autocast():
            loss_d, logs = matching_aware_d_loss(
                ctx.gan, D, real, fake, sentence, with_text, condition_channels=e
            )
        ctx.optimize(names[1], loss_d)
        logs["stage"] = 2.0 if second else 1.0
        if not ctx.update_generator:
            return logs
        with ctx.frozen(names[1]), ctx.autocast():
            loss_g, logs_g = ctx.gan.generator_loss(
                D, with_text(fake, sentence), with_text(real, sentence), condition_channels=e
            )
            values = {"kl": ca_kl(mu.float(), logvar.float())}
            loss_g = loss_g + cfg.kl_weight * values["kl"]
            if cfg.damsm_weight > 0:  # AttnGAN's L_DAMSM of G's images (Eq. 14)
                values["damsm"] = damsm_term(ctx.models, text, fake)
                loss_g = loss_g + cfg.damsm_weight * values["damsm"]
        ctx.optimize(names[0], loss_g)
        return {**logs, **logs_g, **ctx.gan.logs(values)}

    # ------------------------------------------------------------------ inference
    def inference_module(
        self, models: Mapping[str, nn.Module], cfg: StackGANConfig, opts: Any
    ) -> nn.Module:
        """G(z, text): (B, Z, 1, 1) and (B, T) -> images (B, 3, S, S) in [-1, 1]."""
        from translate_stackgan.nets import StackGANSampler

        return StackGANSampler(models["G"], models.get("G2"))

    def text_encoder(self, models: Mapping[str, nn.Module], cfg: StackGANConfig) -> Any:
        """The stored text encoder (GRU or CLIP) as prompts -> G's text vector (gigagan:
        packed); None for a model trained on precomputed embeddings."""
        from translate.text.encoder import PromptEncoder

        if "T" not in models:
            return None
        return PromptEncoder(models["T"], vocabulary=cfg.words, max_words=cfg.max_words,
                             packed=cfg.generator == "gigagan")  # fmt: skip

    def sample_columns(
        self, models: Mapping[str, nn.Module], batch: Any, cfg: StackGANConfig
    ) -> list[Tensor]:
        """The real images | G's images of their captions (fixed z)."""
        import torch
        from torch.nn import functional as F

        real = batch["image"]
        _, g_text = self.text(models, batch, cfg)
        z = torch.randn(
            real.shape[0], cfg.latent_dim, 1, 1, generator=torch.Generator().manual_seed(0)
        )
        fake = self.inference_module(models, cfg, None)(z.to(real.device), g_text)
        return [real, F.interpolate(fake, size=real.shape[-1], mode="nearest")]

    def evaluate(self, models: Any, folder: Path, cfg: StackGANConfig) -> Any:
        """FID/KID of its captions' samples, prompt accuracy on shapes (evaluation_text)."""
        from translate.evaluation_text import text_protocol

        return text_protocol(models, folder)

    def tiny_config(self, data_root: Path) -> StackGANConfig:
        from translate.text.synthetic import make_captioned_shapes

        folder = Path(data_root) / "captioned"
        if not folder.exists():
            make_captioned_shapes(folder, 8, size=16)
        return StackGANConfig(
            data=folder, image_size=16, latent_dim=8, condition_dim=8, text_dim=8, word_dim=8,
            g_channels=4, d_channels=4, d_text_dim=4, pretrain_steps=2, pretrain_batch=4,
        )  # fmt: skip


plugin = StackGANPlugin()
