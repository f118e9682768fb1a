"""The cut plugin (CUT and FastCUT, Park et al. 2020): config and the paper's defaults, the
step's objective against a hand computation, exact resume after Ctrl-C (random patch locations
and flips), train/run/serve/eval, and a learning test on red discs -> blue discs (slow)."""

from __future__ import annotations

import dataclasses
import io
import random
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from translate_cut import CUTConfig
from typer.testing import CliRunner

from tests.conftest import load_folder
from tests.test_objectives_by_hand import (
    assert_same_gradients,
    assert_term_matters,
    frozen_trainer,
    hand_gradients,
    step_gradients,
)
from tests.test_resume import LOOP, assert_same_final_state, interrupt_then_resume
from translate.cli.main import app
from translate.config import GANConfig, TrainConfig, config_from_dict
from translate.engine.loop import Trainer, prepare
from translate.errors import ConfigError
from translate.inference.translator import Translator
from translate.registry import load_plugin
from translate.testing import make_unpaired

runner = CliRunner()

# fmt: off
TINY = [
    "--crop-size", "32", "--load-size", "36", "--resnet-blocks", "2", "--base-channels", "8",
    "--disc-channels", "8", "--disc-layers", "2", "--nce-layers", "0,4,8,12,13",
    "--num-patches", "16", "--head-units", "16", "--no-progress", "--log-every", "1",
]
# fmt: on


@pytest.fixture
def unpaired(tmp_path: Path) -> Path:
    return make_unpaired(tmp_path / "discs", n=6)


