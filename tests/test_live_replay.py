"""The saved-log replay through the live identity path (benchmarks/live_replay.py)."""

from __future__ import annotations

import numpy as np

from benchmarks.live_replay import _arrivals, replay_live
from pipeline.config import CrosscamConfig
from tests.test_online_refinement import _scene


def test_the_replay_hands_clips_over_in_time_order_and_ends_tracks_after_their_clips():
    log, _ = _scene()
    config = CrosscamConfig()
    arrivals = _arrivals(log, config)
    times = [arrival.time for arrival in arrivals]
    assert times == sorted(times)
    clips = sum(len(record.embeddings) for record in log.records.values())
    assert sum(arrival.clip >= 0 for arrival in arrivals) == clips
    for key, record in log.records.items():
        mine = [arrival for arrival in arrivals if arrival.key == key]
        assert mine[-1].clip == -1  # the end comes after the track's clips
        assert mine[-1].time == record.timestamps[-1] + config.clips.track_end_seconds
        assert all(record.timestamps[0] <= a.last <= record.timestamps[-1] for a in mine)


def test_one_person_the_matcher_saw_as_two_ends_as_one_live_identity():
    """The walking person's two views have unlike clips (two online identities); the periodic
    pass links them by their feet, and the live state at the end says one person."""
    log, _ = _scene()
    config = CrosscamConfig()
    config.matching.similarity_threshold = 0.99  # appearance alone never matches here
    config.identity.refine_every_seconds = 10.0
    matcher, online = replay_live(log, config)
    assert online.passes >= 1
    assert matcher.global_id_of(0, 60) == matcher.global_id_of(1, 160) >= 0
    crowd = {matcher.global_id_of(0, person) for person in range(16)}
    assert len(crowd) == 16 and -1 not in crowd  # sixteen people stay sixteen
    assert np.isfinite(online.seconds_total)
