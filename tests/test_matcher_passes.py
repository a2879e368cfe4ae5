"""Whole-track passes in a distributed matcher: boxes on the clip stream (pipeline/track_boxes.py,
pipeline/clip_messages.py) and the leader's periodic pass (pipeline/matcher_passes.py)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import redis
import supervision as sv

from pipeline.clip_messages import clip_message, ended_message, parse_message, started_message
from pipeline.clips import Clip, TrackEvent
from pipeline.config import CrosscamConfig
from pipeline.events import EventType, parse_fields
from pipeline.identity.matching import EmbeddedClip
from pipeline.identity.track_log import TrackLog, TrackRecord
from pipeline.matcher_role import DistributedMatcher
from pipeline.records import Frame, FrameDetections
from pipeline.redis_server import EmbeddedRedis
from pipeline.track_boxes import BoxHistory, TrackBoxes
from tests.test_online_refinement import _scene
from tests.test_refine import _add_track, _walk
from tests.test_scale_out import identity_of_tracks

CLIP_EVERY_SECONDS = 4.0


def _boxes(record: TrackRecord, rows: slice) -> TrackBoxes:
    return TrackBoxes(
        np.asarray(record.frame_indices[rows], dtype=np.int64),
        np.asarray(record.timestamps[rows], dtype=np.float64),
        np.stack(record.boxes[rows]).astype(np.float32),
        np.asarray(record.confidences[rows], dtype=np.float32),
    )


def _track_messages(record: TrackRecord, with_boxes: bool) -> list[tuple[float, dict[str, str]]]:
    """An edge's messages for one logged track: started, a clip every 4 s of footage (with the
    boxes since the previous one), ended; each with the footage time it is sent at."""
    timestamps = np.asarray(record.timestamps)
    first = TrackEvent(
        record.camera_id, record.track_id, record.frame_indices[0], timestamps[0],
        record.boxes[0], 0.9, time.monotonic(),
    )  # fmt: skip
    messages = [(float(timestamps[0]), started_message("edge", first).to_fields())]
    chunks = np.floor((timestamps - timestamps[0]) / CLIP_EVERY_SECONDS).astype(int)
    start = 0
    for chunk in np.unique(chunks).tolist():
        stop = int(np.flatnonzero(chunks == chunk)[-1]) + 1
        rows = slice(start, stop)
        clip = Clip(
            record.camera_id, record.track_id, np.zeros((0, 1, 1, 3), np.uint8),
            np.asarray(record.frame_indices[rows], dtype=np.int64)[-8:], 1.0, False,
            float(timestamps[0]), float(timestamps[stop - 1]), record.frame_indices[stop - 1],
            record.boxes[stop - 1], time.monotonic(), first_box=record.boxes[0],
        )  # fmt: skip
        embedded = EmbeddedClip(clip, record.embeddings[0])
        boxes = _boxes(record, rows) if with_boxes else None
        messages.append((clip.last_timestamp, clip_message("edge", embedded, boxes).to_fields()))
        start = stop
    last = TrackEvent(
        record.camera_id, record.track_id, record.frame_indices[-1], timestamps[-1],
        record.boxes[-1], 0.9, time.monotonic(),
    )  # fmt: skip
    ended = ended_message("edge", last, has_final_clip=False).to_fields()
    messages.append((float(timestamps[-1]) + 1.5, ended))
    return messages


def _stream(log: TrackLog, with_boxes: bool = True) -> list[dict[str, str]]:
    """Every track's messages, in the order edges would send them (footage time)."""
    timed = [
        item for record in log.records.values() for item in _track_messages(record, with_boxes)
    ]
    return [fields for _, fields in sorted(timed, key=lambda item: item[0])]


