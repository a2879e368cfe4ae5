"""The careful glue baseline: ReID every N frames per track, identities kept in between."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.naive_matcher import NaiveCrossCameraMatcher
from benchmarks.reid_schedule import ReidSchedule


def test_every_frame_schedule_embeds_every_box() -> None:
    schedule = ReidSchedule(1)
    for _ in range(3):
        assert schedule.due(0, np.array([1, 2])).tolist() == [True, True]


def test_a_track_gets_a_feature_first_then_every_n_of_its_frames() -> None:
    schedule = ReidSchedule(3)
    seen = [schedule.due(0, np.array([7])).item() for _ in range(7)]
    assert seen == [True, False, False, True, False, False, True]
    # a new track (and the same id on another camera) is due at once, whatever the others do
    assert schedule.due(0, np.array([7, 8])).tolist() == [False, True]
    assert schedule.due(1, np.array([7])).tolist() == [True]
    with pytest.raises(ValueError, match="every_frames"):
        ReidSchedule(0)


def test_tracks_without_a_feature_keep_their_identity_and_block_it() -> None:
    matcher = NaiveCrossCameraMatcher(similarity_threshold=0.5)
    feature = np.array([[1.0, 0.0]], dtype=np.float32)
    assert matcher.update(0, np.array([1]), feature).tolist() == [1]
    assert matcher.global_id(0, 1) == 1 and matcher.global_id(0, 2) is None
    # track 2 looks like track 1, but track 1 is in the same frame without a feature
    assert matcher.update(0, np.array([2]), feature, other_track_ids=np.array([1])).tolist() == [2]
