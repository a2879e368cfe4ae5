"""Calibration clips (files, batching, none is an error, mining from real video) and the
detector's exports."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from engines import build as engine_build
from engines import detector_export
from engines.calibration import (
    MissingCalibrationClipsError,
    calibration_batches,
    calibration_batches_for,
    load_clips,
    save_crops,
)
from engines.detector_export import (
    choose_detector_backend,
    detector_export_path,
    export_detector,
)
from engines.export_onnx import ExportedEncoderMetadata
from pipeline.config import DetectorConfig
from reid_models.clip_input import crops_to_clips
from tests.conftest import ASSETS
from tools.calibration_clips import mine_clips

BUNDLED_DETECTOR = DetectorConfig().weights


def test_crops_become_the_encoder_contract(tmp_path: Path) -> None:
    crops = np.zeros((2, 3, 4, 2, 3), dtype=np.uint8)
    crops[..., 0] = 255  # blue in BGR
    save_crops(tmp_path / "clips.npz", crops)
    clips = load_clips(tmp_path / "clips.npz")
    assert clips.shape == (2, 3, 3, 4, 2) and clips.dtype == np.float32
    assert np.all(clips[:, :, 2] == 1.0) and np.all(clips[:, :, :2] == 0.0)  # RGB: blue last
    np.testing.assert_array_equal(clips, crops_to_clips(crops))
    np.save(tmp_path / "float.npy", clips)
    np.testing.assert_array_equal(load_clips(tmp_path / "float.npy"), clips)
    with pytest.raises(ValueError, match="uint8"):
        save_crops(tmp_path / "bad.npz", clips)


def test_calibration_batches_are_full_and_cover_every_clip() -> None:
    clips = np.arange(5, dtype=np.float32).reshape(5, 1, 1, 1, 1)
    batches = list(calibration_batches(clips, 2))
    assert [b.shape[0] for b in batches] == [2, 2, 2]
    assert [float(v) for b in batches for v in b.ravel()] == [0, 1, 2, 3, 4, 0]


def test_int8_without_clips_is_an_error_saying_how_to_make_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metadata = cast(
        ExportedEncoderMetadata,
        types.SimpleNamespace(
            clip_length=4, input_height=8, input_width=4, input_format="float32_rgb"
        ),
    )
    with pytest.raises(MissingCalibrationClipsError, match=r"python -m tools\.calibration_clips"):
        calibration_batches_for(metadata, 2, None)
    with pytest.raises(FileNotFoundError, match=r"missing\.npz"):
        calibration_batches_for(metadata, 2, tmp_path / "missing.npz")
    crops = np.zeros((3, 4, 8, 4, 3), dtype=np.uint8)
    save_crops(tmp_path / "clips.npz", crops)
    batches = list(calibration_batches_for(metadata, 2, tmp_path / "clips.npz"))
    assert [batch.shape for batch in batches] == [(2, 4, 3, 8, 4)] * 2
    # the command stops before exporting anything, with the same one line
    assert engine_build.main(["--model", "tp", "--precision", "int8"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--calibration-clips" in error


@pytest.mark.slow
def test_mining_finds_real_person_clips() -> None:
    video = ASSETS / "videos" / "vtest.avi"
    crops = mine_clips([video], 4, (256, 128), max_clips=4, max_frames_per_video=200)
    assert crops.shape[1:] == (4, 256, 128, 3) and crops.dtype == np.uint8 and len(crops) >= 1
    assert crops.std() > 10  # real image content, not padding


def test_detector_exports_go_to_the_cache_not_assets(tmp_path: Path) -> None:
    onnx_path = detector_export_path(BUNDLED_DETECTOR, "onnx", 416, cache_dir=tmp_path)
    engine_path = detector_export_path(BUNDLED_DETECTOR, "tensorrt", 416, cache_dir=tmp_path)
    assert onnx_path.suffix == ".onnx" and engine_path.suffix == ".engine"
    assert tmp_path in onnx_path.parents and ASSETS not in onnx_path.parents
    assert onnx_path.parent != engine_path.parent
    with pytest.raises(ValueError, match="detector backend"):
        detector_export_path(BUNDLED_DETECTOR, "openvino", 416, cache_dir=tmp_path)


def test_detector_tensorrt_without_tensorrt_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    from engines import detector_export

    monkeypatch.setattr(detector_export, "module_available", lambda name: False)
    with pytest.raises(ImportError, match="needs TensorRT"):
        export_detector(BUNDLED_DETECTOR, "tensorrt", 416, device="cuda", cache_dir=tmp_path)


def test_detector_backend_defaults_to_auto() -> None:
    assert DetectorConfig().backend == "auto"
    with pytest.raises(ValueError):
        DetectorConfig(backend="openvino")


@pytest.mark.parametrize(
    ("device", "installed", "expected"),
    [
        ("cpu", {"onnx", "onnxruntime", "tensorrt"}, "onnx"),
        ("cpu", {"onnxruntime"}, "torch"),
        ("cuda", {"onnx", "onnxruntime", "tensorrt"}, "tensorrt"),
        ("cuda:1", {"onnx", "onnxruntime"}, "torch"),
    ],
)
def test_auto_detector_backend_follows_the_device_and_what_is_installed(
    monkeypatch: pytest.MonkeyPatch, device: str, installed: set[str], expected: str
) -> None:
    monkeypatch.setattr(detector_export, "module_available", lambda name: name in installed)
    backend, reason = choose_detector_backend(device)
    assert backend == expected and reason


def test_auto_detector_falls_back_to_torch_when_the_export_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from pipeline import detect

    def failing_export(*arguments: object, **options: object) -> Path:
        raise RuntimeError("exporter broke")

    monkeypatch.setattr(detector_export, "export_detector", failing_export)
    monkeypatch.setattr(detector_export, "module_available", lambda name: True)
    with caplog.at_level("WARNING"):
        detector = detect.PersonDetector(DetectorConfig(weights=BUNDLED_DETECTOR))
    assert detector.backend == "torch" and "exporter broke" in caplog.text
    with pytest.raises(RuntimeError, match="exporter broke"):
        detect.PersonDetector(DetectorConfig(weights=BUNDLED_DETECTOR, backend="onnx"))


def test_onnx_detector_finds_the_same_boxes_as_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cv2

    from pipeline.detect import PersonDetector
    from pipeline.records import Frame

    monkeypatch.setenv("CROSSCAM_CACHE_DIR", str(tmp_path))
    frames = []
    for camera in (0, 1):
        capture = cv2.VideoCapture(str(ASSETS / "videos" / f"epfl_terrace1-c{camera}.mp4"))
        capture.set(cv2.CAP_PROP_POS_FRAMES, 1500)
        ok, image = capture.read()
        capture.release()
        assert ok
        frames.append(Frame(camera, 1500, 60.0, image, 0.0))
    weights = BUNDLED_DETECTOR
    torch_results = PersonDetector(DetectorConfig(weights=weights, backend="torch")).detect(frames)
    onnx_detector = PersonDetector(DetectorConfig(weights=weights))  # auto: onnx on the CPU
    assert onnx_detector.backend == "onnx"
    onnx_results = onnx_detector.detect(frames)
    assert list(tmp_path.glob("detector/*/onnx-416/*.onnx"))
    for expected, exported in zip(torch_results, onnx_results, strict=True):
        assert len(expected.detections) == len(exported.detections) > 0
        np.testing.assert_allclose(exported.detections.xyxy, expected.detections.xyxy, atol=0.5)
