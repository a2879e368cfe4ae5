"""Identity splits: tracks seen together in one camera, or a track that keeps disagreeing with
the rest of its identity, leave it for a new identity (``identity_split``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis

from pipeline.clips import TrackEvent
from pipeline.config import MatchingConfig, RedisConfig
from pipeline.events import EventType, parse_fields
from pipeline.identity.matching import IdentityMatcher
from pipeline.identity.service import IdentityService
from pipeline.identity.splits import SplitConfig
from pipeline.identity.store import load_identities
from pipeline.publish import RedisPublisher
from pipeline.redis_server import EmbeddedRedis
from tests.test_matching import at_angle, axis, embedded, matcher


def track_end(camera_id: int, track_id: int, timestamp: float) -> TrackEvent:
    box = np.array([10, 20, 30, 80], dtype=np.float32)
    return TrackEvent(camera_id, track_id, round(timestamp * 10), timestamp, box, 0.9, 0.0)


def two_tracks_one_identity(service: IdentityService) -> None:
    """Track 1 of camera 0 ends its clips at 2 s; track 2 of camera 0 starts at 2.5 s with the
    same look and joins its identity (the spans do not overlap yet)."""
    service.embedded([embedded(0, 1, axis(0), 0.0, 2.0, final=True)])
    service.embedded([embedded(0, 2, axis(0), 2.5, 4.0)])
    assert service.matcher.global_id_of(0, 1) == service.matcher.global_id_of(0, 2) == 1


def service_with_matcher() -> IdentityService:
    return IdentityService(MatchingConfig(similarity_threshold=0.5))


def test_tracks_seen_together_in_one_camera_split_into_two_identities():
    service = service_with_matcher()
    two_tracks_one_identity(service)
    # the tracker reports track 1's end at 5 s (it coasted past its last clip): for 2.5 s both
    # tracks were in camera 0 at once, so they are two people
    assert service.ended([track_end(0, 1, 5.0)], set())[0].global_id == 1
    assert service.ended([track_end(0, 2, 6.0)], {(0, 2)}) == []  # waits for its last clip
    result = service.embedded([embedded(0, 2, axis(0), 4.0, 6.0, final=True)])
    splits = [event for event in result.events if event.type is EventType.IDENTITY_SPLIT]
    assert len(splits) == 1
    split = splits[0]
    assert (split.camera_id, split.track_id, split.split_from, split.global_id) == (0, 2, 1, 2)
    assert split.score == -1.0
    assert split.to_fields()["split_from"] == "1"
    assert parse_fields(split.to_fields())["split_from"] == 1
    gallery = service.matcher
    assert gallery.global_id_of(0, 1) == 1 and gallery.global_id_of(0, 2) == 2
    assert sorted(gallery.identities[1].tracks) == [(0, 1)]
    assert sorted(gallery.identities[2].tracks) == [(0, 2)]
    assert {identity.global_id for identity in result.changed} == {1, 2}
    # the deferred end of track 2 follows the split and carries the new id
    ended = [event for event in result.events if event.type is EventType.TRACK_ENDED]
    assert [(event.track_id, event.global_id) for event in ended] == [(2, 2)]
    assert result.events.index(split) < result.events.index(ended[0])
    # simultaneous tracks are never merged back
    gallery.update([embedded(1, 9, axis(0), 7.0, 8.0)])
    assert len(gallery.identities) == 2 and gallery.splits_count == 1


@pytest.mark.parametrize("end_time", [2.0, 2.6])
def test_tracks_one_after_the_other_do_not_split(end_time: float):
    service = service_with_matcher()
    two_tracks_one_identity(service)
    service.ended([track_end(0, 1, end_time)], set())  # within the hand-over tolerance
    result = service.embedded([embedded(0, 2, axis(0), 4.0, 6.0)])
    assert EventType.IDENTITY_SPLIT not in [event.type for event in result.events]
    assert service.matcher.global_id_of(0, 2) == 1 and len(service.matcher.identities) == 1


def test_tracks_of_different_cameras_at_the_same_time_do_not_split():
    gallery = matcher()
    gallery.update([embedded(0, 1, axis(0), 0.0, 3.0), embedded(1, 1, axis(0), 0.5, 3.0)])
    result = gallery.update([embedded(1, 1, axis(0), 3.0, 5.0)])
    assert gallery.global_id_of(0, 1) == gallery.global_id_of(1, 1) == 1
    assert EventType.IDENTITY_SPLIT not in [event.type for event in result.events]


def joined_then(later: list[np.ndarray], **split: float) -> tuple[IdentityMatcher, list]:
    """Camera 0 track 1 sees person 0; camera 1 track 4 joins at 0.9 similarity, then its clips
    look like ``later``. Returns the matcher and the events of the later clips."""
    gallery = IdentityMatcher(
        MatchingConfig(similarity_threshold=0.5, merge_threshold=0.8, max_feature_weight=8.0),
        SplitConfig(**split),  # type: ignore[arg-type]
    )
    gallery.update([embedded(0, 1, axis(0), 0.0, 1.0)])
    gallery.update([embedded(1, 4, at_angle(0, 1, 0.9), 2.0, 3.0)])
    assert gallery.global_id_of(1, 4) == 1
    events = []
    for index, embedding in enumerate(later):
        start = 3.0 + index
        events += gallery.update([embedded(1, 4, embedding, start, start + 1.0)]).events
    return gallery, events


def test_a_track_that_keeps_looking_like_someone_else_is_split_off():
    gallery, events = joined_then([axis(1)] * 3, appearance_similarity=0.3, patience_clips=3)
    splits = [event for event in events if event.type is EventType.IDENTITY_SPLIT]
    assert [(event.camera_id, event.track_id, event.split_from) for event in splits] == [(1, 4, 1)]
    assert events[-1] is splits[0]  # on the third disagreeing clip, not before
    assert splits[0].score == pytest.approx(0.0, abs=1e-5)  # axis(1) vs the rest: axis(0)
    new_id = splits[0].global_id
    assert new_id == 2 and gallery.global_id_of(1, 4) == 2 and gallery.global_id_of(0, 1) == 1
    kept, moved = gallery.identities[1], gallery.identities[2]
    assert float(kept.feature @ axis(0)) == pytest.approx(1.0, abs=1e-5)  # rebuilt from track 1
    assert kept.cameras == [0] and moved.cameras == [1]
    assert float(moved.feature @ axis(1)) > 0.9
    # the fast gallery matrix follows: a new clip of person 1 finds the new identity
    gallery.update([embedded(2, 8, axis(1), 9.0, 10.0)])
    assert gallery.global_id_of(2, 8) == 2


@pytest.mark.parametrize(
    "later",
    [
        [at_angle(0, 1, 0.6)] * 5,  # drifts, but still fits the rest above 0.3
        [axis(1), axis(1), at_angle(0, 1, 0.9), axis(1), axis(1)],  # not three in a row
    ],
)
def test_a_track_that_fits_its_identity_is_not_split(later: list[np.ndarray]):
    gallery, events = joined_then(later, appearance_similarity=0.3, patience_clips=3)
    assert EventType.IDENTITY_SPLIT not in [event.type for event in events]
    assert gallery.global_id_of(1, 4) == gallery.global_id_of(0, 1) == 1


def test_appearance_splits_can_be_turned_off_and_one_track_identities_never_split():
    _, events = joined_then([axis(1)] * 5, appearance_similarity=-1.0)
    assert EventType.IDENTITY_SPLIT not in [event.type for event in events]
    alone = matcher()
    events = []
    for index, embedding in enumerate([axis(0), axis(1), axis(2), axis(3)]):
        events += alone.update([embedded(0, 1, embedding, index, index + 1.0)]).events
    assert EventType.IDENTITY_SPLIT not in [event.type for event in events]


def test_a_split_is_persisted_like_a_merge(tmp_path: Path):
    gallery, events = joined_then([axis(1)] * 3)
    result_changed = [gallery.identities[1], gallery.identities[2]]
    with EmbeddedRedis(tmp_path / "redis") as server:
        config = RedisConfig.model_validate({"stream": "test:events", "key_prefix": "test"})
        publisher = RedisPublisher(config, server.url, "run-1")
        assert publisher.publish(events, changed=result_changed) == events
        client = redis.Redis.from_url(server.url)
        stored, max_global_id = load_identities(client, "test")
        tracks = {
            key.decode(): value.decode() for key, value in client.hgetall("test:tracks").items()
        }
        stream = [
            parse_fields({k.decode(): v.decode() for k, v in raw.items()})
            for _, raw in client.xrange("test:events")
        ]
        publisher.close()
    assert max_global_id == 2
    assert {identity.global_id: identity.cameras for identity in stored} == {1: [0], 2: [1]}
    assert tracks == {"0:1": "1", "1:4": "2"}
    assert stream[-1]["type"] == "identity_split" and stream[-1]["split_from"] == 1
    restored = IdentityMatcher(MatchingConfig(similarity_threshold=0.5))
    restored.restore(stored, max_global_id)
    restored.update([embedded(3, 1, axis(1), 50.0, 51.0)])
    assert restored.global_id_of(3, 1) == 2
