"""The pipelined loop: detection ahead of the loop on its own thread (``pipeline/stages.py``),
and a run of each loop on a bundled video giving the same MTMC output."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from pipeline.config import CrosscamConfig
from pipeline.records import Frame, FrameDetections
from pipeline.redis_server import EmbeddedRedis
from pipeline.stages import DetectionAhead
from tests.conftest import ASSETS


def frame(camera_id: int, index: int) -> Frame:
    return Frame(camera_id, index, index / 10.0, np.zeros((4, 4, 3), np.uint8), time.monotonic())


def detect(frames: list[Frame]) -> list[FrameDetections]:
    return [FrameDetections(item, sv.Detections.empty()) for item in frames]


class Batches:
    """``gather``: batches of two cameras' frames, then nothing (the cameras ended)."""

    def __init__(self, count: int) -> None:
        self.remaining = [[frame(0, index), frame(1, index)] for index in range(count)]
        self.gathered = 0

    def gather(self) -> list[Frame]:
        if not self.remaining:
            return []
        self.gathered += 1
        return self.remaining.pop(0)


def keys(batch: list[FrameDetections] | None) -> list[tuple[int, int]]:
    assert batch is not None
    return [(item.camera_id, item.frame_index) for item in batch]


def test_batches_come_in_gathering_order_then_a_pause():
    batches = Batches(5)
    ahead = DetectionAhead(batches.gather, detect, lambda: False, depth=2).start()
    try:
        received = [keys(ahead.next()) for _ in range(5)]
        assert received == [[(0, index), (1, index)] for index in range(5)]
        assert ahead.next() is None
    finally:
        ahead.close()


def test_detection_runs_ahead_of_the_loop_but_at_most_depth_batches():
    batches = Batches(10)
    detected = threading.Event()

    def slow_detect(frames: list[Frame]) -> list[FrameDetections]:
        detected.set()
        return detect(frames)

    ahead = DetectionAhead(batches.gather, slow_detect, lambda: False, depth=2).start()
    try:
        assert detected.wait(timeout=5.0)  # before the loop asked for anything
        time.sleep(0.3)
        # two batches wait in the queue, a third is detected and waits for room
        assert batches.gathered == 3
        assert keys(ahead.next()) == [(0, 0), (1, 0)]
        deadline = time.monotonic() + 5.0
        while batches.gathered < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert batches.gathered == 4
    finally:
        ahead.close()


def test_an_interruption_pauses_behind_the_detected_batches_until_resumed():
    batches = Batches(6)
    interrupted = threading.Event()

    def gather() -> list[Frame]:
        gathered = batches.gather()
        if batches.gathered == 2:
            interrupted.set()  # e.g. a reload request during the second gather
        return gathered

    ahead = DetectionAhead(gather, detect, interrupted.is_set, depth=4).start()
    try:
        assert keys(ahead.next())[0] == (0, 0)
        assert keys(ahead.next())[0] == (0, 1)
        assert ahead.next() is None
        time.sleep(0.2)
        assert batches.gathered == 2  # nothing gathered while paused
        interrupted.clear()
        ahead.resume()
        assert [keys(ahead.next())[0] for _ in range(4)] == [(0, 2), (0, 3), (0, 4), (0, 5)]
        assert ahead.next() is None
    finally:
        ahead.close()


def test_a_detector_error_is_raised_in_the_loop():
    def failing(frames: list[Frame]) -> list[FrameDetections]:
        raise RuntimeError("detector exploded")

    ahead = DetectionAhead(Batches(3).gather, failing, lambda: False, depth=2).start()
    try:
        with pytest.raises(RuntimeError, match="exploded"):
            ahead.next()
    finally:
        ahead.close()


def test_close_returns_while_the_queue_is_full():
    ahead = DetectionAhead(Batches(100).gather, detect, lambda: False, depth=1).start()
    time.sleep(0.2)
    started = time.monotonic()
    ahead.close()
    assert time.monotonic() - started < 2.0
    assert ahead.next() is None


def run_terrace(directory: Path, pipelined: bool) -> str:
    """Four seconds of both terrace cameras at 5 fps through the whole pipeline; the MTMC file."""
    from pipeline.runner import Pipeline

    directory.mkdir()
    config = CrosscamConfig.model_validate(
        {
            "cameras": [
                {
                    "id": camera_id,
                    "uri": str(ASSETS / "videos" / f"epfl_terrace1-c{camera_id}.mp4"),
                    "fps_cap": 5,
                    "start_seconds": 12,
                    "end_seconds": 16,
                }
                for camera_id in (0, 1)
            ],
            "detector": {"image_size": 320},
            "encoder": {"backend": "onnxruntime"},
            "clips": {"refresh_seconds": 1.0, "min_frames": 3},
            "outputs": {"run_directory": str(directory), "save_mtmc": str(directory / "out.mtmc")},
            "metrics": {"enabled": False},
            "stages": {"pipelined": pipelined},
        }
    )
    with EmbeddedRedis(directory / "redis") as server:
        result = Pipeline(config, server.url, "stages-test", directory).run()
    assert result.totals.frames == 40 and result.totals.clips_encoded > 0
    return (directory / "out.mtmc").read_text()


def test_pipelined_and_serial_loops_write_the_same_mtmc_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import pipeline.runner

    detectors: list[object] = []
    engines: list[object] = []

    def loaded_once(loaded: list[object], load: Callable[..., object]) -> Callable[..., object]:
        def load_or_reuse(*arguments: object) -> object:
            if not loaded:
                loaded.append(load(*arguments))
            return loaded[0]

        return load_or_reuse

    # the second run reuses the first one's models (loading them is most of a short run)
    detector_class = pipeline.runner.PersonDetector
    monkeypatch.setattr(pipeline.runner, "PersonDetector", loaded_once(detectors, detector_class))
    load_engine = pipeline.runner.load_encoder_engine
    monkeypatch.setattr(pipeline.runner, "load_encoder_engine", loaded_once(engines, load_engine))
    serial = run_terrace(tmp_path / "serial", pipelined=False)
    pipelined = run_terrace(tmp_path / "pipelined", pipelined=True)
    assert serial.count("\n") > 30
    assert pipelined == serial
