"""Learning camera transition windows from published events."""

from __future__ import annotations

from pipeline.config import TransitionWindow
from pipeline.identity.topology import learn_windows, presence_from_events


def event(
    kind: str, camera: int, global_id: int, time: float, **extra: object
) -> dict[str, object]:
    return {"type": kind, "camera_id": camera, "global_id": global_id, "timestamp": time} | extra


def test_gaps_between_cameras_become_a_window():
    events = []
    for global_id, (leave, arrive) in enumerate([(10, 18), (30, 40), (50, 56)], start=1):
        events += [
            event("identity_assigned", 0, global_id, leave - 5),
            event("track_ended", 0, global_id, leave),
            event("identity_assigned", 1, global_id, arrive),
            event("track_ended", 1, global_id, arrive + 4),
        ]
    events.append(event("track_started", 1, -1, 3.0))  # unknown identity: ignored
    windows = learn_windows(presence_from_events(events))
    assert len(windows) == 1
    window = TransitionWindow.model_validate(windows[0])
    assert (window.from_camera, window.to_camera, window.overlap) == (0, 1, False)
    assert window.min_seconds <= 6 and window.max_seconds >= 10
    assert window.min_seconds > 3 and window.max_seconds < 14


def test_views_seen_together_are_flagged_as_overlapping_and_merges_are_followed():
    events = [
        event("identity_assigned", 0, 1, 10.0),
        event("track_ended", 0, 1, 20.0),
        event("identity_assigned", 1, 2, 12.0),
        event("identity_merged", 1, 1, 15.0, merged_ids=[2]),
        event("track_ended", 1, 2, 18.0),
        event("identity_assigned", 0, 3, 30.0),
        event("identity_assigned", 1, 3, 31.0),
    ]
    presence = presence_from_events(events)
    assert set(presence[1]) == {0, 1}
    windows = learn_windows(presence)
    assert windows and windows[0]["overlap"] is True


def test_too_little_evidence_gives_no_window():
    events = [event("identity_assigned", 0, 1, 1.0), event("identity_assigned", 1, 1, 9.0)]
    assert learn_windows(presence_from_events(events)) == []
