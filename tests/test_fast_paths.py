"""The CPU fast paths that compute the same mathematics another way: few-pixel convolutions as
matrix products, narrow ones with kernel columns as channels, reflection padding in bf16
(``translate.nn.cpu_layers``) and Adam over channels-last tensors without copies
(``translate.engine.setup.DenseAdam``). Each must match PyTorch's own operator, gradients
included, and must actually be taken where it is meant to be (and not where it is not)."""

from __future__ import annotations

from collections import Counter
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from translate.engine.setup import DenseAdam
from translate.export.onnx import export_proto
from translate.nn import cpu_layers
from translate.nn.cpu_layers import FEW_PIXELS, Conv2d, ConvTranspose2d, ReflectionPad2d
from translate.nn.unet import UnetGenerator
from translate.plugin import SizeRequirements

CASES = [
    # (path, transposed, c_in, c_out, kernel, stride, padding, output_padding, batch, size, bias)
    ("conv2d", False, 6, 5, 4, 2, 1, 0, 1, 4, False),  # U-Net encoder level: 4x4 -> 2x2
    ("conv2d", False, 6, 5, 4, 2, 1, 0, 2, 2, True),  # -> 1x1, two images
    ("conv2d", False, 3, 5, 3, 1, 1, 0, 1, 5, True),  # 3x3 "same", odd size
    ("conv_transpose2d", True, 6, 5, 4, 2, 1, 0, 1, 1, False),  # U-Net decoder level: 1x1 -> 2x2
    ("conv_transpose2d", True, 6, 5, 4, 2, 1, 0, 2, 3, True),  # 3x3 -> 6x6, two images
    ("conv_transpose2d", True, 4, 3, 3, 2, 1, 1, 1, 4, True),  # ResNet upsampling, out-pad 1
    ("narrow_conv2d", False, 6, 3, 7, 1, 0, 0, 1, 12, True),  # ResNet head: 7x7 to RGB
    ("narrow_conv2d", False, 5, 1, 4, 1, 1, 0, 2, 9, False),  # PatchGAN's last layer
    ("narrow_conv2d", False, 4, 2, 3, 1, 2, 0, 1, 10, True),  # padding wider than needed
]


def _pair(transposed, c_in, c_out, k, s, p, op, bias):
    torch.manual_seed(0)
    if transposed:
        ours = ConvTranspose2d(c_in, c_out, k, s, p, output_padding=op, bias=bias)
        theirs = nn.ConvTranspose2d(c_in, c_out, k, s, p, output_padding=op, bias=bias)
    else:
        ours = Conv2d(c_in, c_out, k, s, p, bias=bias)
        theirs = nn.Conv2d(c_in, c_out, k, s, p, bias=bias)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def _in_float64(ours, theirs, x, channels_last):
    """Both modules and the input in float64, channels-last or not."""
    ours, theirs, x = ours.double(), theirs.double(), x.double()
    if channels_last:
        ours, theirs = (m.to(memory_format=torch.channels_last) for m in (ours, theirs))
        x = x.to(memory_format=torch.channels_last)
    return ours, theirs, x


def _assert_same_with_gradients(ours, theirs, x, run_ours) -> torch.Tensor:
    """``run_ours(x)`` (ours, under whatever spy it sets) against ``theirs(x)``: outputs, input
    gradients and parameter gradients agree; returns our output."""
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = run_ours(x1), theirs(x2)
    assert y1.shape == y2.shape
    torch.testing.assert_close(y1, y2, rtol=1e-10, atol=1e-10)
    grad = torch.randn_like(y2)
    y1.backward(grad)
    y2.backward(grad)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-10)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-10)
        assert a.grad.stride() == a.stride()  # the gradient keeps the parameter's layout
    return y1


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_cpu_convolutions_match_pytorch_with_gradients(case, channels_last) -> None:
    path, transposed, c_in, c_out, k, s, p, op, batch, size, bias = case
    ours, theirs = _pair(transposed, c_in, c_out, k, s, p, op, bias)
    x = torch.randn(batch, c_in, size, size)
    ours, theirs, x = _in_float64(ours, theirs, x, channels_last)

    def run_ours(x):
        with mock.patch.object(cpu_layers, path, wraps=getattr(cpu_layers, path)) as spy:
            y = ours(x)
        assert spy.call_count == 1, f"{path} was not taken"
        return y

    y = _assert_same_with_gradients(ours, theirs, x, run_ours)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert y.is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_transposed_convolution_adds_its_bias_apart(channels_last) -> None:
    """Many pixels: PyTorch's transposed convolution without its bias (oneDNN's bias gradient
    is slow), the bias added after; same values and gradients."""
    ours, theirs = _pair(True, 4, 6, 3, 2, 1, 1, True)
    ours, theirs, x = _in_float64(ours, theirs, torch.randn(1, 4, 12, 12), channels_last)
    calls = []
    original = F.conv_transpose2d

    def spy(*args, **kwargs):
        calls.append(args[2])  # the bias handed to PyTorch's operator
        return original(*args, **kwargs)

    def run_ours(x):
        with mock.patch.object(cpu_layers.F, "conv_transpose2d", side_effect=spy):
            return ours(x)

    _assert_same_with_gradients(ours, theirs, x, run_ours)
    assert calls == [None]


