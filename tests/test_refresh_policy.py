"""Refresh clips encoded only where they can change a decision (``pipeline/refresh_policy.py``)."""

from __future__ import annotations

from pipeline.clips import Clip, ClipKind
from pipeline.config import ClipsConfig
from pipeline.refresh_policy import RefreshPolicy
from tests.test_encode import make_clip


def clip(kind: ClipKind, at: float, height: float = 100.0, quality: float = 0.8) -> Clip:
    made = make_clip(7, camera_id=1)
    made.kind, made.last_timestamp, made.box_height, made.quality = kind, at, height, quality
    made.final = kind == "final"
    return made


def uncertain_policy() -> RefreshPolicy:
    return RefreshPolicy(
        ClipsConfig(refresh_policy="uncertain", settled_clips=2, settled_refresh_seconds=16.0)
    )


def encode(policy: RefreshPolicy, item: Clip, global_ids: dict[tuple[int, int], int]) -> bool:
    """Admit and, if admitted, match ``item``; whether it was encoded."""

    def global_id_of(camera_id: int, track_id: int) -> int:
        return global_ids.get((camera_id, track_id), -1)

    admitted = policy.admit([item], global_id_of)
    policy.matched(admitted, global_id_of)
    return bool(admitted)


def test_always_encodes_every_clip():
    policy = RefreshPolicy(ClipsConfig())
    clips = [clip("first", 1.0), clip("refresh", 5.0), clip("refresh", 9.0)]
    assert policy.admit(clips, lambda camera, track: 3) == clips
    assert policy.skipped == 0


def test_settled_tracks_refresh_rarely_and_uncertain_ones_always():
    policy = uncertain_policy()
    identities: dict[tuple[int, int], int] = {}
    assert encode(policy, clip("first", 1.0), identities)  # first clips always
    assert encode(policy, clip("refresh", 5.0), identities)  # no identity yet
    identities[(1, 7)] = 4
    assert encode(policy, clip("refresh", 9.0), identities)  # one clip on identity 4
    assert encode(policy, clip("refresh", 13.0), identities)  # two in a row: settled now
    assert not encode(policy, clip("refresh", 17.0), identities)
    assert not encode(policy, clip("refresh", 21.0), identities)
    assert encode(policy, clip("refresh", 29.5), identities)  # 16 s since the last encoded
    assert encode(policy, clip("encounter", 30.0), identities)
    assert policy.skipped == 2


def test_better_crops_a_changed_identity_or_a_request_are_encoded():
    policy = uncertain_policy()
    identities = {(1, 7): 4}
    for at in (1.0, 5.0):
        assert encode(policy, clip("refresh", at), identities)
    assert not encode(policy, clip("refresh", 9.0, height=110.0), identities)
    assert encode(policy, clip("refresh", 13.0, height=125.0), identities)  # 1.25x taller
    assert not encode(policy, clip("refresh", 17.0), identities)
    identities[(1, 7)] = 2  # merged into identity 2 (or moved there by an identity pass)
    assert encode(policy, clip("refresh", 21.0), identities)
    assert encode(policy, clip("refresh", 25.0), identities)  # second in a row on 2: settled
    assert not encode(policy, clip("refresh", 29.0), identities)
    policy.request([(1, 7)])
    assert encode(policy, clip("refresh", 33.0), identities)


def test_a_track_end_drops_its_state():
    policy = uncertain_policy()
    identities = {(1, 7): 4}
    for at in (1.0, 5.0):
        encode(policy, clip("refresh", at), identities)
    assert encode(policy, clip("final", 6.0), identities)
    # the tracker handed the id out again: a new track, uncertain again
    assert encode(policy, clip("refresh", 10.0), identities)
