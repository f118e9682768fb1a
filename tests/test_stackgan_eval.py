"""translate eval stackgan (``translate.evaluation_text``): samples of the eval set's captions
against its images (FID/KID, random-weight Inception as in test_evaluation), and the rule-based
prompt accuracy on the captioned-shapes set, known by its ``captioned_shapes.json`` manifest.
Planted generators check the accuracy: one that draws each caption's colour and shape by
construction scores 1, one that draws the wrong colour scores 0 on colour."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image
from translate_stackgan import StackGANConfig
from typer.testing import CliRunner

from tests.conftest import train_tiny
from tests.test_evaluation import inception_weights as inception_weights_file
from tests.test_stackgan import TINY
from translate.cli.main import app
from translate.errors import ConfigError, DataError
from translate.evaluation import GenerationModels
from translate.evaluation_text import (
    caption_plan,
    prompt_accuracy,
    template_samples,
    text_protocol,
)
from translate.text.captions import tokenize
from translate.text.synthetic import (
    COLOURS,
    MANIFEST,
    SHAPES,
    TEMPLATES,
    draw_shape,
    make_captioned_shapes,
    read_labels,
)

runner = CliRunner()
inception_weights = inception_weights_file  # the module-scoped fixture, here too
NEXT_COLOUR = dict(zip(COLOURS, [*list(COLOURS)[1:], next(iter(COLOURS))], strict=True))


def drawer(wrong_colour: bool = False, size: int = 32) -> object:
    """A planted generator: each caption's colour (or the next one) and shape, drawn by the
    synthetic set's own drawing."""

    def draw(captions: Sequence[str], seed: int) -> list[Image.Image]:
        rng, out = random.Random(seed), []
        for caption in captions:
            words = tokenize(caption)
            colour = next(w for w in words if w in COLOURS)
            shape = next(w for w in words if w in SHAPES)
            colour = NEXT_COLOUR[colour] if wrong_colour else colour
            out.append(draw_shape(colour, shape, size, rng))
        return out

    return draw


def test_make_captioned_shapes_writes_its_manifest(tmp_path: Path) -> None:
    made = make_captioned_shapes(tmp_path / "d", 5, size=16)
    labels = read_labels(tmp_path / "d")
    assert labels == {f"shape_{i:04d}": pair for i, pair in enumerate(made)}
    assert read_labels(tmp_path) is None  # no manifest: not the synthetic set
    (tmp_path / "d" / MANIFEST).write_text('{"kind": "captioned_shapes", "labels": {"a": 1}}')
    with pytest.raises(DataError, match="not a captioned-shapes manifest"):
        read_labels(tmp_path / "d")


def test_prompt_accuracy_by_hand() -> None:
    """Four images of known content against labels: red circle right, red square with the
    colour right only, blue cross with the shape right only, and a blank image (none)."""
    rng = random.Random(0)
    images = [draw_shape(c, s, 32, rng) for c, s in (("red", "circle"), ("red", "square"),
              ("green", "cross"))] + [Image.new("RGB", (32, 32), "white")]  # fmt: skip
    labels = [("red", "circle"), ("red", "triangle"), ("blue", "cross"), ("red", "circle")]
    per_label, overall = prompt_accuracy(images, labels)
    assert overall == {"prompt_accuracy": 0.25, "colour_accuracy": 0.5, "shape_accuracy": 0.5}
    assert per_label[("red", "circle")] == {
        "prompt_accuracy": 0.5, "colour_accuracy": 0.5, "shape_accuracy": 0.5,
    }  # fmt: skip
    assert per_label[("blue", "cross")]["shape_accuracy"] == 1.0


def test_caption_plan_cycles_images_then_captions(tmp_path: Path) -> None:
    make_captioned_shapes(tmp_path, 2, size=16)
    images = sorted(tmp_path.glob("*.png"))
    plan = caption_plan(images, 5)
    assert [p.name for p, _ in plan] == ["shape_0000.png", "shape_0001.png"] * 2 + [
        "shape_0000.png"
    ]
    assert [c for _, c in plan][:3] == ["a red circle", "a red square", "a circle that is red"]


