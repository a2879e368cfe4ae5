"""Re-association widened after a camera reconnect (``pipeline/reconnect.py``), without
cameras: the matcher config is raised for the window, then set back; with separate edges and
matchers, through the ``reconnected`` clip message."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from pipeline.clip_messages import parse_message, reconnected_message
from pipeline.config import MatchingConfig
from pipeline.reconnect import (
    WALKING_BOX_HEIGHTS_PER_SECOND,
    ReconnectContinuity,
    ReconnectWatcher,
)


def fake_source(camera_id: int, reconnects: int, outage_seconds: float) -> SimpleNamespace:
    return SimpleNamespace(
        camera=SimpleNamespace(id=camera_id),
        counters=SimpleNamespace(reconnects=reconnects),
        last_outage_seconds=outage_seconds,
    )


def test_reassociation_covers_the_outage_for_the_window_then_goes_back():
    matching = MatchingConfig()
    continuity = ReconnectContinuity(matching, margin_seconds=3.0, window_seconds=20.0)
    continuity.refresh(now=100.0)
    assert matching.reassociation_seconds == 0.0 and matching.reassociation_distance == 1.5
    continuity.camera_reconnected(0, 4.0, now=110.0)
    assert matching.reassociation_seconds == 7.0
    assert matching.reassociation_distance == 1.5 + WALKING_BOX_HEIGHTS_PER_SECOND * 4.0
    continuity.refresh(now=125.0)  # within the window: no change
    assert matching.reassociation_seconds == 7.0
    continuity.refresh(now=130.5)
    assert matching.reassociation_seconds == 0.0 and matching.reassociation_distance == 1.5


def test_a_configured_reassociation_stays_when_it_is_wider():
    matching = MatchingConfig(reassociation_seconds=30.0)
    continuity = ReconnectContinuity(matching)
    continuity.camera_reconnected(0, 2.0, now=0.0)
    assert matching.reassociation_seconds == 30.0


def test_the_watcher_reports_each_reconnect_once():
    watcher = ReconnectWatcher()
    assert watcher.poll([fake_source(0, 0, 0.0), fake_source(1, 0, 0.0)]) == []
    assert watcher.poll([fake_source(0, 2, 6.5), fake_source(1, 0, 0.0)]) == [(0, 6.5)]
    assert watcher.poll([fake_source(0, 2, 6.5), fake_source(1, 0, 0.0)]) == []


def test_a_reconnect_message_round_trips_the_clip_stream_format():
    message = parse_message(reconnected_message("edge-a", 3, 4.5).to_fields())
    assert message.kind == "reconnected" and message.edge == "edge-a"
    assert message.track.camera_id == 3 and message.outage_seconds == 4.5


def test_a_matcher_widens_reassociation_when_an_edge_says_a_camera_reconnected(
    tmp_path: Path,
) -> None:
    import redis

    from pipeline.config import CrosscamConfig
    from pipeline.matcher_role import DistributedMatcher
    from pipeline.redis_server import EmbeddedRedis

    config = CrosscamConfig.model_validate(
        {"cameras": [], "redis": {"spool_directory": str(tmp_path / "spool")}}
    )
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(server.url)
        client.xadd(config.redis.clip_stream, reconnected_message("e0", 0, 5.0).to_fields())
        matcher = DistributedMatcher(config, server.url, "m0", "test-run")
        counters = matcher.run(idle_exit_seconds=0.5)
    finally:
        server.stop()
    assert counters.messages == 1
    widened = matcher.identity.matcher.config
    assert widened.reassociation_seconds == 5.0 + matcher.continuity.margin_seconds
    assert widened.reassociation_distance > config.matching.reassociation_distance
    assert config.matching.reassociation_seconds == 0.0  # the run's config is not changed
