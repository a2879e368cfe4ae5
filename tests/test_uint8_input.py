"""Graphs that take the camera crops: uint8 BGR ``(batch, T, H, W, 3)``, converted inside.

Parity with the float path on the same crops (ONNX Runtime, torch), the ``input_format``
metadata round trip (a file without it is a float graph), the clip buffer handing its uint8
staging array on unconverted, one-line errors for the wrong dtype, and the TensorRT uint8
input binding against the fake ``tensorrt`` (tests/fake_tensorrt.py).
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from engines.base import EngineSpec, engine_input_format, load_engine
from engines.export_onnx import (
    CROPS_INPUT_NAME,
    METADATA_KEY_PREFIX,
    export_encoder,
    export_named_encoder,
    read_onnx_metadata,
)
from engines.onnxruntime_backend import OnnxRuntimeEngine
from engines.tensorrt_build import BatchProfile, TensorRTBuildOptions, build_engine
from pipeline.clip_batch import ClipBatchBuffer
from pipeline.encode import BatchingEncoder
from reid_models.clip_input import FLOAT_CLIPS, UINT8_CROPS, clips_to_crops, crops_to_clips
from reid_models.factory import build_encoder, describe_encoder
from tests.fake_tensorrt import FakeTensorRT, emulate_cuda_on_host, make_fake_tensorrt
from tests.test_clip_batch import noise_clip
from tests.toy_encoders import ToyEncoder, toy_metadata

CLIP_LENGTH = 4
MAX_ABS_DIFFERENCE = 1e-5
"""Largest embedding element difference, uint8 graph vs float graph on the same crops."""


@pytest.fixture(scope="module")
def toy_graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The toy encoder exported twice: float clips and uint8 crops."""
    encoder = ToyEncoder()
    folder = tmp_path_factory.mktemp("uint8")
    paths = {FLOAT_CLIPS: folder / "float.onnx", UINT8_CROPS: folder / "uint8.onnx"}
    for input_format, path in paths.items():
        export_encoder(
            encoder,
            path,
            toy_metadata(encoder, clip_length=CLIP_LENGTH),
            input_format=input_format,
        )
    return paths


