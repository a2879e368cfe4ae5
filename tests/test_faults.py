"""Fault injection (slow, about 4 minutes): the scenario of ``benchmarks/faults.py`` shortened
to 3 minutes (three Redis kills, two crosscam SIGKILLs, one stalled RTSP camera). Writes its
report to a temporary folder: the committed benchmarks/results/faults/ comes from the
10-minute ``python -m benchmarks.faults`` run on purpose, never from a test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from benchmarks.fault_checks import IdentityWatch, check_events, stored_identity_rewrites
from benchmarks.faults import main
from pipeline.redis_server import EmbeddedRedis
from tests.rtsp_server import rtsp_available


@pytest.mark.slow
@pytest.mark.skipif(not rtsp_available(), reason="needs the RTSP test server: make rtsp-deps")
def test_short_fault_scenario_loses_no_event_and_reuses_no_global_id(tmp_path: Path) -> None:
    output = tmp_path / "faults"
    arguments = ["--minutes", "3", "--redis-down-seconds", "10", "--stall-seconds", "15"]
    assert main([*arguments, "--output", str(output)]) == 0, (output / "faults.md").read_text()
    report = json.loads((output / "faults.json").read_text())
    assert report["redis_kills"] == 3 and report["crosscam_kills"] == 2
    assert report["camera_stalls"] == 1
    events = report["events"]
    assert events["unique_events"] > 0 and not events["missing_ids"]
    assert not events["conflicting_ids"] and not events["track_keys_shared_by_runs"]
    assert not report["stored_identities_rewritten"]
    assert not report["identities"]["max_global_id_decreases"]


def test_the_checks_see_a_gap_a_shared_id_a_reused_global_id_and_a_lower_max(
    tmp_path: Path,
) -> None:
    """The checks themselves, on a real Redis: each fault they look for is reported."""
    entries = [
        {"event_id": "a:1", "type": "track_started", "camera_id": "0", "track_id": "1"},
        {"event_id": "a:1", "type": "track_started", "camera_id": "0", "track_id": "1"},
        {"event_id": "a:3", "type": "track_ended", "camera_id": "0", "track_id": "1"},
        {"event_id": "b:1", "type": "track_started", "camera_id": "0", "track_id": "1"},
        {"event_id": "b:1", "type": "track_ended", "camera_id": "0", "track_id": "1"},
    ]
    check = check_events(entries)
    assert check.redelivered == 2 and check.conflicting_ids == ["b:1"]
    assert check.missing_ids == ["a:2"] and check.track_keys_shared_by_runs == ["0:1"]
    assert not check.passed

    with EmbeddedRedis(tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url)
        client.set("crosscam:max_global_id", 8)
        client.hset("crosscam:identity:3", mapping={"first_seen": "100.0"})
        watch = IdentityWatch(server.url)
        watch.sample()
        client.hset("crosscam:identity:3", mapping={"first_seen": "90.0"})  # a merge: earlier
        watch.sample()
        client.set("crosscam:max_global_id", 7)
        client.hset("crosscam:identity:3", mapping={"first_seen": "250.0"})  # someone else
        result = watch.stop()
        client.close()
    moves = result.first_seen_moves
    assert [(v.global_id, v.first_seen_before, v.first_seen_after) for v in moves] == [
        (3, 90.0, 250.0)
    ]
    # a run started at 200 s rewrote it; had the identity been made by that run, no rewrite
    assert stored_identity_rewrites(moves, [0.0, 200.0]) == moves
    assert stored_identity_rewrites(moves, [0.0, 50.0]) == []
    assert [(before, after) for _, before, after in result.max_global_id_decreases] == [(8, 7)]
