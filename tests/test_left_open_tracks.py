"""A killed run's open tracks get exactly one ``track_ended`` (issue 15 item 9), against a real
embedded Redis: when two runs start at once, when the killed run's own end is still in its
spool, and for an edge (``--role edge``), whose restart sends ``ended`` messages the matcher
turns into ``track_ended``."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from pipeline.clip_messages import ended_message, started_message
from pipeline.clips import TrackEvent
from pipeline.config import RedisConfig, load_config
from pipeline.events import Event, EventType
from pipeline.matcher_role import DistributedMatcher
from pipeline.publish import RedisPublisher, build_publisher
from pipeline.redis_server import EmbeddedRedis
from pipeline.runner import Pipeline
from pipeline.spool import DiskSpool
from pipeline.track_ledger import read_track_ledger
from tests.test_operations_promises import segment_camera, stream_events, write_cams

PREFIX = "crosscam"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "redis") as server:
        yield server


def track_event(
    kind: EventType, camera_id: int, track_id: int, timestamp: float, global_id: int = -1
) -> Event:
    return Event(
        type=kind,
        camera_id=camera_id,
        track_id=track_id,
        global_id=global_id,
        bbox=np.asarray([10, 20, 30, 60], dtype=np.float32),
        frame_index=int(timestamp * 5),
        timestamp=timestamp,
        score=0.9,
        captured_at=time.monotonic(),
    )


def ledger_publisher(url: str, run_id: str, spool: DiskSpool | None = None) -> RedisPublisher:
    """A run's publisher as ``build_publisher`` makes it: events and the track ledger."""
    return RedisPublisher(RedisConfig(), url, run_id, spool=spool, track_ledger=True)


def track_ends(url: str, stream: str = "crosscam:events") -> Counter[tuple[int, int]]:
    return Counter(
        (int(fields["camera_id"]), int(fields["track_id"]))
        for fields in stream_events(url, stream)
        if fields["type"] == "track_ended"
    )


def test_two_runs_starting_together_end_a_killed_runs_track_once(
    redis_server: EmbeddedRedis,
) -> None:
    killed = ledger_publisher(redis_server.url, "killed")
    killed.publish(
        [
            track_event(EventType.TRACK_STARTED, 0, 3, 1.0),
            track_event(EventType.IDENTITY_ASSIGNED, 0, 3, 1.5, global_id=7),
            track_event(EventType.TRACK_STARTED, 0, 4, 2.0),
            track_event(EventType.TRACK_ENDED, 0, 4, 3.0),
        ]
    )
    killed.close()  # SIGKILLed: track 3 is never ended
    # both runs read the ledger before either publishes (systemd restarting two at once)
    first_read = read_track_ledger(redis_server.url, PREFIX, [0])[1]
    second_read = read_track_ledger(redis_server.url, PREFIX, [0])[1]
    assert [(e.track_id, e.global_id) for e in first_read] == [(3, 7)]
    assert [(e.track_id, e.global_id) for e in second_read] == [(3, 7)]
    first, second = (ledger_publisher(redis_server.url, run) for run in ("next-a", "next-b"))
    assert [e.track_id for e in first.publish(first_read)] == [3]
    assert second.publish(second_read) == []
    assert second.counters.left_open_skipped == 1
    assert second.counters.events_published == 0
    assert track_ends(redis_server.url) == {(0, 3): 1, (0, 4): 1}
    ended = [e for e in stream_events(redis_server.url) if e["type"] == "track_ended"]
    assert [e.get("left_open") for e in ended] == [None, "1"]
    assert ended[1]["event_id"].startswith("next-a:") and ended[1]["global_id"] == "7"
    assert read_track_ledger(redis_server.url, PREFIX, [0])[1] == []


def test_a_killed_runs_own_spooled_end_is_not_followed_by_a_second_one(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    """The killed run ended track 5, but its ``track_ended`` only reached its spool; the next
    run read the ledger before that spool was replayed. The replayed end comes first and the
    ``left_open`` one is dropped."""
    killed = ledger_publisher(redis_server.url, "killed")
    killed.publish([track_event(EventType.TRACK_STARTED, 0, 5, 1.0)])
    killed.close()
    spool = DiskSpool(tmp_path / "spool")
    spooled_end = track_event(EventType.TRACK_ENDED, 0, 5, 4.0)
    spooled_end.event_id = "killed:2"
    spool.append([spooled_end.to_fields()])
    _, left_open = read_track_ledger(redis_server.url, PREFIX, [0])
    assert [event.track_id for event in left_open] == [5]
    following = ledger_publisher(redis_server.url, "next", spool=DiskSpool(tmp_path / "spool"))
    assert following.publish(left_open) == []
    assert following.counters.events_replayed == 1
    ended = [e for e in stream_events(redis_server.url) if e["type"] == "track_ended"]
    assert [(e["event_id"], e["timestamp"]) for e in ended] == [("killed:2", "4.000")]


def test_a_restarted_edge_ends_its_killed_runs_tracks_through_the_matcher_once(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    """A killed edge left track 3 open and ended track 4 with a last clip it never sent. At its
    next start the edge sends ``ended`` for both; the matcher, alive throughout, publishes one
    ``track_ended`` for each, and one for every track of the new run."""
    config = load_config(write_cams(tmp_path, [segment_camera(0, 40.0, 41.0)]))
    matcher = DistributedMatcher(config, redis_server.url, "matcher-a", "matcher-run")
    matching = threading.Thread(target=matcher.run, daemon=True)
    matching.start()
    try:
        killed_edge = build_publisher(config, redis_server.url, "killed-edge", "edge-a")
        started = [
            TrackEvent(
                0, track, 5 * track, float(track), np.array([10, 20, 30, 60], np.float32), 0.9, 0.0
            )
            for track in (3, 4)
        ]
        killed_edge.publish(
            [
                *(started_message("edge-a", track) for track in started),
                ended_message("edge-a", started[1], has_final_clip=True),
            ]
        )
        killed_edge.close()  # SIGKILLed before track 4's last clip was encoded
        deadline = time.monotonic() + 20
        while len([e for e in stream_events(redis_server.url) if e["type"] == "track_started"]) < 2:
            assert time.monotonic() < deadline, "the matcher did not start the killed edge's tracks"
            time.sleep(0.1)
        assert track_ends(redis_server.url) == {}  # track 4 waits for its last clip

        restarted = Pipeline(
            config, redis_server.url, "edge-run", tmp_path / "runs", None, "edge-a"
        )
        result = restarted.run()
        assert result.events_unsent == 0
        messages = stream_events(redis_server.url, "crosscam:clips")
        left_open = [m for m in messages if m.get("left_open") == "1"]
        assert [(m["kind"], int(m["track_id"])) for m in left_open] == [("ended", 3), ("ended", 4)]
        new_tracks = {int(m["track_id"]) for m in messages if m["kind"] == "started"} - {3, 4}
        assert new_tracks and min(new_tracks) > 4
        expected = {(0, track): 1 for track in (3, 4, *new_tracks)}
        deadline = time.monotonic() + 30
        while track_ends(redis_server.url) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        matcher.stop()
        matching.join(timeout=30)
    assert track_ends(redis_server.url) == expected  # also after the matcher's shutdown
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    assert client.hgetall(f"{PREFIX}:open_tracks") == {}
    client.close()
