"""Every ended track gets its ``track_ended``, also when the tracker hands out a track id again
after the clip buffer ended it, and both ends wait for their last clips at once (the 10-minute
``benchmarks/faults.py`` run found two tracks that never ended that way)."""

from __future__ import annotations

from pipeline.config import MatchingConfig
from pipeline.events import EventType
from pipeline.identity.service import IdentityService
from tests.test_identity_splits import track_end
from tests.test_matching import axis, embedded


def test_one_track_id_ending_twice_before_its_last_clips_gets_two_track_ended() -> None:
    service = IdentityService(MatchingConfig(similarity_threshold=0.5))
    service.embedded([embedded(0, 5, axis(0), 0.0, 2.0)])
    assert service.ended([track_end(0, 5, 3.0)], {(0, 5)}) == []  # waits for its last clip
    # the tracker found the person again under id 5; that track ends too, its clip in flight
    assert service.ended([track_end(0, 5, 9.0)], {(0, 5)}) == []
    first = service.embedded([embedded(0, 5, axis(0), 1.0, 3.0, final=True)])
    second = service.embedded([embedded(0, 5, axis(0), 7.0, 9.0, final=True)])
    ends = [event for event in first.events + second.events if event.type is EventType.TRACK_ENDED]
    assert [event.timestamp for event in ends] == [3.0, 9.0]
    assert service.pending_ends() == []


def test_ends_still_waiting_at_shutdown_are_all_published() -> None:
    service = IdentityService(MatchingConfig(similarity_threshold=0.5))
    service.embedded([embedded(0, 5, axis(0), 0.0, 2.0)])
    service.ended([track_end(0, 5, 3.0)], {(0, 5)})
    service.ended([track_end(0, 5, 9.0)], {(0, 5)})
    assert [event.timestamp for event in service.pending_ends()] == [3.0, 9.0]
