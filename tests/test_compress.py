"""Structured pruning of the generators and self-supervised compression (Yu & Pool 2020)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from translate.compress import compress, prepare_compress
from translate.data.paired import PairedDataset
from translate.engine.loop import prepare
from translate.errors import ConfigError
from translate.export.onnx import export_onnx
from translate.loading.checkpoint import load_checkpoint
from translate.nn.prune import PruneError, prune_into
from translate.nn.resnet import ResnetGenerator
from translate.nn.unet import UnetGenerator
from translate.testing import make_paired

TINY = {"load_size": 32, "crop_size": 32, "unet_depth": 5, "disc_channels": 8, "disc_layers": 2}
QUIET = {"progress": False, "sample_every": 10**6, "log_every": 10**6}


def _randomise_norms(model: nn.Module) -> nn.Module:
    """Distinct batch-norm scales and statistics, so channel choice and copying matter."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.weight.shape, generator=g) + 0.1
            m.running_mean = torch.randn(m.running_mean.shape, generator=g) * 0.1
            m.running_var = torch.rand(m.running_var.shape, generator=g) + 0.5
    return model.eval()


def _unet(base: int, norm: str) -> UnetGenerator:
    return UnetGenerator(in_channels=3, out_channels=2, depth=4, base_channels=base, norm=norm)


def _resnet(base: int, norm: str) -> ResnetGenerator:
    return ResnetGenerator(in_channels=3, out_channels=2, base_channels=base, n_blocks=2, norm=norm)


@pytest.mark.parametrize("build", [_unet, _resnet])
@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_keep_1_is_the_identity_and_pruned_shapes_run(build, norm: str) -> None:
    torch.manual_seed(0)
    dense = _randomise_norms(build(8, norm))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        same = prune_into(dense, build(8, norm).eval())(x)
        assert torch.equal(same, dense(x))
        small = prune_into(dense, build(4, norm)).eval()
        y = small(x)
    assert y.shape == (2, 2, 32, 32)
    n_dense = sum(p.numel() for p in dense.parameters())
    n_small = sum(p.numel() for p in small.parameters())
    assert n_small < 0.3 * n_dense  # every layer at half width: about a quarter


def test_unet_keeps_the_most_important_channels_across_skips() -> None:
    """Channels whose batch-norm scale is zero carry nothing: pruning exactly those keeps the
    output (eval mode), through the skip concatenations."""
    torch.manual_seed(0)
    dense = _randomise_norms(_unet(8, "batch"))
    for m in dense.modules():
        if isinstance(m, nn.BatchNorm2d):
            half = m.num_features // 2
            m.weight.data[1::2] = 0.0  # odd channels dead, even channels kept
            m.bias.data[1::2] = 0.0
            assert half * 2 == m.num_features
    # the outermost and innermost encoder levels have no norm: zero their odd filters
    dense.encoder[0][0].weight.data[1::2] = 0.0
    dense.encoder[-1][1].weight.data[1::2] = 0.0
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        small = prune_into(dense, _unet(4, "batch")).eval()
        torch.testing.assert_close(small(x), dense(x), atol=1e-5, rtol=1e-5)


def test_unet_decoder_reads_the_skip_half_then_the_up_half() -> None:
    """A decoder level reads ``cat([skip, h])``: its pruned input channels are the encoder
    level's survivors in the first half, then the level below's in the second. Here the encoder
    keeps its even channels and the decoder its odd ones, so the two halves keep different
    sets: swapping them (or their order) copies the wrong weights and changes the output."""
    torch.manual_seed(0)
    dense = _randomise_norms(_unet(8, "batch"))
    encoder_norms = {id(m) for level in dense.encoder for m in level.modules()}
    for m in dense.modules():
        if isinstance(m, nn.BatchNorm2d):
            dead = slice(1, None, 2) if id(m) in encoder_norms else slice(0, None, 2)
            m.weight.data[dead] = 0.0
            m.bias.data[dead] = 0.0
    dense.encoder[0][0].weight.data[1::2] = 0.0  # no norm after these two: odd filters zero
    dense.encoder[-1][1].weight.data[1::2] = 0.0
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        small = prune_into(dense, _unet(4, "batch")).eval()
        torch.testing.assert_close(small(x), dense(x), atol=1e-5, rtol=1e-5)
    # the second decoder level (level d - 2) reads cat([encoder level d - 2, decoder level d - 1])
    conv = dense.decoder[1][1]  # ConvTranspose2d: weight (in, out, k, k)
    half = conv.in_channels // 2
    expected_in = torch.cat([torch.arange(0, half, 2), half + torch.arange(1, half, 2)])
    expected = conv.weight[expected_in][:, 1::2]
    torch.testing.assert_close(small.decoder[1][1].weight, expected)


