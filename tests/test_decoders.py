"""Camera decoders on the bundled videos: PyAV reads the frames OpenCV reads, seeks to the same
frame, reports the same fps and frame count; NVDEC without a GPU fails in one line; webcams are
OpenCV only.

PyAV and OpenCV convert YUV to BGR with their own FFmpeg builds, so images are compared with a
bound on the mean absolute difference (0-255 scale): measured 0.0 on both videos (the same
swscale conversion), bound 1.0 (a different rounding or chroma filter stays below it). Since
neighbouring frames of the terrace video differ by as little as 0.1, frame identity is checked
separately: each PyAV frame must be closest to the OpenCV frame of the same index.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pipeline.config import CameraConfig, ConfigError, load_config
from pipeline.decoders import PyAvCapture, decoder_failure, open_capture
from pipeline.redis_server import free_tcp_port
from pipeline.sources import CameraSource, FrameGatherer, SourceState
from tests.conftest import ASSETS

pytest.importorskip("av")

TERRACE = ASSETS / "videos" / "epfl_terrace1-c0.mp4"
VTEST = ASSETS / "videos" / "vtest.avi"
VIDEOS = [pytest.param(TERRACE, id="terrace-mp4"), pytest.param(VTEST, id="vtest-avi")]
MAX_MEAN_ABSOLUTE_DIFFERENCE = 1.0
"""Per pixel and channel, 0-255 scale; measured 0.0 on both bundled videos."""


def mean_absolute_difference(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.abs(first.astype(np.int16) - second.astype(np.int16)).mean())


def opencv_frames(path: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames as OpenCV reads them, BGR uint8 (height, width, 3)."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    for _ in range(count):
        ok, image = capture.read()
        assert ok
        frames.append(image)
    capture.release()
    return frames


def nearest_index(image: np.ndarray, candidates: list[np.ndarray]) -> int:
    return int(np.argmin([mean_absolute_difference(image, other) for other in candidates]))


def run_to_end(sources: list[CameraSource], camera: CameraConfig) -> CameraSource:
    """Start a source on ``camera`` and wait (5 s at most) until it has finished."""
    source = CameraSource(camera)
    sources.append(source)
    source.start()
    deadline = time.monotonic() + 5.0
    while not source.finished:
        assert time.monotonic() < deadline, f"source still {source.state}"
        time.sleep(0.005)
    return source


@pytest.mark.parametrize("path", VIDEOS)
def test_pyav_frames_equal_opencv_frames(path: Path):
    count = 30
    expected = opencv_frames(path, count + 1)
    capture = PyAvCapture(str(path))
    assert capture.isOpened() and capture.open_error == ""
    images = []
    for _ in range(count):
        ok, image = capture.read()
        assert ok and image is not None
        images.append(image)
    capture.release()
    for index, image in enumerate(images):
        reference = expected[index]
        assert image.shape == reference.shape and image.dtype == np.uint8
        assert image.flags.c_contiguous
        difference = mean_absolute_difference(image, reference)
        assert difference <= MAX_MEAN_ABSOLUTE_DIFFERENCE, f"frame {index}: {difference:.3f}"
        neighbours = expected[max(0, index - 1) : index + 2]
        assert nearest_index(image, neighbours) == min(index, 1), f"frame {index} out of order"


@pytest.mark.parametrize("path", VIDEOS)
def test_seek_lands_on_the_frame_opencv_seeks_to(path: Path):
    targets = [0, 1, 37, 101]
    sequential = opencv_frames(path, max(targets) + 2)
    opencv = cv2.VideoCapture(str(path))
    capture = PyAvCapture(str(path))
    for target in [*targets, 7]:  # seeking backwards too
        assert opencv.set(cv2.CAP_PROP_POS_FRAMES, target)
        assert capture.set(cv2.CAP_PROP_POS_FRAMES, target)
        (_, expected), (ok, image) = opencv.read(), capture.read()
        assert ok and image is not None
        difference = mean_absolute_difference(image, expected)
        assert difference <= MAX_MEAN_ABSOLUTE_DIFFERENCE, f"seek {target}: {difference:.3f}"
        first = max(0, target - 1)
        assert first + nearest_index(image, sequential[first : target + 2]) == target
        ok, following = capture.read()  # reading goes on from the frame after
        assert ok and following is not None
        assert first + nearest_index(following, sequential[first : target + 2]) == target + 1
    assert not capture.set(cv2.CAP_PROP_POS_FRAMES, 10**6)  # past the end
    assert capture.read() == (False, None)
    opencv.release()
    capture.release()


@pytest.mark.parametrize("path", VIDEOS)
def test_fps_and_frame_count_agree_with_opencv(path: Path):
    opencv = cv2.VideoCapture(str(path))
    capture = PyAvCapture(str(path))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(opencv.get(cv2.CAP_PROP_FPS))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == opencv.get(cv2.CAP_PROP_FRAME_COUNT)
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0
    opencv.release()
    capture.release()


def test_missing_file_is_not_opened(tmp_path: Path):
    capture = PyAvCapture(str(tmp_path / "absent.mp4"))
    assert not capture.isOpened()
    assert "No such file" in capture.open_error
    assert decoder_failure(capture) == ""  # the video is the problem, not the decoder
    assert capture.read() == (False, None)
    assert not capture.set(cv2.CAP_PROP_POS_FRAMES, 5)
    capture.release()


def test_open_capture_picks_the_configured_decoder():
    for decoder, kind in (("opencv", cv2.VideoCapture), ("pyav", PyAvCapture)):
        capture = open_capture(CameraConfig(id=0, uri=str(TERRACE), decoder=decoder))
        assert isinstance(capture, kind) and capture.isOpened()
        capture.release()


def test_pyav_source_delivers_the_frames_of_the_opencv_source(started: list[CameraSource]):
    delivered = {}
    for decoder in ("opencv", "pyav"):
        camera = CameraConfig(
            id=0, uri=str(TERRACE), start_seconds=2.0, end_seconds=3.0, decoder=decoder
        )
        source = CameraSource(camera)
        started.append(source)
        source.start()
        gatherer = FrameGatherer([source])
        frames = []
        while tick := gatherer.gather():
            frames += tick
        assert source.state is SourceState.ENDED and source.error == ""
        delivered[decoder] = frames
    opencv, pyav = delivered["opencv"], delivered["pyav"]
    assert len(pyav) == len(opencv) == 25
    assert [frame.frame_index for frame in pyav] == [frame.frame_index for frame in opencv]
    for ours, theirs in zip(pyav, opencv, strict=True):
        difference = mean_absolute_difference(ours.image, theirs.image)
        assert difference <= MAX_MEAN_ABSOLUTE_DIFFERENCE, f"frame {ours.frame_index}"


def skip_if_nvdec_starts() -> None:
    capture = PyAvCapture(str(TERRACE), nvdec=True)
    opened = capture.isOpened()
    capture.release()
    if opened:
        pytest.skip("a CUDA device is present: NVDEC starts")


def assert_one_nvdec_error_line(caplog: pytest.LogCaptureFixture, camera_id: int) -> None:
    records = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(records) == 1, [record.getMessage() for record in records]
    record = records[0]
    message = record.getMessage()
    assert record.exc_info is None and "\n" not in message and "Traceback" not in message
    assert message.startswith(f"camera {camera_id} (cam{camera_id}): NVDEC could not start")
    assert "(PyAV: " in message  # PyAV's reason, e.g. "PermissionError: Operation not permitted"
    assert "decoder: pyav" in message and "decoder: opencv" in message


def test_nvdec_without_a_gpu_fails_the_file_source_in_one_line(
    started: list[CameraSource], caplog: pytest.LogCaptureFixture
):
    skip_if_nvdec_starts()
    caplog.set_level(logging.INFO)
    camera = CameraConfig(id=5, uri=str(TERRACE), decoder="nvdec")
    source = run_to_end(started, camera)
    assert source.state is SourceState.FAILED
    assert source.error.startswith("NVDEC could not start (PyAV: ")
    assert source.counters.frames_read == 0
    assert_one_nvdec_error_line(caplog, 5)


def test_nvdec_without_a_gpu_fails_a_stream_instead_of_reconnecting(
    started: list[CameraSource], caplog: pytest.LogCaptureFixture
):
    skip_if_nvdec_starts()
    caplog.set_level(logging.INFO)
    camera = CameraConfig(id=6, uri=f"rtsp://127.0.0.1:{free_tcp_port()}/cam", decoder="nvdec")
    source = run_to_end(started, camera)
    assert source.state is SourceState.FAILED and source.counters.reconnects == 0
    assert_one_nvdec_error_line(caplog, 6)


def test_pyav_stream_that_is_down_is_retried(started: list[CameraSource]):
    camera = CameraConfig(id=7, uri=f"rtsp://127.0.0.1:{free_tcp_port()}/cam", decoder="pyav")
    source = CameraSource(camera)
    started.append(source)
    source.start()
    deadline = time.monotonic() + 5.0
    while source.state is not SourceState.RECONNECTING:
        assert time.monotonic() < deadline, f"source still {source.state}"
        time.sleep(0.005)
    assert source.error.startswith("cannot open rtsp://127.0.0.1:")


@pytest.mark.gpu
def test_nvdec_frames_equal_opencv_frames():
    expected = opencv_frames(TERRACE, 10)
    capture = PyAvCapture(str(TERRACE), nvdec=True)
    assert capture.isOpened(), capture.open_error
    for index, reference in enumerate(expected):
        ok, image = capture.read()
        assert ok and image is not None and image.shape == reference.shape
        difference = mean_absolute_difference(image, reference)
        assert difference <= MAX_MEAN_ABSOLUTE_DIFFERENCE, f"frame {index}: {difference:.3f}"
    assert capture.set(cv2.CAP_PROP_POS_FRAMES, 3)
    ok, image = capture.read()
    assert ok and nearest_index(image, expected) == 3
    capture.release()


def test_webcam_with_another_decoder_is_a_one_line_config_error(tmp_path: Path):
    raw = {
        "cameras": [{"id": 2, "uri": "0", "decoder": "nvdec"}],
        "detector": {"weights": str(ASSETS / "weights" / "yolov8_person_hfd.pt")},
    }
    path = tmp_path / "cams.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert "cameras.0.decoder" in message and "camera 2 is a webcam" in message
    assert "set decoder: opencv" in message
    assert CameraConfig(id=2, uri="0").decoder == "opencv"  # the default is fine
