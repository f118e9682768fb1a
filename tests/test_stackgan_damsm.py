"""stackgan's ``--damsm-weight`` (AttnGAN's L_DAMSM on G's images, Xu et al. 2018, Eq. 14): the
term reads the full-size image through the fixed image encoder, the encoder is the one the
text encoder was pretrained with and is stored in the run (model ``I``) without an optimiser,
G's loss adds the weighted term, and the settings it needs are one-line errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from translate_stackgan import StackGANConfig
from translate_stackgan.nets import damsm_term

from tests.test_stackgan import TINY
from translate.engine.loop import prepare
from translate.errors import ConfigError
from translate.registry import load_plugin
from translate.text.damsm import damsm_loss
from translate.text.encoder import ImageEncoder
from translate.text.synthetic import make_captioned_shapes


def test_damsm_term_reads_the_full_size_image_through_the_fixed_encoder() -> None:
    """On an image pyramid (B, 9, S, S) the term is the DAMSM loss of its last three channels
    (the full-size image), not of a lower scale; the image gets a gradient, the encoder none."""
    torch.manual_seed(0)
    encoder = ImageEncoder(dim=8, base_channels=4).requires_grad_(False)
    words = torch.randn(4, 5, 8)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False], [True] * 5])
    text = (torch.randn(4, 8), words, mask)
    stack = torch.randn(4, 9, 8, 8, requires_grad=True)
    term = damsm_term({"I": encoder}, text, stack)
    with torch.no_grad():
        full, lowest = (
            damsm_loss(text, encoder(stack[:, c]))[0].item() for c in (slice(6, 9), slice(0, 3))
        )
    assert term.item() == pytest.approx(full) and term.item() != pytest.approx(lowest)
    term.backward()
    assert stack.grad is not None and stack.grad[:, 6:].abs().sum() > 0
    assert float(stack.grad[:, :6].abs().sum()) == 0.0
    assert all(p.grad is None for p in encoder.parameters())


def test_damsm_weight_keeps_the_pretrained_image_encoder_fixed_in_the_run(tmp_path: Path) -> None:
    """With --damsm-weight, the image encoder pretrained with T (moved from its initialisation)
    is the run's model I: no optimiser group, saved in the checkpoint as pretraining left it
    (two GAN steps do not move it), and G's log has the DAMSM term."""
    plugin = load_plugin("stackgan")
    make_captioned_shapes(tmp_path / "d", 8, size=16)
    cfg = plugin.finalize_config(StackGANConfig(data=tmp_path / "d", damsm_weight=5.0, **TINY))
    torch.manual_seed(0)
    models = plugin.build_models(cfg)
    fresh = {k: v.clone() for k, v in models["I"].state_dict().items()}
    plugin.initialize(models, cfg)
    pretrained = models["I"].state_dict()
    assert any(not torch.equal(fresh[k], pretrained[k]) for k in fresh)
    assert "I" not in plugin.param_groups(models) and "T" not in plugin.param_groups(models)
    assert not any(p.requires_grad for p in models["I"].parameters())
    assert "I" not in plugin.build_models(dataclasses.replace(cfg, damsm_weight=0.0))

    trainer = prepare(
        "stackgan", data=tmp_path / "d", run_dir=tmp_path / "run", max_steps=2, batch_size=4,
        progress=False, device="cpu", damsm_weight=5.0, **TINY,
    )  # fmt: skip
    pretrained = {k: v.clone() for k, v in trainer.models["I"].state_dict().items()}
    trainer.run()
    run = tmp_path / "run"
    saved = load_file(run / "checkpoints" / "step_0000002" / "model.safetensors")
    stored = {k.split(".", 1)[1]: v for k, v in saved.items() if k.startswith("I.")}
    assert stored.keys() == pretrained.keys()
    assert all(torch.equal(stored[k], pretrained[k]) for k in stored)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(line)["damsm"] > 0 for line in lines if '"damsm"' in line)
    assert any('"damsm"' in line for line in lines)


@pytest.mark.parametrize(
    "options",
    [{"pretrain_text": False}, {"pretrain_steps": 0}, {"damsm_weight": -1.0}],
)
def test_damsm_weight_needs_the_pretrained_encoders(tmp_path: Path, options: dict) -> None:
    with pytest.raises(ConfigError, match="damsm_weight"):
        StackGANConfig(data=tmp_path, **{**TINY, "damsm_weight": 1.0, **options})
    with pytest.raises(ConfigError, match="damsm_weight: needs the built-in text encoder"):
        StackGANConfig(data=tmp_path, embeddings="e.npz", damsm_weight=1.0)