def test_resnet_residual_stream_is_ranked_by_its_producer_and_every_block() -> None:
    """The residual stream keeps one channel set, ranked by the summed importance of the layer
    that starts it and of every block that adds to it. Here the last downsampling layer scores
    the stream's first half (slightly) higher, but no block writes to that half and nothing reads
    it, while every block writes the second half: the right ranking keeps the second half and the
    pruned network's output is exact; one that ignores the blocks keeps the first half."""
    torch.manual_seed(0)
    dense = _randomise_norms(_resnet(8, "batch"))
    producer = dense.down[-2]  # the batch norm of the last downsampling layer
    block_out = [block.body[-1] for block in dense.blocks]  # the norm ending each block
    for m in dense.modules():
        if isinstance(m, nn.BatchNorm2d) and m is not producer and m not in block_out:
            m.weight.data[1::2] = 0.0  # odd channels dead everywhere off the stream
            m.bias.data[1::2] = 0.0
    half = producer.num_features // 2
    producer.weight.data[:half] = 1.1
    producer.weight.data[half:] = 1.0
    for block, norm in zip(dense.blocks, block_out, strict=True):
        norm.weight.data[:half] = 0.0  # the blocks add nothing to the first half ...
        norm.bias.data[:half] = 0.0
        block.body[1].weight.data[:, :half] = 0.0  # ... and do not read it
    dense.up[0].weight.data[:half] = 0.0  # (in, out, k, k): nor does the decoder
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        small = prune_into(dense, _resnet(4, "batch")).eval()
        torch.testing.assert_close(small(x), dense(x), atol=1e-5, rtol=1e-5)
    # the surviving stream channels are the second half, in order
    torch.testing.assert_close(small.down[-2].weight, producer.weight[half:])


@pytest.mark.parametrize("build", [_unet, _resnet])
def test_spectrally_normalised_generators_prune_with_sigma_resynced(build) -> None:
    """Spectral norm (label2image's default in G) keeps power-iteration vectors: keeping every
    channel copies them (the identity), pruning re-estimates sigma of each smaller matrix, so
    every pruned layer's normalised weight has spectral norm 1 again."""
    from translate.nn.surgery import apply_spectral_norm, has_spectral_norm

    def normalised(base: int) -> nn.Module:
        model = build(base, "batch")
        apply_spectral_norm(model)
        return model

    torch.manual_seed(0)
    dense = normalised(8).train()
    for _ in range(3):  # power iterations and weights move apart, as in training
        dense(torch.randn(2, 3, 16, 16))
        with torch.no_grad():
            for p in dense.parameters():
                p.add_(0.01 * torch.randn_like(p))
    dense = _randomise_norms(dense)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        same = prune_into(dense, normalised(8)).eval()
        assert torch.equal(same(x), dense(x))
        small = prune_into(dense, normalised(4)).eval()
        assert small(x).shape == (2, 2, 16, 16)
        layers = [m for m in small.modules() if has_spectral_norm(m)]
        assert len(layers) > 5
        for m in layers:
            w = m.weight.transpose(0, 1) if isinstance(m, nn.ConvTranspose2d) else m.weight
            sigma = torch.linalg.matrix_norm(w.flatten(1), ord=2).item()
            assert abs(sigma - 1) < 1e-2, (m, sigma)


def test_refuses_networks_it_does_not_understand() -> None:
    with pytest.raises(PruneError, match="pruner understands"):
        prune_into(nn.Sequential(nn.Conv2d(3, 3, 1)), nn.Sequential(nn.Conv2d(3, 3, 1)))
    with pytest.raises(PruneError, match="different depth"):
        prune_into(_resnet(8, "batch"), ResnetGenerator(in_channels=3, out_channels=2, n_blocks=1))


