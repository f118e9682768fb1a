"""stackgan's text encoder as its own ONNX graph (``translate.loading.text_encoder``, a side
graph beside the generator's export): ONNX Runtime against PyTorch on prompts of different
lengths, ``translate sample model.onnx --prompt`` against the checkpoint, the vocabulary in the
metadata, one-line errors, and no text graph for a model trained on precomputed embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from translate_stackgan import StackGANConfig
from typer.testing import CliRunner

from tests.conftest import train_tiny
from tests.test_stackgan import TINY, precomputed_run
from translate.cli.main import app
from translate.errors import ConfigError
from translate.export.onnx import FP32_TOLERANCE, export_onnx
from translate.inference.sampling import Sampler
from translate.loading import load
from translate.loading.side_graph import side_path
from translate.loading.text_encoder import (
    OnnxTextEncoder,
    load_text_encoder,
    parity_prompts,
    text_path,
)
from translate.text.synthetic import make_captioned_shapes

runner = CliRunner()
#: prompts of 1, 3, 6 and 9 words, one word unknown, one past max_words (truncated)
PROMPTS = [
    "circle",
    "a red circle",
    "the square is blue on white",
    "one yellow triangle on white that is a purple cross",
    "a " * 30 + "green cross",
]


def test_side_graphs_sit_beside_the_model() -> None:
    assert side_path("out/m.onnx", ".text.onnx") == Path("out/m.text.onnx")
    assert text_path("a.b.ONNX") == Path("a.b.text.onnx")


def test_parity_prompts_cover_every_length() -> None:
    """One prompt of each length 1..L (the last a word longer: cut at L), then one with an
    unknown word, which tokenises to <unk> (1)."""
    from translate.text.captions import encode_token_batch

    vocabulary = ["<pad>", "<unk>", "a", "red", "circle"]
    first, second = parity_prompts(vocabulary, 4)
    assert [len(p.split()) for p in first] == [1, 2, 3, 5]
    tokens, lengths = encode_token_batch(first + second, vocabulary, 4)
    assert lengths.tolist() == [1, 2, 3, 4, 2] and tokens[4].tolist() == [1, 2, 0, 0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("stackgan_export")
    make_captioned_shapes(root / "d", 8, size=16)
    run = train_tiny("stackgan", StackGANConfig(data=root / "d", **TINY), root / "run")
    return run, export_onnx(run, root / "g.onnx").path


@pytest.mark.slow
def test_text_graph_matches_pytorch_on_prompts(exported: tuple[Path, Path]) -> None:
    """export writes g.text.onnx beside g.onnx (parity-checked, metadata part, vocabulary,
    max_words); ONNX Runtime's text vectors of prompts of 1 to 9+ words equal PyTorch's."""
    run, model = exported
    graph = load_text_encoder(model)
    assert graph is not None and graph.path == model.with_name("g.text.onnx")
    loaded = load(run, device="cpu")
    encoder = loaded.plugin.text_encoder(loaded.models, loaded.plugin_cfg)
    assert graph.vocabulary == list(loaded.plugin_cfg.words)
    assert graph.max_words == loaded.plugin_cfg.max_words and graph.text_input == "text"
    with torch.inference_mode():
        want = encoder.encode(PROMPTS)
    got = graph.encode(PROMPTS)
    assert got.shape == want.shape == (len(PROMPTS), 8)
    assert float((got - want).abs().max()) <= FP32_TOLERANCE
    # the prompts differ, so the vectors do: a graph that ignored tokens or lengths fails here
    assert float(torch.cdist(got, got).add(torch.eye(len(PROMPTS))).min()) > 1e-3
    md = graph.metadata
    assert md["part"] == "text_encoder" and json.loads(md["vocabulary"])[:2] == ["<pad>", "<unk>"]


@pytest.mark.slow
def test_sample_from_onnx_with_a_prompt_equals_the_checkpoint(
    exported: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """translate sample g.onnx --prompt (and RUN --backend onnx): the checkpoint's images
    (uint8, within 1 level); without g.text.onnx the prompt is refused in one line (exit 2)."""
    monkeypatch.setenv("TRANSLATE_CACHE_DIR", str(tmp_path / "cache"))
    run, model = exported
    images = {}
    for name, source in (("torch", run), ("onnx", model)):
        out = tmp_path / f"{name}.png"
        args = ["sample", str(source), "--prompt", "a green triangle", "-n", "4", "--seed", "3"]
        result = runner.invoke(app, [*args, "-o", str(out)])
        assert result.exit_code == 0, result.output
        images[name] = np.asarray(Image.open(out)).astype(int)
    # --backend onnx on the checkpoint: its cached export has the text graph beside it too
    out = tmp_path / "cached.png"
    args = ["sample", str(run), "--backend", "onnx", "--prompt", "a green triangle", "-n", "4"]
    result = runner.invoke(app, [*args, "--seed", "3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    images["cached"] = np.asarray(Image.open(out)).astype(int)
    assert np.abs(images["torch"] - images["onnx"]).max() <= 1
    assert np.abs(images["torch"] - images["cached"]).max() <= 1
    # the generator's inputs too (a 2-step G barely reads its text): z and the prompt's vector
    onnx_sampler = Sampler.from_checkpoint(model)
    z, text = onnx_sampler.inputs(4, seed=3, prompt="a green triangle")
    want_z, want_text = Sampler.from_checkpoint(run).inputs(4, seed=3, prompt="a green triangle")
    assert torch.equal(z, want_z) and float((text - want_text).abs().max()) <= FP32_TOLERANCE
    other = onnx_sampler.inputs(1, seed=0, prompt="a red circle")[1]
    assert not torch.allclose(other, text[:1])  # the prompt reaches the generator's input
    moved = model.with_name("elsewhere.onnx")
    text_path(model).rename(moved)
    try:
        args = ["sample", str(model), "--prompt", "a red circle", "-o", str(tmp_path / "x.png")]
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "no text encoder g.text.onnx beside" in result.output
        assert "Traceback" not in result.output
    finally:
        moved.rename(text_path(model))


@pytest.mark.slow
def test_text_graph_is_not_a_model(exported: tuple[Path, Path], tmp_path: Path) -> None:
    """The text graph given to sample is one line naming what it is; the generator's export
    given as a text graph too."""
    _, model = exported
    args = ["sample", str(text_path(model)), "-o", str(tmp_path / "x.png")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "the text encoder of a stackgan model" in result.output
    with pytest.raises(ConfigError, match="not the text encoder of a model"):
        OnnxTextEncoder(model)


@pytest.mark.slow
def test_a_text_graph_of_another_export_is_refused(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    """A text graph beside g.onnx whose metadata (step) says another export: one line."""
    import shutil

    import onnx

    _, model = exported
    shutil.copy(model, tmp_path / "g.onnx")
    proto = onnx.load(str(text_path(model)))
    for prop in proto.metadata_props:
        if prop.key == "step":
            prop.value = "999"
    onnx.save(proto, str(tmp_path / "g.text.onnx"))
    with pytest.raises(ConfigError, match=r"exported from another model than g\.onnx"):
        Sampler.from_checkpoint(tmp_path / "g.onnx").inputs(1, prompt="a red circle")


@pytest.mark.slow
def test_precomputed_embeddings_write_no_text_graph(tmp_path: Path) -> None:
    """A model trained on precomputed embeddings holds no text encoder: the export is the
    generator alone, and --prompt on it says to give the vector."""
    run = precomputed_run(tmp_path)
    result = export_onnx(run, tmp_path / "g.onnx")
    assert result.companions == [] and not text_path(result.path).exists()
    assert sorted(p.name for p in tmp_path.glob("g*")) == ["g.onnx"]
    with pytest.raises(ConfigError, match=r"no text encoder g\.text\.onnx beside"):
        Sampler.from_checkpoint(result.path).inputs(1, prompt="a red circle")
