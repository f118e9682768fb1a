"""A CLIP text tower as stackgan's text encoder (``translate.text.clip``), on a tiny random CLIP
text model and a hand-made byte-level BPE tokenizer saved to a folder (nothing downloaded):
its features against the tower's own outputs, padding and masks, the state it leaves in a
checkpoint, training both generators with it, ``sample --prompt`` and the service, and the
bad folders' one-line errors."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from translate_stackgan import StackGANConfig
from typer.testing import CliRunner

from tests.conftest import train_tiny
from translate.cli.main import app
from translate.errors import ConfigError
from translate.inference.sampling import Sampler
from translate.text.clip import CLIPTextEncoder, clip_fingerprint
from translate.text.encoder import encode_prompts, text_features
from translate.text.synthetic import COLOURS, SHAPES, make_captioned_shapes

transformers = pytest.importorskip("transformers")

runner = CliRunner()
WORDS = ["a", "one", "the", "on", "that", "is", "white", *COLOURS, *SHAPES]
TINY = {
    "image_size": 16, "latent_dim": 8, "condition_dim": 8, "g_channels": 4, "d_channels": 4,
    "d_text_dim": 4, "max_words": 8,
}  # fmt: skip


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's byte-level alphabet: one printable character per byte."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]


def make_clip_folder(folder: Path, *, projection: bool = True, seed: int = 0) -> Path:
    """A random CLIP text model (hidden 16, 2 layers, 2 heads; projection 12) and a CLIP
    tokenizer whose BPE merges spell the synthetic captions' words, saved to ``folder``."""
    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate([*symbols, *(s + "</w>" for s in symbols)])}
    merges: list[tuple[str, str]] = []
    for word in WORDS:
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            pair = (parts[0], parts[1])
            if pair not in merges:
                merges.append(pair)
            parts = [parts[0] + parts[1], *parts[2:]]
            vocab.setdefault(parts[0], len(vocab))
    bos, eos = len(vocab), len(vocab) + 1
    vocab.update({"<|startoftext|>": bos, "<|endoftext|>": eos})
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=merges)
    config = transformers.CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=32, projection_dim=12,
        bos_token_id=bos, eos_token_id=eos, pad_token_id=eos,
    )  # fmt: skip
    torch.manual_seed(seed)
    cls = transformers.CLIPTextModelWithProjection if projection else transformers.CLIPTextModel
    transformers.utils.logging.disable_progress_bar()
    cls(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip_folder(tmp_path_factory.mktemp("clip") / "tiny-clip")


CAPTIONS = ["a red circle", "the blue square is on white", "a green cross"]


def test_clip_features_are_the_towers_end_token_and_masked_words(clip_dir: Path) -> None:
    """The sentence is CLIP's own text embedding (the projected end token, not the start
    token: the three captions differ); words are projected tokens, zero on padding, masked."""
    enc = CLIPTextEncoder(folder=clip_dir, max_words=10)
    sentence, words, mask = text_features(enc, {"caption": CAPTIONS})
    assert sentence.shape == (3, 12) and words.shape == (3, 10, 12) and mask.shape == (3, 10)
    ids, attention = enc.tokenize(CAPTIONS)
    # start, the tokens, end ("green" is four sub-words: the merges of "red" come first)
    assert attention.sum(1).tolist() == [5, 8, 8]
    assert torch.equal(mask, attention.bool())
    tower = transformers.CLIPTextModelWithProjection.from_pretrained(clip_dir)
    out = tower(input_ids=ids, attention_mask=attention)
    torch.testing.assert_close(sentence, out.text_embeds)
    expected = tower.text_projection(out.last_hidden_state) * mask[..., None]
    torch.testing.assert_close(words, expected)
    assert bool((words[~mask] == 0).all()) and bool((words[mask].abs().sum(-1) > 0).all())
    assert torch.cdist(sentence, sentence).triu(1)[0, 1:].min() > 1e-3


def test_a_padded_caption_encodes_as_the_unpadded_one(clip_dir: Path) -> None:
    """ "a red circle" alone in 5 tokens (no padding) and padded to 10 in a batch with a longer
    caption: the same sentence and the same word features; padding is masked out."""
    short = CLIPTextEncoder(folder=clip_dir, max_words=5)
    long = CLIPTextEncoder(folder=clip_dir, max_words=10)
    s1, w1, m1 = text_features(short, {"caption": ["a red circle"]})
    s2, w2, m2 = text_features(long, {"caption": ["a red circle", CAPTIONS[1]]})
    assert bool(m1.all()) and m2[0].tolist() == [True] * 5 + [False] * 5
    torch.testing.assert_close(s2[0], s1[0])
    torch.testing.assert_close(w2[0, :5], w1[0])


def test_plain_text_model_gives_its_pooled_output(tmp_path: Path) -> None:
    """A CLIPTextModel (no projection): the sentence is its pooler_output, the hidden size."""
    folder = make_clip_folder(tmp_path / "plain", projection=False)
    enc = CLIPTextEncoder(folder=folder, max_words=8)
    sentence, words, _ = encode_prompts(enc, [], CAPTIONS, max_words=8)
    assert sentence.shape == (3, 16) and words.shape == (3, 8, 16)
    ids, attention = enc.tokenize(CAPTIONS)
    tower = transformers.CLIPTextModel.from_pretrained(folder)
    torch.testing.assert_close(sentence, tower(input_ids=ids, attention_mask=attention)[1])


def test_a_whole_clip_model_folder_gives_its_text_features(clip_dir: Path, tmp_path: Path) -> None:
    """A saved CLIPModel (text and vision towers, e.g. openai/clip-vit-base-patch32): its text
    half and projection are read; the sentence is CLIPModel.get_text_features."""
    text = transformers.CLIPTextConfig.from_pretrained(clip_dir).to_dict()
    vision = {"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
              "num_attention_heads": 2, "image_size": 8, "patch_size": 4}  # fmt: skip
    config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=12)
    torch.manual_seed(1)
    model = transformers.CLIPModel(config)
    model.save_pretrained(tmp_path / "full")
    transformers.AutoTokenizer.from_pretrained(clip_dir).save_pretrained(tmp_path / "full")
    enc = CLIPTextEncoder(folder=tmp_path / "full", max_words=8)
    sentence, words, _ = text_features(enc, {"caption": CAPTIONS})
    assert sentence.shape == (3, 12) and words.shape == (3, 8, 12)
    ids, attention = enc.tokenize(CAPTIONS)
    expected = model.get_text_features(input_ids=ids, attention_mask=attention)
    torch.testing.assert_close(sentence, getattr(expected, "pooler_output", expected))


