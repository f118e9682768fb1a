"""Distributed training on CPU with gloo: 2 processes x batch 1 == 1 process x batch 2.

Process start-up (a torch import each) dominates, so one 2-process launch runs every scenario
(pix2pix, CycleGAN with and without gradient normalisation, lazy R1, WGAN-GP with n_critic 2,
a 1 -> 2 process resume) and the
single-process references run here, in the test process.
"""

from __future__ import annotations

import json
import math
from itertools import chain, islice, pairwise
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import nn

from tests.conftest import TINY_CYCLEGAN_OPTIONS, TINY_PIX2PIX_OPTIONS
from translate.data.sampler import ResumableSampler
from translate.engine import checkpoint as ckpt
from translate.engine.distributed import launch
from translate.engine.loop import prepare
from translate.losses.augment import AugmentParams, DiffAugment
from translate.testing import make_paired, make_unpaired

# fp32 (--amp auto would pick bf16 on a CPU that has it) in the default channels-last layout;
# one intra-op thread in the workers and in the single-process references alike: oneDNN's
# channels-last kernels block their sums by thread count, and CycleGAN's gradient (ReLU after
# instance norm) is discontinuous, so a rounding difference can flip a ReLU and Adam turns the
# changed gradient sign into an lr-sized weight difference
COMMON = dict(
    device="cpu", amp="none", progress=False, log_every=1, sample_every=1000, seed=3, threads=1,
)  # fmt: skip
PIX2PIX = dict(TINY_PIX2PIX_OPTIONS, norm="instance", dropout=0.0)
# name -> (plugin, options, steps); data options are added per run
SCENARIOS: dict[str, tuple[str, dict[str, Any], int]] = {
    "pix2pix": ("pix2pix", PIX2PIX, 3),
    # lazy R1 (double backward on the penalty steps)
    "r1_lazy": ("pix2pix", dict(PIX2PIX, r1_gamma=1.0, penalty_interval=2), 3),
    # WGAN-GP: critic-only steps, GP interpolates drawn for the global batch; generator EMA
    "wgan_gp": ("pix2pix", dict(PIX2PIX, gan_loss="wgan-gp", n_critic=2, ema_decay=0.9), 4),
    # two generators and two critics, history pools
    "cyclegan": ("cyclegan", TINY_CYCLEGAN_OPTIONS, 2),
    # gradient normalisation: an input gradient (create_graph) inside every D forward
    "cyclegan_gn": ("cyclegan", dict(TINY_CYCLEGAN_OPTIONS, gradient_norm=True), 2),
}


# trained through the CLI inside the one 2-process job (a launch each would cost its start-up)
NEWER_PLUGINS = ["stargan", "dcgan", "cgan", "cut"]


def test_sharded_sampler_sees_each_sample_once_across_ranks_and_resumes() -> None:
    single = list(islice(iter(ResumableSampler(5, seed=1)), 24))
    # 3 ranks x batch 2: global batch k is single[6k:6k+6], rank r takes its r-th pair
    shards = [
        list(islice(iter(ResumableSampler(5, seed=1, rank=r, world_size=3, batch_size=2)), 8))
        for r in range(3)
    ]
    for k in range(4):
        assert list(chain(*(s[2 * k : 2 * k + 2] for s in shards))) == single[6 * k : 6 * k + 6]
    # saved at global position 12 by 3 processes, resumed by 2 (batch 3): the rest, once each
    resumed = [
        list(islice(iter(ResumableSampler(5, seed=1, position=12, rank=r, world_size=2,
                                          batch_size=3)), 6))
        for r in range(2)
    ]  # fmt: skip
    assert resumed[0][:3] + resumed[1][:3] + resumed[0][3:] + resumed[1][3:] == single[12:24]


