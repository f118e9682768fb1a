"""Backends: provider selection, session options, one inference path, batching, threads."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import TINY_PIX2PIX_OPTIONS
from translate.engine.loop import prepare
from translate.errors import ConfigError
from translate.export.onnx import export_onnx
from translate.inference import backends
from translate.inference.backends import (
    CPU,
    CUDA,
    TRT,
    OnnxBackend,
    TrtProfile,
    select_providers,
    session_options,
)
from translate.inference.translator import Translator
from translate.testing import make_paired

ALL = [TRT, CUDA, CPU]  # what onnxruntime-gpu lists, GPU or not


@pytest.fixture(scope="module")
def run_and_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("b")
    trainer = prepare(
        "pix2pix",
        data=make_paired(root / "data"),
        **TINY_PIX2PIX_OPTIONS,
        max_steps=1,
        progress=False,
        run_dir=root / "run",
    )
    folder = trainer.run()
    return folder, export_onnx(folder, root / "model.onnx").path


# ---------------------------------------------------------------------------- providers
def test_cpu_machine_gets_cpu_only_and_prints_no_cuda_error(
    run_and_onnx: tuple[Path, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    """onnxruntime-gpu lists CUDA and TensorRT here although there is no GPU; asking for them
    would print CUDA errors. Selection goes by the device that exists."""
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert [p for p, _ in select_providers()] == [CPU]
    assert [p for p, _ in select_providers("auto", available=ALL)] == [CPU]
    backend = OnnxBackend(run_and_onnx[1], threads=1)
    assert backend.providers == [CPU] and backend.device == "cpu" and backend.max_side is None
    backend(torch.zeros(1, 3, 32, 32))
    captured = capfd.readouterr()
    assert "CUDA" not in captured.err + captured.out
    with pytest.raises(ConfigError, match="no CUDA device") as info:
        select_providers("cuda")
    assert "\n" not in str(info.value)


def test_gpu_machine_prefers_tensorrt_with_profiles_and_cache(tmp_path: Path) -> None:
    profile = TrtProfile(channels=3, min_side=256, opt_side=1024, max_side=1024, max_batch=4)
    chosen = select_providers(
        "auto", available=ALL, cuda=True, tensorrt=True, profile=profile, cache_dir=tmp_path
    )
    assert [p for p, _ in chosen] == [TRT, CUDA, CPU]
    trt = chosen[0][1]
    assert trt["trt_engine_cache_enable"] and trt["trt_engine_cache_path"] == str(tmp_path)
    assert trt["trt_timing_cache_enable"]
    assert trt["trt_profile_min_shapes"] == "input:1x3x256x256"
    assert trt["trt_profile_opt_shapes"] == "input:4x3x1024x1024"
    assert trt["trt_profile_max_shapes"] == "input:4x3x1024x1024"
    # no TensorRT libraries: CUDA; device=cuda: never TensorRT; device=cpu: CPU only
    assert [p for p, _ in select_providers(available=ALL, cuda=True, tensorrt=False)] == [
        CUDA,
        CPU,
    ]
    assert [p for p, _ in select_providers("cuda", available=ALL, cuda=True, tensorrt=True)] == [
        CUDA,
        CPU,
    ]
    assert [p for p, _ in select_providers("cpu", available=ALL, cuda=True)] == [CPU]
    with pytest.raises(ConfigError, match="TensorRT is not installed"):
        select_providers("tensorrt", available=ALL, cuda=True, tensorrt=False)
    with pytest.raises(ConfigError, match="no CUDA provider"):
        select_providers("cuda", available=[CPU], cuda=True)
    with pytest.raises(ConfigError, match="not one of"):
        select_providers("tpu")


def test_session_options() -> None:
    so = session_options(threads=1)
    assert so.log_severity_level == 3 and so.intra_op_num_threads == 1
    import onnxruntime as ort

    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # by default ORT uses as many threads as torch: one setting for both backends
    assert session_options().intra_op_num_threads == torch.get_num_threads()


# ---------------------------------------------------------------------------- one path
class Recorder:
    """Stands in for a translator's backend and records the input shapes it is given."""

    def __init__(self, inner: object) -> None:
        self.inner, self.shapes = inner, []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.inner(x)


