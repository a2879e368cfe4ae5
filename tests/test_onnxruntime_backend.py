"""The ONNX Runtime backend on the CPU: parity with torch, IO binding, buckets, input checks."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engines.base import BACKENDS, EngineSpec, load_engine
from engines.buckets import BatchBuckets
from engines.export_onnx import export_encoder
from engines.onnxruntime_backend import OnnxRuntimeEngine
from tests.conftest import REPOSITORY_ROOT
from tests.toy_encoders import ToyEncoder, toy_metadata

CLIP_LENGTH = 4


@pytest.fixture(scope="module")
def toy_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    encoder = ToyEncoder()
    path = tmp_path_factory.mktemp("ort") / "toy.onnx"
    export_encoder(encoder, path, toy_metadata(encoder, clip_length=CLIP_LENGTH))
    return path


@pytest.fixture(scope="module")
def recurrent_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    encoder = ToyEncoder(recurrent=True)
    path = tmp_path_factory.mktemp("ort") / "recurrent.onnx"
    export_encoder(encoder, path, toy_metadata(encoder, "toy_recurrent", CLIP_LENGTH))
    return path


def clips(batch: int, clip_length: int = CLIP_LENGTH, seed: int = 0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    return generator.random((batch, clip_length, 3, 256, 128), dtype=np.float32)


def torch_embeddings(batch: np.ndarray, recurrent: bool = False) -> np.ndarray:
    with torch.inference_mode():
        return ToyEncoder(recurrent=recurrent).eval()(torch.from_numpy(batch)).numpy()


def test_backends_are_registered_lazily() -> None:
    assert BACKENDS["onnxruntime"] == "engines.onnxruntime_backend:OnnxRuntimeEngine"
    assert {"torch", "onnxruntime", "tensorrt", "auto"} <= set(BACKENDS)


def test_importing_engines_imports_no_runtime() -> None:
    code = (
        "import sys, engines, engines.base, engines.auto, engines.build, engines.buckets,"
        " engines.onnxruntime_backend, engines.tensorrt_build, engines.tensorrt_backend,"
        " engines.export_onnx, engines.calibration, engines.detector_export;"
        " loaded = [m for m in ('onnxruntime', 'tensorrt') if m in sys.modules];"
        " sys.exit(f'imported at import time: {loaded}' if loaded else 0)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPOSITORY_ROOT, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr


def test_load_engine_matches_torch(toy_onnx: Path) -> None:
    engine = load_engine("onnxruntime", EngineSpec(model="toy", weights=toy_onnx))
    assert isinstance(engine, OnnxRuntimeEngine)
    assert engine.providers[0] == "CPUExecutionProvider" and not engine.io_binding
    assert engine.metadata.architecture == "toy" and engine.metadata.dynamic_clip_length
    batch = clips(5)
    embeddings = engine.infer(batch)
    assert embeddings.shape == (5, 16) and embeddings.dtype == np.float32
    np.testing.assert_allclose(embeddings, torch_embeddings(batch), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_dynamic_clip_length_graph_takes_other_lengths(toy_onnx: Path) -> None:
    engine = OnnxRuntimeEngine.from_path(toy_onnx)
    batch = clips(2, clip_length=7)
    np.testing.assert_allclose(engine.infer(batch), torch_embeddings(batch), atol=1e-5)


def test_fixed_clip_length_graph_rejects_other_lengths(recurrent_onnx: Path) -> None:
    engine = OnnxRuntimeEngine.from_path(recurrent_onnx)
    assert not engine.metadata.dynamic_clip_length
    batch = clips(3)
    np.testing.assert_allclose(engine.infer(batch), torch_embeddings(batch, True), atol=1e-5)
    with pytest.raises(ValueError, match="T=4"):
        engine.infer(clips(1, clip_length=5))


def test_idle_threads_do_not_spin_unless_asked(toy_onnx: Path) -> None:
    key = "session.intra_op.allow_spinning"
    quiet = OnnxRuntimeEngine.from_path(toy_onnx)
    spinning = OnnxRuntimeEngine.from_path(toy_onnx, allow_spinning=True)
    assert quiet.session.get_session_options().get_session_config_entry(key) == "0"
    assert spinning.session.get_session_options().get_session_config_entry(key) == "1"
    np.testing.assert_array_equal(quiet.infer(clips(2)), spinning.infer(clips(2)))


def test_io_binding_on_cpu_gives_the_same_embeddings(toy_onnx: Path) -> None:
    plain = OnnxRuntimeEngine.from_path(toy_onnx)
    bound = OnnxRuntimeEngine.from_path(toy_onnx, io_binding=True)
    batch = clips(3)
    np.testing.assert_array_equal(bound.infer(batch), plain.infer(batch))


def test_buckets_pad_and_slice(toy_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = load_engine(
        "onnxruntime",
        EngineSpec(model="toy", weights=toy_onnx, options={"batch_buckets": [2, 4]}),
    )
    assert isinstance(engine, OnnxRuntimeEngine)
    shapes: list[tuple[int, ...]] = []
    run = engine.session.run

    def recording_run(names: Any, feeds: dict[str, np.ndarray]) -> Any:
        shapes.append(next(iter(feeds.values())).shape)
        return run(names, feeds)

    monkeypatch.setattr(engine.session, "run", recording_run, raising=False)
    batch = clips(5)
    embeddings = engine.infer(batch)
    assert [shape[0] for shape in shapes] == [4, 2]
    np.testing.assert_allclose(embeddings, torch_embeddings(batch), atol=1e-5)


def test_bad_input_shapes_are_rejected(toy_onnx: Path) -> None:
    engine = OnnxRuntimeEngine.from_path(toy_onnx)
    with pytest.raises(ValueError, match="expected clips"):
        engine.infer(np.zeros((2, CLIP_LENGTH, 3, 128, 64), dtype=np.float32))
    with pytest.raises(ValueError, match="expected clips"):
        engine.infer(np.zeros((0, CLIP_LENGTH, 3, 256, 128), dtype=np.float32))
    float64 = clips(1).astype(np.float64)
    assert engine.infer(float64).dtype == np.float32


def test_cuda_without_the_cuda_provider_says_so(toy_onnx: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(RuntimeError, match="CUDAExecutionProvider"):
        OnnxRuntimeEngine.from_path(toy_onnx, "cuda")


def test_the_file_metadata_wins_over_the_config(
    toy_onnx: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="engines.onnxruntime_backend"):
        engine = load_engine("onnxruntime", EngineSpec(model="tp", weights=toy_onnx))
    assert isinstance(engine, OnnxRuntimeEngine) and engine.metadata.architecture == "toy"
    assert "the file wins" in caplog.text


def test_a_model_name_is_exported_into_the_cache_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reid_models import factory

    monkeypatch.setitem(factory.ENCODER_BUILDERS, "toy", "tests.toy_encoders:build_toy_encoder")
    spec = EngineSpec(
        model="toy", weights=None, options={"cache_dir": str(tmp_path), "clip_length": 2}
    )
    engine = load_engine("onnxruntime", spec)
    assert isinstance(engine, OnnxRuntimeEngine)
    assert list((tmp_path / "onnx").glob("toy-*-T2-*.onnx"))
    batch = clips(2, clip_length=2)
    np.testing.assert_allclose(engine.infer(batch), torch_embeddings(batch), atol=1e-5)


def test_torch_backend_options_keep_embeddings(toy_onnx: Path) -> None:
    from engines.torch_backend import TorchEngine

    batch = clips(3)
    plain = TorchEngine(ToyEncoder())
    variant = TorchEngine(
        ToyEncoder(), precision="fp16", channels_last=True, batch_buckets=BatchBuckets.of([2])
    )
    assert variant.precision == "fp32"  # fp16 autocast is CUDA-only
    np.testing.assert_allclose(variant.infer(batch), plain.infer(batch), atol=1e-5)
    with pytest.raises(ValueError, match="precision"):
        TorchEngine(ToyEncoder(), precision="int8")


def test_channels_last_leaves_3d_convolutions_alone() -> None:
    from engines.torch_backend import TorchEngine

    class Mixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.frames = torch.nn.Conv2d(3, 4, 3)
            self.volume = torch.nn.Conv3d(4, 4, 3, padding=1)

        def forward(self, clips: torch.Tensor) -> torch.Tensor:
            batch, clip_length = clips.shape[:2]
            maps = self.frames(clips.flatten(0, 1)).unflatten(0, (batch, clip_length))
            return self.volume(maps.transpose(1, 2)).mean(dim=(1, 2, 3, 4))[:, None]

    mixed = Mixed()
    engine = TorchEngine(mixed, channels_last=True)
    assert mixed.frames.weight.is_contiguous(memory_format=torch.channels_last)
    assert engine.infer(np.zeros((2, 3, 3, 8, 8), dtype=np.float32)).shape == (2, 1)


@pytest.mark.gpu
def test_cuda_provider_with_io_binding_matches_cpu(toy_onnx: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA provider")
    cpu = OnnxRuntimeEngine.from_path(toy_onnx)
    cuda = OnnxRuntimeEngine.from_path(toy_onnx, "cuda", batch_buckets=BatchBuckets.of([4]))
    assert cuda.providers[0] == "CUDAExecutionProvider" and cuda.io_binding
    batch = clips(3)
    np.testing.assert_allclose(cuda.infer(batch), cpu.infer(batch), atol=1e-4)