class _Recording(torch.utils.data.Dataset):
    """Records the dataset indices a rank loads."""

    def __init__(self, dataset: Any):
        self.dataset, self.seen = dataset, []

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, tuple):  # (index, seed) from the sampler; ints: sample grids
            self.seen.append(int(item[0]))
        return self.dataset[item]


def _train(plugin: str, data: dict, run_dir: Path, *, resume: Path | None = None, **opts: Any):
    """Train through the public API; returns (weights, indices this process loaded, inert
    parameter names)."""
    threads = torch.get_num_threads()  # --threads sets the process's count: restore it
    try:
        if resume is not None:
            trainer = prepare(plugin, resume=resume, **opts)
        else:
            trainer = prepare(plugin, **data, run_dir=run_dir, **opts)
        recording = trainer.dataset.dataset = _Recording(trainer.dataset.dataset)  # in the skipper
        trainer.run()
    finally:
        torch.set_num_threads(threads)
    # this process's own weights (the checkpoint on disk is rank 0's)
    weights = {k: v.detach().clone() for k, v in trainer.weights().items()}
    return weights, recording.seen, _inert_biases(trainer.models)


def _data(root: Path, plugin: str) -> dict[str, Path]:
    if plugin == "cyclegan":
        return {"domain_a": root / "unpaired" / "A", "domain_b": root / "unpaired" / "B"}
    return {"data": root / "paired"}


