"""TensorRT build and runtime paths against a fake ``tensorrt`` module (tests/fake_tensorrt.py).

No real TensorRT here: these tests pin what ``engines`` asks TensorRT for (network and builder
flags, profile shapes, memory pool, cache keys and cache hits, calibrator protocol, parser and
build errors, per-batch input shapes and tensor addresses) and check the data that flows
through bound addresses on CPU tensors. The CUDA stream path runs only on a GPU machine.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engines.base import EngineSpec, load_engine
from engines.export_onnx import export_encoder, read_onnx_metadata
from engines.tensorrt_build import (
    BatchProfile,
    TensorRTBuildError,
    TensorRTBuildOptions,
    TensorRTUnavailableError,
    build_engine,
    calibration_cache_path,
    engine_cache_key,
    import_tensorrt,
    read_engine_sidecar,
)
from tests.fake_tensorrt import FakeTensorRT, emulate_cuda_on_host, make_fake_tensorrt
from tests.toy_encoders import ToyEncoder, toy_metadata

CLIP_LENGTH = 4
GPU = "Fake GPU 80GB"
SMALL = BatchProfile(min_batch=2, opt_batch=4, max_batch=6)


@pytest.fixture
def trt_on_gpu(monkeypatch: pytest.MonkeyPatch) -> FakeTensorRT:
    """The fake ``tensorrt``, with the real CUDA device of a GPU machine."""
    fake = make_fake_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    return fake


@pytest.fixture
def trt(trt_on_gpu: FakeTensorRT, monkeypatch: pytest.MonkeyPatch) -> FakeTensorRT:
    """The fake ``tensorrt``, with the CUDA calls of the build and runtime emulated on the
    host (no GPU needed)."""
    emulate_cuda_on_host(monkeypatch)
    return trt_on_gpu


@pytest.fixture(scope="module")
def toy_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    encoder = ToyEncoder()
    path = tmp_path_factory.mktemp("trt") / "toy.onnx"
    export_encoder(encoder, path, toy_metadata(encoder, clip_length=CLIP_LENGTH))
    return path


def clips(batch: int, seed: int = 0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    return generator.random((batch, CLIP_LENGTH, 3, 256, 128), dtype=np.float32)


def fake_embeddings(batch: np.ndarray) -> np.ndarray:
    """What the fake engine computes: ``mean(clip) * (d + 1)`` for ``d < 16``."""
    means = batch.reshape(len(batch), -1).mean(axis=1, dtype=np.float64)
    return (means[:, None] * np.arange(1, 17)).astype(np.float32)


def build(onnx_path: Path, cache_dir: Path, precision: str = "fp16", **options: Any) -> Any:
    batches = options.pop("calibration_batches", None)
    return build_engine(
        onnx_path,
        TensorRTBuildOptions(precision=precision, profile=options.pop("profile", SMALL), **options),
        calibration_batches=batches,
        cache_dir=cache_dir,
        gpu=GPU,
        device="cuda",
    )


def test_missing_tensorrt_is_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(TensorRTUnavailableError, match="TensorRT is not installed"):
        import_tensorrt()


def test_fp16_build_sets_flags_profile_and_pool(
    trt: FakeTensorRT, toy_onnx: Path, tmp_path: Path
) -> None:
    files = build(toy_onnx, tmp_path, workspace_bytes=1 << 28)
    record = trt.record
    assert record.network_flags == [0]  # explicit batch is implicit in TensorRT 10
    assert record.builder_flags == {"FP16"}
    assert record.memory_pools == {"WORKSPACE": 1 << 28}
    assert record.profile_shapes == {
        "clips": ((2, 4, 3, 256, 128), (4, 4, 3, 256, 128), (6, 4, 3, 256, 128))
    }
    assert files.engine.exists() and files.engine.parent == tmp_path / "tensorrt"
    sidecar = read_engine_sidecar(files.engine)
    assert sidecar["encoder"] == read_onnx_metadata(toy_onnx).model_dump(mode="json")
    assert sidecar["build"]["key"] == files.key and sidecar["build"]["gpu"] == GPU
    assert sidecar["build"]["tensorrt_version"] == "10.3.0"
    assert sidecar["build"]["precision"] == "fp16"


def test_fp32_sets_no_precision_flag(trt: FakeTensorRT, toy_onnx: Path, tmp_path: Path) -> None:
    build(toy_onnx, tmp_path, "fp32")
    assert trt.record.builder_flags == set()


def test_timing_cache_is_written_and_fed_back(
    trt: FakeTensorRT, toy_onnx: Path, tmp_path: Path
) -> None:
    build(toy_onnx, tmp_path)
    build(toy_onnx, tmp_path, "fp32")
    timing_files = list((tmp_path / "tensorrt").glob("timing-fake-gpu-80gb-trt10.3.0.cache"))
    assert len(timing_files) == 1
    assert trt.record.timing_cache_inputs == [b"", b"+timing"]


def test_cache_key_changes_with_each_part() -> None:
    base = ("a" * 64, GPU, "10.3.0", "fp16", SMALL)
    key = engine_cache_key(*base)
    assert key == engine_cache_key(*base)
    variants = [
        ("b" * 64, GPU, "10.3.0", "fp16", SMALL),
        (base[0], "NVIDIA H100", "10.3.0", "fp16", SMALL),
        (base[0], GPU, "10.4.0", "fp16", SMALL),
        (base[0], GPU, "10.3.0", "int8", SMALL),
        (base[0], GPU, "10.3.0", "fp16", replace(SMALL, max_batch=8)),
    ]
    assert len({engine_cache_key(*variant) for variant in variants} | {key}) == 6


def test_second_build_is_a_cache_hit_unless_forced(
    trt: FakeTensorRT, toy_onnx: Path, tmp_path: Path
) -> None:
    first = build(toy_onnx, tmp_path)
    second = build(toy_onnx, tmp_path)
    assert second == first and trt.record.builds == 1
    build(toy_onnx, tmp_path, force=True)
    assert trt.record.builds == 2
    other = build(toy_onnx, tmp_path, profile=replace(SMALL, opt_batch=3))
    assert other.engine != first.engine and trt.record.builds == 3


def test_parser_errors_are_raised_with_every_message(
    trt: FakeTensorRT, toy_onnx: Path, tmp_path: Path
) -> None:
    trt.parse_errors = ["Unsupported operator: GridSample3D", "Invalid Node - /rru/Gather_1"]
    with pytest.raises(TensorRTBuildError) as raised:
        build(toy_onnx, tmp_path)
    message = str(raised.value)
    assert "could not parse" in message
    assert "Unsupported operator: GridSample3D (node 0, /node_0, op FakeOp" in message
    assert "Invalid Node - /rru/Gather_1 (node 1" in message
    assert not list(tmp_path.glob("tensorrt/*.engine"))


def test_failed_build_reports_tensorrt_errors(
    trt: FakeTensorRT, toy_onnx: Path, tmp_path: Path
) -> None:
    trt.fail_build = True
    with pytest.raises(TensorRTBuildError, match="out of workspace for /conv_7"):
        build(toy_onnx, tmp_path)


def test_int8_calibrates_on_given_clips_then_reuses_the_cache(
    trt: FakeTensorRT, toy_onnx: Path, tmp_path: Path
) -> None:
    batches = [clips(4, seed) for seed in range(5)]
    files = build(
        toy_onnx, tmp_path, "int8", calibration_batches=iter(batches), calibration_batch_count=3
    )
    record = trt.record
    assert record.builder_flags == {"FP16", "INT8"}
    np.testing.assert_allclose(
        record.calibration_batch_means, [float(b.mean()) for b in batches[:3]], rtol=1e-5
    )
    onnx_sha256 = read_engine_sidecar(files.engine)["build"]["onnx_sha256"]
    cache = calibration_cache_path(tmp_path, read_onnx_metadata(toy_onnx), onnx_sha256, 4)
    assert cache.read_bytes() == b"fake-calibration-table"
    assert read_engine_sidecar(files.engine)["build"]["calibration_batches"] == 3
    record.calibration_batch_means.clear()
    build(toy_onnx, tmp_path, "int8", force=True)  # no clips needed: the cache is read
    assert record.calibration_batch_means == [] and record.calibration_cache_reads == 2


def test_int8_without_clips_or_cache_is_refused(
    trt: FakeTensorRT, toy_onnx: Path, tmp_path: Path
) -> None:
    with pytest.raises(TensorRTBuildError, match="calibration clips"):
        build(toy_onnx, tmp_path, "int8")


def test_wrong_calibration_batch_size_fails_the_build(
    trt: FakeTensorRT, toy_onnx: Path, tmp_path: Path
) -> None:
    with pytest.raises(TensorRTBuildError, match="calibration batch of 3 clips, expected 4"):
        build(toy_onnx, tmp_path, "int8", calibration_batches=[clips(3)])


def test_unsupported_versions_and_profiles(
    trt: FakeTensorRT, toy_onnx: Path, tmp_path: Path
) -> None:
    trt.__version__ = "8.6.1"
    with pytest.raises(TensorRTBuildError, match=r"needs 10\.x"):
        build(toy_onnx, tmp_path)
    trt.__version__ = "11.0.0"
    with pytest.raises(TensorRTBuildError, match="strongly typed"):
        build(toy_onnx, tmp_path, "fp16")
    with pytest.raises(ValueError, match="min_batch <= opt_batch"):
        BatchProfile(4, 2, 8)
    recurrent = ToyEncoder(recurrent=True)
    fixed_onnx = tmp_path / "fixed.onnx"
    export_encoder(recurrent, fixed_onnx, toy_metadata(recurrent, "fixed"), parity_batch_sizes=())
    with pytest.raises(ValueError, match="fixed T=4"):
        BatchProfile(clip_lengths=(2, 4, 8)).input_shapes(read_onnx_metadata(fixed_onnx))


def test_runtime_sets_shapes_and_addresses_per_batch(
    trt: FakeTensorRT, toy_onnx: Path, tmp_path: Path
) -> None:
    from engines.tensorrt_backend import TensorRTEngine

    files = build(toy_onnx, tmp_path)
    engine = TensorRTEngine.from_file(files.engine, device="cuda")
    assert (engine.input_name, engine.output_name) == ("clips", "embeddings")
    assert engine.batch_buckets.sizes == (2, 3, 4, 5, 6)
    batch = clips(9)  # 6 + 3 clips: two engine calls
    embeddings = engine.infer(batch)
    np.testing.assert_allclose(embeddings, fake_embeddings(batch), rtol=1e-5)
    record = trt.record
    assert record.input_shapes == [(6, 4, 3, 256, 128), (3, 4, 3, 256, 128)]
    for addresses in record.addresses:
        assert set(addresses) == {"clips", "embeddings"}
        assert addresses["clips"] != addresses["embeddings"] and all(addresses.values())
    assert record.streams == [0, 0]  # the engine's stream (handle 0 when emulated)


def test_runtime_pads_below_the_profile_minimum(
    trt: FakeTensorRT, toy_onnx: Path, tmp_path: Path
) -> None:
    from engines.tensorrt_backend import TensorRTEngine

    engine = TensorRTEngine.from_file(build(toy_onnx, tmp_path).engine, device="cuda")
    batch = clips(1)
    np.testing.assert_allclose(engine.infer(batch), fake_embeddings(batch), rtol=1e-5)
    assert trt.record.input_shapes == [(2, 4, 3, 256, 128)]


def test_runtime_rejects_shapes_outside_the_profile(
    trt: FakeTensorRT, toy_onnx: Path, tmp_path: Path
) -> None:
    import torch

    from engines.tensorrt_backend import TensorRTEngine

    engine = TensorRTEngine.from_file(build(toy_onnx, tmp_path).engine, device="cuda")
    with pytest.raises(ValueError, match="outside the engine's profile"):
        engine.infer_torch(torch.zeros(7, 4, 3, 256, 128))
    with pytest.raises(ValueError, match=r"\(2, 5, 3, 256, 128\) is outside"):
        engine.infer(np.zeros((2, 5, 3, 256, 128), dtype=np.float32))


def test_engine_files_need_their_sidecar_and_valid_bytes(
    trt: FakeTensorRT, toy_onnx: Path, tmp_path: Path
) -> None:
    from engines.tensorrt_backend import TensorRTEngine

    files = build(toy_onnx, tmp_path)
    corrupt = tmp_path / "corrupt.engine"
    corrupt.write_bytes(b"\x00not an engine")
    with pytest.raises(FileNotFoundError, match="sidecar"):
        TensorRTEngine.from_file(corrupt, device="cuda")
    (tmp_path / "corrupt.engine.json").write_text(files.sidecar.read_text())
    with pytest.raises(RuntimeError, match="serialization version mismatch"):
        TensorRTEngine.from_file(corrupt, device="cuda")


def test_backend_needs_a_cuda_device(trt: FakeTensorRT, toy_onnx: Path, tmp_path: Path) -> None:
    from engines.tensorrt_backend import TensorRTEngine

    with pytest.raises(ValueError, match="needs a CUDA device"):
        load_engine("tensorrt", EngineSpec(model="toy", weights=toy_onnx, device="cpu"))
    engine_path = build(toy_onnx, tmp_path).engine
    with pytest.raises(ValueError, match="needs a CUDA device, got 'cpu'"):
        TensorRTEngine.from_file(engine_path, device="cpu")
    with pytest.raises(ValueError, match="build needs a CUDA device, got 'cpu'"):
        build_engine(
            toy_onnx, TensorRTBuildOptions(profile=SMALL), cache_dir=tmp_path, device="cpu"
        )


def test_build_command_without_tensorrt_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engines import build as build_command

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    status = build_command.main(["--model", "tp", "--precision", "fp16"])
    error = capsys.readouterr().err.strip()
    assert status == build_command.EXIT_NO_TENSORRT
    assert len(error.splitlines()) == 1 and "TensorRT is not installed" in error


def test_build_command_exports_then_builds(
    trt: FakeTensorRT,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from engines import build as build_command
    from engines import tensorrt_build
    from reid_models import factory

    monkeypatch.setitem(factory.ENCODER_BUILDERS, "toy", "tests.toy_encoders:build_toy_encoder")
    monkeypatch.setattr(tensorrt_build, "gpu_name", lambda index: GPU)
    arguments = ["--model", "toy", "--precision", "fp16", "--cache-dir", str(tmp_path)]
    arguments += ["--min-batch", "1", "--opt-batch", "16", "--max-batch", "64"]
    assert build_command.main(arguments) == 0
    engine_path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert engine_path.exists() and engine_path.suffix == ".engine"
    assert trt.record.profile_shapes["clips"][2] == (64, 8, 3, 256, 128)
    build_info = json.loads(Path(str(engine_path) + ".json").read_text())["build"]
    assert build_info["profile"]["opt_batch"] == 16


@pytest.mark.gpu
def test_cuda_runtime_uses_a_stream_and_device_tensors(
    trt_on_gpu: FakeTensorRT, toy_onnx: Path, tmp_path: Path
) -> None:
    import torch

    from engines.tensorrt_backend import TensorRTEngine

    trt_on_gpu.read_memory = False  # the fake cannot touch device memory
    engine = TensorRTEngine.from_file(build(toy_onnx, tmp_path).engine, device="cuda")
    outputs = engine.infer_torch(torch.zeros(3, 4, 3, 256, 128, device="cuda"))
    assert outputs.device.type == "cuda" and outputs.shape == (3, 16)
    assert trt_on_gpu.record.streams == [engine.stream.cuda_stream]
    assert engine.infer(clips(2)).shape == (2, 16)