def test_the_state_holds_the_folders_hash_not_the_tower(clip_dir: Path) -> None:
    """Only ``fingerprint`` (the folder's SHA-256) is saved; loading it back is strict-clean;
    the tower is frozen and stays in eval mode."""
    enc = CLIPTextEncoder(folder=clip_dir, max_words=8)
    state = enc.state_dict()
    assert list(state) == ["fingerprint"]
    assert bytes(state["fingerprint"].tolist()).hex() == clip_fingerprint(clip_dir)
    assert not enc.load_state_dict(state, strict=True).missing_keys
    enc.train()
    assert not enc.tower.training and not any(p.requires_grad for p in enc.parameters())


def _changed_copy(clip_dir: Path, to: Path) -> Path:
    shutil.copytree(clip_dir, to)
    config = json.loads((to / "config.json").read_text())
    (to / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-6}))
    return to


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "clip_path: {p}: no such folder"),
        ("file", "clip_path: {p}: not a folder"),
        ("empty", "clip_path: {p}: not a CLIP text model (no config.json"),
        ("bert", "clip_path: {p}: not a CLIP text model (config.json model_type 'bert'"),
        ("no weights", "clip_path: {p}: cannot load a CLIP text model and its tokenizer"),
        ("weights a folder", "clip_path: {p}: cannot read model.safetensors (Is a directory)"),
        ("bad sizes", "clip_path: {p}: config.json's sizes (hidden_size, projection_dim,"),
    ],
)
def test_bad_clip_folder_is_one_line(
    clip_dir: Path, tmp_path: Path, case: str, message: str
) -> None:
    """`translate train stackgan --text-encoder clip --clip-path P`: exit 2, one line."""
    make_captioned_shapes(tmp_path / "d", 4, size=16)
    path = tmp_path / "clip"
    if case == "file":
        path.write_text("x")
    elif case == "empty":
        path.mkdir()
    elif case == "bert":
        path.mkdir()
        (path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    elif case == "bad sizes":
        path.mkdir()
        (path / "config.json").write_text('{"model_type": "clip_text_model", "hidden_size": "x"}')
    elif case in ("no weights", "weights a folder"):
        shutil.copytree(clip_dir, path)
        (path / "model.safetensors").unlink()
        if case == "weights a folder":
            (path / "model.safetensors").mkdir()
    args = ["train", "stackgan", "--data", str(tmp_path / "d"), "--text-encoder", "clip",
            "--clip-path", str(path), "--max-steps", "1", "--run-dir", str(tmp_path / "run"),
            "--device", "cpu"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message.format(p=path.resolve()) in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run" / "checkpoints").exists()


def test_clip_options_and_transformers_missing(
    monkeypatch: pytest.MonkeyPatch, clip_dir: Path
) -> None:
    with pytest.raises(ConfigError, match="clip_path: is required with --text-encoder clip"):
        StackGANConfig(data=Path("d"), text_encoder="clip")
    with pytest.raises(ConfigError, match="clip_path: is read with --text-encoder clip only"):
        StackGANConfig(data=Path("d"), clip_path=str(clip_dir))
    with pytest.raises(ConfigError, match="max_words: CLIP reads 3 to 32 tokens"):
        CLIPTextEncoder(folder=clip_dir, max_words=40)
    with pytest.raises(ConfigError, match=r"clip_path: .*: no such folder \(the model was trained"):
        CLIPTextEncoder(folder=clip_dir / "gone", max_words=8, fingerprint="0" * 64)
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(ConfigError, match=r"text_encoder: clip needs the transformers package"):
        CLIPTextEncoder(folder=clip_dir, max_words=8)


@pytest.mark.slow
@pytest.mark.parametrize("generator", ["stackgan", "gigagan"])
def test_train_and_sample_with_clip(clip_dir: Path, tmp_path: Path, generator: str) -> None:
    """Both generators train with the CLIP tower (its size is text_dim; no T weights saved but
    its hash); `sample --prompt` is deterministic and prompt-dependent; the service samples a
    prompt; a changed folder is refused in one line at load."""
    make_captioned_shapes(tmp_path / "d", 8, size=16)
    cfg = StackGANConfig(
        data=tmp_path / "d", generator=generator, text_encoder="clip", clip_path=str(clip_dir),
        attention_max=8, **TINY,
    )  # fmt: skip
    run = train_tiny("stackgan", cfg, tmp_path / "run")
    sampler = Sampler.from_checkpoint(run)
    stored = sampler.loaded.plugin_cfg
    assert stored.text_dim == 12 and stored.clip_hash == clip_fingerprint(clip_dir)
    assert stored.clip_path == str(clip_dir.resolve()) and not stored.pretrain_text
    assert sampler.conditions[0].size == (12 if generator == "stackgan" else 12 + 8 * 13)
    outs = [tmp_path / f"{k}.png" for k in range(3)]
    for out, prompt in zip(outs, ["a red circle", "a red circle", "a blue square"], strict=True):
        args = ["sample", str(run), "--prompt", prompt, "-n", "4", "--seed", "3", "-o", str(out)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    assert outs[0].read_bytes() == outs[1].read_bytes() != outs[2].read_bytes()
    _service_prompt(run)
    if generator == "stackgan":  # the export: the generator alone (the tower is not a graph)
        from translate.export.onnx import export_onnx

        exported = export_onnx(run, tmp_path / "g.onnx")
        assert exported.companions == [] and not (tmp_path / "g.text.onnx").exists()
    # the folder changes (or goes): the checkpoint is refused, naming the option
    moved = tmp_path / "moved"
    clip_dir.rename(moved)
    try:
        _changed_copy(moved, clip_dir)
        result = runner.invoke(
            app, ["sample", str(run), "--prompt", "a", "-o", str(tmp_path / "x.png")]
        )
    finally:
        shutil.rmtree(clip_dir, ignore_errors=True)
        moved.rename(clip_dir)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"clip_path: {clip_dir.resolve()} changed since this model was trained" in result.output


def _service_prompt(run: Path) -> None:
    """GET /sample?prompt=...: the grid the Sampler draws for the prompt."""
    import io

    import numpy as np
    from fastapi.testclient import TestClient
    from PIL import Image

    from translate.inference.sampling import grid
    from translate.serve.app import create_app
    from translate.serve.config import ServeConfig
    from translate.serve.server import load_models

    (served,) = load_models(checkpoints=[f"shapes={run}"])
    app = create_app([], ServeConfig(max_samples=8, access_log=False), generators=[served])
    with TestClient(app) as c:
        res = c.get(
            "/v1/models/shapes/sample", params={"n": 2, "seed": 1, "prompt": "a red circle"}
        )
        assert res.status_code == 200, res.text
        got = np.asarray(Image.open(io.BytesIO(res.content)).convert("RGB"))
        expected = grid(Sampler.from_checkpoint(run)(2, seed=1, prompt="a red circle"))
        assert np.array_equal(got, np.asarray(expected))


def test_stackgan_wires_the_clip_tower(clip_dir: Path, tmp_path: Path) -> None:
    """finalize_config records the folder (absolute), its hash and size, and skips DAMSM; T is
    the tower; G's text (gigagan: packed sentence, words, mask) is the tower's features."""
    from translate.registry import load_plugin
    from translate.text.encoder import unpack_text

    plugin = load_plugin("stackgan")
    make_captioned_shapes(tmp_path / "d", 4, size=16)
    cfg = StackGANConfig(
        data=tmp_path / "d", generator="gigagan", text_encoder="clip", clip_path=str(clip_dir),
        attention_max=8, **TINY,
    )  # fmt: skip
    cfg = plugin.finalize_config(cfg)
    assert (cfg.text_dim, cfg.clip_path, cfg.pretrain_text) == (12, str(clip_dir), False)
    assert cfg.clip_hash == clip_fingerprint(clip_dir) and cfg.text_size == 12 + 8 * 13
    models = plugin.build_models(cfg)
    assert isinstance(models["T"], CLIPTextEncoder) and "T" not in plugin.param_groups(models)
    encoder = plugin.text_encoder(models, cfg)
    assert not encoder.exportable  # its own tokenizer and files: no text graph beside an export
    packed = encoder.encode(["a red circle", "a blue square"])
    sentence, words, mask = unpack_text(packed, 12)
    expected = text_features(models["T"], {"caption": ["a red circle", "a blue square"]})
    for got, want in zip((sentence, words, mask), expected, strict=True):
        assert torch.equal(got, want)