def _worker(root: str) -> dict[str, Any]:
    """One rank of the 2-process launch: the user's own script inside a torchrun worker."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo")  # the engine reuses a group its caller made
    out: dict[str, Any] = {}
    base = Path(root)
    torch.set_default_dtype(torch.float64)  # compared with one process at tight tolerances
    try:
        for name, (plugin, options, steps) in SCENARIOS.items():
            out[name] = _train(
                plugin, _data(base, plugin), base / "ddp" / name, batch_size=1, max_steps=steps,
                **options, **COMMON,
            )  # fmt: skip
    finally:
        torch.set_default_dtype(torch.float32)
    # a run saved by 1 process at step 2, resumed by 2 processes to step 4
    out["resume_1_to_2"] = _train("pix2pix", {}, base, resume=base / "single_2", max_steps=4)
    data, short = _data(base, "pix2pix"), dict(batch_size=1, max_steps=2, **PIX2PIX)
    # DiffAugment: every transform each rank draws, recorded
    draws: list[AugmentParams] = []
    sample = DiffAugment.sample
    DiffAugment.sample = lambda self, x: draws.append(sample(self, x)) or draws[-1]  # type: ignore
    try:
        policy = "color,translation,cutout"
        weights, _, _ = _train(
            "pix2pix", data, base / "ddp" / "diffaugment", diff_augment=policy, **short, **COMMON
        )
    finally:
        DiffAugment.sample = sample  # type: ignore[method-assign]
    out["diffaugment"] = weights, [_flat(d) for d in draws]
    # bf16 autocast (CPU), and the periodic evaluation rank 0 runs while the other waits
    bf16 = {**COMMON, "amp": "bf16"}
    out["bf16"] = _train("pix2pix", data, base / "ddp" / "bf16", **short, **bf16)
    out["eval"] = _train("pix2pix", data, base / "ddp" / "eval", eval_every=1, **short, **COMMON)
    # the newer plugins through the CLI's train command, in this job (torchrun -m translate)
    from typer.testing import CliRunner

    from translate.cli.main import app

    for name in NEWER_PLUGINS:
        config = base / "cli" / name / "options.json"
        result = CliRunner().invoke(app, ["train", name, "--config", str(config)])
        out["cli_" + name] = result.exit_code, result.output
    dist.destroy_process_group()
    return out


def _flat(params: AugmentParams) -> list[float]:
    """One draw of DiffAugment as numbers (brightness, saturation, contrast, shift, cutout)."""
    return [float(v) for t in vars(params).values() if t is not None for v in t.flatten().tolist()]


def _inert_biases(models: dict[str, nn.Module]) -> set[str]:
    """Biases of convolutions followed by affine-free instance norm, which subtracts them
    again: their true gradient is 0, their computed one rounding noise (~1e-8) that Adam
    scales up to lr-sized steps, so they differ between any two summation orders (and never
    change what the network computes)."""
    inert = set()
    for name, model in models.items():
        for prefix, module in model.named_modules():
            children = list(module.named_children())
            for (key, conv), (_, norm) in pairwise(children):
                biased = isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and conv.bias is not None
                if biased and isinstance(norm, nn.InstanceNorm2d) and not norm.affine:
                    inert.add(".".join(filter(None, (name, prefix, key, "bias"))))
    return inert | {"ema." + k for k in inert}  # and their averages


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], skip=frozenset()) -> float:
    assert a.keys() == b.keys()
    diff, key = max(
        ((a[k].double() - b[k].double()).abs().max().item(), k) for k in a if k not in skip
    )
    print(f"max abs difference {diff:.3g} at {key}")
    return diff


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, Any]]:
    root = tmp_path_factory.mktemp("ddp")
    make_paired(root / "paired", n_train=6, n_val=1)
    make_unpaired(root / "unpaired", n=6)
    for name in NEWER_PLUGINS:
        _cli_config(name, root / "cli" / name)
    _train("pix2pix", _data(root, "pix2pix"), root / "single_2", max_steps=2, **PIX2PIX, **COMMON)
    return root, launch(2, _worker, str(root))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_two_processes_batch_1_equal_one_process_batch_2(
    ddp_runs, name: str, float64: torch.dtype
) -> None:
    """Both in float64: batch 1 and batch 2 convolutions may use different kernels (oneDNN
    picks by shape), which in float32 alone differ by up to ~1e-4 on some CPUs; in float64 the
    two summation orders agree to ~1e-12, so 1e-9 holds on any CPU while a missing gradient
    average or a per-rank GP draw differs by 1e-3 and more."""
    root, results = ddp_runs
    plugin, options, steps = SCENARIOS[name]
    reference, _, inert = _train(
        plugin, _data(root, plugin), root / "ref" / name, batch_size=2, max_steps=steps,
        **options, **COMMON,
    )  # fmt: skip
    (rank0, seen0, _), (rank1, seen1, _) = results[0][name], results[1][name]
    assert _max_diff(rank0, rank1) == 0.0  # DDP keeps the replicas identical
    assert inert and len(inert & reference.keys()) < len(reference) / 2  # some, not most
    assert all(v.dtype == float64 for v in rank0.values() if v.is_floating_point())
    assert _max_diff(rank0, reference, skip=inert) <= 1e-9
    assert _max_diff(rank0, {k: v for k, v in ckpt.read_weights(
        root / "ddp" / name / "checkpoints" / f"step_{steps:07d}").items()}) == 0.0  # fmt: skip
    # the ranks split every global batch: together they saw the single stream once
    stream = [i for i, _ in islice(iter(ResumableSampler(6, seed=3)), 2 * steps)]
    assert sorted(seen0 + seen1) == sorted(stream) and len(seen0) == len(seen1) == steps
    if name == "pix2pix":
        # one metrics.jsonl (rank 0), one checkpoint folder, losses averaged over the ranks
        run = root / "ddp" / name
        assert [p.name for p in (run / "checkpoints").iterdir() if p.is_dir()] == ["step_0000003"]
        meta = json.loads((run / "checkpoints" / "step_0000003" / "meta.json").read_text())
        assert (meta["world_size"], meta["global_batch_size"]) == (2, 2)
        ddp_log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        ref_log = [
            json.loads(line)
            for line in (root / "ref" / name / "metrics.jsonl").read_text().splitlines()
        ]
        assert len(ddp_log) == len(ref_log) == steps
        for d, r in zip(ddp_log, ref_log, strict=True):
            for key in ("D_loss", "G_adv", "G_L1"):
                # the logs are float32 numbers (one rounding, 2**-24 relative, per value)
                assert d[key] == pytest.approx(r[key], rel=1e-6), key


def test_resume_changes_the_number_of_processes(ddp_runs) -> None:
    """1 -> 2 processes and 2 -> 1: the position is in global samples, so the resumed run
    sees the rest of the order, each sample once."""
    root, results = ddp_runs
    stream = [i for i, _ in islice(iter(ResumableSampler(6, seed=3)), 8)]
    # saved by 1 process at step 2 (positions 0-1), resumed by 2 to step 4 (positions 2-5)
    (w0, seen0, _), (w1, seen1, _) = results[0]["resume_1_to_2"], results[1]["resume_1_to_2"]
    assert _max_diff(w0, w1) == 0.0
    assert seen0 == [stream[2], stream[4]] and seen1 == [stream[3], stream[5]]
    # the 2-process pix2pix run saved at step 3 (positions 0-5), resumed by 1 to step 5
    _, seen, _ = _train("pix2pix", {}, root, resume=root / "ddp" / "pix2pix", max_steps=5)
    assert seen == stream[6:8]  # batch 1 from the checkpoint: 2 steps, positions 6-7


def test_diffaugment_draws_per_rank_and_the_replicas_stay_identical(ddp_runs) -> None:
    """DiffAugment, like dropout and instance noise, draws from each rank's own stream (seed +
    rank): the ranks augment their samples independently (identical draws would repeat one
    augmentation across the global batch), and the averaged gradients keep the weights equal."""
    _, results = ddp_runs
    (w0, draws0), (w1, draws1) = results[0]["diffaugment"], results[1]["diffaugment"]
    assert _max_diff(w0, w1) == 0.0
    # the D step draws for real and fake, the G step once, on each of the 2 steps
    assert len(draws0) == len(draws1) == 6
    assert all(len(d0) == len(d1) == 7 for d0, d1 in zip(draws0, draws1, strict=True))
    assert draws0 != draws1


def test_bf16_autocast_trains_identically_on_every_rank(ddp_runs) -> None:
    """bf16 autocast on CPU under DDP: gradients of bf16 activations are averaged like fp32
    ones, so the replicas stay equal. (bf16 cannot match fp32 to 1e-5; the fp32 runs above
    check the equivalence. fp16 with its gradient scaler needs CUDA: the GPU test below.)"""
    root, results = ddp_runs
    (w0, _, _), (w1, _, _) = results[0]["bf16"], results[1]["bf16"]
    assert _max_diff(w0, w1) == 0.0
    assert all(torch.isfinite(v).all() for v in w0.values())
    meta = json.loads((root / "ddp" / "bf16" / "checkpoints" / "step_0000002" / "meta.json")
                      .read_text())  # fmt: skip
    assert meta["train_config"]["amp"] == "bf16"
    log = [json.loads(line) for line in (root / "ddp" / "bf16" / "metrics.jsonl").open()]
    assert [r["step"] for r in log] == [1, 2] and all(math.isfinite(r["D_loss"]) for r in log)


def test_periodic_evaluation_runs_once_while_the_other_rank_waits(ddp_runs) -> None:
    """``--eval-every 1`` on 2 processes: rank 0 evaluates each step's checkpoint (one record
    per step in the one metrics.jsonl), the other rank waits for it, and training goes on."""
    root, results = ddp_runs
    (w0, _, _), (w1, _, _) = results[0]["eval"], results[1]["eval"]
    assert _max_diff(w0, w1) == 0.0
    log = [json.loads(line) for line in (root / "ddp" / "eval" / "metrics.jsonl").open()]
    evals = [r for r in log if any(k.startswith("eval_") for k in r)]
    assert [r["step"] for r in evals] == [1, 2], log


def test_a_wait_past_the_timeout_is_one_line_naming_the_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rank whose wait for rank 0's evaluation outlasts --dist-timeout (gloo raises) stops
    with a user error that says what to change, not a backend traceback."""
    from translate.engine.distributed import Distributed
    from translate.errors import ConfigError

    def timed_out(*args: Any, **kwargs: Any) -> None:
        raise dist.DistBackendError("Timed out waiting 1000ms for recv operation to complete")

    monkeypatch.setattr(dist, "barrier", timed_out)
    waiting = Distributed(rank=1, world_size=2)
    with pytest.raises(ConfigError, match=r"^dist_timeout: waited more than 5 s .*--eval-every"):
        waiting.wait_for_main("the evaluation at step 4", 5.0)
    Distributed().wait_for_main("the evaluation at step 4", 5.0)  # one process: no wait


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="fp16 DDP needs 2 CUDA GPUs (NCCL)")
def test_fp16_with_gradient_scalers_keeps_the_replicas_identical_on_gpus(tmp_path: Path) -> None:
    """fp16 autocast with one GradScaler per group under NCCL: the scaled loss arms the reducer,
    every rank unscales the same averaged gradients, so the inf checks, skipped steps and
    scales agree and the replicas stay equal."""
    make_paired(tmp_path / "paired", n_train=4, n_val=1)
    results = launch(2, _fp16_worker, str(tmp_path))
    (w0, scales0), (w1, scales1) = results[0], results[1]
    assert _max_diff(w0, w1) == 0.0
    assert scales0 == scales1


