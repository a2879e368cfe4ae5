"""Re-association, prototypes, learned thresholds and camera topology in the matcher."""

from __future__ import annotations

import numpy as np

from pipeline.config import MatchingConfig, TopologyMode, TransitionWindow
from pipeline.identity.rules import NegativeThreshold, TopologyRules, near_in_image
from tests.test_matching import at_angle, axis, embedded, matcher


def with_box(item, first_box):  # type: ignore[no-untyped-def]
    item.clip.first_box = np.asarray(first_box, dtype=np.float32)
    return item


def test_a_broken_track_continues_its_identity_when_it_restarts_nearby():
    gallery = matcher(similarity_threshold=0.9, reassociation_seconds=3.0)
    gallery.update([embedded(0, 1, axis(0), 0.0, 2.0)])
    gallery.end_track(0, 1, 2.0, np.array([100, 50, 140, 150], dtype=np.float32))
    # Looks only moderately alike (0.6 < threshold 0.9), but starts right where track 1 ended.
    restarted = with_box(embedded(0, 2, at_angle(0, 1, 0.6), 2.5, 3.5), [105, 52, 145, 152])
    gallery.update([restarted])
    assert gallery.global_id_of(0, 2) == gallery.global_id_of(0, 1)
    assert gallery.reassociations == 1


def test_no_reassociation_far_away_too_late_or_in_another_camera():
    for camera, start, box in [
        (0, 2.5, [300, 50, 340, 150]),  # far from where track 1 ended
        (0, 9.0, [105, 52, 145, 152]),  # too long after
        (1, 2.5, [105, 52, 145, 152]),  # another camera
    ]:
        gallery = matcher(similarity_threshold=0.9, reassociation_seconds=3.0)
        gallery.update([embedded(0, 1, axis(0), 0.0, 2.0)])
        gallery.end_track(0, 1, 2.0, np.array([100, 50, 140, 150], dtype=np.float32))
        gallery.update([with_box(embedded(camera, 2, at_angle(0, 1, 0.6), start, start + 1), box)])
        assert gallery.global_id_of(camera, 2) != gallery.global_id_of(0, 1)


def test_prototypes_keep_distinct_views_and_match_either():
    gallery = matcher(similarity_threshold=0.7, prototype_novelty=0.9, prototypes_per_identity=2)
    front, back = axis(0), at_angle(0, 1, 0.3)
    gallery.update([embedded(0, 1, front, 0.0, 1.0)])
    gallery.update([embedded(0, 1, back, 1.0, 2.0)])
    identity = gallery.identities[gallery.global_id_of(0, 1)]
    assert len(identity.prototypes) == 2
    # The mean feature is far from the back view, the back prototype is not.
    assert float(back @ identity.feature) < 0.85 and identity.similarity(back) > 0.99
    gallery.update([embedded(1, 5, back, 10.0, 11.0)])
    assert gallery.global_id_of(1, 5) == identity.global_id


def test_prototype_count_is_bounded():
    gallery = matcher(prototype_novelty=0.5, prototypes_per_identity=3)
    for index in range(6):
        gallery.update([embedded(0, 1, axis(index), float(index), index + 1.0)])
    identity = next(iter(gallery.identities.values()))
    assert len(identity.prototypes) == 3


def test_learned_threshold_rises_above_the_negatives_of_the_run():
    config = MatchingConfig(
        similarity_threshold=0.3, threshold_mode="quantile", negative_quantile=0.9, min_negatives=5
    )
    threshold = NegativeThreshold(config)
    threshold.add([0.1, 0.2])
    assert threshold.value == 0.3  # too few negatives: the fixed value
    threshold.add([0.5] * 10)
    assert threshold.value == 0.5
    fixed = NegativeThreshold(config.model_copy(update={"threshold_mode": "fixed"}))
    fixed.add([0.9] * 50)
    assert fixed.value == 0.3


def test_matcher_collects_negatives_from_tracks_seen_together():
    gallery = matcher(threshold_mode="quantile", min_negatives=1, negative_quantile=0.5)
    gallery.update(
        [embedded(0, 1, axis(0), 0.0, 2.0), embedded(0, 2, at_angle(0, 1, 0.7), 0.5, 2.0)]
    )
    assert list(gallery.threshold.negatives) == [np.float32(at_angle(0, 1, 0.7) @ axis(0))]
    # Now a cross-camera candidate at 0.65 no longer passes the fixed 0.5 threshold.
    gallery.update([embedded(1, 3, at_angle(0, 2, 0.65), 5.0, 6.0)])
    assert gallery.global_id_of(1, 3) not in {
        gallery.global_id_of(0, 1),
        gallery.global_id_of(0, 2),
    }


def test_topology_windows_penalise_or_forbid_impossible_transitions():
    window = TransitionWindow(from_camera=0, to_camera=1, min_seconds=5, max_seconds=20)
    rules = TopologyRules([window], TopologyMode.PENALIZE, penalty=0.2)
    assert not rules.violation({0: 10.0}, 1, 20.0)  # 10 s later: inside the window
    assert rules.violation({0: 10.0}, 1, 11.0)  # 1 s later: too fast
    assert not rules.violation({1: 3.0}, 1, 11.0)  # same camera: no rule
    assert rules.violation({1: 10.0}, 0, 50.0)  # symmetric by default, 40 s is too slow
    assert rules.adjust(0.7, True) == 0.7 - 0.2
    forbid = TopologyRules([window], TopologyMode.FORBID, penalty=0.2)
    assert forbid.adjust(0.9, True) == float("-inf")
    overlapping = TopologyRules(
        [TransitionWindow(from_camera=0, to_camera=1, overlap=True, max_seconds=5)],
        TopologyMode.FORBID,
        0.0,
    )
    assert not overlapping.violation({0: 10.0}, 1, 8.0)  # seen in both at once is normal


def test_matcher_applies_topology():
    windows = [{"from_camera": 0, "to_camera": 1, "min_seconds": 5, "max_seconds": 20}]
    gallery = matcher(topology=windows, topology_mode="forbid")  # type: ignore[arg-type]
    gallery.update([embedded(0, 1, axis(0), 0.0, 2.0)])
    gallery.end_track(0, 1, 2.0)
    gallery.update([embedded(1, 2, axis(0), 2.5, 3.5)])  # identical look, but 0.5 s later
    assert gallery.global_id_of(1, 2) != gallery.global_id_of(0, 1)
    gallery.update([embedded(1, 3, axis(0), 12.0, 13.0)])  # 10 s later: allowed
    assert gallery.global_id_of(1, 3) == gallery.global_id_of(0, 1)


def test_near_in_image_scales_with_box_height():
    box = np.array([0, 0, 20, 100], dtype=np.float32)
    assert near_in_image(box, box + np.array([100, 0, 100, 0]), max_heights=1.5)
    assert not near_in_image(box, box + np.array([200, 0, 200, 0]), max_heights=1.5)