def _l1_to_parent(small: nn.Module, parent: nn.Module, folder: Path) -> float:
    ds = PairedDataset(folder, load_size=32, crop_size=32, train=False)
    xs = torch.stack([ds[i]["input"] for i in range(len(ds))])
    with torch.no_grad():
        return (small.eval()(xs) - parent.eval()(xs)).abs().mean().item()


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny trained pix2pix (U-Net, batch norm) and its data."""
    tmp = tmp_path_factory.mktemp("dense")
    root = make_paired(tmp / "d", n_train=8, n_val=4, size=32)
    parent = prepare(
        "pix2pix",
        data=root,
        base_channels=8,
        max_steps=30,
        batch_size=4,
        dropout=0.0,
        lr=2e-3,
        run_dir=tmp / "dense",
        amp="none",
        **TINY,
        **QUIET,
    ).run()
    return parent, root


def test_compressed_pix2pix_approaches_its_parent_and_exports(
    dense: tuple[Path, Path], tmp_path: Path
) -> None:
    parent, root = dense
    dense_g = load_checkpoint(parent).models["G"]

    # where compression starts: the one-shot pruned parent
    pruned = prune_into(
        dense_g, UnetGenerator(in_channels=3, out_channels=3, depth=5, base_channels=2, dropout=0.0)
    )
    start = _l1_to_parent(pruned, dense_g, root / "val")
    out = compress(
        parent,
        keep=0.25,
        steps=30,
        run_dir=tmp_path / "c",
        amp="none",
        batch_size=4,
        lr=1e-3,
        lr_decay_start=1.0,
        lambda_l1=0.0,
        **QUIET,  # the dense G's outputs as the only target
    )
    loaded = load_checkpoint(out)  # an ordinary, self-describing checkpoint
    after = _l1_to_parent(loaded.models["G"], dense_g, root / "val")
    assert after < 0.85 * start, (start, after)  # about 0.41 -> 0.29

    meta = json.loads((out / "meta.json").read_text())
    assert meta["plugin_config"]["base_channels"] == 2
    record = meta["compressed_from"]
    assert record["parent"] == str(parent.resolve()) and record["keep"] == 0.25
    assert record["method"] == "distill" and "Yu & Pool" in record["description"]
    assert loaded.models["G"].encoder[0][0].out_channels == 2

    result = export_onnx(out, tmp_path / "small.onnx")
    assert result.checked_with is not None  # parity against PyTorch held

    with pytest.raises(ConfigError, match="already a compressed model"):
        compress(out, keep=0.5, steps=1, run_dir=tmp_path / "again")
    with pytest.raises(ConfigError, match="keep"):
        compress(parent, keep=1.5, steps=1, run_dir=tmp_path / "bad")


def test_compression_trains_for_the_parents_steps_unless_told(
    dense: tuple[Path, Path], tmp_path: Path
) -> None:
    """Without ``steps`` a compression run gets its parent's budget (30 steps here), not the
    plugin's default ``max_steps`` (pix2pix: 80,000); ``steps`` overrides it."""
    parent, _ = dense
    default = prepare_compress(parent, keep=0.5, run_dir=tmp_path / "default", **QUIET)
    assert default.train_cfg.max_steps == 30
    told = prepare_compress(parent, keep=0.5, steps=7, run_dir=tmp_path / "told", **QUIET)
    assert told.train_cfg.max_steps == 7