def _run_matcher(
    messages: list[dict[str, str]], directory: Path, defer: bool = False, **identity: object
) -> tuple[dict[tuple[int, int], int], list[dict[str, object]], DistributedMatcher]:
    """Drain ``messages`` with one in-process matcher against a real Redis, 16 at a time
    (``defer``: passes deferred while its reads come back full); the final identity of every
    track, the published events and the matcher."""
    with EmbeddedRedis(directory / "redis") as server:
        config = CrosscamConfig()
        config.redis.url = server.url
        config.outputs.run_directory = directory / "runs"
        config.identity = config.identity.model_copy(update=identity)
        client = redis.Redis.from_url(server.url, decode_responses=True)
        for fields in messages:
            client.xadd(config.redis.clip_stream, fields)  # type: ignore[arg-type]
        matcher = DistributedMatcher(
            config, server.url, "m1", "test", batch_size=16, defer_passes_when_behind=defer
        )
        matcher.run(idle_exit_seconds=1.0)
        events = [parse_fields(fields) for _, fields in client.xrange(config.redis.stream)]
        assert client.xpending(config.redis.clip_stream, "matchers")["pending"] == 0
        return identity_of_tracks(server.url), events, matcher


def _scene_with_later_footage() -> TrackLog:
    """The one person of test_online_refinement's scene (tracks 0/60 and 1/160, unlike looks
    per view) after the calibration crowd, and someone walking later in camera 0, so the
    footage goes on past the person's tracks (the next periodic pass sees them whole)."""
    log, _ = _scene()
    rng = np.random.default_rng(11)
    _add_track(log, 0, 90, 62.0, _walk((60, 100), (5, 2), seconds=8), rng.normal(size=32))
    return log


@pytest.mark.parametrize("background", [False, True], ids=["inline", "background"])
def test_the_matchers_periodic_pass_merges_what_appearance_kept_apart(
    tmp_path: Path, background: bool
):
    """Appearance alone gives the person two identities (one per view); the boxes on the
    stream let the matcher's periodic pass learn the views' homography from the crowd and
    merge them (one identity_merged event), with no end-of-run pass; in a worker process
    too (the stream drained long before a pass ends: the one in flight at the stop is waited
    for, and the due one runs)."""
    log = _scene_with_later_footage()
    identities, events, matcher = _run_matcher(
        _stream(log), tmp_path, refine_at_end=False, passes_in_background=background
    )
    assert matcher.counters.passes >= 1
    assert (0, 1) in matcher.passes.homographies
    merged = [event for event in events if event["type"] == EventType.IDENTITY_MERGED]
    assert merged
    assert identities[(0, 60)] == identities[(1, 160)]
    assert identities[(0, 60)] != identities[(0, 90)]
    for person in range(8):  # the crowd: one identity per person, both views
        assert identities[(0, person)] == identities[(1, 100 + person)]


def test_a_matcher_behind_defers_its_passes_to_every_half_window(tmp_path: Path):
    """Draining a backlog (every read full), passes come every window_seconds / 2 of footage,
    not every refine_every_seconds; the end-of-run pass still merges the person."""
    log = _scene_with_later_footage()
    messages = _stream(log)
    _, _, every = _run_matcher(
        messages, tmp_path / "live", refine_at_end=False, passes_in_background=False
    )
    identities, _, behind = _run_matcher(
        messages, tmp_path / "behind", defer=True, window_seconds=60.0, passes_in_background=False
    )
    # full reads: passes 30 s of footage apart; the last, short read is caught up
    assert behind.counters.passes == 3 < every.counters.passes
    assert identities[(0, 60)] == identities[(1, 160)]


def test_old_edges_without_boxes_are_matched_as_before(tmp_path: Path):
    """Messages of edges that send no boxes: clips are matched, no pass runs, nothing is
    logged, and appearance's two identities for the person stay two."""
    log = _scene_with_later_footage()
    messages = _stream(log, with_boxes=False)
    assert not any("boxes" in fields for fields in messages)
    for fields in messages:  # no frame indices either: an edge from before them
        fields.pop("frame_indices", None)
    identities, events, matcher = _run_matcher(messages, tmp_path)
    assert matcher.counters.passes == 0
    assert len(matcher.passes.track_log) == 0
    assert not any(event["type"] == EventType.IDENTITY_MERGED for event in events)
    assert set(identities) == set(log.records)
    assert identities[(0, 60)] != identities[(1, 160)]