def random_crops(batch: int, clip_length: int = CLIP_LENGTH, seed: int = 0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    return generator.integers(0, 256, (batch, clip_length, 256, 128, 3), dtype=np.uint8)


def test_uint8_graph_matches_the_float_graph_on_the_same_crops(
    toy_graphs: dict[str, Path],
) -> None:
    crops_engine = OnnxRuntimeEngine.from_path(toy_graphs[UINT8_CROPS])
    bound_engine = OnnxRuntimeEngine.from_path(toy_graphs[UINT8_CROPS], io_binding=True)
    clips_engine = OnnxRuntimeEngine.from_path(toy_graphs[FLOAT_CLIPS])
    assert (crops_engine.input_format, clips_engine.input_format) == (UINT8_CROPS, FLOAT_CLIPS)
    for batch, clip_length in ((1, CLIP_LENGTH), (5, CLIP_LENGTH), (3, 2)):  # T is dynamic
        crops = random_crops(batch, clip_length, seed=batch)
        from_clips = clips_engine.infer(crops_to_clips(crops))
        for engine in (crops_engine, bound_engine):
            assert np.abs(engine.infer(crops) - from_clips).max() <= MAX_ABS_DIFFERENCE


def test_a_real_encoder_exported_for_crops_matches_its_float_export(tmp_path: Path) -> None:
    encoder = build_encoder("tp")
    metadata = describe_encoder(encoder, "tp", "osnet_x0_25", clip_length=2)
    engines = {}
    for input_format in (FLOAT_CLIPS, UINT8_CROPS):
        path = tmp_path / f"tp-{input_format}.onnx"
        export_encoder(
            encoder, path, metadata, input_format=input_format, parity_batch_sizes=(1, 2)
        )
        engines[input_format] = OnnxRuntimeEngine.from_path(path)
    crops = random_crops(3, clip_length=2, seed=7)
    from_crops = engines[UINT8_CROPS].infer(crops)
    from_clips = engines[FLOAT_CLIPS].infer(crops_to_clips(crops))
    assert np.abs(from_crops - from_clips).max() <= 1e-4


def test_input_format_round_trips_through_the_file(toy_graphs: dict[str, Path]) -> None:
    metadata = read_onnx_metadata(toy_graphs[UINT8_CROPS])
    assert metadata.input_format == UINT8_CROPS and metadata.input_name == CROPS_INPUT_NAME
    assert metadata.input_shape() == ["batch", "T", 256, 128, 3]
    model = onnx.load(str(toy_graphs[UINT8_CROPS]))
    props = {prop.key: json.loads(prop.value) for prop in model.metadata_props}
    assert props[METADATA_KEY_PREFIX + "input_format"] == UINT8_CROPS
    assert props[METADATA_KEY_PREFIX + "input_dtype"] == "uint8"
    (graph_input,) = model.graph.input
    assert graph_input.name == CROPS_INPUT_NAME
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert read_onnx_metadata(toy_graphs[FLOAT_CLIPS]).input_dtype() == np.float32


def test_a_file_written_before_input_format_is_a_float_graph(
    toy_graphs: dict[str, Path], tmp_path: Path
) -> None:
    model = onnx.load(str(toy_graphs[FLOAT_CLIPS]))
    kept = [
        prop
        for prop in model.metadata_props
        if prop.key.removeprefix(METADATA_KEY_PREFIX) not in ("input_format", "input_dtype")
    ]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    old = tmp_path / "old.onnx"
    onnx.save(model, str(old))
    assert read_onnx_metadata(old).input_format == FLOAT_CLIPS
    engine = OnnxRuntimeEngine.from_path(old)
    assert engine_input_format(engine) == FLOAT_CLIPS
    assert engine.infer(crops_to_clips(random_crops(2))).shape == (2, 16)


def test_the_wrong_dtype_is_a_one_line_error(toy_graphs: dict[str, Path]) -> None:
    crops_engine = OnnxRuntimeEngine.from_path(toy_graphs[UINT8_CROPS])
    clips_engine = OnnxRuntimeEngine.from_path(toy_graphs[FLOAT_CLIPS])
    crops = random_crops(2)
    with pytest.raises(ValueError, match="takes uint8 BGR crops") as float_to_uint8:
        crops_engine.infer(crops_to_clips(crops))
    with pytest.raises(ValueError, match="takes float32 RGB clips") as uint8_to_float:
        clips_engine.infer(crops)
    for error in (float_to_uint8, uint8_to_float):
        assert len(str(error.value).splitlines()) == 1
    with pytest.raises(ValueError, match=r"expected crops \(batch>=1, T, 256, 128, 3\)"):
        crops_engine.infer(np.zeros((2, CLIP_LENGTH, 3, 256, 128), dtype=np.uint8))


def test_torch_backend_converts_crops_on_its_device_the_same_way() -> None:
    from engines.torch_backend import TorchEngine

    crops = random_crops(2)
    float_engine = TorchEngine(ToyEncoder())
    crops_engine = TorchEngine(ToyEncoder(), input_format=UINT8_CROPS)
    assert engine_input_format(crops_engine) == UINT8_CROPS
    np.testing.assert_allclose(
        crops_engine.infer(crops), float_engine.infer(crops_to_clips(crops)), atol=1e-6
    )
    with pytest.raises(ValueError, match="takes uint8 BGR crops"):
        crops_engine.infer(crops_to_clips(crops))
    with pytest.raises(ValueError, match="input_format"):
        TorchEngine(ToyEncoder(), input_format="bgr")  # type: ignore[arg-type]


def test_named_exports_of_crops_graphs_get_their_own_cached_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reid_models import factory

    monkeypatch.setitem(factory.ENCODER_BUILDERS, "toy", "tests.toy_encoders:build_toy_encoder")
    spec = EngineSpec(
        model="toy",
        weights=None,
        options={"cache_dir": str(tmp_path), "clip_length": 2, "input_format": UINT8_CROPS},
    )
    engine = load_engine("onnxruntime", spec)
    assert engine_input_format(engine) == UINT8_CROPS
    (path,) = (tmp_path / "onnx").glob("toy-*-T2-opset17-u8-*.onnx")
    again = export_named_encoder("toy", clip_length=2, cache_dir=tmp_path, input_format=UINT8_CROPS)
    assert again == path
    float_path = export_named_encoder("toy", clip_length=2, cache_dir=tmp_path)
    assert float_path != path and read_onnx_metadata(float_path).input_format == FLOAT_CLIPS


class RecordingEngine:
    """Takes uint8 crops; records each batch it is handed (and its address)."""

    name = "recording"
    input_format = UINT8_CROPS

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(batch)
        return batch.reshape(len(batch), -1)[:, :3].astype(np.float32)


def test_clip_buffer_hands_the_uint8_staging_array_on_unconverted() -> None:
    buffer = ClipBatchBuffer(max_batch=4, input_format=UINT8_CROPS)
    clips = [noise_clip(seed) for seed in range(3)]
    first = buffer.fill(clips)
    assert first.dtype == np.uint8 and first.flags.c_contiguous
    np.testing.assert_array_equal(first, np.stack([clip.crops for clip in clips]))
    second = buffer.fill([noise_clip(seed) for seed in range(10, 14)])
    assert second.ctypes.data == first.ctypes.data and second.shape[0] == 4
    assert buffer.allocations == 1


def test_batching_encoder_feeds_a_uint8_engine_its_crops() -> None:
    engine = RecordingEngine()
    encoder = BatchingEncoder(engine, max_batch=4, max_wait_ms=1.0)
    try:
        clips = [noise_clip(seed) for seed in range(3)]
        encoder.submit(clips)
        embedded = encoder.drain(timeout_seconds=10.0)
    finally:
        encoder.close()
    assert encoder.host_buffer.input_format == UINT8_CROPS
    assert len(embedded) == 3 and all(batch.dtype == np.uint8 for batch in engine.batches)
    assert sum(len(batch) for batch in engine.batches) == 3


def test_pinned_uint8_staging_comes_from_torch_page_locked_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    requests: list[tuple[tuple[int, ...], object, bool]] = []

    class FakeTensor:
        def __init__(self, shape: tuple[int, ...]) -> None:
            self.array = np.empty(shape, dtype=np.uint8)

        def numpy(self) -> np.ndarray:
            return self.array

    def empty(shape: tuple[int, ...], dtype: object, pin_memory: bool) -> FakeTensor:
        requests.append((shape, dtype, pin_memory))
        return FakeTensor(shape)

    fake_torch = types.ModuleType("torch")
    fake_torch.empty = empty  # type: ignore[attr-defined]
    fake_torch.uint8 = "uint8"  # type: ignore[attr-defined]
    fake_torch.float32 = "float32"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    buffer = ClipBatchBuffer(max_batch=3, pinned=True, input_format=UINT8_CROPS)
    clips = [noise_clip(seed) for seed in range(2)]
    filled = buffer.fill(clips)
    np.testing.assert_array_equal(filled, np.stack([clip.crops for clip in clips]))
    assert requests == [((3, 4, 8, 4, 3), "uint8", True)]  # the only allocation: no floats


def test_float_clips_files_calibrate_a_uint8_graph_as_rounded_crops(tmp_path: Path) -> None:
    from engines.calibration import load_clips, save_crops

    crops = random_crops(2, clip_length=2)
    np.testing.assert_array_equal(clips_to_crops(crops_to_clips(crops)), crops)
    crops_file, clips_file = tmp_path / "crops.npz", tmp_path / "clips.npz"
    save_crops(crops_file, crops)
    np.savez(clips_file, clips=crops_to_clips(crops))
    for path in (crops_file, clips_file):
        loaded = load_clips(path, UINT8_CROPS)
        assert loaded.dtype == np.uint8
        np.testing.assert_array_equal(loaded, crops)
    np.testing.assert_array_equal(load_clips(crops_file), crops_to_clips(crops))


@pytest.fixture
def trt(monkeypatch: pytest.MonkeyPatch) -> FakeTensorRT:
    fake = make_fake_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    emulate_cuda_on_host(monkeypatch)
    return fake


SMALL = BatchProfile(min_batch=2, opt_batch=4, max_batch=6)


def build(onnx_path: Path, cache_dir: Path, precision: str = "fp16", **options: Any) -> Any:
    return build_engine(
        onnx_path,
        TensorRTBuildOptions(precision=precision, profile=SMALL),
        cache_dir=cache_dir,
        gpu="Fake GPU",
        device="cuda",
        **options,
    )


def test_tensorrt_engine_binds_a_uint8_input(
    trt: FakeTensorRT, toy_graphs: dict[str, Path], tmp_path: Path
) -> None:
    from engines.tensorrt_backend import TensorRTEngine

    files = build(toy_graphs[UINT8_CROPS], tmp_path)
    assert trt.record.profile_shapes[CROPS_INPUT_NAME][2] == (6, CLIP_LENGTH, 256, 128, 3)
    assert "-u8-" in files.engine.name
    engine = TensorRTEngine.from_file(files.engine, device="cuda")
    assert engine.input_format == UINT8_CROPS and str(engine.input_dtype) == "torch.uint8"
    crops = random_crops(7)  # 6 + 1 (padded to 2): two calls
    means = crops.reshape(len(crops), -1).mean(axis=1, dtype=np.float64)
    expected = (means[:, None] * np.arange(1, 17)).astype(np.float32)  # fake: raw byte means
    np.testing.assert_allclose(engine.infer(crops), expected, rtol=1e-5)
    assert trt.record.input_shapes == [(6, CLIP_LENGTH, 256, 128, 3), (2, CLIP_LENGTH, 256, 128, 3)]
    with pytest.raises(ValueError, match="takes uint8 BGR crops"):
        engine.infer(crops_to_clips(crops))
    with pytest.raises(ValueError, match=r"is torch\.uint8 \(uint8_bgr\), got a torch\.float32"):
        engine.infer_torch(torch.from_numpy(crops_to_clips(crops[:2])))


def test_tensorrt_refuses_an_engine_whose_binding_disagrees_with_its_metadata(
    trt: FakeTensorRT, toy_graphs: dict[str, Path], tmp_path: Path
) -> None:
    from engines.tensorrt_backend import TensorRTEngine

    files = build(toy_graphs[FLOAT_CLIPS], tmp_path)
    sidecar_path = files.sidecar
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["encoder"]["input_format"] = UINT8_CROPS
    sidecar_path.write_text(json.dumps(sidecar))
    with pytest.raises(ValueError, match=r"is torch\.float32 but its metadata says"):
        TensorRTEngine.from_file(files.engine, device="cuda")


def test_tensorrt_int8_calibrates_a_uint8_graph_on_crops(
    trt: FakeTensorRT, toy_graphs: dict[str, Path], tmp_path: Path
) -> None:
    batches = [random_crops(4, seed=seed) for seed in range(2)]
    build(toy_graphs[UINT8_CROPS], tmp_path, "int8", calibration_batches=iter(batches))
    np.testing.assert_allclose(
        trt.record.calibration_batch_means, [float(b.mean()) for b in batches], rtol=1e-6
    )
