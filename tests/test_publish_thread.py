"""Publishing on a thread of its own (``pipeline/publish_thread.py``) against the real
embedded Redis: the loop's publish returns at once while Redis is slow or down, and the order,
snapshot and spool guarantees of the publisher hold."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from pipeline.config import RedisConfig
from pipeline.publish import RedisPublisher, StreamRecord
from pipeline.publish_thread import AsyncPublisher
from pipeline.redis_server import EmbeddedRedis
from pipeline.spool import DiskSpool
from tests.test_publish import PREFIX, STREAM, make_event, make_identity, stream_fields

PAUSE_MILLISECONDS = 1000


def publisher(url: str, run_id: str, spool: DiskSpool | None = None) -> RedisPublisher:
    config = RedisConfig(stream=STREAM, key_prefix=PREFIX)
    # a socket timeout longer than the pause: a paused Redis is slow, not failing
    return RedisPublisher(config, url, run_id, socket_timeout_seconds=3.0, spool=spool)


def pause_writes(url: str) -> None:
    """Redis holds every write command of every client for ``PAUSE_MILLISECONDS``."""
    redis.Redis.from_url(url).execute_command("CLIENT", "PAUSE", PAUSE_MILLISECONDS, "WRITE")


def event_ids(url: str, run_id: str) -> list[str]:
    ids = [fields["event_id"] for fields in stream_fields(redis.Redis.from_url(url))]
    return [event_id for event_id in ids if event_id.startswith(f"{run_id}:")]


def test_publish_returns_at_once_while_redis_is_slow_and_keeps_order_and_snapshots(
    tmp_path: Path,
):
    with EmbeddedRedis(tmp_path / "redis") as server:
        in_loop = publisher(server.url, "sync")
        pause_writes(server.url)
        started = time.monotonic()
        assert in_loop.publish([make_event(0)]) != []
        assert time.monotonic() - started > 0.5 * PAUSE_MILLISECONDS / 1000  # the loop waited
        in_loop.close()

        sent: list[StreamRecord] = []
        threaded = AsyncPublisher(
            publisher(server.url, "async"), lambda events, _ms, _at: sent.extend(events)
        )
        identity = make_identity(8)
        pause_writes(server.url)
        slowest = 0.0
        for index in range(30):
            started = time.monotonic()
            threaded.publish([make_event(index)], [identity] if index == 3 else None)
            slowest = max(slowest, time.monotonic() - started)
        identity.last_seen = 99.0  # changed by the matcher after publishing: not sent
        assert slowest < 0.05, "publish waited for Redis"
        assert threaded.buffered_events > 0
        assert threaded.flush(timeout_seconds=5.0)
        threaded.close()
        assert event_ids(server.url, "async") == [f"async:{n}" for n in range(1, 31)]
        assert [event.event_id for event in sent] == [f"async:{n}" for n in range(1, 31)]
        stored = redis.Redis.from_url(server.url).hget(f"{PREFIX}:identity:8", "last_seen")
        assert stored == b"17.250"
        assert threaded.buffered_events == 0


def test_publish_returns_at_once_while_redis_is_down_and_the_spool_replays_in_order(
    tmp_path: Path,
):
    first = EmbeddedRedis(tmp_path / "redis").start()
    second = EmbeddedRedis(tmp_path / "redis", port=first.port)
    try:
        spool = DiskSpool(tmp_path / "spool", 2**20)
        threaded = AsyncPublisher(publisher(first.url, "run", spool))
        threaded.publish([make_event(index) for index in range(3)])
        assert threaded.flush()
        first.kill()
        started = time.monotonic()
        for index in range(3, 40):
            threaded.publish([make_event(index)])
        assert time.monotonic() - started < 0.2, "publish waited for Redis"
        deadline = time.monotonic() + 5.0
        while threaded.counters.events_spooled < 37 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not threaded.connected and len(spool) == 37
        second.start()  # same port and data: what was sent before the kill is there
        assert threaded.flush(timeout_seconds=5.0)
        threaded.close()
        assert event_ids(second.url, "run") == [f"run:{n}" for n in range(1, 41)]
        assert threaded.counters.events_replayed == 37 and len(spool) == 0
    finally:
        first.kill()
        second.stop()


def test_after_send_follows_the_send_that_carried_the_batch(tmp_path: Path):
    with EmbeddedRedis(tmp_path / "redis") as server:
        threaded = AsyncPublisher(publisher(server.url, "stamps"))
        sent_at: list[float] = []
        handed = time.monotonic()
        threaded.publish([make_event(0)], after_send=sent_at.append)
        assert threaded.flush()
        threaded.close()
        assert len(sent_at) == 1 and sent_at[0] >= handed
        assert event_ids(server.url, "stamps") == ["stamps:1"]