def test_cli_compress_report_and_refusals(dense: tuple[Path, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from translate.cli.main import app

    parent, root = dense
    runner = CliRunner()
    out = tmp_path / "small"
    args = ["compress", str(parent), "--keep", "0.5", "--steps", "2", "--run-dir", str(out)]
    result = runner.invoke(app, [*args, "--lambda-distill", "10"])
    assert result.exit_code == 0, result.output
    folder = Path(result.stdout.strip().splitlines()[-1])
    assert folder.is_dir() and folder.parent.parent == out

    report = ["compress", str(folder), "--report", "--size", "32", "--eval-data", str(root)]
    result = runner.invoke(app, report)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[1].startswith("dense") and lines[2].startswith("keep 0.5")
    dense_params = int(lines[1].split()[1].replace(",", ""))
    small_params = int(lines[2].split()[2].replace(",", ""))
    assert small_params < 0.3 * dense_params
    assert "ONNX x" in lines[3]
    assert lines[4].startswith("dense eval: L1 ") and lines[5].startswith("keep 0.5 eval: L1 ")

    # the baseline: the same pruning and start, the usual objective alone
    base = tmp_path / "baseline"
    args = ["compress", str(parent), "--keep", "0.5", "--steps", "2", "--run-dir", str(base)]
    result = runner.invoke(app, [*args, "--method", "finetune", "--seed", "3"])
    assert result.exit_code == 0, result.output
    folder = Path(result.stdout.strip().splitlines()[-1])
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["train_config"]["seed"] == 3
    record = meta["compressed_from"]
    assert record["method"] == "finetune" and record["keep"] == 0.5
    logged = [json.loads(line) for line in (base / "metrics.jsonl").open()]
    assert logged and not any("G_distill" in row for row in logged)
    result = runner.invoke(app, [*args, "--method", "finetune", "--lambda-distill", "5"])
    assert result.exit_code == 2 and result.output.startswith("error: lambda_distill: method")

    result = runner.invoke(app, ["compress", str(parent), "--keep", "1.5"])
    assert result.exit_code == 2 and result.output.startswith("error: keep: must be in (0, 1]")
    result = runner.invoke(app, ["compress", str(parent), "--report"])
    assert result.exit_code == 2 and "not a compressed model" in result.output

    # a plugin whose generator the pruner does not understand: one line, exit 2
    other = tmp_path / "other"
    shutil.copytree(parent, other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "plugin": "superres"}))
    result = runner.invoke(app, ["compress", str(other), "--keep", "0.5"])
    assert result.exit_code == 2, result.output
    assert "plugin 'superres' does not support compression" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_compressed_cyclegan_prunes_both_generators_and_learns_their_outputs(
    tmp_path: Path,
) -> None:
    from translate.testing import make_unpaired

    root = make_unpaired(tmp_path / "d", n=4, size=32)
    tiny = {"load_size": 32, "crop_size": 32, "resnet_blocks": 1, "disc_channels": 8}
    tiny |= {"disc_layers": 2, "amp": "none", "batch_size": 2, "log_every": 1}
    parent = prepare(
        "cyclegan",
        domain_a=root / "A",
        domain_b=root / "B",
        base_channels=8,
        max_steps=2,
        run_dir=tmp_path / "dense",
        **{**QUIET, **tiny},
    ).run()
    out = compress(parent, keep=0.5, steps=2, run_dir=tmp_path / "small")
    loaded = load_checkpoint(out)
    for name in ("G_A", "G_B"):
        assert loaded.models[name].stem[1].out_channels == 4
    assert (
        loaded.models["D_A"].state_dict().keys()
        == load_checkpoint(parent).models["D_A"].state_dict().keys()
    )
    meta = json.loads((out / "meta.json").read_text())
    assert meta["compressed_from"]["keep"] == 0.5
    logged = [json.loads(line) for line in (out.parent.parent / "metrics.jsonl").open()]
    assert all(row["distill_A"] > 0 and row["distill_B"] > 0 for row in logged)


