"""The cached gallery matrix against the uncached reference: same similarities, same events."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.clips import Clip
from pipeline.config import MatchingConfig
from pipeline.identity.gallery import GalleryMatrix, Identity
from pipeline.identity.matching import EmbeddedClip, IdentityMatcher
from tests.reference_matcher import ReferenceMatcher, gallery_similarities

DIMENSION = 24


def random_unit(generator: np.random.Generator, count: int) -> np.ndarray:
    vectors = generator.normal(size=(count, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def random_batches(seed: int, people: int = 12, cameras: int = 3, batches: int = 60):
    """Batches of clips of tracks of ``people`` persons (noisy views, some tracks several clips
    per batch, some ending), over a long enough time for identities to expire."""
    generator = np.random.default_rng(seed)
    centres = random_unit(generator, people)
    open_tracks: dict[tuple[int, int], tuple[int, float, int]] = {}
    next_track = 0
    now = 0.0
    for _ in range(batches):
        batch = []
        for _ in range(int(generator.integers(1, 7))):
            if not open_tracks or generator.random() < 0.4:
                next_track += 1
                key = (int(generator.integers(cameras)), next_track)
                open_tracks[key] = (int(generator.integers(people)), now, 0)
            key = list(open_tracks)[int(generator.integers(len(open_tracks)))]
            person, start, clips = open_tracks[key]
            noise = generator.normal(size=DIMENSION).astype(np.float32)
            embedding = centres[person] + 0.12 * noise
            final = clips >= 2 and generator.random() < 0.5
            clip = Clip(
                key[0], key[1], np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, np.int64),
                float(generator.uniform(0.2, 1.0)), final, start + clips, start + clips + 1.0,
                clips, np.array([0, 0, 10, 40], np.float32), 0.0,
            )  # fmt: skip
            batch.append(EmbeddedClip(clip, embedding / np.linalg.norm(embedding)))
            if final:
                del open_tracks[key]
            else:
                open_tracks[key] = (person, start, clips + 1)
        now += float(generator.uniform(0.5, 3.0))
        yield batch


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("prototypes", [1, 3])
def test_cached_gallery_gives_the_reference_events(seed: int, prototypes: int):
    config = MatchingConfig(
        similarity_threshold=0.6,
        merge_threshold=0.7,
        identity_ttl_seconds=20.0,
        prototypes_per_identity=prototypes,
        prototype_novelty=0.9,
    )
    # reference: vectors stacked from the identity dict per call, no batch snapshot (what the
    # matcher did before the cached matrix)
    fast, reference = IdentityMatcher(config), ReferenceMatcher(config)
    kinds = set()
    for batch in random_batches(seed):
        fast_events = fast.update(batch).events
        reference_events = reference.update(batch).events
        assert [
            (event.type, event.camera_id, event.track_id, event.global_id, event.merged_ids)
            for event in fast_events
        ] == [
            (event.type, event.camera_id, event.track_id, event.global_id, event.merged_ids)
            for event in reference_events
        ]
        scores = [event.score for event in fast_events]
        assert scores == pytest.approx([event.score for event in reference_events], abs=1e-6)
        kinds.update(event.type.value for event in fast_events)
        # the cache holds the dict's identities, in its order, with their current vectors
        assert fast.gallery.identities == list(fast.identities.values())
        probes = np.stack([item.embedding for item in batch])
        expected = gallery_similarities(probes, list(fast.identities.values()))
        np.testing.assert_allclose(fast.gallery.similarities(probes), expected, atol=1e-6)
    assert {"identity_assigned", "identity_merged"} <= kinds  # the scenario exercises merges
    assert fast.expired_count == reference.expired_count > 0


def test_gallery_matrix_follows_upserts_and_removals():
    generator = np.random.default_rng(5)
    gallery = GalleryMatrix(initial_capacity=2)
    identities: dict[int, Identity] = {}
    for step in range(200):
        if identities and generator.random() < 0.25:
            gone = [int(generator.choice(list(identities)))]
            gallery.remove(gone)
            del identities[gone[0]]
        else:
            global_id = int(generator.integers(1, 40))
            vectors = random_unit(generator, 1 + int(generator.integers(0, 4)))
            identity = Identity(global_id, vectors[0], 1.0, 0.0, float(step))
            identity.prototypes = list(vectors[1:])
            if global_id in identities:  # changed in place keeps its position
                identities[global_id].feature = identity.feature
                identities[global_id].prototypes = identity.prototypes
                identity = identities[global_id]
            identities[global_id] = identity
            gallery.upsert(identity)
        assert gallery.identities == list(identities.values())
        probes = random_unit(generator, 3)
        if identities:
            expected = gallery_similarities(probes, list(identities.values()))
            np.testing.assert_allclose(gallery.similarities(probes), expected, atol=1e-6)
        else:
            assert gallery.similarities(probes).shape == (3, 0)
    gallery.clear()
    assert len(gallery) == 0 and gallery.similarities(random_unit(generator, 2)).shape == (2, 0)


def test_snapshot_brought_up_to_date_equals_fresh_similarities():
    generator = np.random.default_rng(9)
    gallery = GalleryMatrix(initial_capacity=2)
    vectors = random_unit(generator, 6)
    identities = [Identity(index, vectors[index], 1.0, 0.0, 0.0) for index in range(6)]
    for identity in identities:
        gallery.upsert(identity)
    probes = random_unit(generator, 4)
    snapshot = gallery.snapshot(probes)
    identities[2].feature = random_unit(generator, 1)[0]  # written after the snapshot
    identities[4].prototypes = list(random_unit(generator, 2))  # more slots than before
    gallery.upsert(identities[2])
    gallery.upsert(identities[4])
    for index in range(6, 70):  # appended, past the capacity
        gallery.upsert(Identity(index, random_unit(generator, 1)[0], 1.0, 0.0, 0.0))
    fresh = gallery.similarities(probes)
    for row in range(len(probes)):
        np.testing.assert_allclose(gallery.current(snapshot, row), fresh[row], atol=1e-6)
    gallery.remove([3])  # a removal moves columns: everything is recomputed
    np.testing.assert_allclose(
        gallery.current(snapshot, 1), gallery.similarities(probes[1:2])[0], atol=1e-6
    )
    assert len(gallery.current(snapshot, 1)) == 69