# ---------------------------------------------------------------------------- config
def test_paper_defaults_and_modes() -> None:
    cut = CUTConfig(domain_a=Path("A"), domain_b=Path("B"))
    fast = CUTConfig(domain_a=Path("A"), domain_b=Path("B"), mode="fastcut")
    assert (cut.lambda_nce, cut.nce_identity, cut.flip_equivariance) == (1.0, True, False)
    assert (fast.lambda_nce, fast.nce_identity, fast.flip_equivariance) == (10.0, False, True)
    given = CUTConfig(domain_a=Path("A"), domain_b=Path("B"), mode="fastcut", lambda_nce=3.0)
    assert given.lambda_nce == 3.0 and given.flip_equivariance  # a given value wins
    assert cut.layers == [0, 4, 8, 12, 16]
    assert (cut.num_patches, cut.head_units, cut.nce_temperature, cut.lambda_gan) == (
        256,
        256,
        0.07,
        1.0,
    )
    assert (cut.resnet_blocks, cut.norm, cut.disc_layers, cut.antialias, cut.init) == (
        9,
        "instance",
        3,
        True,
        "xavier",
    )
    assert (cut.load_size, cut.crop_size, cut.flip) == (286, 256, True)
    plugin = load_plugin("cut")
    assert plugin.gan_defaults["gan_loss"] == "lsgan"
    # the official schedules: CUT 200 + 200 epochs, FastCUT 150 + 50, of horse2zebra's 1334
    assert plugin.config_train_defaults(cut) == {"max_steps": 533_600, "lr_decay_start": 0.5}
    assert plugin.config_train_defaults(fast) == {"max_steps": 266_800, "lr_decay_start": 0.75}
    for f in dataclasses.fields(CUTConfig):
        assert f.metadata.get("help"), f"{f.name} has no help text"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"nce_layers": "0,4,8,12,21"}, "nce_layers"),  # past the encoder (20 with 9 blocks)
        ({"nce_layers": "4,0"}, "nce_layers"),
        ({"nce_layers": "0,x"}, "nce_layers"),
        ({"nce_layers": ""}, "nce_layers"),
        ({"crop_size": 30, "load_size": 36}, "crop_size"),
        ({"nce_temperature": 0.0}, "nce_temperature"),
        ({"num_patches": 0}, "num_patches"),
        ({"head_units": 0}, "head_units"),
        ({"lambda_nce": -1.0}, "lambda_nce"),
        ({"lambda_gan": -1.0}, "lambda_gan"),
    ],
)
def test_config_rejects_bad_values(tmp_path: Path, values: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        config_from_dict(CUTConfig, {"domain_a": tmp_path, "domain_b": tmp_path, **values})


def test_cli_bad_option_is_one_line_error(unpaired: Path, tmp_path: Path) -> None:
    args = ["train", "cut", "--domain-a", str(unpaired / "A"), "--domain-b", str(unpaired / "B")]
    for extra, needle in (
        (["--nce-layers", "0,4,40"], "error: nce_layers"),
        (["--mode", "fast"], "mode"),
    ):
        result = runner.invoke(app, [*args, "--run-dir", str(tmp_path / "r"), *extra])
        assert result.exit_code == 2, result.output
        assert needle in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


def test_heads_are_built_with_the_models() -> None:
    """F's heads exist before any batch (built from a dry forward): the paper's networks have
    their parameter counts, and a fresh build has every tensor a checkpoint holds."""
    plugin = load_plugin("cut")
    models = plugin.build_models(CUTConfig(domain_a=Path("A"), domain_b=Path("B")))
    heads = models["F"]
    assert heads.channels == (3, 128, 256, 256, 256)  # padded input, 2 downsampling convs, 2 blocks
    counts = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    mlp = sum(c * 256 + 256 + 256 * 256 + 256 for c in heads.channels)
    assert counts == {"G": 11_378_179, "D": 2_764_737, "F": mlp}
    groups = plugin.param_groups(models)
    assert len(groups["G"]) == len(list(models["G"].parameters())) + len(list(heads.parameters()))


# ---------------------------------------------------------------------------- the objective
def cut_objective(models: dict[str, nn.Module], a: Tensor, b: Tensor, cfg: CUTConfig, seed: int):
    """Park et al. 2020, Eq. 5 with LSGAN, written out: G(x) fools D; for each layer l, the
    patches of G(x)'s features (queries) should match x's at the same location (keys, not
    trained through) against x's other patches (a cross-entropy over the S x S similarities of
    one image, the diagonal being the positives); CUT adds the same on (y, G(y)) and averages
    the two; FastCUT flips the inputs on the draw and the features back. The random draws
    (flip, then S locations per layer and term) come in the order the step makes them."""
    G, D, H = models["G"], models["D"], models["F"]
    torch.manual_seed(seed)
    flipped = cfg.flip_equivariance and bool(torch.rand(()) < 0.5)

    def flip(t: Tensor) -> Tensor:
        return t.flip(3) if flipped else t

    def patchnce(source: Tensor, output: Tensor) -> Tensor:
        losses = []
        queries = [flip(f) for f in G.encode(output, cfg.layers)]
        keys = G.encode(source, cfg.layers)
        ids = [torch.randperm(k.shape[2] * k.shape[3])[: cfg.num_patches] for k in keys]
        for mlp, q, k, i in zip(H.mlps, queries, keys, ids, strict=True):
            zq = mlp(q.flatten(2)[:, :, i].transpose(1, 2))  # (B, S, 256)
            zk = mlp(k.flatten(2)[:, :, i].transpose(1, 2)).detach()
            zq = zq / (zq.norm(dim=2, keepdim=True) + 1e-7)
            zk = zk / (zk.norm(dim=2, keepdim=True) + 1e-7)
            sim = zq @ zk.transpose(1, 2) / cfg.nce_temperature  # (B, S, S)
            s = sim.shape[1]
            losses.append(F.cross_entropy(sim.flatten(0, 1), torch.arange(s).repeat(len(sim))))
        return torch.stack(losses).mean()

    if cfg.nce_identity and cfg.norm == "batch":  # one call on [x; y]: joint batch statistics
        fake_b, same_b = G(flip(torch.cat([a, b]))).split(len(a))
    else:
        fake_b, same_b = G(flip(a)), G(flip(b))
    adv = (D(fake_b) - 1).square().mean()
    nce_x = patchnce(a, fake_b)
    nce_y = patchnce(b, same_b) if cfg.nce_identity else None
    nce = nce_x if nce_y is None else 0.5 * (nce_x + nce_y)
    return cfg.lambda_gan * adv + cfg.lambda_nce * nce, {"G_adv": adv, "NCE": nce_x, "y": nce_y}


def seed_with_flip(flipped: bool) -> int:
    return next(s for s in range(100) if (torch.manual_seed(s) and torch.rand(()) < 0.5) == flipped)


@pytest.mark.parametrize(
    ("mode", "flipped", "changes"),
    [
        ("cut", False, {}),
        ("cut", False, {"lambda_nce": 2.0, "lambda_gan": 0.5}),
        ("cut", False, {"norm": "batch"}),
        ("fastcut", True, {}),
        ("fastcut", False, {}),
    ],
)
def test_generator_and_head_gradients_match_the_paper(
    tmp_path: Path, mode: str, flipped: bool, changes: dict
) -> None:
    """Every term reaches G and the heads with its weight: the adversarial loss, PatchNCE on
    (x, G(x)) and, in CUT, on (y, G(y)); the keys are not trained through; FastCUT's flipped
    steps compare the flipped-back features. D's parameters get no gradient from G's loss."""
    data = make_unpaired(tmp_path / "discs", n=4)
    plugin = load_plugin("cut")
    cfg = dataclasses.replace(plugin.tiny_config(data), mode=mode, lambda_nce=None)
    # He-initialised: with the paper's xavier gain 0.02 D's answer barely moves with its input
    # (the adversarial gradient on G is ~1e-7 of the total) and a lost term would not show
    cfg = config_from_dict(CUTConfig, {**dataclasses.asdict(cfg), **changes, "init": "kaiming"})
    cfg = dataclasses.replace(cfg, nce_identity=None, flip_equivariance=None)
    trainer = frozen_trainer("cut", cfg, tmp_path / "run")
    batch = torch.utils.data.default_collate([trainer.dataset[(i, i)] for i in range(2)])
    a, b, m = batch["A"], batch["B"], trainer.models
    seed = seed_with_flip(flipped)
    torch.manual_seed(seed)
    actual, logs = step_gradients(trainer, batch, ("G", "F"))
    expected = hand_gradients(lambda: cut_objective(m, a, b, cfg, seed)[0], m, ("G", "F"))
    assert_same_gradients(actual, expected)
    _, terms = cut_objective(m, a, b, cfg, seed)
    assert logs["G_adv"] == pytest.approx(terms["G_adv"].item(), rel=1e-5)
    assert logs["NCE"] == pytest.approx(terms["NCE"].item(), rel=1e-5)
    assert ("NCE_Y" in logs) == cfg.nce_identity
    # each term is visible to the comparison (a term dropped from the step would fail it)
    total = expected
    assert_term_matters(lambda: cut_objective(m, a, b, cfg, seed)[1]["G_adv"], total, m, ["G"])
    assert_term_matters(lambda: cut_objective(m, a, b, cfg, seed)[1]["NCE"], total, m, ["G"])
    if cfg.nce_identity:
        assert_term_matters(lambda: cut_objective(m, a, b, cfg, seed)[1]["y"], total, m, ["G"])


def test_discriminator_judges_real_b_against_g_of_a(tmp_path: Path) -> None:
    """LSGAN, 0.5 E(D(y) - 1)^2 + 0.5 E D(G(x))^2 (the official (D_real + D_fake) * 0.5);
    G's loss leaves no gradient on D."""
    data = make_unpaired(tmp_path / "discs", n=4)
    trainer = frozen_trainer("cut", load_plugin("cut").tiny_config(data), tmp_path / "run")
    batch = torch.utils.data.default_collate([trainer.dataset[(i, i)] for i in range(2)])
    a, b, m = batch["A"], batch["B"], trainer.models
    actual, logs = step_gradients(trainer, batch, ("D",))
    with torch.no_grad():
        fake_b = m["G"](a)

    def loss() -> Tensor:
        return 0.5 * (m["D"](b) - 1).square().mean() + 0.5 * m["D"](fake_b).square().mean()

    assert_same_gradients(actual, hand_gradients(loss, m, ("D",)))
    assert logs["D"] == pytest.approx(loss().item(), rel=1e-5)


def test_critic_only_step_leaves_g_and_the_heads_alone(unpaired: Path, tmp_path: Path) -> None:
    trainer = prepare(
        "cut",
        **{"domain_a": unpaired / "A", "domain_b": unpaired / "B", "load_size": 32},
        **{"crop_size": 32, "resnet_blocks": 1, "base_channels": 4, "disc_channels": 4},
        **{"nce_layers": "0,4", "num_patches": 8, "head_units": 8, "n_critic": 2},
        **{"progress": False, "run_dir": tmp_path / "run", "device": "cpu", "max_steps": 2},
    )
    batch = torch.utils.data.default_collate([trainer.dataset[(i, i)] for i in range(2)])
    before = {k: [p.clone() for p in m.parameters()] for k, m in trainer.models.items()}
    trainer.ctx.update_generator = False
    logs = trainer.plugin.train_step(trainer.ctx, batch, trainer.plugin_cfg)
    assert set(logs) == {"D"}
    for name, params in before.items():
        after = trainer.models[name].parameters()
        same = all(torch.equal(a, b) for a, b in zip(params, after, strict=True))
        assert same == (name != "D"), name


# ---------------------------------------------------------------------------- resume
def test_ctrl_c_then_resume_is_bit_identical(tmp_path: Path) -> None:
    """FastCUT draws a flip and the patch locations every step (CUT the locations only); the
    heads are saved and restored with their Adam moments like G's weights."""
    mode = "fastcut"
    root = make_unpaired(tmp_path / "data", n=3)
    options = {
        **{"domain_a": root / "A", "domain_b": root / "B", "mode": mode, **LOOP},
        **{"load_size": 36, "crop_size": 32, "base_channels": 2, "disc_channels": 2},
        **{"resnet_blocks": 2, "nce_layers": "0,4,8,12", "num_patches": 16, "head_units": 8},
    }
    stop = random.randint(1, LOOP["max_steps"] - 1)
    prepare("cut", run_dir=tmp_path / "straight", **options).run()
    interrupt_then_resume(prepare("cut", run_dir=tmp_path / "split", **options), stop)
    assert_same_final_state(tmp_path / "straight", tmp_path / "split", LOOP["max_steps"], stop)


# ---------------------------------------------------------------------------- use
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_train_run_serve_and_eval(unpaired: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["train", "cut", "--domain-a", str(unpaired / "A"), "--domain-b", str(unpaired / "B")]
    result = runner.invoke(
        app, [*args, "--run-dir", str(run_dir), "--max-steps", "2", "--sample-every", "2", *TINY]
    )
    assert result.exit_code == 0, result.output
    grid = Image.open(run_dir / "samples" / "step_0000002.png")
    assert grid.width > 4 * 32 > grid.width - 4 * 8  # real A | fake B | real B | G(real B)

    source = unpaired / "A" / "000.png"
    out = tmp_path / "out.png"
    ran = runner.invoke(app, ["run", str(source), "--checkpoint", str(run_dir), "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    translator = Translator.from_checkpoint(run_dir, device="cpu")
    expected = np.asarray(translator(Image.open(source).convert("RGB"))[0], np.int16)
    assert np.abs(np.asarray(Image.open(out), np.int16) - expected).max() <= 1

    # one service request answers the Translator's image
    pytest.importorskip("fastapi")
    from starlette.testclient import TestClient

    from translate.serve.app import create_app
    from translate.serve.server import load_models

    body = io.BytesIO()
    Image.open(source).save(body, "PNG")
    with TestClient(create_app(load_models(checkpoints=[f"cut={run_dir}"]))) as client:
        res = client.post("/v1/models/cut/translate", content=body.getvalue())
    assert res.status_code == 200, res.text
    got = np.asarray(Image.open(io.BytesIO(res.content)).convert("RGB"), np.int16)
    assert np.abs(got - expected).max() <= 1

    # the eval protocol: A2B translations against real B (FID/KID), identity L1 per B image
    from translate.evaluation import EvalModels

    plugin = load_plugin("cut")
    evalset = plugin.evaluate(EvalModels(run_dir, device="cpu"), unpaired, translator.plugin_cfg)
    (name,) = evalset.distributions
    fakes, reals = evalset.distributions[name]
    assert name == "A2B" and len(fakes) == len(reals) == 6
    assert np.abs(np.asarray(fakes[0], np.int16) - expected).max() <= 1
    rows = [it for it in evalset.items if it.name.startswith("B/")]
    assert len(rows) == 6 and all(0 <= it.metrics["identity L1"] <= 255 for it in rows)


# ---------------------------------------------------------------------------- learning
# Thresholds, measured on the 2-core CPU (one thread, CUT, batch 4, tiny_config with 16 base
# channels, 400 steps, about 25 s alone). Seeds 0-5 on an AMD EPYC: 100% of the held-out discs
# blue on every seed, the output's bright region overlapping the input disc with a mean IoU of
# 0.61-0.77 (the ring the generator draws inside small discs costs the rest). After 100 steps the
# colour is right but the IoU is 0.43 (seeds 0, 1). The same settings with tiny_config's 8 base
# channels passed on the machine they were first measured on and collapsed here on seed 0 (0%
# blue, IoU 0.00; float rounding differs between CPUs and GAN training amplifies it), which is
# why the bar is set from several seeds, not one. FastCUT (lambda_NCE 10, flips) does not learn
# this toy task in 400 steps (0% blue, IoU 0.38): its strong PatchNCE term keeps it near its
# input at this size and step budget; not tested.
LEARN_STEPS = 400
MIN_JUDGED = 0.9
COLOUR_MARGIN = 0.25  # mean blue minus mean red inside the source disc, in [0, 1]
MIN_IOU = 0.5  # the disc's mask in the output (where it is bright) against the input's


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_learns_red_discs_to_blue_discs_keeping_their_shape(tmp_path: Path) -> None:
    mode = "cut"
    data = make_unpaired(tmp_path / "train", n=32, size=32, seed=0)
    held_out = make_unpaired(tmp_path / "held_out", n=50, size=32, seed=1)
    plugin = load_plugin("cut")
    cfg = dataclasses.replace(plugin.tiny_config(data), load_size=32, mode=mode, base_channels=16)
    cfg = config_from_dict(CUTConfig, {**dataclasses.asdict(cfg), "lambda_nce": None})
    cfg = dataclasses.replace(cfg, nce_identity=None, flip_equivariance=None)
    train_cfg = config_from_dict(
        TrainConfig,
        {
            **{"max_steps": LEARN_STEPS, "batch_size": 4, "lr_decay_start": 0.5, "seed": 0},
            **{"log_every": 50, "sample_every": 10**6, "checkpoint_every": 10**6},
            **{"progress": False, "device": "cpu", "run_dir": tmp_path / "run"},
        },
    )
    gan_cfg = config_from_dict(GANConfig, dict(plugin.gan_defaults))
    start = time.perf_counter()
    folder = Trainer(plugin, cfg, train_cfg, gan_cfg, run_dir=tmp_path / "run").run()
    seconds = time.perf_counter() - start
    x = load_folder(held_out / "A")  # (N, 3, 32, 32) in [-1, 1], red discs on black
    y = Translator.from_checkpoint(folder, device="cpu").translate_tensor(x)
    disc = x[:, 0] > 0
    colour = (y + 1) / 2
    margin = ((colour[:, 2] - colour[:, 0]) * disc).sum((1, 2)) / disc.sum((1, 2))
    judged = (margin > COLOUR_MARGIN).float().mean().item()
    shape = colour.max(1).values > 0.5  # where the output is bright: its disc
    iou = ((shape & disc).sum((1, 2)) / (shape | disc).sum((1, 2))).mean().item()
    report = f"{mode}: judged {judged:.0%}, mask IoU {iou:.2f}, trained in {seconds:.0f} s"
    assert judged >= MIN_JUDGED, report
    assert iou >= MIN_IOU, report
