"""Generators of pytorch-CycleGAN-and-pix2pix: key mapping for every generator type, the
``translate import reference`` command, loading a ``.pth`` directly, and its one-line errors.

The state dicts are laid out as the reference saves them (``tests/reference_layout.py``; its
fidelity to the reference's own networks, and the numerical equality of the imported models, are
checked by ``benchmarks/reference_import.py``, which needs the reference sources).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.reference_layout import reference_state_dict
from tests.test_cli import assert_user_error
from translate.cli.main import app
from translate.engine import checkpoint as ckpt
from translate.inference.translator import Translator
from translate.loading import load
from translate.loading.importing import build_reference

runner = CliRunner()

CASES = [
    (net_g, norm, dropout)
    for net_g in ("unet_128", "unet_256", "resnet_6blocks", "resnet_9blocks")
    for norm in ("batch", "instance", "none")
    for dropout in (False, True)
]


def _save(state: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


# literal names of the reference's layers and ours: outermost, a deep one, the output layer
SPOT = {
    "unet_128": [
        ("model.model.0", "encoder.0.0"),
        ("model.model.1.model.1", "encoder.1.1"),
        ("model.model.1.model.3.model.3.model.3.model.3.model.3.model.1", "encoder.6.1"),
        ("model.model.1.model.3.model.3.model.3.model.3.model.3.model.3", "decoder.0.1"),
        ("model.model.1.model.5", "decoder.5.1"),
        ("model.model.3", "decoder.6.1"),
    ],
    "unet_256": [
        ("model.model.0", "encoder.0.0"),
        ("model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.1", "encoder.7.1"),
        ("model.model.1.model.3.model.5", "decoder.5.1"),
        ("model.model.3", "decoder.7.1"),
    ],
    "resnet_6blocks": [
        ("model.1", "stem.1"),
        ("model.7", "down.3"),
        ("model.15.conv_block.1", "blocks.5.body.1"),
        ("model.16", "up.0"),
        ("model.23", "head.1"),
    ],
    "resnet_9blocks": [
        ("model.4", "down.0"),
        ("model.10.conv_block.1", "blocks.0.body.1"),
        ("model.22", "up.3"),
        ("model.26", "head.1"),
    ],
}


@pytest.mark.parametrize(("net_g", "norm", "dropout"), CASES)
def test_every_reference_tensor_lands_in_its_layer(
    net_g: str, norm: str, dropout: bool, tmp_path: Path
) -> None:
    """Each tensor of a reference state dict is used once, in the layer of the same place;
    our extra biases (the reference has none without a norm) are zero."""
    state = reference_state_dict(net_g, norm, dropout=dropout, ngf=2, seed=1)
    file = _save(state, tmp_path / "latest_net_G.pth")
    plugin, cfg, models, names, info = build_reference([file], dropout=dropout)
    assert plugin.name == "pix2pix" and names == ["G"]
    assert (info["reference"]["netG"], info["reference"]["norm"]) == (net_g, norm)
    assert cfg.norm == norm and cfg.base_channels == 2
    ours = models["G"].state_dict()
    for ref_layer, our_layer in SPOT[net_g]:
        assert torch.equal(ours[f"{our_layer}.weight"], state[f"{ref_layer}.weight"])
    used = set()
    for key, value in state.items():
        if value.dim() == 0:  # num_batches_tracked
            continue
        same = [k for k, v in ours.items() if v.shape == value.shape and torch.equal(v, value)]
        assert len(same) == 1, (key, same)
        assert same[0].rsplit(".", 1)[1] == key.rsplit(".", 1)[1]  # weight -> weight, ...
        used.add(same[0])
    rest = {k: v for k, v in ours.items() if k not in used and not k.endswith("batches_tracked")}
    assert all(k.endswith(".bias") and not v.any() for k, v in rest.items()), sorted(rest)
    assert bool(rest) == (norm == "none")  # the reference's convolutions have no bias then


def test_legacy_instance_norm_statistics_are_dropped(tmp_path: Path) -> None:
    """Files saved before PyTorch 0.4 carry instance-norm running stats; the reference's own
    loader drops them, and so do we."""
    state = reference_state_dict("resnet_6blocks", "instance", legacy_instance_stats=True)
    assert any(k.endswith("running_mean") for k in state)
    loaded = load(_save(state, tmp_path / "old_net_G_A.pth"))
    assert loaded.plugin.name == "cyclegan" and loaded.meta["reference"]["norm"] == "instance"


def _image(path: Path, size: int = 24) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)).save(path)
    return path


def test_import_cyclegan_then_run_both_ways(tmp_path: Path) -> None:
    a2b = reference_state_dict("resnet_9blocks", "instance", ngf=4, seed=1)
    b2a = reference_state_dict("resnet_9blocks", "instance", ngf=4, seed=2)
    g_a = _save(a2b, tmp_path / "zoo" / "latest_net_G_A.pth")
    g_b = _save(b2a, tmp_path / "zoo" / "latest_net_G_B.pth")
    out = tmp_path / "runs" / "horse2zebra"
    args = ["import", "reference", str(g_a), "--model", "cycle_gan", "--netG", "resnet_9blocks"]
    made = runner.invoke(app, [*args, "--norm", "instance", "-o", str(out)])
    assert made.exit_code == 0, made.output
    meta = ckpt.read_meta(out)
    assert meta["plugin"] == "cyclegan" and meta["models"] == ["G_A"]
    assert (
        meta["plugin_config"]["resnet_blocks"] == 9 and meta["plugin_config"]["norm"] == "instance"
    )

    image = _image(tmp_path / "horse.png")
    # fp32 (run's default is --amp auto): compared pixel for pixel with the Python API below
    ran = runner.invoke(
        app, ["run", str(image), "-c", str(out), "-o", str(tmp_path / "z.png"), "--amp", "none"]
    )
    assert ran.exit_code == 0, ran.output  # no architecture flags: the checkpoint has them
    direct = Translator.from_checkpoint(g_a, device="cpu")  # the .pth file itself
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "z.png")), np.asarray(direct([Image.open(image)])[0])
    )
    # only G_A was imported: the other direction is refused, not run with random weights
    other = runner.invoke(app, ["run", str(image), "-c", str(out), "--direction", "b2a"])
    assert_user_error(other, "options need model 'G_B'", "it has G_A")

    both = tmp_path / "both"
    made = runner.invoke(app, ["import", "reference", str(g_a), str(g_b), "-o", str(both)])
    assert made.exit_code == 0, made.output
    assert ckpt.read_meta(both)["models"] == ["G_A", "G_B"]
    x = torch.rand(1, 3, 16, 20) * 2 - 1
    back = Translator.from_checkpoint(both, device="cpu", options={"direction": "b2a"})
    alone = Translator.from_checkpoint(g_b, device="cpu")  # G_B file: b2a by default
    assert alone.opts.direction == "b2a"
    assert torch.equal(back.translate_tensor(x), alone.translate_tensor(x))


def test_import_pix2pix_unet_runs_directly_and_from_the_checkpoint(tmp_path: Path) -> None:
    state = reference_state_dict("unet_256", "batch", ngf=2, seed=3)
    file = _save(state, tmp_path / "facades" / "latest_net_G.pth")
    out = tmp_path / "facades_run"
    made = runner.invoke(
        app, ["import", "reference", str(file), "--direction", "BtoA", "-o", str(out)]
    )
    assert made.exit_code == 0, made.output
    cfg = ckpt.read_meta(out)["plugin_config"]
    assert (cfg["generator"], cfg["unet_depth"], cfg["direction"]) == ("unet", 8, "b2a")
    assert cfg["dropout"] == 0.5  # the reference's pix2pix default
    image = _image(tmp_path / "label.png")
    for model in (out, file):
        target = tmp_path / f"{model.name}.png"
        ran = runner.invoke(app, ["run", str(image), "-c", str(model), "-o", str(target)])
        assert ran.exit_code == 0, ran.output
        assert Image.open(target).size == (32, 24)
    a, b = (np.asarray(Image.open(tmp_path / f"{m.name}.png")) for m in (out, file))
    assert np.array_equal(a, b)


class _NotATensor:
    pass


def test_bad_reference_files_are_one_line(tmp_path: Path) -> None:
    state = reference_state_dict("resnet_6blocks", "batch", ngf=2)
    file = _save(state, tmp_path / "latest_net_G_A.pth")
    out = str(tmp_path / "out")
    wrong = runner.invoke(app, ["import", "reference", str(file), "--netG", "unet_256", "-o", out])
    assert_user_error(wrong, "latest_net_G_A.pth", "resnet_6blocks, batch norm", "--netG unet_256")
    wrong = runner.invoke(app, ["import", "reference", str(file), "--norm", "instance", "-o", out])
    assert_user_error(wrong, "not --norm instance")
    wrong = runner.invoke(app, ["import", "reference", str(file), "--dropout", "-o", out])
    assert_user_error(wrong, "no dropout")

    unsafe = _save({"model.1.weight": _NotATensor()}, tmp_path / "evil_net_G.pth")
    refused = runner.invoke(app, ["import", "reference", str(unsafe), "-o", out])
    assert_user_error(refused, "evil_net_G.pth", "refused", "not loaded for safety")
    other = _save({"conv.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "other.pth")
    assert_user_error(
        runner.invoke(app, ["import", "reference", str(other), "-o", out]),
        "other.pth: not a pytorch-CycleGAN-and-pix2pix generator",
    )
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    busy = runner.invoke(app, ["import", "reference", str(file), "-o", str(taken)])
    assert_user_error(busy, "already exists")
    assert (taken / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "out").exists()