def test_bf16_autocast_gives_bf16_like_the_convolution() -> None:
    ours, theirs = _pair(True, 16, 8, 4, 2, 1, 0, True)
    x = torch.randn(1, 16, 2, 2)
    with torch.autocast("cpu", torch.bfloat16):
        y1, y2 = ours(x), theirs(x)
    assert y1.dtype == y2.dtype == torch.bfloat16
    torch.testing.assert_close(y1.float(), y2.float(), rtol=2e-2, atol=2e-2)


def test_reflection_padding_keeps_bf16_under_autocast() -> None:
    """PyTorch's CPU autocast pads in float32 (a cast up, and one back down in the next
    convolution, forward and backward); ours pads in the dtype it is given, exactly."""
    x = torch.randn(1, 8, 5, 6).bfloat16().requires_grad_()
    with torch.autocast("cpu", torch.bfloat16):
        ours = ReflectionPad2d(2)(x)
        theirs = nn.ReflectionPad2d(2)(x)
    assert ours.dtype == torch.bfloat16
    assert torch.equal(ours.float(), theirs.float())
    ours.float().sum().backward()
    assert x.grad.dtype == torch.bfloat16


def test_many_pixels_and_unsupported_shapes_take_pytorchs_path() -> None:
    side = int(FEW_PIXELS**0.5) + 1  # one image of more than FEW_PIXELS pixels
    cases = [
        (Conv2d(3, 5, 3, 1, 1), torch.randn(1, 3, side, side)),
        (Conv2d(3, 3, 3, 2, 1), torch.randn(1, 3, 2 * side, 2 * side)),  # narrow but strided
        (Conv2d(4, 4, 3, 1, 1, groups=2), torch.randn(1, 4, 2, 2)),
        (Conv2d(3, 5, 3, 1, 2, dilation=2), torch.randn(1, 3, 2, 2)),
        (Conv2d(3, 3, 3, 1, 1, padding_mode="reflect"), torch.randn(1, 3, 2, 2)),
        (ConvTranspose2d(3, 3, 4, 2, 1), torch.randn(1, 3, side, side)),
    ]
    names = ("conv2d", "conv_transpose2d", "narrow_conv2d")
    spies = [mock.patch.object(cpu_layers, name) for name in names]
    mocks = [spy.start() for spy in spies]
    try:
        for module, x in cases:
            module(x)
    finally:
        for spy in spies:
            spy.stop()
    assert [m.call_count for m in mocks] == [0, 0, 0]


def test_an_onnx_export_holds_the_standard_operators() -> None:
    """Exporting takes PyTorch's path, so the file has Conv/ConvTranspose (no MatMul, Col2Im)."""
    net = UnetGenerator(in_channels=3, out_channels=3, depth=4, base_channels=4).eval()
    proto = export_proto(net, SizeRequirements(multiple_of=net.multiple_of), 3)
    ops = Counter(node.op_type for node in proto.graph.node)
    assert ops["Conv"] == 4 and ops["ConvTranspose"] == 4
    assert not {"MatMul", "Gemm", "Col2Im"} & set(ops)


def _adam_pair(steps: int, state_layout: torch.memory_format):
    torch.manual_seed(0)
    weights = [torch.randn(8, 6, 4, 4), torch.randn(6), torch.randn(5, 3, 3, 3)]
    ours = [
        nn.Parameter(w.to(memory_format=torch.channels_last) if w.dim() == 4 else w)
        for w in weights
    ]
    plain = [nn.Parameter(w.clone()) for w in weights]
    opt = DenseAdam(ours, lr=1e-2, betas=(0.5, 0.999), fused=True)
    ref = torch.optim.Adam(plain, lr=1e-2, betas=(0.5, 0.999), fused=True)
    for step in range(steps):
        grads = [torch.randn_like(w) for w in weights]
        for p, q, g in zip(ours, plain, grads, strict=True):
            p.grad = g.clone().to(memory_format=torch.channels_last) if g.dim() == 4 else g.clone()
            q.grad = g.clone()
        if step == 1:  # e.g. moments restored in another layout: still correct
            for state in opt.state.values():
                for key in ("exp_avg", "exp_avg_sq") if state["exp_avg"].dim() == 4 else ():
                    state[key] = state[key].contiguous(memory_format=state_layout)
        opt.step()
        ref.step()
    return ours, plain, opt


@pytest.mark.parametrize("state_layout", [torch.channels_last, torch.contiguous_format])
def test_dense_adam_is_bit_identical_to_adam(state_layout) -> None:
    """Also when the moments are in another layout than the weights (PyTorch's fused Adam
    then pairs the wrong elements: 0.016 off after one step in this test)."""
    ours, plain, _ = _adam_pair(4, state_layout)
    for p, q in zip(ours, plain, strict=True):
        assert torch.equal(p, q)


def test_dense_adam_copies_no_channels_last_tensor() -> None:
    """PyTorch's fused CPU kernel copies each non-contiguous tensor to a clone and back (40 ms
    of a pix2pix step); DenseAdam hands it contiguous views instead."""
    ours, _, opt = _adam_pair(2, torch.channels_last)
    for p in ours:
        p.grad = torch.randn_like(p)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        opt.step()
    assert "aten::_fused_adam_" in {event.name for event in prof.events()}
    copies = [e for e in prof.events() if e.name in ("aten::clone", "aten::copy_")]
    assert not [e.input_shapes for e in copies if any(e.input_shapes)]  # scalars (steps) only
