"""Cross-camera identity matching on synthetic unit embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.clips import Clip
from pipeline.config import MatchingConfig
from pipeline.events import EventType
from pipeline.identity.matching import EmbeddedClip, IdentityMatcher

DIMENSION = 16


def unit(vector: np.ndarray | list[float]) -> np.ndarray:
    padded = np.zeros(DIMENSION, dtype=np.float32)
    values = np.asarray(vector, dtype=np.float32)
    padded[: len(values)] = values
    return padded / np.linalg.norm(padded)


def axis(index: int) -> np.ndarray:
    """The unit vector along one axis: embeddings of distinct people are orthogonal."""
    vector = np.zeros(DIMENSION, dtype=np.float32)
    vector[index] = 1.0
    return vector


def at_angle(first: int, second: int, similarity: float) -> np.ndarray:
    """A unit vector in the plane of two axes with the given cosine to ``axis(first)``."""
    return similarity * axis(first) + np.sqrt(1 - similarity**2) * axis(second)


def embedded(
    camera_id: int,
    track_id: int,
    embedding: np.ndarray,
    first: float,
    last: float,
    quality: float = 1.0,
    final: bool = False,
) -> EmbeddedClip:
    """A clip of a track seen from ``first`` to ``last`` seconds, with its embedding."""
    clip = Clip(
        camera_id=camera_id,
        track_id=track_id,
        crops=np.zeros((4, 8, 4, 3), dtype=np.uint8),
        frame_indices=np.arange(4, dtype=np.int64),
        quality=quality,
        final=final,
        first_timestamp=first,
        last_timestamp=last,
        last_frame_index=round(last * 10),
        last_box=np.array([10, 20, 30 + track_id, 80], dtype=np.float32),
        captured_at=123.0,
    )
    return EmbeddedClip(clip, embedding.astype(np.float32))


def matcher(**changes: float) -> IdentityMatcher:
    settings = {
        "similarity_threshold": 0.5,
        "merge_threshold": 0.8,
        "identity_ttl_seconds": 60.0,
        "max_feature_weight": 8.0,
    }
    return IdentityMatcher(MatchingConfig.model_validate(settings | changes))


@pytest.mark.parametrize("same_batch", [True, False])
def test_same_person_in_two_cameras_gets_one_global_id(same_batch: bool):
    gallery = matcher()
    first = embedded(0, 1, axis(0), 0.0, 1.0)
    second = embedded(1, 4, at_angle(0, 1, 0.9), 0.2, 1.2)
    if same_batch:
        events = gallery.update([first, second]).events
    else:
        events = gallery.update([first]).events + gallery.update([second]).events
    assert [event.type for event in events] == [EventType.IDENTITY_ASSIGNED] * 2
    assert [(event.camera_id, event.track_id, event.global_id) for event in events] == [
        (0, 1, 1),
        (1, 4, 1),
    ]
    assert events[0].score == pytest.approx(1.0)  # opened the identity
    assert events[1].score == pytest.approx(0.9, abs=1e-5)
    assert events[1].bbox.tolist() == [10, 20, 34, 80]
    assert (events[1].frame_index, events[1].timestamp) == (12, 1.2)
    assert events[1].captured_at == 123.0
    assert gallery.global_id_of(0, 1) == gallery.global_id_of(1, 4) == 1
    assert list(gallery.identities) == [1]
    assert gallery.identities[1].cameras == [0, 1]
    assert gallery.multi_camera_count() == 1


def test_different_people_get_different_ids():
    gallery = matcher()
    result = gallery.update([embedded(0, 1, axis(0), 0, 1), embedded(1, 1, axis(1), 0, 1)])
    result2 = gallery.update([embedded(1, 2, axis(2), 1, 2)])
    assert [event.global_id for event in result.events + result2.events] == [1, 2, 3]
    assert gallery.global_id_of(1, 2) == 3
    assert gallery.global_id_of(5, 5) == -1
    assert gallery.multi_camera_count() == 0
    assert sorted(identity.global_id for identity in result.changed) == [1, 2]


@pytest.mark.parametrize(("similarity", "joins"), [(0.49, False), (0.51, True)])
@pytest.mark.parametrize("same_batch", [True, False])
def test_similarity_threshold_is_respected(similarity: float, joins: bool, same_batch: bool):
    gallery = matcher(similarity_threshold=0.5)
    first = embedded(0, 1, axis(0), 0, 1)
    second = embedded(1, 1, at_angle(0, 1, similarity), 0, 1)
    if same_batch:
        gallery.update([first, second])
    else:
        gallery.update([first])
        gallery.update([second])
    assert (gallery.global_id_of(1, 1) == gallery.global_id_of(0, 1)) is joins
    assert len(gallery.identities) == (1 if joins else 2)


@pytest.mark.parametrize("same_batch", [True, False])
def test_overlapping_tracks_of_one_camera_never_share_an_identity(same_batch: bool):
    gallery = matcher()
    first = embedded(0, 1, axis(0), 0.0, 2.0)
    twin = embedded(0, 2, axis(0), 1.0, 3.0)  # identical embedding, same camera, overlapping
    if same_batch:
        gallery.update([first, twin])
    else:
        gallery.update([first])
        gallery.update([twin])
    assert gallery.global_id_of(0, 1) != gallery.global_id_of(0, 2)
    assert len(gallery.identities) == 2
    # a third camera sees the same look: it may join either, but only one
    gallery.update([embedded(1, 7, axis(0), 1.0, 2.0)])
    assert gallery.global_id_of(1, 7) in {1, 2}


def test_track_hand_over_within_the_tolerance_keeps_the_identity():
    gallery = matcher()
    gallery.update([embedded(0, 1, axis(0), 0.0, 2.0, final=True)])
    gallery.update([embedded(0, 2, axis(0), 1.9, 3.0)])  # overlaps by 0.1 s: a re-tracked person
    assert gallery.global_id_of(0, 2) == gallery.global_id_of(0, 1) == 1


def test_an_active_track_blocks_its_identity_in_its_camera_until_it_ends():
    gallery = matcher()
    # track 1's first clip covers 0-1 s; it is still visible (no final clip, not ended)
    gallery.update([embedded(0, 1, axis(0), 0.0, 1.0)])
    # a look-alike appears in the same camera at 2 s, while track 1 is still there
    gallery.update([embedded(0, 2, axis(0), 2.0, 3.0)])
    assert gallery.global_id_of(0, 2) != gallery.global_id_of(0, 1)
    # once track 1 has ended, a later track in that camera may take the identity back
    gallery.end_track(0, 1, 1.5)
    gallery.update([embedded(0, 3, axis(0), 4.0, 5.0)])
    assert gallery.global_id_of(0, 3) == gallery.global_id_of(0, 1)


def test_hungarian_assignment_beats_greedy():
    gallery = matcher(similarity_threshold=0.5)
    a = axis(0)
    b = at_angle(0, 1, np.cos(np.radians(50)))
    # two people seen at once in camera 0: distinct identities even though a.b = 0.64
    gallery.update([embedded(0, 1, a, 0, 5), embedded(0, 2, b, 0, 5)])
    identity_a, identity_b = gallery.global_id_of(0, 1), gallery.global_id_of(0, 2)
    assert identity_a != identity_b
    x = at_angle(0, 1, np.cos(np.radians(20)))  # 0.94 to a, 0.87 to b
    y = np.cos(np.radians(31.8)) * axis(0) - np.sin(np.radians(31.8)) * axis(1)  # 0.85, 0.14
    similarities = np.array([[x @ a, x @ b], [y @ a, y @ b]])
    assert similarities[0, 0] == similarities.max()  # greedy takes x -> a ...
    assert similarities[1, 1] < 0.5  # ... and leaves y below threshold with b
    result = gallery.update([embedded(1, 10, x, 6, 7), embedded(1, 11, y, 6, 7)])
    assert gallery.global_id_of(1, 10) == identity_b
    assert gallery.global_id_of(1, 11) == identity_a
    assert len(gallery.identities) == 2
    scores = {event.track_id: event.score for event in result.events}
    assert scores[10] == pytest.approx(x @ b, abs=1e-4)
    assert scores[11] == pytest.approx(y @ a, abs=1e-4)


def test_feature_is_a_quality_weighted_running_mean_with_a_capped_weight():
    gallery = matcher(max_feature_weight=3.0)
    first, second, third = axis(0), axis(1), axis(2)
    gallery.update([embedded(0, 1, first, 0, 1, quality=1.0)])
    identity = gallery.identities[1]
    assert np.allclose(identity.feature, first) and identity.weight == pytest.approx(1.0)
    result = gallery.update([embedded(0, 1, second, 0, 2, quality=1.0)])
    assert result.events == [] and result.changed == [identity]
    assert np.allclose(identity.feature, unit([1, 1]))
    assert identity.weight == pytest.approx(2.0)
    gallery.update([embedded(0, 1, third, 0, 3, quality=0.5)])
    expected = unit(2.0 * unit([1, 1]) + 0.5 * third)
    assert np.allclose(identity.feature, expected, atol=1e-6)
    assert identity.weight == pytest.approx(2.5)
    assert identity.feature.dtype == np.float32
    assert np.linalg.norm(identity.feature) == pytest.approx(1.0)
    for last in (4, 5, 6):
        gallery.update([embedded(0, 1, first, 0, last, quality=1.0)])
    assert identity.weight == pytest.approx(3.0)  # capped
    before = identity.feature.copy()
    gallery.update([embedded(0, 1, second, 0, 7, quality=1.0)])
    assert np.allclose(identity.feature, unit(3.0 * before + second), atol=1e-6)
    assert (identity.first_seen, identity.last_seen) == (0, 7)
    assert identity.tracks[(0, 1)].end == 7


@pytest.mark.parametrize("camera_id", [1, 0])
def test_later_clip_closer_to_another_identity_merges_them(camera_id: int):
    gallery = matcher(merge_threshold=0.8)
    gallery.update([embedded(0, 1, axis(0), 0, 2, final=True)])
    # camera 1, or camera 0 after track 1 ended: never simultaneous with track 1
    gallery.update([embedded(camera_id, 5, axis(1), 3, 4)])  # at first looks like someone else
    assert gallery.global_id_of(camera_id, 5) == 2
    # a better view of track 5: it is the person of identity 1
    result = gallery.update([embedded(camera_id, 5, at_angle(0, 1, 0.99), 3, 6)])
    merges = [event for event in result.events if event.type is EventType.IDENTITY_MERGED]
    assert len(merges) == 1
    merge = merges[0]
    assert (merge.global_id, merge.merged_ids) == (1, [2])  # the older identity is kept
    assert (merge.camera_id, merge.track_id) == (camera_id, 5)
    assert merge.score == pytest.approx(0.99, abs=1e-4)
    assert gallery.global_id_of(camera_id, 5) == gallery.global_id_of(0, 1) == 1
    assert list(gallery.identities) == [1]
    assert result.removed == [2]
    assert [identity.global_id for identity in result.changed] == [1]
    kept = gallery.identities[1]
    assert set(kept.tracks) == {(0, 1), (camera_id, 5)}
    assert kept.cameras == sorted({0, camera_id})
    assert (kept.first_seen, kept.last_seen) == (0, 6)


def test_no_merge_between_identities_seen_together_in_one_camera():
    gallery = matcher(merge_threshold=0.8)
    gallery.update([embedded(0, 1, axis(0), 0, 5), embedded(0, 2, axis(1), 0, 5)])
    result = gallery.update([embedded(0, 2, at_angle(0, 1, 0.99), 0, 6)])
    assert all(event.type is not EventType.IDENTITY_MERGED for event in result.events)
    assert len(gallery.identities) == 2
    assert gallery.global_id_of(0, 2) == 2


def test_no_merge_below_merge_threshold():
    gallery = matcher(merge_threshold=0.95)
    gallery.update([embedded(0, 1, axis(0), 0, 2)])
    gallery.update([embedded(1, 5, axis(1), 0, 2)])
    result = gallery.update([embedded(1, 5, at_angle(0, 1, 0.9), 0, 4)])
    assert result.removed == [] and len(gallery.identities) == 2


def test_identities_expire_after_ttl_once_their_tracks_ended():
    gallery = matcher(identity_ttl_seconds=10.0)
    gallery.update([embedded(0, 1, axis(0), 0, 1, final=True)])  # ended by its final clip
    gallery.update([embedded(0, 2, axis(1), 0, 2)])  # still visible
    gallery.update([embedded(1, 2, axis(1), 1, 3, final=True)])  # same person, camera 1 ended
    gallery.update([embedded(0, 3, axis(2), 0, 2)])
    gallery.end_track(0, 3, 2.0)  # ended without a final clip
    assert len(gallery.identities) == 3
    result = gallery.update([embedded(1, 9, axis(3), 10, 11)])  # now 11: deadline 1
    assert result.removed == []
    result = gallery.update([embedded(1, 9, axis(3), 10, 14)])  # deadline 4
    assert sorted(result.removed) == [1, 3]
    assert gallery.global_id_of(0, 1) == -1 and gallery.global_id_of(0, 3) == -1
    assert 2 in gallery.identities, "an identity with a visible track never expires"
    assert gallery.expired_count == 2
    gallery.end_track(0, 2, 3.0)
    gallery.update([embedded(1, 9, axis(3), 10, 15)])
    assert 2 not in gallery.identities and gallery.expired_count == 3
    assert gallery.multi_camera_count() == 1  # identity 2, seen in both cameras, expired
    # an expired track seen again starts a new identity
    gallery.update([embedded(0, 1, axis(0), 20, 21)])
    assert gallery.global_id_of(0, 1) == 5


def test_a_person_seen_all_day_keeps_a_bounded_track_history():
    """One person re-appearing in 200 short tracks stays one identity, and the matcher keeps
    only the newest ``max_tracks_per_identity`` of those tracks (and their evidence)."""
    gallery = matcher(max_tracks_per_identity=8, identity_ttl_seconds=1e6)
    for track_id in range(1, 201):
        start = 10.0 * track_id
        gallery.update([embedded(track_id % 3, track_id, axis(0), start, start + 2, final=True)])
    assert len(gallery.identities) == 1
    identity = next(iter(gallery.identities.values()))
    assert sorted(track for _, track in identity.tracks) == list(range(193, 201))
    assert len(gallery.evidence) == 8 and len(gallery.track_to_identity) == 8
    assert gallery.global_id_of(2, 200) == identity.global_id
    assert gallery.global_id_of(1, 1) == -1  # forgotten


def test_live_tracks_are_never_forgotten():
    gallery = matcher(max_tracks_per_identity=2, identity_ttl_seconds=1e6)
    gallery.update([embedded(0, 1, axis(0), 0, 1)])  # still live
    for track_id in (2, 3, 4):
        gallery.update([embedded(1, track_id, axis(0), track_id, track_id + 0.5, final=True)])
    identity = next(iter(gallery.identities.values()))
    assert (0, 1) in identity.tracks and (1, 4) in identity.tracks and len(identity.tracks) == 2


def test_reset_forgets_everything():
    gallery = matcher()
    gallery.update([embedded(0, 1, axis(0), 0, 1), embedded(1, 1, axis(0), 0, 1)])
    gallery.reset()
    assert gallery.identities == {} and gallery.global_id_of(0, 1) == -1
    gallery.update([embedded(0, 1, axis(0), 0, 1)])
    assert gallery.global_id_of(0, 1) == 1
    assert IdentityMatcher(gallery.config).update([]).events == []


def test_identity_service_match_times_stay_bounded(monkeypatch):
    import pipeline.identity.service as identity_service

    monkeypatch.setattr(identity_service, "MATCH_LATENCY_SAMPLES", 5)
    service = identity_service.IdentityService(MatchingConfig())
    for index in range(12):
        service.embedded([embedded(0, index, axis(index % DIMENSION), index, index + 0.5)])
    assert len(service.match_latency_ms) == 5  # the newest five batches
    assert service.match_seconds_total >= sum(service.match_latency_ms) / 1000.0 > 0