def test_boxes_round_trip_on_clip_and_ended_messages():
    rng = np.random.default_rng(0)
    boxes = TrackBoxes(
        np.arange(5, dtype=np.int64) + 100,
        np.linspace(10.0, 10.4, 5),
        rng.uniform(0, 500, size=(5, 4)).astype(np.float32),
        rng.uniform(0.3, 1.0, size=5).astype(np.float32),
    )
    track = TrackEvent(2, 7, 104, 10.4, boxes.xyxy[-1], 0.9, 0.0)
    parsed = parse_message(ended_message("e", track, True, boxes).to_fields())
    assert parsed.boxes is not None and parsed.has_final_clip
    np.testing.assert_array_equal(parsed.boxes.frame_indices, boxes.frame_indices)
    np.testing.assert_array_equal(parsed.boxes.timestamps, boxes.timestamps)
    np.testing.assert_array_equal(parsed.boxes.xyxy, boxes.xyxy)
    np.testing.assert_array_equal(parsed.boxes.confidences, boxes.confidences)
    clip = Clip(
        2, 7, np.zeros((0, 1, 1, 3), np.uint8), np.arange(96, 104, dtype=np.int64), 0.8, False,
        9.0, 10.4, 104, boxes.xyxy[-1], 0.0,
    )  # fmt: skip
    fields = clip_message("e", EmbeddedClip(clip, np.ones(4, np.float32)), boxes).to_fields()
    parsed = parse_message(fields)
    assert parsed.boxes is not None and len(parsed.boxes) == 5
    assert parsed.embedded is not None
    np.testing.assert_array_equal(parsed.embedded.clip.frame_indices, clip.frame_indices)
    without = parse_message(
        clip_message("e", EmbeddedClip(clip, np.ones(4, np.float32))).to_fields()
    )
    assert without.boxes is None


def _frame(camera: int, frame_index: int, track_ids: list[int]) -> FrameDetections:
    count = len(track_ids)
    detections = sv.Detections(
        xyxy=np.tile(np.array([[10, 20, 40, 100]], dtype=np.float32), (count, 1)),
        confidence=np.full(count, 0.8),
        tracker_id=np.asarray(track_ids),
    )
    frame = Frame(camera, frame_index, frame_index / 10.0, np.zeros((1, 1, 3)), 0.0)
    return FrameDetections(frame, detections)


def test_box_history_hands_over_each_box_once_and_stays_bounded():
    history = BoxHistory(max_boxes=64)
    for index in range(10):
        history.update(_frame(3, index, [1, 2]))
    first = history.take(3, 1)
    assert first is not None and first.frame_indices.tolist() == list(range(10))
    assert history.take(3, 1) is None  # handed over: gone
    for index in range(10, 12):
        history.update(_frame(3, index, [1, 2]))
    again = history.take(3, 1)
    assert again is not None and again.frame_indices.tolist() == [10, 11]
    for index in range(12, 1000):  # track 2's clips shed: its boxes are thinned, not dropped
        history.update(_frame(3, index, [2]))
    thinned = history.take(3, 2)
    assert thinned is not None and len(thinned) <= 64
    assert thinned.frame_indices[0] < 100 and thinned.frame_indices[-1] == 999
    assert np.all(np.diff(thinned.frame_indices) > 0)
    assert history.pending_tracks == 0


def test_a_pass_longer_than_the_lease_keeps_the_leader(tmp_path: Path):
    """A standby must not take over while the leader is busy in a long pass."""
    with EmbeddedRedis(tmp_path / "redis") as server:
        config = CrosscamConfig()
        config.outputs.run_directory = tmp_path / "runs"
        leader = DistributedMatcher(config, server.url, "m1", "test", lease_seconds=1.0)
        standby = DistributedMatcher(config, server.url, "m2", "test", lease_seconds=1.0)
        leader._ensure_group()
        assert leader._hold_lease()
        leader._holding_lease(lambda: time.sleep(2.5))
        assert not standby._hold_lease()
        assert leader._hold_lease()
