"""MTMC output in the AI City format, resolved to global identities at write time."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import supervision as sv

from pipeline.mtmc import MtmcRecorder
from pipeline.records import Frame, FrameDetections


def tracked(
    camera_id: int, frame_index: int, boxes: list[list[float]], track_ids: list[int] | None
) -> FrameDetections:
    detections = sv.Detections(
        xyxy=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        confidence=np.full(len(boxes), 0.9, dtype=np.float32),
        tracker_id=None if track_ids is None else np.asarray(track_ids, dtype=np.int64),
    )
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    frame = Frame(camera_id, frame_index, frame_index / 25, image, time.monotonic())
    return FrameDetections(frame, detections)


def test_lines_are_sorted_ai_city_rows_of_tracks_with_a_global_id(tmp_path: Path):
    recorder = MtmcRecorder()
    # fed out of order: camera 1 first, frames interleaved
    recorder.update(tracked(1, 7, [[100.2, 50.0, 140.4, 150.0]], [3]))
    recorder.update(tracked(0, 12, [[10.4, 20.6, 50.6, 120.2], [200, 30, 230, 90]], [5, 6]))
    recorder.update(tracked(0, 11, [[12.0, 20.0, 52.0, 119.0], [1, 1, 9, 9]], [5, 8]))
    recorder.update(tracked(1, 3, [[0, 0, 30, 60]], [3]))
    global_ids = {(0, 5): 2, (0, 6): 1, (1, 3): 2}  # track 8 of camera 0 never got an identity

    path = tmp_path / "nested" / "out.txt"
    written = recorder.write(path, lambda camera, track, frame: global_ids.get((camera, track), -1))

    assert path.read_text().splitlines() == [
        "0 2 11 12 20 40 99 -1 -1",
        "0 1 12 200 30 30 60 -1 -1",
        "0 2 12 10 21 40 100 -1 -1",
        "1 2 3 0 0 30 60 -1 -1",
        "1 2 7 100 50 40 100 -1 -1",
    ]
    assert written == 5
    assert path.read_text().endswith("\n")


def test_global_ids_are_resolved_when_writing_so_merges_count(tmp_path: Path):
    recorder = MtmcRecorder()
    recorder.update(tracked(0, 0, [[0, 0, 10, 20]], [1]))
    recorder.update(tracked(1, 0, [[0, 0, 10, 20]], [1]))
    global_ids = {(0, 1): 4, (1, 1): 9}
    recorder.update(tracked(0, 1, [[1, 0, 11, 20]], [1]))
    global_ids[(1, 1)] = 4  # identity 9 was merged into 4 after these boxes were recorded
    path = tmp_path / "mtmc.txt"
    recorder.write(path, lambda camera, track, frame: global_ids.get((camera, track), -1))
    assert [line.split()[1] for line in path.read_text().splitlines()] == ["4", "4", "4"]


def test_untracked_and_empty_frames_are_ignored(tmp_path: Path):
    recorder = MtmcRecorder()
    recorder.update(tracked(0, 0, [[0, 0, 10, 20]], None))
    recorder.update(tracked(0, 1, [], []))
    path = tmp_path / "empty.txt"
    assert recorder.write(path, lambda camera, track, frame: 1) == 0
    assert path.read_text() == ""
