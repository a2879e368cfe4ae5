"""A stored identity keeps the time it was first seen when a later run splits a track off it
(found by ``benchmarks/faults.py``: the split rebuilt ``first_seen`` from the new run's tracks
only, and the rewritten hash in Redis said the person was first seen minutes later)."""

from __future__ import annotations

from pathlib import Path

import redis

from pipeline.config import RedisConfig
from pipeline.identity.matching import MatchResult
from pipeline.identity.store import load_identities
from pipeline.publish import RedisPublisher
from pipeline.redis_server import EmbeddedRedis
from tests.test_matching import axis, embedded, matcher


def test_a_split_in_a_later_run_keeps_the_stored_first_seen(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis") as server:
        first_run = matcher(identity_ttl_seconds=3600.0)
        result = first_run.update([embedded(0, 1, axis(0), 10.0, 20.0, final=True)])
        publisher = RedisPublisher(RedisConfig(), server.url, "first")
        publisher.publish(result.events, changed=result.changed)
        publisher.close()

        client = redis.Redis.from_url(server.url)
        stored, max_global_id = load_identities(client, "crosscam")
        next_run = matcher(identity_ttl_seconds=3600.0)
        next_run.restore(stored, max_global_id)
        changed = next_run.update([embedded(0, 5, axis(0), 100.0, 102.0)]).changed
        changed += next_run.update([embedded(1, 6, axis(0), 103.0, 105.0)]).changed
        assert next_run.global_id_of(0, 5) == next_run.global_id_of(1, 6) == 1
        split = MatchResult()
        assert next_run.split_track((1, 6), split)
        assert next_run.identities[1].first_seen == 10.0
        assert next_run.identities[next_run.global_id_of(1, 6)].first_seen == 103.0

        publisher = RedisPublisher(RedisConfig(), server.url, "next")
        publisher.publish(split.events, changed=split.changed)
        publisher.close()
        assert client.hget("crosscam:identity:1", "first_seen") == b"10.000"
        client.close()
