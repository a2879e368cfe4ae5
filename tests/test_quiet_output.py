"""Nothing but crosscam's own lines (issue 15 item 10): an unreachable RTSP camera gives one
warning and no FFmpeg/OpenCV lines on stderr (so ``--log-format json`` stays JSON), ultralytics
prints nothing on stdout, and a box without an identity reads as pending, not as ``t0``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import supervision as sv

from pipeline.records import Frame, FrameDetections
from pipeline.redis_server import EmbeddedRedis
from pipeline.visualize import AnnotatedVideoWriter, box_label
from tests.conftest import ASSETS, REPOSITORY_ROOT
from tests.rtsp_server import free_port
from tests.test_operations import write_config


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "redis") as server:
        yield server


def test_unreachable_camera_leaves_stderr_json_and_stdout_free_of_library_lines(
    tmp_path: Path,
    redis_server: EmbeddedRedis,
) -> None:
    camera = {"id": 0, "uri": f"rtsp://127.0.0.1:{free_port()}/never"}
    config = write_config(tmp_path, [camera], max_seconds=8)
    completed = subprocess.run(
        [
            sys.executable,
            "run.py",
            "--quiet",
            "--log-format",
            "json",
            "--streams",
            str(config),
            "--redis-url",
            redis_server.url,
            "--set",
            f"metrics.port={free_port()}",
            "--set",
            "encoder.backend=onnxruntime",
        ],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 3, completed.stderr[-3000:]
    records: list[dict[str, Any]] = []
    for line in completed.stderr.splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise AssertionError(f"not a JSON log line on stderr: {line!r}") from None
    camera_warnings = [
        record
        for record in records
        if record["level"] == "WARNING" and record["message"].startswith("camera 0")
    ]
    assert len(camera_warnings) == 1, camera_warnings  # the retries are debug lines
    assert "Loading" not in completed.stdout and "ONNX Runtime" not in completed.stdout
    assert "Ultralytics" not in completed.stdout


def test_box_labels_say_pending_until_a_track_has_an_identity() -> None:
    assert box_label(7, 3) == "id 7"
    assert box_label(-1, 0) == "t0 pending"


def test_annotated_video_draws_pending_and_identity_labels(tmp_path: Path) -> None:
    capture = cv2.VideoCapture(str(ASSETS / "videos" / "epfl_terrace1-c0.mp4"))
    ok, image = capture.read()
    capture.release()
    assert ok
    frame = Frame(camera_id=0, frame_index=0, timestamp=0.0, image=image, captured_at=0.0)
    detections = sv.Detections(
        xyxy=np.asarray([[10, 10, 60, 160], [100, 20, 150, 170]], dtype=np.float32),
        confidence=np.asarray([0.9, 0.8], dtype=np.float32),
        class_id=np.zeros(2, dtype=np.int64),
        tracker_id=np.asarray([0, 1]),
    )
    writer = AnnotatedVideoWriter(tmp_path, {0: 25.0})
    drawn: list[list[str]] = []
    annotate = writer._labels.annotate

    def recording_annotate(scene: Any, detections: Any, labels: list[str]) -> Any:
        drawn.append(list(labels))
        return annotate(scene, detections, labels=labels)

    writer._labels.annotate = recording_annotate  # type: ignore[method-assign]
    identities = {(0, 1): 4}
    writer.update(
        FrameDetections(frame=frame, detections=detections),
        lambda camera, track: identities.get((camera, track), -1),
    )
    writer.close()
    assert drawn == [["t0 pending", "id 4"]]
    assert (tmp_path / "camera_0.mp4").stat().st_size > 0