def images(seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(45, 29), (32, 32), (45, 29), (70, 40), (45, 29)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)) for w, h in sizes]


def test_both_backends_share_one_path(run_and_onnx: tuple[Path, Path]) -> None:
    """Same pre/post-processing, padding, tiling and batching on either backend."""
    folder, onnx_path = run_and_onnx
    kw = {"device": "cpu", "batch_size": 2}
    on_torch = Translator.from_checkpoint(folder, **kw)
    on_onnx = Translator.from_onnx(onnx_path, **kw)
    for tile_size in (0, 64):
        on_torch.tile_size = on_onnx.tile_size = tile_size
        outs = [t(images()) for t in (on_torch, on_onnx)]
        for a, b, src in zip(*outs, images(), strict=True):
            assert a.size == b.size == src.size
            diff = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max()
            assert diff <= 1


def test_same_size_images_are_batched_and_order_is_kept(run_and_onnx: tuple[Path, Path]) -> None:
    folder, _ = run_and_onnx
    translator = Translator.from_checkpoint(folder, device="cpu", batch_size=2)
    sizes = [im.size for im in images()]
    assert translator.batches(sizes) == [[0, 2], [4], [1], [3]]
    recorder = translator.backend = Recorder(translator.backend)
    batched = translator(images())
    assert sorted(s[0] for s in recorder.shapes) == [1, 1, 1, 2]
    one_by_one = [translator(im)[0] for im in images()]
    for a, b in zip(batched, one_by_one, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("kind", ["torch", "onnx"])
def test_one_translator_serves_many_threads(run_and_onnx: tuple[Path, Path], kind: str) -> None:
    """What the HTTP service does: one Translator, called from worker threads at once."""
    folder, onnx_path = run_and_onnx
    translator = (
        Translator.from_checkpoint(folder, device="cpu")
        if kind == "torch"
        else Translator.from_onnx(onnx_path, device="cpu", threads=1)
    )
    inputs = images(1) * 2
    expected = [np.asarray(translator(im)[0]) for im in inputs]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda im: np.asarray(translator(im)[0]), inputs))
    for a, b in zip(expected, got, strict=True):
        assert np.array_equal(a, b)


def test_backend_size_limit_forces_tiles(run_and_onnx: tuple[Path, Path]) -> None:
    """A TensorRT engine only takes shapes inside its profile: larger inputs are tiled at the
    profile's maximum, and batches are cut to its batch limit."""
    folder, _ = run_and_onnx
    translator = Translator.from_checkpoint(folder, device="cpu", tile_size=0)
    recorder = translator.backend = Recorder(translator.backend)
    recorder.max_side, recorder.max_batch = 64, 1  # as an OnnxBackend on TensorRT sets them
    y = translator.translate_tensor(torch.rand(2, 3, 100, 150) * 2 - 1)
    assert y.shape == (2, 3, 100, 150)
    shapes = recorder.shapes
    assert all(s[0] == 1 and max(s[2:]) <= 64 for s in shapes) and len(shapes) > 2
    small = translator.translate_tensor(torch.rand(3, 3, 40, 40) * 2 - 1)  # untiled, batch cut
    assert small.shape == (3, 3, 40, 40) and [s[0] for s in shapes[-3:]] == [1, 1, 1]


def test_torch_backend_bf16_autocast(run_and_onnx: tuple[Path, Path]) -> None:
    folder, _ = run_and_onnx
    fp32 = Translator.from_checkpoint(folder, device="cpu")
    bf16 = Translator.from_checkpoint(folder, device="cpu", amp="bf16")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    y = bf16.translate_tensor(x)
    assert y.dtype == torch.float32 and (y - fp32.translate_tensor(x)).abs().max() < 0.1
    with pytest.raises(ConfigError, match="fp16 inference needs a CUDA device"):
        Translator.from_checkpoint(folder, device="cpu", amp="fp16")
    assert backends.TorchBackend.kind == "torch"
