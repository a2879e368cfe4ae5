"""Re-association widened after a camera reconnect (``pipeline/reconnect.py``), without
cameras: the matcher config is raised for the window, then set back."""

from __future__ import annotations

from types import SimpleNamespace

from pipeline.config import MatchingConfig
from pipeline.reconnect import WALKING_BOX_HEIGHTS_PER_SECOND, ReconnectContinuity


def fake_source(camera_id: int, reconnects: int, outage_seconds: float) -> SimpleNamespace:
    return SimpleNamespace(
        camera=SimpleNamespace(id=camera_id),
        counters=SimpleNamespace(reconnects=reconnects),
        last_outage_seconds=outage_seconds,
    )


def test_reassociation_covers_the_outage_for_the_window_then_goes_back():
    matching = MatchingConfig()
    continuity = ReconnectContinuity(matching, margin_seconds=3.0, window_seconds=20.0)
    other = fake_source(1, 0, 0.0)
    continuity.update([fake_source(0, 0, 0.0), other], now=100.0)
    assert matching.reassociation_seconds == 0.0 and matching.reassociation_distance == 1.5
    continuity.update([fake_source(0, 1, 4.0), other], now=110.0)
    assert matching.reassociation_seconds == 7.0
    assert matching.reassociation_distance == 1.5 + WALKING_BOX_HEIGHTS_PER_SECOND * 4.0
    continuity.update([fake_source(0, 1, 4.0), other], now=125.0)  # same reconnect: no change
    assert matching.reassociation_seconds == 7.0
    continuity.update([fake_source(0, 1, 4.0), other], now=130.5)
    assert matching.reassociation_seconds == 0.0 and matching.reassociation_distance == 1.5


def test_a_configured_reassociation_stays_when_it_is_wider():
    matching = MatchingConfig(reassociation_seconds=30.0)
    continuity = ReconnectContinuity(matching)
    continuity.update([fake_source(0, 1, 2.0)], now=0.0)
    assert matching.reassociation_seconds == 30.0
