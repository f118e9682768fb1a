"""Learning tests of the generating plugins on scikit-learn's bundled digits (8x8, no download).

A logistic-regression classifier fitted on the real digits judges the samples: a DCGAN's are
classified as digits with high confidence (mean max-probability well above that of noise), and
a conditional model's samples of class k are classified as k at least 80% of the time
(projection discriminator and AC-GAN). Figures: ``benchmarks/generation_digits.py``. Each test
trains a small model for 1200 steps in the engine's default mode (about 25 CPU seconds with
one torch thread; on a loaded machine, TRANSLATE_TEST_THREADS=1 avoids oversubscription, which
measured 10x the CPU time with two threads).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("sklearn")

from translate.testing_digits import DigitJudge, evaluate, train_digits


@pytest.fixture(scope="module")
def judge() -> DigitJudge:
    return DigitJudge()


@pytest.mark.slow
def test_dcgan_samples_are_confidently_digits(judge: DigitJudge, tmp_path: Path) -> None:
    noise = judge.noise_confidence()  # 0.60; the real digits: 0.92
    figures = evaluate(train_digits("dcgan", tmp_path), judge)
    assert figures["confidence"] >= max(0.75, noise + 0.15), (figures, noise)


@pytest.mark.slow
@pytest.mark.parametrize("conditioning", ["projection", "acgan"])
def test_conditional_samples_are_of_the_asked_class(
    conditioning: str, judge: DigitJudge, tmp_path: Path
) -> None:
    run = train_digits("cgan", tmp_path, model={"conditioning": conditioning})
    figures = evaluate(run, judge)
    assert figures["class_accuracy"] >= 0.8, figures
    assert figures["confidence"] >= 0.75, figures
    # translate eval's protocol agrees: its own classifier, fitted on the training folders
    from translate.evaluation import evaluate as evaluate_model

    (result,) = evaluate_model("cgan", [tmp_path / "digits"], checkpoint=run, device="cpu").results
    assert result.means["class_accuracy"] >= 0.8, result.means
