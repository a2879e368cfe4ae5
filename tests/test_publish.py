"""Publishing to a real Redis (the embedded redis-server): schema, identity keys, outages."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from pipeline.config import RedisConfig
from pipeline.events import SCHEMA_VERSION, Event, EventType, parse_fields
from pipeline.identity.matching import Identity, TrackSpan
from pipeline.publish import RedisPublisher
from pipeline.redis_server import EmbeddedRedis

STREAM = "test:events"
PREFIX = "test"
EVENT_FIELDS = {
    "schema_version",
    "event_id",
    "type",
    "camera_id",
    "track_id",
    "global_id",
    "bbox",
    "frame_index",
    "timestamp",
    "score",
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    embedded = EmbeddedRedis(tmp_path / "redis").start()
    yield embedded
    embedded.stop()


def make_publisher(url: str, **config: object) -> RedisPublisher:
    settings: dict[str, object] = {"stream": STREAM, "key_prefix": PREFIX}
    return RedisPublisher(RedisConfig.model_validate(settings | config), url, "run-7")


def make_event(sequence: int, event_type: EventType = EventType.TRACK_STARTED) -> Event:
    return Event(
        type=event_type,
        camera_id=sequence % 3,
        track_id=100 + sequence,
        global_id=sequence if event_type is not EventType.TRACK_STARTED else -1,
        bbox=np.array([10.25, 20.0, 50.5 + sequence, 140.0], dtype=np.float32),
        frame_index=1000 + sequence,
        timestamp=40.0 + sequence / 8,
        score=0.91234,
        captured_at=time.monotonic(),
        merged_ids=[7, 9] if event_type is EventType.IDENTITY_MERGED else [],
        split_from=5 if event_type is EventType.IDENTITY_SPLIT else -1,
    )


def make_identity(global_id: int, seed: int = 0) -> Identity:
    feature = np.random.default_rng(seed).standard_normal(32).astype(np.float32)
    return Identity(
        global_id=global_id,
        feature=feature / np.linalg.norm(feature),
        weight=2.5,
        first_seen=12.0,
        last_seen=17.25,
        tracks={(0, 4): TrackSpan(12.0, 15.0), (1, 9): TrackSpan(13.5, 17.25)},
        last_seen_by_camera={0: 15.0, 1: 17.25},
    )


def stream_fields(client: redis.Redis) -> list[dict[str, str]]:
    return [
        {key.decode(): value.decode() for key, value in raw.items()}
        for _entry_id, raw in client.xrange(STREAM)
    ]


def test_events_land_in_the_stream_with_every_schema_field(server: EmbeddedRedis):
    publisher = make_publisher(server.url)
    events = [make_event(index, event_type) for index, event_type in enumerate(EventType)]
    sent = publisher.publish(events)
    assert sent == events
    count = len(EventType)
    assert [event.event_id for event in events] == [f"run-7:{index + 1}" for index in range(count)]
    stored = stream_fields(redis.Redis.from_url(server.url))
    assert len(stored) == len(events)
    for event, fields in zip(events, stored, strict=True):
        expected_fields = (
            EVENT_FIELDS
            | ({"merged_ids"} if event.type is EventType.IDENTITY_MERGED else set())
            | ({"split_from"} if event.type is EventType.IDENTITY_SPLIT else set())
        )
        assert set(fields) == expected_fields
        assert fields == event.to_fields()
        parsed = parse_fields(fields)
        assert parsed["schema_version"] == SCHEMA_VERSION
        assert parsed["event_id"] == event.event_id
        assert parsed["type"] == event.type.value
        assert (parsed["camera_id"], parsed["track_id"]) == (event.camera_id, event.track_id)
        assert (parsed["global_id"], parsed["frame_index"]) == (event.global_id, event.frame_index)
        assert parsed["bbox"] == pytest.approx(event.bbox.tolist(), abs=0.051)  # 1 decimal
        assert parsed["timestamp"] == pytest.approx(event.timestamp, abs=5e-4)
        assert parsed["score"] == pytest.approx(event.score, abs=5e-5)
        if event.type is EventType.IDENTITY_MERGED:
            assert parsed["merged_ids"] == [7, 9]
        if event.type is EventType.IDENTITY_SPLIT:
            assert parsed["split_from"] == 5
        else:
            assert "split_from" not in parsed
    assert publisher.counters.events_published == count
    assert publisher.buffered_events == 0
    publisher.close()


def test_identity_hash_sorted_set_and_tracks_hash(server: EmbeddedRedis):
    client = redis.Redis.from_url(server.url)
    publisher = make_publisher(server.url)
    identity = make_identity(3)
    publisher.publish([], changed=[identity])

    stored = {key.decode(): value for key, value in client.hgetall(f"{PREFIX}:identity:3").items()}
    embedding = np.frombuffer(stored["embedding"], dtype="<f4")
    assert np.array_equal(embedding, identity.feature)
    assert int(stored["embedding_dim"]) == 32
    text = {key: value.decode() for key, value in stored.items() if key != "embedding"}
    assert text["schema_version"] == str(SCHEMA_VERSION)
    assert text["global_id"] == "3"
    assert (text["first_seen"], text["last_seen"]) == ("12.000", "17.250")
    assert text["cameras"] == "0,1"
    assert text["tracks"] == "0:4,1:9"
    assert (text["last_seen:0"], text["last_seen:1"]) == ("15.000", "17.250")
    assert client.zrange(f"{PREFIX}:identities", 0, -1, withscores=True) == [(b"3", 17.25)]
    assert client.hgetall(f"{PREFIX}:tracks") == {b"0:4": b"3", b"1:9": b"3"}

    # a newer snapshot replaces the hash (fields that no longer apply disappear)
    identity.feature = -identity.feature
    identity.tracks = {(0, 4): TrackSpan(12.0, 20.0)}
    identity.last_seen_by_camera = {0: 20.0}
    identity.last_seen = 20.0
    publisher.publish([], changed=[identity])
    stored = {key.decode(): value for key, value in client.hgetall(f"{PREFIX}:identity:3").items()}
    assert np.array_equal(np.frombuffer(stored["embedding"], dtype="<f4"), identity.feature)
    assert "last_seen:1" not in stored
    assert stored["cameras"] == b"0"
    assert client.zscore(f"{PREFIX}:identities", "3") == 20.0

    assert client.hgetall(f"{PREFIX}:tracks") == {b"0:4": b"3"}  # 1:9 was forgotten

    publisher.publish([], removed=[3])
    assert client.exists(f"{PREFIX}:identity:3") == 0
    assert client.zcard(f"{PREFIX}:identities") == 0
    assert client.hlen(f"{PREFIX}:tracks") == 0
    publisher.close()


def test_a_track_moved_to_another_identity_keeps_its_entry(server: EmbeddedRedis):
    """A merge folds identity 5 into 3: the track hash points to 3 and removing 5 leaves it."""
    client = redis.Redis.from_url(server.url)
    publisher = make_publisher(server.url)
    folded = make_identity(5)
    folded.tracks = {(2, 7): TrackSpan(1.0, 2.0)}
    publisher.publish([], changed=[folded])
    kept = make_identity(3)
    kept.tracks = {**kept.tracks, (2, 7): TrackSpan(1.0, 2.0)}
    publisher.publish([], changed=[kept], removed=[5])
    assert client.hget(f"{PREFIX}:tracks", "2:7") == b"3"
    assert client.hlen(f"{PREFIX}:tracks") == 3
    publisher.close()


def test_run_description_is_recorded(server: EmbeddedRedis):
    publisher = make_publisher(server.url)
    publisher.describe_run({"cameras": "0,1", "encoder": "tp"})
    stored = redis.Redis.from_url(server.url).hgetall(f"{PREFIX}:run")
    assert stored == {b"run_id": b"run-7", b"cameras": b"0,1", b"encoder": b"tp"}
    publisher.close()


def test_outage_buffers_then_delivers_everything_in_order_once(tmp_path: Path):
    first = EmbeddedRedis(tmp_path / "redis").start()
    second = EmbeddedRedis(tmp_path / "redis", port=first.port)
    try:
        publisher = make_publisher(first.url)
        before = [make_event(index) for index in range(3)]
        assert publisher.publish(before) == before

        first.kill()
        during = [make_event(index, EventType.IDENTITY_ASSIGNED) for index in range(3, 40)]
        started = time.monotonic()
        for offset in range(0, len(during), 4):
            assert publisher.publish(during[offset : offset + 4], [make_identity(5)]) == []
        assert time.monotonic() - started < 2.0, "publish must not block while Redis is down"
        assert not publisher.connected
        assert publisher.counters.connection_failures >= 1
        assert publisher.buffered_events == len(during)
        assert publisher.counters.events_dropped == 0

        second.start()  # same port and data directory: what was sent before the kill is there
        assert publisher.flush(timeout_seconds=5.0)
        assert publisher.connected and publisher.buffered_events == 0

        client = redis.Redis.from_url(second.url)
        event_ids = [fields["event_id"] for fields in stream_fields(client)]
        assert event_ids == [f"run-7:{sequence}" for sequence in range(1, 41)]
        assert client.exists(f"{PREFIX}:identity:5") == 1
        assert publisher.counters.events_published == 40
        publisher.close()
    finally:
        first.kill()
        second.stop()


def test_buffer_bound_drops_the_oldest_events_and_counts_them(tmp_path: Path):
    server = EmbeddedRedis(tmp_path / "redis").start()
    port = server.port
    try:
        publisher = make_publisher(server.url, buffer_max_events=5)
        server.kill()
        for index in range(8):
            publisher.publish([make_event(index)])
        assert publisher.buffered_events == 5
        assert publisher.counters.events_dropped == 3
        assert not publisher.flush(timeout_seconds=0.3), "nothing can be sent while Redis is down"
        server = EmbeddedRedis(tmp_path / "redis", port=port).start()
        assert publisher.flush()
        event_ids = [
            fields["event_id"] for fields in stream_fields(redis.Redis.from_url(server.url))
        ]
        assert event_ids == [f"run-7:{sequence}" for sequence in range(4, 9)]
        publisher.close()
    finally:
        server.stop()


def test_embedded_redis_keeps_its_data_across_restarts(tmp_path: Path):
    with EmbeddedRedis(tmp_path / "redis") as server:
        assert server.running
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        redis.Redis.from_url(server.url).set("kept", "yes")
        port = server.port
    assert not server.running
    with EmbeddedRedis(tmp_path / "redis", port=port) as again:
        assert redis.Redis.from_url(again.url).get("kept") == b"yes"


def test_embedded_redis_that_cannot_start_raises(tmp_path: Path, server: EmbeddedRedis):
    clash = EmbeddedRedis(tmp_path / "other", port=server.port)  # port already taken
    with pytest.raises(RuntimeError, match="exited at start"):
        clash.start(timeout_seconds=5.0)
    assert not clash.running