def test_template_samples_write_each_prompt_with_the_template() -> None:
    """The 16 prompts in the template's words, ``per_prompt`` samples each from the seed, with
    their labels: a planted sampler that draws each prompt scores 1 on prompt accuracy, one
    that draws the next colour 0 (its shapes stay right)."""
    asked: list[tuple[int, int | None, str]] = []

    def sampler(wrong_colour: bool) -> object:
        draw = drawer(wrong_colour)

        def sample(n: int, *, seed: int | None = None, prompt: str = "") -> list[Image.Image]:
            asked.append((n, seed, prompt))
            return draw([prompt] * n, seed or 0)

        return sample

    samples, labels = template_samples(sampler(False), TEMPLATES[3], per_prompt=3, seed=7)
    assert len(samples) == len(labels) == 48 and labels[:4] == [("red", "circle")] * 3 + [
        ("red", "square")
    ]
    assert asked[:2] == [(3, 7, "the circle is red"), (3, 7, "the square is red")]
    assert prompt_accuracy(samples, labels)[1]["prompt_accuracy"] == 1.0
    wrong = prompt_accuracy(*template_samples(sampler(True), TEMPLATES[0], per_prompt=2))[1]
    assert wrong == {"prompt_accuracy": 0.0, "colour_accuracy": 0.0, "shape_accuracy": 1.0}


def test_planted_generators_score_as_built(tmp_path: Path) -> None:
    """On 32 shapes (all 16 pairs twice), a generator drawing each caption's colour and shape
    scores 1.0 in every row (the rule reads the set's own drawings: 1.0 for data seeds 0, 1,
    2), one drawing the next colour 0.0 on colour and joint while its shapes stay right (1.0);
    rows are per pair."""
    make_captioned_shapes(tmp_path / "eval", 32, size=32, seed=1)
    models = GenerationModels(sampler=None, samples=64)
    right = text_protocol(models, tmp_path / "eval", draw=drawer())
    wrong = text_protocol(models, tmp_path / "eval", draw=drawer(wrong_colour=True))
    assert len(right.items) == 16 and right.items[0].name == "prompt blue circle"
    assert all(it.metrics["prompt_accuracy"] == 1.0 for it in right.items)
    assert all(it.metrics["colour_accuracy"] == 0.0 for it in wrong.items)
    assert all(it.metrics["prompt_accuracy"] == 0.0 for it in wrong.items)
    assert all(it.metrics["shape_accuracy"] == 1.0 for it in wrong.items)
    assert (
        "over 64 samples: joint 1.000 (chance 0.062), colour 1.000, shape 1.000" in right.notes[0]
    )
    assert "joint 0.000 (chance 0.062), colour 0.000, shape 1.000" in wrong.notes[0]
    generated, real = right.distributions[""]
    assert len(generated) == 64 and len(real) == 32


def test_without_manifest_fid_only(tmp_path: Path) -> None:
    make_captioned_shapes(tmp_path / "eval", 4, size=16)
    (tmp_path / "eval" / MANIFEST).unlink()
    result = text_protocol(GenerationModels(sampler=None), tmp_path / "eval", draw=drawer())
    assert [it.name for it in result.items] == ["samples"] and not result.items[0].metrics
    assert MANIFEST in result.notes[0] and len(result.distributions[""][0]) == 4
    with pytest.raises(ConfigError, match="--classifier"):
        text_protocol(GenerationModels(sampler=None, classifier=tmp_path), tmp_path / "eval")


@pytest.mark.slow
def test_eval_of_a_tiny_run_writes_the_metrics(inception_weights: Path, tmp_path: Path) -> None:
    """translate eval stackgan -c RUN --data EVAL: FID, KID and the prompt accuracies in
    metrics.json and on the terminal; the eval set's test/ split is used."""
    make_captioned_shapes(tmp_path / "d", 8, size=16)
    run = train_tiny("stackgan", StackGANConfig(data=tmp_path / "d", **TINY), tmp_path / "run")
    make_captioned_shapes(tmp_path / "d" / "test", 16, size=16, seed=3)
    report = tmp_path / "report"
    result = runner.invoke(
        app,
        ["eval", "stackgan", "-c", str(run), "--data", str(tmp_path / "d"), "--samples", "16",
         "--inception-weights", str(inception_weights), "--report", str(report)],
        env={"COLUMNS": "250"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (folder,) = json.loads((report / "metrics.json").read_text())["folders"]
    means = folder["means"]
    assert {"FID", "KID", "prompt_accuracy", "colour_accuracy", "shape_accuracy"} <= set(means)
    assert len(folder["rows"]) == 16 and 0.0 <= means["prompt_accuracy"] <= 1.0
    assert "prompt accuracy by the captioned-shapes rule over 16 samples" in result.output