def test_cyclegan_students_distil_from_their_own_teachers(tmp_path: Path) -> None:
    """Each pruned generator learns its own dense parent's outputs: the logged distillation
    terms of one step equal, by hand, L1(student G_A(a), parent G_A(a)) and L1(student G_B(b),
    parent G_B(b)), not a pairing of G_B with G_A's teacher (Yu & Pool 2020, per generator)."""
    import dataclasses

    from tests.test_objectives_by_hand import frozen_trainer
    from translate.registry import load_plugin
    from translate.testing import make_unpaired

    root = make_unpaired(tmp_path / "d", n=2, size=32)
    plugin = load_plugin("cyclegan")
    tiny = dataclasses.replace(plugin.tiny_config(root), base_channels=8)
    parent = frozen_trainer("cyclegan", tiny, tmp_path / "dense").save()
    small = dataclasses.replace(tiny, base_channels=4, distill_from=parent, lambda_distill=10.0)
    trainer = frozen_trainer("cyclegan", small, tmp_path / "small")
    batch = torch.utils.data.default_collate([trainer.dataset[(i, i)] for i in range(2)])
    trainer.ctx.begin_step(0, max_steps=1)
    logs = trainer.plugin.train_step(trainer.ctx, batch, trainer.plugin_cfg)
    teachers = load_checkpoint(parent).models
    with torch.no_grad():
        for name, x in (("G_A", batch["A"]), ("G_B", batch["B"])):
            student, teacher = trainer.models[name], teachers[name].eval()
            expected = (student(x) - teacher(x)).abs().mean().item()
            other = teachers["G_B" if name == "G_A" else "G_A"].eval()
            wrong = (student(x) - other(x)).abs().mean().item()
            assert logs[f"distill_{name[-1]}"] == pytest.approx(expected, rel=1e-5), name
            assert abs(wrong - expected) > 1e-3 * expected  # the pairing is visible


def test_interrupted_compression_resumes_bit_identical(
    dense: tuple[Path, Path], tmp_path: Path
) -> None:
    """Ctrl-C during a compression run, then ``--resume``: it ends bit-identical to a run never
    stopped (the resumed run must not prune its parent again), with its compression record."""
    from tests.test_resume import assert_same_final_state, interrupt_then_resume

    parent, _ = dense
    options = dict(keep=0.5, steps=4, amp="none", batch_size=2, dropout=0.5, **QUIET)
    options |= {"log_every": 1}
    compress(parent, run_dir=tmp_path / "straight", **options)
    interrupt_then_resume(prepare_compress(parent, run_dir=tmp_path / "split", **options), stop=2)
    assert_same_final_state(tmp_path / "straight", tmp_path / "split", steps=4, stop=2)
    metas = [
        json.loads((tmp_path / run / "checkpoints" / "step_0000004" / "meta.json").read_text())
        for run in ("straight", "split")
    ]
    assert metas[0]["compressed_from"] == metas[1]["compressed_from"]
    assert metas[1]["compressed_from"]["parent"] == str(parent.resolve())


def test_compressed_label2image_global_generator_and_spade_refused(tmp_path: Path) -> None:
    """label2image's global (ResNet) generator is pruned and learns its parent's outputs; a
    SPADE generator is refused in one line."""
    from typer.testing import CliRunner

    from translate.cli.main import app
    from translate.testing import make_labels

    root = make_labels(tmp_path / "d", n_train=4, n_val=1, size=32)
    tiny = {"load_size": 32, "crop_size": 32, "n_up": 2, "resnet_blocks": 1, "disc_channels": 8}
    tiny |= {"disc_layers": 2, "disc_scales": 1, "amp": "none", "batch_size": 2, **QUIET}
    parents = {
        generator: prepare(
            "label2image",
            data=root,
            generator=generator,
            base_channels=8,
            max_steps=1,
            run_dir=tmp_path / generator,
            **tiny,
        ).run()
        for generator in ("global", "spade")
    }
    out = compress(parents["global"], keep=0.5, steps=2, run_dir=tmp_path / "small", log_every=1)
    logged = [json.loads(line) for line in (tmp_path / "small" / "metrics.jsonl").open()]
    assert len(logged) == 2 and all(row["G_distill"] > 0 for row in logged)
    loaded = load_checkpoint(out)
    assert loaded.models["G"].stem[1].out_channels == 4
    dense_d = load_checkpoint(parents["global"]).models["D"].state_dict()
    assert loaded.models["D"].state_dict().keys() == dense_d.keys()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["compressed_from"]["keep"] == 0.5
    assert meta["compressed_from"]["method"] == "distill"
    assert (
        meta["plugin_config"]["palette"]
        == json.loads((parents["global"] / "meta.json").read_text())["plugin_config"]["palette"]
    )  # the parent's classes, not estimated again

    result = CliRunner().invoke(app, ["compress", str(parents["spade"]), "--keep", "0.5"])
    assert result.exit_code == 2, result.output
    assert "cannot prune G (SPADEGenerator)" in result.output
    assert len(result.output.strip().splitlines()) == 1
