"""Every GAN option reachable from ``translate train pix2pix --help`` trains, and is really wired.

Each case drives the real CLI for two steps of tiny pix2pix with one option set to a
representative non-default value, then checks finite losses, that the checkpoint rebuilds
(``apply_gan_transforms`` + strict load, as ``run`` / export must do) and a case-specific sign
that the option took effect (the penalty is logged, D is clamped, G skipped a step, ...).
Nonsensical combinations are refused with one line.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from tests.conftest import TINY_PIX2PIX, TINY_PIX2PIX_OPTIONS
from translate.cli.main import app, build_train_command
from translate.config import GAN_LOSSES, GANConfig, config_from_dict
from translate.engine import checkpoint as ckpt
from translate.engine.transforms import apply_gan_transforms
from translate.errors import ConfigError
from translate.registry import load_plugin
from translate.testing import make_labels, make_paired

runner = CliRunner()

Run = dict[str, Any]  # what a case's check gets: records, weights, meta, trainer state


def _records(run: Run) -> list[dict[str, float]]:
    return run["records"]


def _has(key: str) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        assert all(key in r for r in _records(run)), (key, _records(run))

    return check


def _d_clamped(c: float) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        d = [
            v
            for k, v in run["weights"].items()
            if k.startswith("D.") and not any(b in k for b in ("running_", "num_batches"))
        ]
        assert max(v.abs().max().item() for v in d) <= c + 1e-7

    return check


def _generator_skipped_first_step(run: Run) -> None:
    first, second = _records(run)
    assert "G_adv" not in first and "G_adv" in second, _records(run)


def _no_generator_step(run: Run) -> None:
    assert all("G_adv" not in r for r in _records(run)), _records(run)


def _wgan_defaults(run: Run) -> None:
    _no_generator_step(run)  # n_critic 5: two steps train the critic only
    _d_clamped(0.01)(run)
    assert run["meta"]["train_config"]["lr"] == pytest.approx(5e-5)
    assert "square_avg" in next(iter(run["state"]["optimizers"]["D"]["state"].values()))


def _wgan_explicit_wins(run: Run) -> None:
    assert run["meta"]["train_config"]["lr"] == pytest.approx(1e-4)
    assert all("G_adv" in r for r in _records(run))  # --n-critic 1
    assert "exp_avg" in next(iter(run["state"]["optimizers"]["D"]["state"].values()))  # adam
    _d_clamped(0.02)(run)


def _lazy(run: Run) -> None:
    first, second = _records(run)
    assert "r1" in first and "r1" not in second, _records(run)


def _rmsprop(run: Run) -> None:
    for group in ("D", "G"):
        assert "square_avg" in next(iter(run["state"]["optimizers"][group]["state"].values()))


def _keys(*needles: str) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        for needle in needles:
            model, _, part = needle.partition(":")
            assert any(k.startswith(model + ".") and part in k for k in run["weights"]), needle

    return check


def _no_g_sn(run: Run) -> None:
    _keys("D:parametrizations.weight.original")(run)
    assert not any(k.startswith("G.") and "parametrizations" in k for k in run["weights"])


def _ema(run: Run) -> None:
    ema = {k for k in run["weights"] if k.startswith("ema.G.")}
    assert ema and {k[4:] for k in ema} == {k for k in run["weights"] if k.startswith("G.")}
    assert not any(k.startswith("ema.D.") for k in run["weights"])
    # after two G steps at decay 0.5 the average lags the live G (its exact value, and that it
    # left its start, are checked in test_engine_loop.py)
    differs = [
        not torch.equal(run["weights"][k], run["weights"][k[4:]])
        for k in ema
        if run["weights"][k].is_floating_point()
    ]
    assert any(differs)


def _ada(run: Run) -> None:
    """ADA's p is logged every step, adjusted every --ada-interval steps (r_t logged) and saved
    in the trainer state."""
    records = _records(run)
    assert all("ada_p" in r and "ada_rt" in r for r in records), records
    # with --ada-kimg 0.001 one adjustment over 2 images moves p by 2: to 0 or 1, clamped
    assert records[-1]["ada_p"] in (0.0, 1.0) and run["state"]["ada"]["p"] in (0.0, 1.0)


def _ttur(run: Run) -> None:
    groups = run["state"]["optimizers"]
    assert groups["D"]["param_groups"][0]["lr"] > groups["G"]["param_groups"][0]["lr"]


def _nothing(run: Run) -> None:
    return None


# (id, options, check). Every GANConfig field must appear in some case (checked below).
CASES: list[tuple[str, list[str], Callable[[Run], None]]] = [
    *[
        (f"loss-{name}", ["--gan-loss", name], _has("D_adv"))
        for name in ("minimax", "nonsaturating", "lsgan", "hinge", "rpgan", "ragan")
    ],
    ("loss-wgan-defaults", ["--gan-loss", "wgan"], _wgan_defaults),
    (
        "loss-wgan-explicit",
        [
            *("--gan-loss", "wgan", "--lr", "1e-4", "--n-critic", "1"),
            *("--optimizer", "adam", "--clip-value", "0.02"),
        ],
        _wgan_explicit_wins,
    ),
    ("loss-wgan-gp", ["--gan-loss", "wgan-gp", "--norm", "instance"], _has("gp")),
    ("gp-weight", ["--gp-weight", "1", "--norm", "instance"], _has("gp")),
    ("r1", ["--r1-gamma", "1", "--norm", "instance"], _has("r1")),
    ("r2", ["--r2-gamma", "1", "--norm", "none"], _has("r2")),
    ("lazy-r1", ["--r1-gamma", "1", "--penalty-interval", "2", "--norm", "instance"], _lazy),
    ("label-smoothing", ["--label-smoothing", "0.1"], _has("D_adv")),
    ("n-critic", ["--n-critic", "2"], _generator_skipped_first_step),
    ("optimizer", ["--optimizer", "rmsprop"], _rmsprop),
    ("spectral-norm-d", ["--spectral-norm", "d"], _no_g_sn),
    (
        "spectral-norm-both",
        ["--spectral-norm", "both"],
        _keys("D:parametrizations.weight.original", "G:parametrizations.weight.original"),
    ),
    ("gradient-norm", ["--gradient-norm", "--norm", "instance"], _has("D_adv")),
    ("self-attention-d", ["--self-attention", "d"], _keys("D:gamma")),
    ("self-attention-g", ["--self-attention", "g"], _keys("G:gamma")),
    ("self-attention-both", ["--self-attention", "both"], _keys("D:gamma", "G:gamma")),
    ("minibatch-std", ["--minibatch-std", "2"], _has("D_adv")),
    ("feature-matching", ["--feature-matching", "10"], _has("G_fm")),
    (
        "feature-matching-multiscale",
        ["--feature-matching", "10", "--discriminator", "multiscale", "--disc-layers", "1"],
        _has("G_fm"),
    ),
    ("instance-noise", ["--instance-noise", "0.1"], _has("D_adv")),
    (
        "instance-noise-steps",
        ["--instance-noise", "0.1", "--instance-noise-steps", "1"],
        _has("D_adv"),
    ),
    ("diff-augment", ["--diff-augment", "color,translation,cutout"], _has("D_adv")),
    ("ema", ["--ema-decay", "0.5"], _ema),
    ("ema-half-life", ["--ema-kimg", "0.001", "--ema-rampup", "0.5"], _ema),
    (
        "ada-adaptive",
        [
            *("--ada-target", "0.6", "--ada-interval", "1", "--ada-kimg", "0.001"),
            *("--ada-pipeline", "bgc"),
        ],
        _ada,
    ),
    ("ada-fixed", ["--ada-p", "0.5", "--ada-pipeline", "blit"], _has("ada_p")),
    ("ortho-reg", ["--ortho-reg", "1e-4"], _has("G_ortho")),
    ("epsilon-drift", ["--epsilon-drift", "0.001"], _has("drift")),
    ("clip-grad-norm", ["--clip-grad-norm", "5"], _has("D_adv")),
    ("ttur", ["--lr-d", "4e-4"], _ttur),
    # the plugin's own discriminator / generator choices with the core options they meet
    ("pixel-d-r1", ["--discriminator", "pixel", "--norm", "none", "--r1-gamma", "1"], _has("r1")),
    (
        "resnet-g-sn-both-attention",
        [
            *("--generator", "resnet", "--resnet-blocks", "1", "--norm", "instance"),
            *("--spectral-norm", "both", "--self-attention", "both", "--ema-decay", "0.9"),
        ],
        _keys("G:gamma", "ema.G:gamma"),
    ),
    (
        "r3gan-set",
        [
            *("--gan-loss", "rpgan", "--r1-gamma", "1", "--r2-gamma", "1", "--norm", "none"),
            *("--diff-augment", "translation", "--minibatch-std", "2"),
        ],
        _has("r2"),
    ),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_paired(tmp_path_factory.mktemp("gan-options") / "facades", n_train=4, n_val=2)


def _train(data: Path, run_dir: Path, *extra: str) -> Any:
    return runner.invoke(
        app,
        [
            *("train", "pix2pix", "--data", str(data), "--run-dir", str(run_dir)),
            *TINY_PIX2PIX,
            *("--max-steps", "2", "--batch-size", "2", "--sample-every", "2"),
            *("--checkpoint-every", "2", "--device", "cpu"),
            *extra,
        ],
    )


def _rebuild(folder: Path, weights: dict[str, torch.Tensor]) -> None:
    """What ``run`` / export must do: build, apply the GAN transforms, load strictly."""
    meta = ckpt.read_meta(folder)
    plugin = load_plugin(meta["plugin"])
    cfg = config_from_dict(plugin.config_cls, meta["plugin_config"])
    gan = config_from_dict(GANConfig, meta["gan_config"])
    models = apply_gan_transforms(plugin.build_models(cfg), gan)
    ckpt.load_models(weights, models, source=folder)
    ema = {k: v for k, v in models.items() if k.startswith("G")}
    if any(k.startswith("ema.") for k in weights):
        ckpt.load_models(weights, ema, source=folder, prefix="ema.")


def test_every_gan_option_is_a_cli_option() -> None:
    command = build_train_command("pix2pix")
    flags = {opt for param in command.params for opt in param.opts}
    for f in dataclasses.fields(GANConfig):
        assert "--" + f.name.replace("_", "-") in flags, f.name


def test_every_gan_option_has_a_case() -> None:
    used = {arg[2:].replace("-", "_") for _, args, _ in CASES for arg in args}
    missing = [f.name for f in dataclasses.fields(GANConfig) if f.name not in used]
    assert not missing, f"add a case for {missing}"
    families = {args[args.index("--gan-loss") + 1] for _, args, _ in CASES if "--gan-loss" in args}
    assert families == set(GAN_LOSSES)


@pytest.mark.parametrize(("case", "args", "check"), CASES, ids=[c[0] for c in CASES])
def test_option_trains_two_steps(
    data: Path,
    tmp_path: Path,
    case: str,
    args: list[str],
    check: Callable[[Run], None],
) -> None:
    run_dir = tmp_path / "run"
    result = _train(data, run_dir, *args)
    assert result.exit_code == 0, result.output
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    for record in records:
        for key, value in record.items():
            assert isinstance(value, (int, float)) and math.isfinite(value), (case, key, value)
    folder = ckpt.resolve_checkpoint(run_dir)
    weights = load_file(folder / ckpt.WEIGHTS)
    _rebuild(folder, weights)
    run = {
        "records": [
            {k: v for k, v in r.items() if k not in ("step", "time", "steps_per_s", "lr")}
            for r in records
        ],
        "weights": weights,
        "meta": ckpt.read_meta(folder),
        "state": ckpt.read_trainer_state(folder),
    }
    check(run)


def test_ema_resume_is_bit_exact(data: Path, tmp_path: Path) -> None:
    """The EMA copies are checkpointed and restored: stop-and-resume equals a straight run."""
    import shutil

    extra = ("--ema-decay", "0.5", "--n-critic", "2", "--max-steps", "4")
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert _train(data, straight, *extra).exit_code == 0
    assert _train(data, split, *extra).exit_code == 0
    shutil.rmtree(split / "checkpoints" / "step_0000004")
    (split / "checkpoints" / "LATEST").write_text("step_0000002\n")
    resumed = runner.invoke(app, ["train", "pix2pix", "--resume", str(split), "--no-progress"])
    assert resumed.exit_code == 0, resumed.output
    a = load_file(straight / "checkpoints" / "step_0000004" / "model.safetensors")
    b = load_file(split / "checkpoints" / "step_0000004" / "model.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("ema.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_samples_use_the_ema_generator(data: Path, tmp_path: Path) -> None:
    from translate.engine.loop import prepare

    trainer = prepare(
        "pix2pix",
        data=data,
        **TINY_PIX2PIX_OPTIONS,
        ema_decay=0.9,
        max_steps=1,
        progress=False,
        run_dir=tmp_path / "run",
    )
    assert trainer.ema is not None
    models = trainer.sampling_models()
    assert models["G"] is trainer.ema.models["G"] and models["D"] is trainer.models["D"]


# ------------------------------------------------------------------ refused combinations

REFUSED_CONFIGS = [
    ({"gan_loss": "hinge", "label_smoothing": 0.1}, "label_smoothing", "real target"),
    ({"gan_loss": "rpgan", "label_smoothing": 0.1}, "label_smoothing", "rpgan"),
    ({"gan_loss": "wgan", "clip_value": 0.0}, "clip_value", "wgan needs weight clipping"),
    ({"gan_loss": "hinge", "clip_value": 0.01}, "clip_value", "belongs to --gan-loss wgan"),
    ({"gan_loss": "wgan", "gp_weight": 10.0}, "gp_weight", "pick one"),
    ({"gan_loss": "wgan", "r1_gamma": 1.0}, "r1_gamma", "pick one"),
    ({"gan_loss": "wgan", "spectral_norm": "d"}, "spectral_norm", "pick one"),
    ({"gan_loss": "wgan", "gradient_norm": True}, "gradient_norm", "pick one"),
    ({"gan_loss": "wgan-gp", "gp_weight": 0.0}, "gp_weight", "unconstrained"),
    ({"gradient_norm": True, "spectral_norm": "d"}, "gradient_norm", "--spectral-norm"),
    ({"gradient_norm": True, "r1_gamma": 1.0}, "gradient_norm", "r1_gamma"),
    ({"gan_loss": "wgan-gp", "gradient_norm": True}, "gradient_norm", "gp_weight"),
    ({"penalty_interval": 4}, "penalty_interval", "needs a gradient penalty"),
    ({"instance_noise_steps": 100}, "instance_noise_steps", "--instance-noise"),
    ({"diff_augment": "color,zoom"}, "diff_augment", "'zoom'"),
    ({"ema_decay": 1.0}, "ema_decay", "[0, 1)"),
    ({"n_critic": 0}, "n_critic", "at least 1"),
]


@pytest.mark.parametrize(("options", "field", "needle"), REFUSED_CONFIGS)
def test_nonsensical_combinations_are_refused(
    options: dict[str, Any], field: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as info:
        GANConfig(**options)
    message = str(info.value)
    assert message.startswith(field + ":") and needle in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--r1-gamma", "1"], ["r1_gamma", "batch norm", "--norm instance"]),
        (["--gradient-norm"], ["gradient_norm", "batch norm"]),
        (["--minibatch-std", "4", "--batch-size", "1"], ["minibatch_std", "--batch-size"]),
        (["--self-attention", "d", "--discriminator", "pixel"], ["self_attention", "D"]),
        (["--gan-loss", "hinge", "--label-smoothing", "0.1"], ["label_smoothing", "hinge"]),
    ],
)
def test_model_dependent_refusals_are_one_line(
    data: Path, tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    result = runner.invoke(
        app,
        ["train", "pix2pix", "--data", str(data), "--run-dir", str(tmp_path), *TINY_PIX2PIX, *args],
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert "Traceback" not in result.output


def test_family_defaults_only_fill_unset_options() -> None:
    wgan = GANConfig(gan_loss="wgan")
    assert (wgan.effective_n_critic, wgan.effective_clip_value) == (5, 0.01)
    assert wgan.effective_optimizer == "rmsprop"
    assert wgan.family_train_defaults == {"lr": 5e-5, "lr_d": None}
    mine = GANConfig(gan_loss="wgan", n_critic=2, clip_value=0.05, optimizer="adam")
    assert (mine.effective_n_critic, mine.effective_clip_value) == (2, 0.05)
    assert mine.effective_optimizer == "adam"
    plain = GANConfig()
    assert (plain.effective_n_critic, plain.effective_clip_value) == (1, 0.0)
    assert plain.effective_optimizer == "adam" and plain.family_train_defaults == {}
    assert GANConfig(gan_loss="wgan-gp").effective_gp_weight == 10.0


def test_wgan_gp_takes_its_papers_settings_unless_given(tmp_path: Path) -> None:
    """Gulrajani et al. 2017, Algorithm 1: n_critic 5, Adam lr 1e-4, betas (0, 0.9), lambda 10,
    one learning rate for G and D (label2image's TTUR lr_d is dropped); a given value wins; the
    effective settings are printed when training starts."""
    from translate.engine.loop import prepare

    data = make_paired(tmp_path / "data", n_train=2, n_val=1)
    common = dict(data=data, **TINY_PIX2PIX_OPTIONS, norm="instance", device="cpu")
    trainer = prepare("pix2pix", gan_loss="wgan-gp", run_dir=tmp_path / "a", **common)
    assert trainer.n_critic == 5
    for opt in trainer.ctx.optimizers.values():
        assert isinstance(opt, torch.optim.Adam)
        (group,) = opt.param_groups
        assert (group["lr"], group["betas"]) == (1e-4, (0.0, 0.9))
    assert trainer.settings() == (
        "pix2pix: wgan-gp, n_critic 5, adam lr 0.0001 (D 0.0001), betas (0, 0.9), gp 10"
    )
    mine = prepare(
        "pix2pix",
        gan_loss="wgan-gp",
        lr=3e-4,
        beta2=0.99,
        n_critic=2,
        run_dir=tmp_path / "b",
        **common,
    )
    assert mine.n_critic == 2
    (group,) = mine.ctx.optimizers["D"].param_groups
    assert (group["lr"], group["betas"]) == (3e-4, (0.0, 0.99))
    # label2image's TTUR (lr_d 4e-4) is not WGAN-GP's: one learning rate
    labels = prepare(
        "label2image",
        data=make_labels(tmp_path / "labels", n_train=2, n_val=1),
        gan_loss="wgan-gp",
        device="cpu",
        run_dir=tmp_path / "l",
        n_up=2,
        crop_size=16,
        load_size=16,
        base_channels=4,
        spade_hidden=4,
        disc_channels=4,
        disc_layers=1,
    )
    assert [g["lr"] for o in labels.ctx.optimizers.values() for g in o.param_groups] == [1e-4] * 2
    result = runner.invoke(
        app,
        [
            "train",
            "pix2pix",
            "--data",
            str(data),
            "--run-dir",
            str(tmp_path / "c"),
            *TINY_PIX2PIX[:-3],
            "--norm",
            "instance",
            "--gan-loss",
            "wgan-gp",
            "--max-steps",
            "1",
            "--progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "wgan-gp, n_critic 5, adam lr 0.0001 (D 0.0001), betas (0, 0.9), gp 10" in result.output
