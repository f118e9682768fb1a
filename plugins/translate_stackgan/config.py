"""StackGAN's settings (``StackGANConfig``): data and text, stages, networks, objective."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from translate.fields import check, opt


@dataclass(frozen=True)
class StackGANConfig:
    """stackgan data, text-encoder, model and loss settings (defaults: the paper's stage I)."""

    data: Path = opt(
        None,
        "Folder of images, each with a same-stem .txt of captions (one a line); train/ and val/ "
        "subfolders are used when present.",
    )
    embeddings: str = opt(
        "",
        "Precomputed sentence embeddings instead of the built-in text encoder: a .npz with "
        "'embeddings' (N, K, E) and 'filenames' (N,) the images' stems.",
    )
    text_encoder: Literal["gru", "clip"] = opt(
        "gru",
        "gru: the built-in bidirectional GRU (DAMSM-pretrained, stored in the run); clip: a "
        "CLIP text tower from --clip-path (frozen; the run records its path and hash).",
    )
    clip_path: str = opt(
        "",
        "With --text-encoder clip: a local folder of a Hugging Face CLIP text model and its "
        "tokenizer (save_pretrained; the 'clip' extra); never downloaded.",
    )
    clip_hash: str = opt("", "SHA-256 of --clip-path's files (filled when training starts).")
    generator: Literal["stackgan", "stackgan-v2", "gigagan"] = opt(
        "stackgan",
        "G: stackgan (CA, stage I [and II], Zhang et al. 2017), stackgan-v2 (StackGAN++'s tree: "
        "branches at S/4, S/2, S, a D per branch with conditional and unconditional logits; "
        "Zhang et al. 2018) or gigagan (style code, sample-adaptive kernels, self- and "
        "cross-attention to the words, multi-scale outputs and a multi-scale D; Kang et al. "
        "2023, at small scale).",
    )
    image_size: int = opt(64, "Side of the final images: a power of two, 8 to 256.")
    stages: int = opt(1, "1: stage I only; 2: stage I at image_size/4, then stage II (x4).")
    stage1_steps: int = opt(
        10_000, "With --stages 2: the steps that train stage I before stage II trains."
    )
    latent_dim: int = opt(100, "Dimension of the noise z (N_z).")
    condition_dim: int = opt(128, "Dimension of CA's c_hat (N_g).")
    text_dim: int = opt(
        256, "Built-in encoder's sentence/word feature size (precomputed: E; clip: the tower's)."
    )
    word_dim: int = opt(300, "Built-in encoder's word-embedding size.")
    max_words: int = opt(
        18, "Words read per caption (longer captions are cut); clip: tokens, start/end included."
    )
    g_channels: int = opt(128, "G's width: 8x this at 4x4, halving per up-sampling (GF_DIM).")
    d_channels: int = opt(64, "D's width: this at its first layer, doubling (DF_DIM).")
    d_text_dim: int = opt(128, "D's compressed text size (N_d).")
    residual_blocks: int = opt(2, "Residual blocks of stage II and of each stackgan-v2 branch.")
    lr_halve_every: int = opt(
        0, "Halve the learning rates every N steps (paper: every 100 epochs); 0: constant."
    )
    kl_weight: float = opt(2.0, "Weight of CA's KL regulariser (official config: 2.0).")
    uncond_weight: float = opt(
        1.0,
        "stackgan-v2: weight of the unconditional D logits' terms in D's and G's losses "
        "(official TRAIN.COEFF.UNCOND_LOSS, birds_3stages.yml: 1.0); 0: none. Ignored by the "
        "other generators.",
    )
    colour_weight: float = opt(
        0.0,
        "stackgan-v2: coefficient of the colour-consistency term between consecutive branches' "
        "images (official TRAIN.COEFF.COLOR_LOSS: 0 in the birds config, the default; 1 to 50 "
        "in the unconditional *_color configs).",
    )
    damsm_weight: float = opt(
        0.0,
        "AttnGAN's DAMSM loss on G's full-size images (Xu et al. 2018, Eq. 14's lambda; official "
        "configs: 5 birds, 50 COCO), through the image encoder pretrained with the text encoder "
        "(kept, fixed, as the run's model I); 0: off, as StackGAN.",
    )
    pretrain_text: bool = opt(
        True, "Pretrain the built-in text encoder with DAMSM before the GAN (stored in the run)."
    )
    pretrain_steps: int = opt(500, "DAMSM pretraining steps.")
    pretrain_batch: int = opt(48, "DAMSM pretraining batch size (AttnGAN: 48).")
    kernels: int = opt(4, "gigagan: filters in each adaptive layer's bank.")
    attention_heads: int = opt(2, "gigagan: heads of its attention layers.")
    attention_max: int = opt(16, "gigagan: attention at feature maps up to this side.")
    vocabulary: str = opt("", "The built-in encoder's words (filled from the captions).")
    flip: bool = opt(True, "Random horizontal flips during training.")

    def __post_init__(self) -> None:
        check(self.data is not None, "data", "is required (--data DIR)")
        from translate_dcgan.plugin import check_image_size

        check_image_size(self.image_size)
        size = self.image_size
        check(self.stages in (1, 2), "stages", f"must be 1 or 2, got {self.stages}")
        check(
            self.stages == 1 or size >= 32,
            "stages",
            f"2 stages need --image-size >= 32 (stage I at a quarter), got {size}",
        )
        check(
            self.stages == 1 or self.generator == "stackgan",
            "stages",
            f"{self.generator} is one multi-scale generator; use --stages 1",
        )
        check(
            self.generator in ("stackgan", "stackgan-v2", "gigagan"),
            "generator",
            f"{self.generator!r} is not one of stackgan, stackgan-v2, gigagan",
        )
        check(self.uncond_weight >= 0, "uncond_weight", f"must be >= 0, got {self.uncond_weight}")
        check(self.colour_weight >= 0, "colour_weight", f"must be >= 0, got {self.colour_weight}")
        check(
            self.colour_weight == 0 or (self.generator == "stackgan-v2" and size >= 16),
            "colour_weight",
            "needs --generator stackgan-v2 with two branches or more (--image-size >= 16)",
        )
        for name in (
            "latent_dim", "condition_dim", "word_dim", "max_words", "g_channels", "d_channels",
            "d_text_dim", "kernels", "attention_heads", "pretrain_batch",
        ):  # fmt: skip
            check(getattr(self, name) >= 1, name, f"must be at least 1, got {getattr(self, name)}")
        check(
            self.text_encoder in ("gru", "clip"),
            "text_encoder",
            f"{self.text_encoder!r} is not one of gru, clip",
        )
        clip = self.text_encoder == "clip"
        check(not clip or bool(self.clip_path), "clip_path", "is required with --text-encoder clip")
        check(clip or not self.clip_path, "clip_path", "is read with --text-encoder clip only")
        check(
            not (clip and self.embeddings),
            "embeddings",
            "and --text-encoder clip exclude each other",
        )
        even = self.text_dim % 2 == 0 or clip
        check(self.text_dim >= 2 and even, "text_dim", "must be even, >= 2")
        check(self.stage1_steps >= 0, "stage1_steps", "must be >= 0")
        check(self.residual_blocks >= 0, "residual_blocks", "must be >= 0")
        check(self.pretrain_steps >= 0, "pretrain_steps", "must be >= 0")
        check(self.lr_halve_every >= 0, "lr_halve_every", "must be >= 0 (0: constant)")
        check(self.kl_weight >= 0, "kl_weight", "must be >= 0")
        check(self.damsm_weight >= 0, "damsm_weight", "must be >= 0")
        check(
            self.damsm_weight == 0
            or (self.text_encoder == "gru" and not self.embeddings and self.pretrain_text
                and self.pretrain_steps > 0),
            "damsm_weight",
            "needs the built-in text encoder's DAMSM pretraining, whose image encoder it reads "
            "(--text-encoder gru, --pretrain-text, --pretrain-steps > 0, no --embeddings)",
        )  # fmt: skip

    @property
    def stage1_size(self) -> int:
        return self.image_size if self.stages == 1 else self.image_size // 4

    @property
    def words(self) -> list[str]:
        return self.vocabulary.split(" ") if self.vocabulary else []

    @property
    def precomputed(self) -> bool:
        return bool(self.embeddings)

    @property
    def text_size(self) -> int:
        """Size of the text vector G takes: the sentence, or the packed text (gigagan)."""
        if self.generator != "gigagan":
            return self.text_dim
        length = 1 if self.precomputed else self.max_words
        return self.text_dim + length * self.text_dim + length
