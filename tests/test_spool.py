"""The on-disk event spool and at-least-once delivery through Redis outages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import redis

from pipeline.config import MatchingConfig, RedisConfig
from pipeline.events import Event, EventType
from pipeline.identity.matching import Identity, IdentityMatcher
from pipeline.identity.store import clear_identities, load_identities
from pipeline.publish import RedisPublisher
from pipeline.redis_server import EmbeddedRedis, free_tcp_port
from pipeline.spool import DiskSpool
from tests.conftest import REPOSITORY_ROOT


def make_events(count: int, start: int = 0) -> list[Event]:
    return [
        Event(
            type=EventType.TRACK_STARTED,
            camera_id=index % 2,
            track_id=start + index,
            global_id=-1,
            bbox=np.array([1, 2, 3, 4], dtype=np.float32),
            frame_index=start + index,
            timestamp=float(start + index),
            score=0.9,
            captured_at=time.monotonic(),
        )
        for index in range(count)
    ]


def stream_track_ids(url: str) -> list[int]:
    client = redis.Redis.from_url(url)
    return [int(fields[b"track_id"]) for _, fields in client.xrange("crosscam:events")]


def test_spool_appends_peeks_acknowledges_in_order(tmp_path: Path):
    spool = DiskSpool(tmp_path)
    spool.append([{"n": str(index)} for index in range(5)])
    spool.append([{"n": "5"}])
    assert len(spool) == 6
    assert [record["n"] for record in spool.peek(3)] == ["0", "1", "2"]
    spool.acknowledge(2)
    assert [record["n"] for record in spool.peek(10)] == ["2", "3", "4", "5"]
    reopened = DiskSpool(tmp_path)
    assert len(reopened) == 4 and reopened.peek(1) == [{"n": "2"}]
    reopened.acknowledge(4)
    assert len(reopened) == 0 and reopened.size_bytes == 0


def test_spool_is_bounded_and_survives_a_torn_write(tmp_path: Path):
    spool = DiskSpool(tmp_path, max_bytes=60)
    stored = spool.append([{"n": str(index)} for index in range(20)])
    assert 0 < stored < 20 and spool.refused == 20 - stored
    with spool.data_path.open("ab") as handle:
        handle.write(b'{"n":"tor')  # a crash in the middle of a write
    reopened = DiskSpool(tmp_path, max_bytes=60)
    assert len(reopened) == stored
    assert [record["n"] for record in reopened.peek(100)] == [str(i) for i in range(stored)]


def test_outage_spools_events_and_replays_them_in_order(tmp_path: Path):
    port = free_tcp_port()
    server = EmbeddedRedis(tmp_path / "redis", port=port).start()
    publisher = RedisPublisher(
        RedisConfig(), server.url, "run", retry_max_seconds=0.2, spool=DiskSpool(tmp_path / "s")
    )
    publisher.publish(make_events(3))
    server.kill()
    for batch in range(5):
        started = time.monotonic()
        publisher.publish(make_events(4, start=3 + 4 * batch))
        assert time.monotonic() - started < 2.5  # an outage never stalls the pipeline
    assert publisher.spool is not None and len(publisher.spool) > 0
    server = EmbeddedRedis(tmp_path / "redis", port=port).start()
    try:
        assert publisher.flush(timeout_seconds=10)
        assert stream_track_ids(server.url) == list(range(23))
        assert publisher.buffered_events == 0
    finally:
        server.stop()


def test_spooled_events_survive_sigkill_and_are_sent_by_the_next_process(tmp_path: Path):
    port = free_tcp_port()
    spool_directory = tmp_path / "spool"
    script = textwrap.dedent(
        f"""
        import os, sys, time
        sys.path.insert(0, {str(REPOSITORY_ROOT)!r})
        from pipeline.config import RedisConfig
        from pipeline.publish import RedisPublisher
        from pipeline.spool import DiskSpool
        from tests.test_spool import make_events
        publisher = RedisPublisher(RedisConfig(), "redis://127.0.0.1:{port}/0", "dead",
                                   retry_max_seconds=0.1, spool=DiskSpool({str(spool_directory)!r}))
        for batch in range(4):
            publisher.publish(make_events(5, start=5 * batch))
        print("spooled", publisher.buffered_events, flush=True)
        time.sleep(60)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPOSITORY_ROOT
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "spooled 20"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)

    with EmbeddedRedis(tmp_path / "redis", port=port) as server:
        publisher = RedisPublisher(
            RedisConfig(), server.url, "next", spool=DiskSpool(spool_directory)
        )
        assert publisher.buffered_events == 20
        assert publisher.flush(timeout_seconds=10)
        assert stream_track_ids(server.url) == list(range(20))


def test_identities_persist_across_restarts_and_fresh_clears_them(tmp_path: Path):
    with EmbeddedRedis(tmp_path / "redis") as server:
        publisher = RedisPublisher(RedisConfig(), server.url, "first")
        feature = np.zeros(8, dtype=np.float32)
        feature[3] = 1.0
        identity = Identity(7, feature, 2.0, 1.0, 5.0, last_seen_by_camera={0: 5.0, 1: 4.0})
        publisher.publish([], changed=[identity])
        client = redis.Redis.from_url(server.url)

        identities, max_global_id = load_identities(client, "crosscam")
        assert max_global_id == 7 and len(identities) == 1
        restored = identities[0]
        assert restored.global_id == 7 and restored.last_seen_by_camera == {0: 5.0, 1: 4.0}
        np.testing.assert_array_equal(restored.feature, feature)

        matcher = IdentityMatcher(MatchingConfig())
        matcher.restore(identities, max_global_id)
        assert matcher.identities[7].cameras == [0, 1]
        assert matcher._next_global_id == 8

        assert clear_identities(client, "crosscam") == 1
        assert load_identities(client, "crosscam") == ([], 0)
