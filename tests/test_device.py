"""Speed defaults: the precision ``--amp auto`` picks, thread count, channels-last instance norm."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from translate.engine import device
from translate.errors import ConfigError
from translate.nn.norms import InstanceNorm2d


@pytest.mark.parametrize("native", [True, False])
def test_auto_amp_is_bf16_only_where_the_cpu_has_it(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: native)
    mode, reason = device.resolve_amp("auto", torch.device("cpu"))
    assert mode == ("bf16" if native else "none")
    assert reason.startswith("auto")


def test_explicit_amp_wins_and_fp16_needs_cuda() -> None:
    assert device.resolve_amp("none", torch.device("cpu"))[0] == "none"
    assert device.resolve_amp("bf16", torch.device("cpu"))[0] == "bf16"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        device.resolve_amp("fp16", torch.device("cpu"))


def test_threads_default_to_physical_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        assert device.configure_device(torch.device("cpu")) == device.physical_cores() >= 1
        assert device.configure_device(torch.device("cpu"), threads=1) == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_keeps_channels_last_and_equals_pytorchs(
    batch: int, affine: bool, float64: torch.dtype
) -> None:
    """Channels-last vs PyTorch's NCHW instance norm, in float64: the two layouts sum in other
    orders, which in float32 may differ beyond assert_close's default on some CPUs; in float64
    they agree to ~1e-15 (tolerance 1e-10), while a wrong mean, variance or gradient is off by
    far more. (Float32 accuracy is the next test's, measured against float64.)"""
    torch.manual_seed(0)
    ours, theirs = InstanceNorm2d(5, affine=affine), nn.InstanceNorm2d(5, affine=affine)
    if affine:
        with torch.no_grad():
            theirs.weight.normal_()
            theirs.bias.normal_()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(batch, 5, 6, 7).contiguous(memory_format=torch.channels_last)
    assert x.dtype == float64
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), theirs(xb)
    assert ya.is_contiguous(memory_format=torch.channels_last)  # no copy to NCHW and back
    tight = {"rtol": 1e-10, "atol": 1e-10}
    torch.testing.assert_close(ya, yb, **tight)
    g = torch.randn_like(yb)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, **tight)
    if affine:
        torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, **tight)


@pytest.mark.parametrize("local_rank", [0, 1])
def test_more_processes_than_gpus_stops_every_rank_before_the_rendezvous(
    monkeypatch: pytest.MonkeyPatch, local_rank: int
) -> None:
    """2 processes on a 1-GPU machine: rank 1 has no GPU, and rank 0 must not go on to wait
    in the rendezvous for it (found on a real 1-GPU machine: the launch hung, silent)."""
    import torch.distributed as dist

    from translate.engine.distributed import Distributed

    env = {"RANK": local_rank, "LOCAL_RANK": local_rank, "WORLD_SIZE": 2, "LOCAL_WORLD_SIZE": 2}
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)

    def rendezvous(*args: object, **kwargs: object) -> None:
        raise AssertionError("joined the rendezvous: the other rank never comes")

    monkeypatch.setattr(dist, "init_process_group", rendezvous)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: None)
    with pytest.raises(ConfigError, match="2 processes on this machine but 1 GPU"):
        Distributed.from_env("cuda", timeout_s=5)


@pytest.mark.parametrize("threads", [1, 2])
def test_channels_last_instance_norm_is_as_accurate_as_pytorchs(threads: int) -> None:
    """A channel whose mean is large against its spread (a convolution's output often is):
    the channels-last batch-norm kernel's fp32 statistics lose digits to cancellation unless
    the means are taken out first. Measured against float64, ours must be as close as
    PyTorch's own instance norm (without the shift: 6x its error in the output, 14x in the
    input gradient), forward and backward; CycleGAN's ReLUs turn such errors into flipped
    gradients."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # the kernel's sums are split by thread
    try:
        torch.manual_seed(0)
        x = torch.randn(2, 4, 16, 16, dtype=torch.float64) * 0.1 + 10
        g = torch.randn_like(x)
        exact = x.clone().requires_grad_()
        y_exact = nn.functional.instance_norm(exact)
        y_exact.backward(g)

        def errors(norm: nn.Module, layout: torch.memory_format) -> tuple[float, float]:
            xf = x.float().contiguous(memory_format=layout).requires_grad_()
            y = norm(xf)
            y.backward(g.float())
            assert exact.grad is not None and xf.grad is not None
            return (
                (y.double() - y_exact).abs().max().item(),
                (xf.grad.double() - exact.grad).abs().max().item(),
            )

        ours = errors(InstanceNorm2d(4), torch.channels_last)
        pytorch = errors(nn.InstanceNorm2d(4), torch.contiguous_format)
        assert ours[0] <= 2 * pytorch[0] and ours[1] <= 2 * pytorch[1], (ours, pytorch)
    finally:
        torch.set_num_threads(before)
