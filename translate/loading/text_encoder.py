"""The text encoder of a text-to-image model (stackgan: the built-in bidirectional GRU,
AttnGAN's text encoder, Xu et al. 2018, Sec. 3.3) as its own ONNX graph, a side graph
(``loading.side_graph``).

``translate export RUN -o model.onnx`` writes the generator (z, text vector -> image) and, for
a plugin whose ``text_encoder`` gives a module (a checkpoint holding the built-in encoder; none
for a model trained on precomputed embeddings), ``model.text.onnx`` beside it: token ids
``tokens`` (B, L) int64 (0 pads) and ``lengths`` (B,) int64 -> ``output`` (B, T), the vector
the generator's text input takes (stackgan: the sentence vector; gigagan: sentence, words and
mask packed by ``translate.text.encoder.pack_text``). L is the model's ``max_words``, fixed:
a packed vector holds L word features. The metadata holds ``part`` = text_encoder,
``vocabulary`` (JSON list, index = token id), ``max_words`` and ``text_input`` (the
generator's input it feeds), so ``OnnxTextEncoder.encode`` tokenises a prompt as training did
(``translate.text.captions.encode_tokens``) without the checkpoint, and ``translate sample
model.onnx --prompt ...`` (and the service) work from the two files.

The parity check runs real prompts of every length from 1 to L words (the vocabulary's words
in turn), one cut at L and one with an unknown word, against PyTorch.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from translate.errors import ConfigError
from translate.loading.side_graph import OnnxSideGraph, SideGraph, side_path
from translate.text.captions import encode_token_batch

__all__ = [
    "TEXT_ENCODER",
    "TEXT_SUFFIX",
    "OnnxTextEncoder",
    "export_text_encoder",
    "load_text_encoder",
    "parity_prompts",
    "text_encoder_of",
    "text_path",
]

TEXT_SUFFIX = ".text.onnx"
TOKENS, LENGTHS = "tokens", "lengths"
#: A word no vocabulary holds (the parity check's unknown word).
UNSEEN = "zzzunseenzzz"


def text_path(onnx_path: Path | str) -> Path:
    """``model.onnx`` -> ``model.text.onnx`` (beside it)."""
    return side_path(onnx_path, TEXT_SUFFIX)


class OnnxTextEncoder(OnnxSideGraph):
    """An exported text encoder in ONNX Runtime (CPU): tokens (B, L), lengths (B,) -> (B, T)
    float32; ``encode(prompts)`` tokenises by the vocabulary in its metadata."""

    part = "text_encoder"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            self.vocabulary = list(json.loads(self.metadata["vocabulary"]))
            self.max_words = int(self.metadata["max_words"])
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: bad text encoder metadata ({exc})") from None
        self.text_input = self.metadata.get("text_input", "text")

    def __call__(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        return self.run(tokens.long(), lengths.long())

    def encode(self, prompts: list[str]) -> Tensor:
        """The generator's text vectors (B, T) of free-text prompts."""
        return self(*encode_token_batch(prompts, self.vocabulary, self.max_words))


def load_text_encoder(
    onnx_path: Path | str, model: dict[str, str] | None = None
) -> OnnxTextEncoder | None:
    """The text encoder exported beside ``onnx_path``, or None when there is none; ``model``:
    the model's metadata, to refuse a text graph of another export (``SideGraph.load``)."""
    return TEXT_ENCODER.load(onnx_path, model)


def text_encoder_of(loaded: Any) -> Any:
    """The plugin's text encoder of a loaded checkpoint (``LoadedModel``) as a graph can hold
    it: a module with ``vocabulary``, ``max_words`` and forward(tokens, lengths) -> (B, T)
    (``translate.text.encoder.PromptEncoder``); None without one or for one that is not
    ``exportable`` (a CLIP tower, which tokenizes by its own files)."""
    hook = getattr(loaded.plugin, "text_encoder", None)
    models = getattr(loaded, "models", None)
    encoder = None if hook is None or models is None else hook(models, loaded.plugin_cfg)
    return encoder if getattr(encoder, "exportable", True) else None


def parity_prompts(vocabulary: list[str], max_words: int) -> list[list[str]]:
    """Two batches of prompts: one of each length 1..L words (the vocabulary's words in turn;
    the last one a word longer, which tokenising cuts), then a word outside the vocabulary
    before a known one."""
    words = list(vocabulary[2:]) or ["word"]  # past <pad> and <unk>
    prompts = [" ".join(words[(k + i) % len(words)] for i in range(n)) for k, n in
               enumerate(range(1, max_words + 1))]  # fmt: skip
    prompts[-1] += " " + words[0]
    return [prompts, [f"{UNSEEN} {words[0]}"]]


def export_text_encoder(loaded: Any, out: Path | str, *, opset: int | None = None) -> Any:
    """Export the plugin's ``text_encoder`` of a loaded checkpoint (``LoadedModel``) to
    ``out``, checked against PyTorch on real prompts; an ``ExportResult``."""
    from torch.export import Dim

    from translate.loading.onnx_export import OUTPUT_NAME, build_metadata, save_checked

    encoder = text_encoder_of(loaded)
    if encoder is None:
        raise ConfigError(f"{loaded.source}: plugin {loaded.plugin.name} has no text encoder")
    encoder = encoder.cpu().eval()
    vocabulary, max_words = list(encoder.vocabulary), int(encoder.max_words)
    cases = [
        tuple(encode_token_batch(p, vocabulary, max_words))
        for p in parity_prompts(vocabulary, max_words)
    ]
    with torch.inference_mode():
        refs = [encoder(*case) for case in cases]
    batch = Dim("batch", min=1, max=4096)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's notes on GRU weights and dims
            program = torch.onnx.export(
                encoder, cases[0], dynamo=True, dynamic_shapes=({0: batch}, {0: batch}),
                input_names=[TOKENS, LENGTHS], output_names=[OUTPUT_NAME], optimize=True,
                verbose=False, **({"opset_version": opset} if opset is not None else {}),
            )  # fmt: skip
    except Exception as exc:
        from translate.errors import ExportError
        from translate.loading.onnx_file import first_line

        raise ExportError(f"text encoder: torch.onnx.export failed: {first_line(exc)}") from exc
    proto = program.model_proto
    used = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    text = [c.name for c in loaded.conditions if c.option == "prompt"]
    metadata = build_metadata(
        loaded, channels=(1, int(refs[0].shape[1])), fp16=False, opset=used, exporter="dynamo",
        instance_norm=False, conditions=(),
    )  # fmt: skip
    metadata.update({
        "part": "text_encoder",
        "vocabulary": json.dumps(vocabulary),
        "max_words": str(max_words),
        "input_shape": json.dumps([max_words]),
        "text_input": text[0] if text else "text",
        "text_size": str(int(refs[0].shape[1])),
    })  # fmt: skip
    return save_checked(proto, Path(out), metadata, cases, refs)


#: The text encoder as a side graph of ``translate export`` (``loading.side_graph``).
TEXT_ENCODER = SideGraph(
    "text_encoder", TEXT_SUFFIX, text_encoder_of, export_text_encoder, OnnxTextEncoder
)
