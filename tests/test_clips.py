"""Clip buffers on synthetic tracked frames, and the shared clip-sampling policy."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from pipeline.clips import ClipBuffer, ClipBufferOutput
from pipeline.config import ClipsConfig
from pipeline.records import Frame, FrameDetections
from reid_models.sampling import SamplingMode, sample_clip_indices

FRAME_SECONDS = 0.125  # 8 fps; a power of two keeps timestamps exact
HEIGHT, WIDTH = 240, 320
CAMERA_ID = 2
CONFIDENCE = 0.8


def colour(track_id: int) -> tuple[int, int, int]:
    """A distinct BGR colour per track."""
    return ((40 * track_id) % 256, (90 * track_id + 30) % 256, (150 + 25 * track_id) % 256)


def box(track_id: int, frame_index: int) -> tuple[int, int, int, int]:
    """Integer xyxy box of a track, drifting right one pixel per frame; tracks never overlap."""
    x1 = 10 + 50 * (track_id % 5) + frame_index % 30
    y1 = 20 + 10 * (track_id % 3)
    return (x1, y1, x1 + 40, y1 + 100)


def tracked_frame(
    frame_index: int, track_ids: list[int], confidence: float = CONFIDENCE
) -> FrameDetections:
    """A grey frame with one filled rectangle per track, and its tracked detections."""
    image = np.full((HEIGHT, WIDTH, 3), 90, dtype=np.uint8)
    boxes = [box(track_id, frame_index) for track_id in track_ids]
    for track_id, (x1, y1, x2, y2) in zip(track_ids, boxes, strict=True):
        image[y1:y2, x1:x2] = colour(track_id)
    detections = sv.Detections(
        xyxy=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        confidence=np.full(len(track_ids), confidence, dtype=np.float32),
        tracker_id=np.asarray(track_ids, dtype=np.int64),
    )
    frame = Frame(CAMERA_ID, frame_index, frame_index * FRAME_SECONDS, image, 1000.0 + frame_index)
    return FrameDetections(frame, detections)


def small_config(**changes: object) -> ClipsConfig:
    settings: dict[str, object] = {
        "clip_length": 4,
        "min_frames": 3,
        "refresh_seconds": 1.0,
        "track_end_seconds": 0.5,
        "max_frames_per_track": 8,
        "max_tracks": 4,
    }
    return ClipsConfig.model_validate(settings | changes)


def feed(buffer: ClipBuffer, frames: range, track_ids: list[int]) -> dict[int, ClipBufferOutput]:
    """Update the buffer with ``track_ids`` visible on each of ``frames``; outputs by frame."""
    return {index: buffer.update(tracked_frame(index, track_ids)) for index in frames}


def clip_frames(outputs: dict[int, ClipBufferOutput]) -> list[int]:
    return [index for index, output in outputs.items() for _ in output.clips]


def test_first_clip_when_a_track_reaches_clip_length():
    buffer = ClipBuffer(small_config(), CAMERA_ID)
    outputs = feed(buffer, range(4), [7])
    assert clip_frames(outputs) == [3]
    clip = outputs[3].clips[0]
    assert (clip.camera_id, clip.track_id, clip.final) == (CAMERA_ID, 7, False)
    assert clip.crops.shape == (4, 256, 128, 3) and clip.crops.dtype == np.uint8
    assert np.all(clip.crops == np.asarray(colour(7), dtype=np.uint8))  # BGR crop of the box
    assert clip.frame_indices.dtype == np.int64
    assert clip.frame_indices.tolist() == [0, 1, 2, 3]
    assert clip.quality == pytest.approx(CONFIDENCE)
    assert (clip.first_timestamp, clip.last_timestamp) == (0.0, 3 * FRAME_SECONDS)
    assert clip.last_frame_index == 3
    assert clip.last_box.tolist() == list(box(7, 3))
    assert clip.captured_at == 1003.0


def test_crop_size_follows_the_config():
    buffer = ClipBuffer(small_config(crop_height=64, crop_width=32, clip_length=2), CAMERA_ID)
    clip = feed(buffer, range(2), [1])[1].clips[0]
    assert clip.crops.shape == (2, 64, 32, 3)


def test_track_started_event_carries_the_first_box():
    buffer = ClipBuffer(small_config(), CAMERA_ID)
    first = buffer.update(tracked_frame(5, [3, 4], confidence=0.6))
    assert [event.track_id for event in first.started] == [3, 4]
    event = first.started[0]
    assert (event.camera_id, event.frame_index) == (CAMERA_ID, 5)
    assert event.timestamp == 5 * FRAME_SECONDS
    assert event.box.tolist() == list(box(3, 5))
    assert event.confidence == pytest.approx(0.6)
    assert event.captured_at == 1005.0
    assert buffer.update(tracked_frame(6, [3, 4])).started == []
    assert sorted(buffer.active_track_ids) == [3, 4]


def test_live_track_re_emits_after_refresh_seconds_from_its_newest_crops():
    buffer = ClipBuffer(small_config(), CAMERA_ID)
    outputs = feed(buffer, range(28), [1])
    # first clip at frame 3 (t=0.375), then every 1.0 s = 8 frames
    assert clip_frames(outputs) == [3, 11, 19, 27]
    refreshed = outputs[11].clips[0]
    assert not refreshed.final
    # 8 newest crops (frames 4..11) buffered; 4 evenly spread over them
    assert refreshed.frame_indices.tolist() == [4, 6, 9, 11]
    assert refreshed.first_timestamp == 0.0  # span of the whole track, not of the buffer
    assert buffer.buffered_crops == 8


def test_final_clip_when_the_track_is_unseen_for_track_end_seconds():
    buffer = ClipBuffer(small_config(), CAMERA_ID)
    outputs = feed(buffer, range(14), [1]) | feed(buffer, range(14, 20), [])
    assert clip_frames(outputs) == [3, 11, 17]
    ending = outputs[17]  # last seen at 13 * 0.125 = 1.625 s; 17 * 0.125 - 1.625 = 0.5 s
    final = ending.clips[0]
    assert final.final and final.track_id == 1
    assert final.last_frame_index == 13
    assert set(final.frame_indices.tolist()) <= set(range(6, 14))
    assert final.frame_indices[-1] == 13
    assert [event.track_id for event in ending.ended] == [1]
    ended = ending.ended[0]
    assert (ended.frame_index, ended.timestamp) == (13, 13 * FRAME_SECONDS)
    assert ended.box.tolist() == list(box(1, 13))
    assert all(not outputs[index].ended for index in range(17))
    assert buffer.active_track_ids == [] and buffer.buffered_crops == 0


def test_no_second_clip_when_nothing_new_was_seen_since_the_last_one():
    buffer = ClipBuffer(small_config(), CAMERA_ID)
    outputs = feed(buffer, range(4), [1]) | feed(buffer, range(4, 10), [])
    assert clip_frames(outputs) == [3]
    assert [event.track_id for event in outputs[7].ended] == [1]


def test_tracks_shorter_than_min_frames_end_without_a_clip():
    buffer = ClipBuffer(small_config(), CAMERA_ID)
    outputs = feed(buffer, range(2), [1, 2]) | feed(buffer, range(2, 3), [2])
    outputs |= feed(buffer, range(3, 8), [])
    # track 1: 2 frames < min_frames; track 2: 3 frames = min_frames but < clip_length
    finals = [clip for output in outputs.values() for clip in output.clips]
    assert [clip.track_id for clip in finals] == [2]
    short = finals[0]
    assert short.final and short.crops.shape[0] == 4
    assert short.frame_indices.tolist() == [0, 1, 1, 2]  # frames repeat to fill the clip
    assert short.quality == pytest.approx(CONFIDENCE * 3 / 4)  # 3 distinct frames of 4
    ended = sorted(event.track_id for output in outputs.values() for event in output.ended)
    assert ended == [1, 2]


def test_flush_ends_every_track_with_a_last_clip():
    buffer = ClipBuffer(small_config(), CAMERA_ID)
    feed(buffer, range(5), [1])
    feed(buffer, range(5, 7), [1, 2])
    flushed = buffer.flush()
    assert [(clip.track_id, clip.final) for clip in flushed.clips] == [(1, True)]
    assert flushed.clips[0].last_frame_index == 6
    assert sorted(event.track_id for event in flushed.ended) == [1, 2]
    assert buffer.active_track_ids == [] and buffer.buffered_crops == 0
    assert buffer.flush().ended == []
    again = buffer.update(tracked_frame(7, [1]))
    assert [event.track_id for event in again.started] == [1]


def test_reset_drops_everything_silently():
    buffer = ClipBuffer(small_config(), CAMERA_ID)
    feed(buffer, range(6), [1, 2])
    buffer.reset()
    assert buffer.buffered_crops == 0
    assert buffer.flush() == ClipBufferOutput()


def test_max_frames_per_track_keeps_only_the_newest_crops():
    buffer = ClipBuffer(small_config(max_frames_per_track=5, refresh_seconds=100.0), CAMERA_ID)
    feed(buffer, range(40), [1, 2])
    assert buffer.buffered_crops == 10
    final = buffer.flush().clips[0]
    assert final.frame_indices.tolist() == [35, 36, 38, 39]


def test_max_tracks_ends_the_least_recently_seen_track():
    buffer = ClipBuffer(small_config(max_tracks=3), CAMERA_ID)
    feed(buffer, range(0, 3), [1, 2, 3])
    feed(buffer, range(3, 5), [2, 3])
    output = buffer.update(tracked_frame(5, [2, 3, 4]))
    assert [event.track_id for event in output.started] == [4]
    assert [event.track_id for event in output.ended] == [1]
    assert [(clip.track_id, clip.final) for clip in output.clips] == [(1, True)]
    assert sorted(buffer.active_track_ids) == [2, 3, 4]


def test_memory_stays_bounded_under_many_tracks():
    config = small_config(max_tracks=3, max_frames_per_track=6, track_end_seconds=10.0)
    buffer = ClipBuffer(config, CAMERA_ID)
    for index in range(60):
        visible = [index // 4 + offset for offset in range(5)]  # 5 at a time, ids churn
        buffer.update(tracked_frame(index, visible))
        assert len(buffer.active_track_ids) <= 3
        assert buffer.buffered_crops <= 3 * 6


@pytest.mark.parametrize("mode", list(SamplingMode))
@pytest.mark.parametrize("frame_count", [1, 2, 3, 7, 8, 9, 16, 50])
@pytest.mark.parametrize("clip_length", [1, 4, 8])
def test_sampling_properties_shared_by_every_mode(
    mode: SamplingMode, frame_count: int, clip_length: int
):
    # chunks is checked here at its deterministic chunk centres; its random draws repeat
    # frames (see test_chunks_random_draws_use_distinct_frames)
    generator = None if mode is SamplingMode.CHUNKS else np.random.default_rng(frame_count)
    indices = sample_clip_indices(frame_count, clip_length, mode, generator)
    assert indices.dtype == np.int64
    assert np.all(np.diff(indices) >= 0), "indices never go back in time"
    assert indices.min() >= 0 and indices.max() <= frame_count - 1
    if mode is SamplingMode.ALL:
        assert len(indices) == -(-frame_count // clip_length) * clip_length
        assert indices[:frame_count].tolist() == list(range(frame_count))
        assert np.all(indices[frame_count:] == frame_count - 1)
        return
    assert len(indices) == clip_length
    distinct = len(set(indices.tolist()))
    assert distinct == min(frame_count, clip_length), "as many distinct frames as possible"
    if frame_count <= clip_length:
        assert set(indices.tolist()) == set(range(frame_count))


@pytest.mark.parametrize(("frame_count", "clip_length"), [(10, 4), (50, 8), (9, 3), (5, 5)])
def test_evenly_spreads_from_first_to_last_frame(frame_count: int, clip_length: int):
    indices = sample_clip_indices(frame_count, clip_length, SamplingMode.EVENLY)
    assert indices[0] == 0 and indices[-1] == frame_count - 1
    expected = np.linspace(0, frame_count - 1, clip_length)
    assert np.all(np.abs(indices - expected) <= 0.5)
    assert np.array_equal(indices, sample_clip_indices(frame_count, clip_length, "evenly"))


def test_random_draws_sorted_distinct_frames_and_needs_a_generator():
    with pytest.raises(ValueError, match="Generator"):
        sample_clip_indices(20, 4, SamplingMode.RANDOM)
    draws = {
        tuple(sample_clip_indices(20, 4, "random", np.random.default_rng(seed)).tolist())
        for seed in range(20)
    }
    assert len(draws) > 10, "different generators give different clips"
    same_seed = [sample_clip_indices(20, 4, "random", np.random.default_rng(3)) for _ in range(2)]
    assert np.array_equal(*same_seed)
    counts = np.bincount(
        np.concatenate(
            [sample_clip_indices(20, 4, "random", np.random.default_rng(s)) for s in range(500)]
        ),
        minlength=20,
    )
    assert counts.min() > 50, "every frame can be drawn"  # expected 100 each
    short = sample_clip_indices(3, 5, "random", np.random.default_rng(0))
    assert short.tolist() == [0, 1, 2, 2, 2]


@pytest.mark.parametrize(("frame_count", "clip_length"), [(20, 4), (17, 5), (8, 8), (3, 6)])
def test_chunks_takes_one_frame_per_chunk(frame_count: int, clip_length: int):
    edges = np.linspace(0, frame_count, clip_length + 1)
    for generator in [None, *(np.random.default_rng(seed) for seed in range(10))]:
        indices = sample_clip_indices(frame_count, clip_length, SamplingMode.CHUNKS, generator)
        for chunk, index in enumerate(indices.tolist()):
            low = np.floor(edges[chunk])
            high = max(np.ceil(edges[chunk + 1]), low + 1)
            assert low <= index < high, (chunk, index)
    centres = sample_clip_indices(frame_count, clip_length, "chunks")
    assert np.array_equal(centres, sample_clip_indices(frame_count, clip_length, "chunks"))


def test_chunks_random_draws_use_distinct_frames():
    for frame_count, clip_length in [(9, 8), (20, 8), (13, 4)]:
        for seed in range(20):
            generator = np.random.default_rng(seed)
            indices = sample_clip_indices(frame_count, clip_length, "chunks", generator)
            assert len(set(indices.tolist())) == clip_length, (frame_count, seed, indices)


def test_chunk_centres_for_a_round_case():
    assert sample_clip_indices(20, 4, "chunks").tolist() == [2, 7, 12, 17]


def test_sampling_refuses_empty_inputs_and_unknown_modes():
    with pytest.raises(ValueError, match="frame_count"):
        sample_clip_indices(0, 4)
    with pytest.raises(ValueError, match="clip_length"):
        sample_clip_indices(4, 0)
    with pytest.raises(ValueError):
        sample_clip_indices(4, 4, "sometimes")


def _crossing_frame(frame_index: int) -> FrameDetections:
    """Tracks 1 and 2 walk towards each other along one row, overlap (IoU >= 0.2) on frames
    14-16 and part again; 40-pixel boxes, 8 pixels a frame each."""
    left = 20 + 8 * frame_index
    right = 260 - 8 * frame_index
    boxes = np.array([[left, 50, left + 40, 150], [right, 50, right + 40, 150]], np.float32)
    image = np.full((HEIGHT, WIDTH, 3), 90, dtype=np.uint8)
    detections = sv.Detections(
        xyxy=boxes, confidence=np.full(2, CONFIDENCE, np.float32), tracker_id=np.array([1, 2])
    )
    frame = Frame(CAMERA_ID, frame_index, frame_index * FRAME_SECONDS, image, 1000.0 + frame_index)
    return FrameDetections(frame, detections)


def test_each_side_of_an_encounter_gets_a_clip_of_its_own():
    """Where two boxes meet, the identity layer cuts both tracks; so each track emits a clip
    of its crops before the encounter as it begins, and one of crops clear of it after, and
    no clip takes a crop from inside it."""
    config = small_config(refresh_seconds=100.0, max_frames_per_track=64)
    outputs = {}
    buffer = ClipBuffer(config, CAMERA_ID, encounter_iou=0.2)
    for index in range(30):
        outputs[index] = buffer.update(_crossing_frame(index))
    overlaps = [
        float(sv.box_iou_batch(*(f.detections.xyxy[i : i + 1] for i in (0, 1)))[0, 0])
        for f in map(_crossing_frame, range(30))
    ]
    inside = {index for index, value in enumerate(overlaps) if value >= 0.2}
    assert inside and min(inside) > 4 and max(inside) < 25
    clips = [clip for output in outputs.values() for clip in output.clips if clip.track_id == 1]
    sampled = [set(clip.frame_indices.tolist()) for clip in clips]
    assert len(clips) == 3  # the first clip, the one before the encounter, the one after
    assert all(not frames & inside for frames in sampled)
    assert max(sampled[1]) < min(inside) and min(sampled[2]) > max(inside)
    plain = ClipBuffer(config, CAMERA_ID)
    plain_clips = [plain.update(_crossing_frame(index)).clips for index in range(30)]
    assert sum(len(found) for found in plain_clips) == 2  # one per track, nothing more
