"""Crops taken lazily (``pipeline/lazy_crops.py``): the same clips as cropping every box at
once, far fewer crops, and frame memory within the budget."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from pipeline.clips import Clip, ClipBuffer
from pipeline.config import ClipsConfig
from pipeline.lazy_crops import HeldFrames
from pipeline.records import Frame, FrameDetections
from reid_models.sampling import SamplingMode

HEIGHT, WIDTH = 120, 160
FRAME_BYTES = HEIGHT * WIDTH * 3


def random_frames(count: int, seed: int = 0) -> list[FrameDetections]:
    """Noise frames (any crop difference shows) with tracks that come, move by fractional
    pixels, overlap now and then, and go."""
    generator = np.random.default_rng(seed)
    lives = {track_id: (int(generator.integers(0, count - 10)), 0) for track_id in range(7)}
    lives = {track_id: (start, start + int(generator.integers(4, 80))) for track_id, (start, _) in
             lives.items()}  # fmt: skip
    frames = []
    for index in range(count):
        image = generator.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        track_ids = [track for track, (start, end) in lives.items() if start <= index < end]
        boxes = []
        for track_id in track_ids:
            x1 = 5.0 + 17.3 * track_id + 0.7 * index % 60 + generator.random()
            y1 = 3.0 + generator.random() * 10
            boxes.append((x1, y1, x1 + 20.5 + generator.random(), y1 + 60.25))
        detections = sv.Detections(
            xyxy=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            confidence=generator.uniform(0.4, 1.0, len(track_ids)).astype(np.float32),
            tracker_id=np.asarray(track_ids, dtype=np.int64),
        )
        frame = Frame(1, index, index * 0.125, image, 500.0 + index)
        frames.append(FrameDetections(frame, detections))
    return frames


def config(sampling: SamplingMode, held_megabytes: float) -> ClipsConfig:
    return ClipsConfig(
        clip_length=4,
        sampling=sampling,
        crop_height=32,
        crop_width=16,
        refresh_seconds=2.0,
        max_frames_per_track=12,
        max_tracks=5,
        min_frames=3,
        track_end_seconds=0.5,
        held_frames_megabytes=held_megabytes,
    )


def run(buffer: ClipBuffer, frames: list[FrameDetections]) -> list[Clip]:
    clips: list[Clip] = []
    budget = buffer.held_frames.budget_bytes
    for frame_detections in frames:
        clips += buffer.update(frame_detections).clips
        assert buffer.held_frames.held_bytes <= max(budget, 0) + FRAME_BYTES
    clips += buffer.flush().clips
    return clips


@pytest.mark.parametrize("sampling", [SamplingMode.EVENLY, SamplingMode.RANDOM])
def test_lazily_built_clips_equal_the_eager_ones_whatever_the_budget(sampling: SamplingMode):
    frames = random_frames(200)
    eager_buffer = ClipBuffer(config(sampling, 0.0), 1, encounter_iou=0.2)
    eager = run(eager_buffer, frames)
    assert len(eager) > 10
    assert eager_buffer.held_frames.held_frames == 0  # nothing held: every box cropped at once
    boxes = sum(len(item.detections) for item in frames)
    assert eager_buffer.held_frames.crops_taken == boxes
    for frames_held in (1, 3, 10_000):
        buffer = ClipBuffer(config(sampling, frames_held * FRAME_BYTES / 2**20), 1, 0.2)
        lazy = run(buffer, frames)
        assert len(lazy) == len(eager)
        for first, second in zip(eager, lazy, strict=True):
            assert (first.track_id, first.final) == (second.track_id, second.final)
            np.testing.assert_array_equal(first.frame_indices, second.frame_indices)
            np.testing.assert_array_equal(first.crops, second.crops)
            assert first.quality == second.quality
        if frames_held == 10_000:  # all lazy: only sampled boxes were cropped
            assert buffer.held_frames.crops_taken < boxes / 2


def test_held_frames_let_a_frame_go_once_none_of_its_boxes_is_buffered():
    held = HeldFrames(budget_bytes=100 * FRAME_BYTES, crop_size=(8, 4))
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    boxes = np.asarray([[0, 0, 10, 10], [5, 5, 20, 20]], dtype=np.float32)
    first = held.add(image, boxes)
    second = held.add(image.copy(), boxes)
    assert held.held_frames == 2
    first[0].array()  # sampled by a clip: cropped, its frame reference dropped
    first[1].release()  # dropped from its track
    held.add(image.copy(), np.zeros((0, 4), np.float32))  # a frame without boxes holds nothing
    assert held.held_frames == 1 and held.held_bytes == FRAME_BYTES
    assert held.crops_taken == 1
    assert second[0].pending
    held.clear()
    assert held.held_frames == 0 and not second[0].pending