def _fp16_worker(root: str) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    trainer = prepare(
        "pix2pix", data=Path(root) / "paired", run_dir=Path(root) / "run", device="cuda",
        amp="fp16", batch_size=1, max_steps=3, progress=False, seed=3, **PIX2PIX,
    )  # fmt: skip
    trainer.run()
    weights = {k: v.detach().cpu() for k, v in trainer.weights().items()}
    return weights, {k: s.get_scale() for k, s in trainer.ctx.scalers.items()}


def test_ctrl_c_stops_every_rank_and_saves_once(tmp_path: Path) -> None:
    """A real Ctrl-C (SIGINT to the launcher and both workers, as a terminal sends it) during
    ``--nproc-per-node 2``: every rank stops after the same step, rank 0 saves that step's
    checkpoint, one error line, exit code 130, nobody hangs."""
    import os
    import signal
    import subprocess
    import sys
    import time

    make_paired(tmp_path / "paired", n_train=4, n_val=1)
    run_dir = tmp_path / "run"
    options = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_PIX2PIX_OPTIONS.items()]
    proc = subprocess.Popen(
        [sys.executable, "-m", "translate", "train", "pix2pix", "--data", str(tmp_path / "paired"),
         "--device", "cpu", "--nproc-per-node", "2", "--max-steps", "100000", "--log-every", "1",
         "--no-progress", "--run-dir", str(run_dir), *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        metrics, deadline = run_dir / "metrics.jsonl", time.monotonic() + 240
        while not (metrics.is_file() and metrics.read_text().count("\n") >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: the whole process group
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 130, stderr
    assert len(errors) == 1 and "interrupted at step" in errors[0], stderr
    assert "Traceback" not in stderr
    assert "death signal" not in stderr  # torch's agent did not end the workers: they stopped
    step = int(errors[0].split("interrupted at step ")[1].split(";")[0])
    folders = [p.name for p in (run_dir / "checkpoints").iterdir() if p.is_dir()]
    assert folders == [f"step_{step:07d}"]
    meta = json.loads((run_dir / "checkpoints" / folders[0] / "meta.json").read_text())
    assert meta["step"] == step and meta["world_size"] == 2
    ckpt.read_weights(run_dir / "checkpoints" / folders[0])  # complete and readable
    logged = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert logged == list(range(1, step + 1))  # both ranks stopped after the same step


@pytest.mark.parametrize("name", ["pix2pix", "cyclegan", "superres", "label2image"])
def test_every_plugin_trains_on_two_processes_through_the_cli(tmp_path: Path, name: str) -> None:
    """``translate train NAME --nproc-per-node 2`` (torch's elastic launcher, in process);
    the checkpoint loads with ``translate run``."""
    from typer.testing import CliRunner

    from translate.cli.main import app

    config, run_dir = _cli_config(name, tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["train", name, "--config", str(config), "--nproc-per-node", "2"])
    assert result.exit_code == 0, result.output
    _check_cli_run(name, run_dir, tmp_path)


@pytest.mark.parametrize("name", NEWER_PLUGINS)
def test_newer_plugins_train_through_the_cli_in_a_two_process_job(ddp_runs, name: str) -> None:
    """``translate train NAME`` in both workers of the 2-process job (what ``torchrun -m
    translate train`` runs; the launcher itself is tested above): both ranks exit 0, one
    checkpoint, and it loads with ``translate run`` / ``translate sample``."""
    root, results = ddp_runs
    for rank in (0, 1):
        code, output = results[rank]["cli_" + name]
        assert code == 0, output
    _check_cli_run(name, root / "cli" / f"{name}-run", root / "cli" / name)


def _cli_config(name: str, folder: Path) -> tuple[Path, Path]:
    """Tiny data and an options file for ``translate train NAME --config``: 2 steps, batch 1."""
    from translate.config import config_to_dict
    from translate.registry import load_plugin
    from translate.testing import make_dataset

    plugin = load_plugin(name)
    options = config_to_dict(plugin.tiny_config(make_dataset(plugin.dataset_kind, folder)))
    run_dir = folder.with_name(folder.name + "-run")  # not inside the data: a folder per domain
    options.update(max_steps=2, batch_size=1, device="cpu", progress=False, sample_every=2,
                   n_samples=1, run_dir=str(run_dir))  # fmt: skip
    config = folder / "options.json"
    config.write_text(json.dumps({k: v for k, v in options.items() if v is not None}))
    return config, run_dir


def _check_cli_run(name: str, run_dir: Path, folder: Path) -> None:
    """One checkpoint of the 2-process run, and it loads with ``translate run`` (``sample``
    for the plugins that generate from noise)."""
    from typer.testing import CliRunner

    from translate.cli.main import app
    from translate.registry import load_plugin
    from translate.testing import probe_image

    assert [p.name for p in (run_dir / "checkpoints").iterdir() if p.is_dir()] == ["step_0000002"]
    meta = json.loads((run_dir / "checkpoints" / "step_0000002" / "meta.json").read_text())
    assert (meta["world_size"], meta["global_batch_size"]) == (2, 2)
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1  # log_every 10
    plugin, out = load_plugin(name), folder / "out"
    if getattr(plugin, "generates", False):  # dcgan, cgan: new images from noise
        command = ["sample", str(run_dir), "--out", str(out), "--n", "1", "--device", "cpu"]
    else:
        image = folder / "probe.png"
        probe_image(plugin.dataset_kind, (32, 32)).save(image)
        command = ["run", str(image), "--checkpoint", str(run_dir), "--out", str(out)]
        command += ["--to", "B"] if name == "stargan" else []  # the target domain
    ran = CliRunner().invoke(app, command)
    assert ran.exit_code == 0, ran.output
    assert len(list(out.iterdir())) == 1


def test_python_m_translate_reports_a_user_error_once(tmp_path: Path) -> None:
    """``python -m translate`` on 2 processes: a missing data folder (seen by every rank, in
    the engine) is one line from rank 0 and exit code 2, no traceback per rank."""
    import os
    import subprocess
    import sys

    missing = tmp_path / "missing"
    proc = subprocess.run(
        [sys.executable, "-m", "translate", "train", "pix2pix", "--data", str(missing),
         "--device", "cpu", "--nproc-per-node", "2"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2, proc.stderr
    assert len(errors) == 1 and str(missing) in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
