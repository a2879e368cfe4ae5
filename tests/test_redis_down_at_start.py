"""Redis unreachable when crosscam starts: the stored gallery is waited for, never replaced
(issue 15 item 1), against a real Redis that comes up later."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import redis

from pipeline.config import MatchingConfig, RedisConfig
from pipeline.identity.matching import IdentityMatcher
from pipeline.identity.store import restore_gallery
from pipeline.redis_server import EmbeddedRedis, free_tcp_port


def test_restore_waits_for_a_redis_that_comes_up_later(tmp_path: Path):
    port = free_tcp_port()
    data = tmp_path / "redis"
    with EmbeddedRedis(data, port=port) as server:  # a previous run stored ids up to 8
        client = redis.Redis.from_url(server.url)
        client.set("crosscam:max_global_id", 8)
        client.save()
    matcher = IdentityMatcher(MatchingConfig())
    outcome: dict[str, bool] = {}
    waiting = threading.Thread(
        target=lambda: outcome.setdefault(
            "restored",
            restore_gallery(server.url, RedisConfig(), matcher, retry_seconds=0.2),
        )
    )
    waiting.start()
    time.sleep(1.5)
    assert waiting.is_alive(), "restore gave up on a Redis that is down"
    with EmbeddedRedis(data, port=port):
        waiting.join(timeout=30)
    assert outcome == {"restored": True}
    assert matcher._next_global_id == 9  # new people get 9 and up, never a stored id


def test_restore_stops_waiting_when_asked(tmp_path: Path):
    url = f"redis://127.0.0.1:{free_tcp_port()}/0"
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    matcher = IdentityMatcher(MatchingConfig())
    assert restore_gallery(url, RedisConfig(), matcher, stop.is_set, retry_seconds=0.1) is False
