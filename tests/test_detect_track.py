"""Detector and tracker stages on real frames of the bundled terrace video."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import supervision as sv

from pipeline.config import DetectorConfig, TrackerConfig
from pipeline.detect import PersonDetector
from pipeline.records import Frame, FrameDetections
from pipeline.reload import ContinuingTracker
from pipeline.track import CameraTracker
from tests.conftest import ASSETS

FPS = 25.0


def read_frames(camera: int, first: int, count: int, step: int = 1) -> list[Frame]:
    capture = cv2.VideoCapture(str(ASSETS / "videos" / f"epfl_terrace1-c{camera}.mp4"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, first)
    frames = []
    for index in range(first, first + count * step):
        ok, image = capture.read()
        assert ok
        if (index - first) % step == 0:
            frames.append(Frame(camera, index, index / FPS, image, time.monotonic()))
    capture.release()
    return frames


@pytest.fixture(scope="module")
def detector() -> PersonDetector:
    weights = ASSETS / "weights" / "yolov8_person_hfd.pt"
    return PersonDetector(DetectorConfig(weights=weights, image_size=416))


def test_one_batched_forward_finds_people_in_both_cameras(detector: PersonDetector):
    frames = [read_frames(0, 1500, 1)[0], read_frames(1, 1500, 1)[0]]
    detected = detector.detect(frames)
    assert [item.camera_id for item in detected] == [0, 1]
    for item in detected:
        detections = item.detections
        assert len(detections) >= 3  # the terrace is busy at 60 s
        assert np.all(detections.class_id == 0)
        assert detections.confidence is not None
        assert np.all(detections.confidence >= detector.config.confidence)
        heights = detections.xyxy[:, 3] - detections.xyxy[:, 1]
        assert np.all(heights >= detector.config.min_box_height)
        assert detections.xyxy.dtype == np.float32


def test_per_class_confidence_is_applied(detector: PersonDetector):
    frame = read_frames(0, 1500, 1)[0]
    strict = PersonDetector(detector.config.model_copy(update={"class_confidence": {0: 0.99}}))
    detections = strict.detect([frame])[0].detections
    assert len(detections) < len(detector.detect([frame])[0].detections)
    assert np.all(np.asarray(detections.data["detector_class"]) != 0)


def test_tracker_keeps_ids_stable_over_consecutive_frames(detector: PersonDetector):
    tracker = CameraTracker(TrackerConfig(), frame_rate=FPS / 2)
    frames = read_frames(0, 1500, 12, step=2)
    ids_per_frame = []
    for frame_detections in detector.detect(frames):
        tracked = tracker.update(frame_detections)
        assert tracked.detections.tracker_id is not None
        ids_per_frame.append(set(tracked.detections.tracker_id.tolist()))
    persistent = set.intersection(*ids_per_frame[3:])
    assert len(persistent) >= 2, ids_per_frame
    tracker.reset()
    again = tracker.update(detector.detect(frames[:1])[0])
    assert again.detections.tracker_id is not None


@pytest.mark.parametrize("algorithm", ["botsort", "bytetrack", "ocsort"])
@pytest.mark.parametrize("frame_rate", [5.0, 25.0])
def test_the_lost_track_buffer_is_in_seconds_whatever_the_frame_rate(algorithm, frame_rate):
    """A person unseen for 1.5 s keeps their track with a 2 s buffer and loses it with a 1 s
    one, at 5 and at 25 frames per second alike."""
    kept = {}
    for lost_seconds in (1.0, 2.0):
        tracker = CameraTracker(
            TrackerConfig(algorithm=algorithm, lost_track_seconds=lost_seconds), frame_rate
        )
        ids = []
        for index in range(int(6 * frame_rate)):
            timestamp = index / frame_rate
            if 2.0 <= timestamp < 3.5:
                boxes = np.zeros((0, 4), dtype=np.float32)
            else:
                boxes = np.array([[100 + 4 * timestamp, 50, 140 + 4 * timestamp, 150]], np.float32)
            detections = sv.Detections(
                xyxy=boxes, confidence=np.full(len(boxes), 0.9), class_id=np.zeros(len(boxes), int)
            )
            frame = Frame(0, index, timestamp, np.zeros((200, 300, 3), np.uint8), 0.0)
            tracked = tracker.update(FrameDetections(frame, detections)).detections
            ids.extend(int(track_id) for track_id in tracked.tracker_id)
        kept[lost_seconds] = len(set(ids))
    assert kept[2.0] == 1
    assert kept[1.0] == 2


def walking_person_frames(tracker: CameraTracker | ContinuingTracker, first: int) -> list[int]:
    """Track ids the tracker gives one person walking across 10 frames at 5 frames/s."""
    ids = []
    for index in range(first, first + 10):
        timestamp = index / 5.0
        boxes = np.array([[100 + 4 * index, 50, 140 + 4 * index, 150]], np.float32)
        detections = sv.Detections(
            xyxy=boxes, confidence=np.full(1, 0.9), class_id=np.zeros(1, int)
        )
        frame = Frame(0, index, timestamp, np.zeros((200, 300, 3), np.uint8), 0.0)
        tracked = tracker.update(FrameDetections(frame, detections)).detections
        ids.extend(int(track_id) for track_id in tracked.tracker_id)
    return ids


@pytest.mark.parametrize("algorithm", ["botsort", "bytetrack", "ocsort"])
def test_track_ids_never_repeat_after_a_tracker_reset(algorithm: str) -> None:
    """Identities are keyed by (camera, track id): a reset (the ``trackers`` tracker is built
    again and counts from 0) must not hand out an id of the same run again."""
    tracker = CameraTracker(TrackerConfig(algorithm=algorithm), frame_rate=5.0)
    before = walking_person_frames(tracker, 0)
    tracker.reset()
    after = walking_person_frames(tracker, 10)
    assert before and after
    assert min(after) > max(before)
    assert tracker.highest_track_id == max(after)


def test_a_restarted_cameras_track_ids_stay_unique_over_a_reset() -> None:
    tracker = ContinuingTracker(CameraTracker(TrackerConfig(), frame_rate=5.0), 7)
    before = walking_person_frames(tracker, 0)
    tracker.reset()
    after = walking_person_frames(tracker, 10)
    assert min(before) >= 7 and min(after) > max(before)
