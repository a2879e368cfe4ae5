"""The whole-track identity pass (pipeline/identity/refine.py) and its track log."""

from __future__ import annotations

import numpy as np
import supervision as sv

from pipeline.config import IdentityConfig
from pipeline.identity.encounters import encounter_cuts, find_encounters
from pipeline.identity.homography import project
from pipeline.identity.refine import (
    _average_linkage,
    _Clusters,
    _move_atoms,
    decision_threshold,
    refine_identities,
    same_camera_conflicts,
)
from pipeline.identity.track_log import TrackLog
from pipeline.records import Frame, FrameDetections

MATRIX = np.array([[0.8, -0.3, 120.0], [0.05, 0.6, 40.0], [0.0004, -0.0011, 1.0]])
FPS = 10.0


def _add_track(
    log: TrackLog,
    camera: int,
    track: int,
    start: float,
    feet: np.ndarray,
    embedding: np.ndarray | None,
    height: float = 80.0,
) -> None:
    """Log a track of foot points ``(N, 2)`` from ``start`` seconds, one clip embedding."""
    for index, (x, y) in enumerate(feet):
        box = np.array([[x - 15, y - height, x + 15, y]], dtype=np.float32)
        detections = sv.Detections(
            xyxy=box, confidence=np.array([0.9]), tracker_id=np.array([track])
        )
        timestamp = start + index / FPS
        frame = Frame(camera, round(timestamp * FPS), timestamp, np.zeros((1, 1, 3)), 0.0)
        log.add_frame(FrameDetections(frame, detections))
    if embedding is not None:
        log.add_embedding(
            camera, track, embedding / np.linalg.norm(embedding), 1.0, round(start * FPS)
        )


def _walk(start: tuple[float, float], velocity: tuple[float, float], seconds: float) -> np.ndarray:
    steps = np.arange(int(seconds * FPS))[:, None] / FPS
    return np.asarray(start) + steps * np.asarray(velocity)


def _calibration_crowd(log: TrackLog, rng: np.random.Generator, people: int = 16) -> None:
    """People walking in both views (second view = first through ``MATRIX``), distinct looks:
    what the homography is learned from (enough of them that a fit on either half of the
    footage is checked on people of the other half)."""
    for person in range(people):
        feet = _walk(
            (40 + 35 * person, 150 + 15 * (person % 4)), (rng.uniform(-8, 8), 6.0), seconds=6
        )
        look = rng.normal(size=32)
        start = 5.0 * person
        _add_track(log, 0, person, start, feet, look + rng.normal(0, 0.3, 32))
        _add_track(
            log, 1, 100 + person, start, project(MATRIX, feet), look + rng.normal(0, 0.3, 32)
        )


def test_geometry_decides_when_appearance_is_ambiguous():
    """Two people dressed alike walk side by side in both views: the same embedding for all
    four tracks, so only their feet can tell who is who in the other view."""
    rng = np.random.default_rng(0)
    log = TrackLog()
    _calibration_crowd(log, rng)
    look = rng.normal(size=32)
    left = _walk((100, 200), (10, 0), seconds=8)
    right = _walk((100, 260), (10, 0), seconds=8)
    start = 60.0
    _add_track(log, 0, 50, start, left, look)
    _add_track(log, 0, 51, start, right, look)
    _add_track(log, 1, 150, start, project(MATRIX, left), look)
    _add_track(log, 1, 151, start, project(MATRIX, right), look)
    refinement = refine_identities(log)
    assert (0, 1) in refinement.homographies
    identity = refinement.track_identity_of()
    assert identity[(0, 50)] == identity[(1, 150)]
    assert identity[(0, 51)] == identity[(1, 151)]
    assert identity[(0, 50)] != identity[(0, 51)]
    for person in range(8):
        assert identity[(0, person)] == identity[(1, 100 + person)]


def test_same_camera_simultaneous_tracks_never_share_an_identity():
    """Identical looks and no second view: refinement must still keep two tracks seen at the
    same time in one camera apart, however alike (even with a threshold that merges all)."""
    log = TrackLog()
    look = np.ones(16)
    _add_track(log, 0, 1, 0.0, _walk((50, 200), (5, 0), 5), look)
    _add_track(log, 0, 2, 1.0, _walk((250, 200), (-5, 0), 5), look)
    _add_track(log, 0, 3, 20.0, _walk((50, 200), (5, 0), 5), look)
    refinement = refine_identities(log, IdentityConfig(threshold=-1.0))
    identity = refinement.track_identity_of()
    assert identity[(0, 1)] != identity[(0, 2)]
    # the later track may join either, never both
    assert identity[(0, 3)] in (identity[(0, 1)], identity[(0, 2)])


def test_far_apart_in_overlapping_views_is_a_cannot_link():
    """Same look, seen at the same time by overlapping cameras, at places the homography
    says are far apart: two people, kept apart even by a merge-everything threshold."""
    rng = np.random.default_rng(1)
    log = TrackLog()
    _calibration_crowd(log, rng)
    look = rng.normal(size=32)
    here = _walk((60, 160), (5, 5), seconds=6)
    there = _walk((300, 270), (-5, 0), seconds=6)
    _add_track(log, 0, 70, 80.0, here, look)
    _add_track(log, 1, 170, 80.0, project(MATRIX, there), look)
    refinement = refine_identities(log, IdentityConfig(threshold=-1.0))
    identity = refinement.track_identity_of()
    assert identity[(0, 70)] != identity[(1, 170)]


def test_a_track_picked_up_again_in_the_same_camera_continues():
    """The tracker lost a person for a second and started a new track where it left off: one
    identity, though the two clips' embeddings differ (a turn, new light)."""
    rng = np.random.default_rng(2)
    log = TrackLog()
    feet = _walk((50, 200), (20, 0), seconds=10)
    first_look = rng.normal(size=32)
    second_look = first_look + rng.normal(0, 0.8, 32)
    _add_track(log, 0, 1, 0.0, feet[:40], first_look)
    _add_track(log, 0, 2, 4.8, feet[48:], second_look)
    for other in range(3, 8):  # other people, for the run's own statistics
        _add_track(
            log, 0, other, 0.5, _walk((20 + 40 * other, 100), (0, 3), 4), rng.normal(size=32)
        )
    refinement = refine_identities(log)
    identity = refinement.track_identity_of()
    assert identity[(0, 1)] == identity[(0, 2)]
    assert refinement.continuity_links >= 1


def test_decision_threshold_separates_the_run_statistics():
    rng = np.random.default_rng(3)
    positives = rng.normal(0.6, 0.05, 200)
    negatives = rng.normal(0.2, 0.05, 2000)
    threshold = decision_threshold(positives, negatives, IdentityConfig())
    assert 0.3 < threshold < 0.5
    few = decision_threshold(positives[:3], negatives, IdentityConfig())
    assert abs(few - np.quantile(negatives, 0.95)) < 1e-9
    assert decision_threshold(positives, np.zeros(0), IdentityConfig()) == 1.0


def test_track_log_round_trips_through_a_file(tmp_path):
    rng = np.random.default_rng(4)
    log = TrackLog()
    _add_track(log, 0, 5, 1.0, _walk((10, 100), (1, 1), 2), rng.normal(size=8))
    _add_track(log, 1, 9, 2.0, _walk((30, 120), (2, 0), 1), None)
    path = tmp_path / "tracks.npz"
    log.save(path)
    loaded = TrackLog.load(path)
    assert sorted(loaded.records) == sorted(log.records)
    for key, record in log.records.items():
        other = loaded.records[key]
        assert other.frame_indices == record.frame_indices
        np.testing.assert_allclose(np.stack(other.boxes), np.stack(record.boxes))
        assert len(other.embeddings) == len(record.embeddings)
    trajectory = loaded.records[(0, 5)].trajectory()
    assert trajectory.start == 1.0


def test_live_log_forgets_old_tracks():
    log = TrackLog(keep_seconds=10.0)
    _add_track(log, 0, 1, 0.0, _walk((10, 100), (1, 0), 1), np.ones(4))
    _add_track(log, 0, 2, 30.0, _walk((10, 100), (1, 0), 1), np.ones(4))
    assert log.prune() == 1
    assert list(log.records) == [(0, 2)]


def test_a_track_swapped_between_two_people_is_cut_where_the_other_view_parts():
    """Two people cross in camera 0 and its tracker swaps their tracks; camera 1 keeps them
    apart. The swap is found from camera 1 (before it, track 1's feet land on person A's
    track there, after it on person B's, A's track still going) and each piece joins its
    person."""
    rng = np.random.default_rng(5)
    log = TrackLog()
    _calibration_crowd(log, rng)
    look_a, look_b = rng.normal(size=32), rng.normal(size=32)
    base = 100.0
    a = _walk((80, 220), (20, 0), seconds=10)  # left to right
    b = _walk((280, 226), (-20, 0), seconds=10)  # right to left, crossing A at t=5 s
    half = 50
    for track, (first, second) in ((1, (a, b)), (2, (b, a))):
        for piece, (feet, look) in enumerate(
            ((first[:half], first is a), (second[half:], second is a))
        ):
            start = base + (0 if piece == 0 else half / FPS)
            _add_track(log, 0, 200 + track, start, feet, None)
            identity_look = look_a if look else look_b
            log.add_embedding(
                0,
                200 + track,
                identity_look + rng.normal(0, 0.2, 32),
                1.0,
                round((start + 2.0) * FPS),
            )
    _add_track(log, 1, 301, base, project(MATRIX, a), look_a + rng.normal(0, 0.2, 32))
    _add_track(log, 1, 302, base, project(MATRIX, b), look_b + rng.normal(0, 0.2, 32))
    refinement = refine_identities(log)
    assert refinement.swap_cuts >= 1
    global_id_of = refinement.lookup(refinement.global_ids(lambda camera, track: -1))
    before, after = round((base + 2.0) * FPS), round((base + 8.0) * FPS)
    person_a, person_b = global_id_of(1, 301, before), global_id_of(1, 302, before)
    assert person_a != person_b
    assert global_id_of(0, 201, before) == person_a
    assert global_id_of(0, 201, after) == person_b
    assert global_id_of(0, 202, before) == person_b
    assert global_id_of(0, 202, after) == person_a


def _swapped_crossing(log: TrackLog, rng: np.random.Generator, base: float) -> None:
    """Persons A and B cross in camera 0 at ``base + 5`` s and the tracker swaps them: track
    211 is A, then B; track 212 is B, then A. Each piece has a clip of its person."""
    look_a, look_b = np.eye(32)[0] * 3 + rng.normal(0, 0.2, 32), np.eye(32)[1] * 3
    a = _walk((80, 220), (20, 0), seconds=10)
    b = _walk((280, 222), (-20, 0), seconds=10)
    for track, (first, second, first_look, second_look) in (
        (211, (a, b, look_a, look_b)),
        (212, (b, a, look_b, look_a)),
    ):
        _add_track(log, 0, track, base, np.concatenate([first[:50], second[50:]]), None)
        for seconds, look in ((2.0, first_look), (8.0, second_look)):
            log.add_embedding(
                0, track, look + rng.normal(0, 0.2, 32), 1.0, round((base + seconds) * FPS)
            )


def test_a_swap_at_an_encounter_is_undone_by_appearance_with_one_camera():
    """No other view to tell: the tracks are cut where their boxes met and the four pieces
    are identified again by their looks, so A stays A and B stays B after the crossing."""
    rng = np.random.default_rng(6)
    log = TrackLog()
    for other in range(5):  # other people, seen at the same time: the run's negatives
        _add_track(
            log, 0, other, 100.0, _walk((40 + 60 * other, 80), (0, 2), 10), rng.normal(size=32)
        )
    _swapped_crossing(log, rng, base=100.0)
    refinement = refine_identities(log, IdentityConfig(threshold=0.5))
    global_id_of = refinement.lookup(refinement.global_ids(lambda camera, track: -1))
    before, after = round(102.0 * FPS), round(108.0 * FPS)
    assert global_id_of(0, 211, before) != global_id_of(0, 212, before)
    assert global_id_of(0, 211, before) == global_id_of(0, 212, after)
    assert global_id_of(0, 212, before) == global_id_of(0, 211, after)


def test_encounters_are_where_boxes_overlap_by_the_tracker_iou():
    log = TrackLog()
    _add_track(log, 0, 1, 0.0, _walk((100, 200), (10, 0), 8), None)  # boxes 30 wide
    _add_track(log, 0, 2, 0.0, _walk((180, 200), (-10, 0), 8), None)  # IoU >= 0.2: 3-5 s
    _add_track(log, 0, 3, 0.0, _walk((100, 400), (0, 0), 8), None)  # never near
    records = log.usable(1, need_embedding=False)
    found = find_encounters(records, minimum_iou=0.2)
    assert [encounter.tracks for encounter in found] == [(1, 2)]
    assert 2.9 < found[0].start < found[0].time < found[0].end < 5.1
    cuts = encounter_cuts(records, found)
    assert sorted(cuts) == [0, 1]  # both go on through it; track 3 is never cut


def test_a_duplicate_track_of_one_person_is_not_a_cannot_link():
    """One camera, two tracks on the same box for a second (a duplicate, or a hand-over while
    the old track coasts): not proof of two people, unlike two boxes side by side."""
    log = TrackLog()
    look = np.ones(16)
    feet = _walk((50, 200), (10, 0), 6)
    _add_track(log, 0, 1, 0.0, feet[:40], look)
    _add_track(log, 0, 2, 3.0, feet[30:], look)  # 1 s on the same boxes as track 1
    _add_track(log, 0, 3, 3.0, feet[30:] + [0, 150], look)  # beside it: someone else
    records = log.usable(1, need_embedding=False)
    trajectories = [record.trajectory() for record in records]
    starts = np.array([t.start for t in trajectories])
    ends = np.array([t.end for t in trajectories])
    overlap = np.minimum(ends[:, None], ends[None]) - np.maximum(starts[:, None], starts[None])
    cannot = same_camera_conflicts(records, overlap, IdentityConfig())
    assert not cannot[0, 1]
    assert cannot[0, 2] and cannot[1, 2]


def _stranded_piece() -> tuple[np.ndarray, np.ndarray]:
    """Five pieces: 0 and 1 alike, 2 and 3 alike; piece 4 is most like 0 (so greedy average
    linkage puts it there first) but fits 2 and 3 better as a whole."""
    similarity = np.eye(5)
    for first, second, value in [(0, 1, 0.9), (2, 3, 0.9), (4, 0, 0.95), (4, 1, 0.1)]:
        similarity[first, second] = similarity[second, first] = value
    for other in (2, 3):
        similarity[4, other] = similarity[other, 4] = 0.6
    return similarity, np.ones(5)


def test_a_piece_stranded_by_greedy_merging_moves_to_where_it_fits():
    similarity, weights = _stranded_piece()
    clusters = _Clusters(5, np.zeros((5, 5), dtype=bool))
    _average_linkage(clusters, similarity, weights, threshold=0.25)
    assert sorted(map(sorted, clusters.members.values())) == [[0, 1, 4], [2, 3]]
    atoms = [[index] for index in range(5)]
    assignment = np.array([clusters.root(index) for index in range(5)])
    labels, moves = _move_atoms(atoms, assignment, similarity, weights, clusters.cannot, 0.25)
    assert moves == 1
    assert labels[4] == labels[2] == labels[3] != labels[0] == labels[1]


def test_moves_respect_cannot_links():
    similarity, weights = _stranded_piece()
    cannot = np.zeros((5, 5), dtype=bool)
    cannot[4, 2] = cannot[2, 4] = True  # seen together with 2 in one camera
    atoms = [[0, 1, 4], [2, 3]]  # atoms move whole: 4 stays with 0 and 1
    labels, moves = _move_atoms(atoms, np.array([0, 1]), similarity, weights, cannot, 0.25)
    assert moves == 0 and labels.tolist() == [0, 1]
    atoms = [[0], [1], [2], [3], [4]]
    labels, moves = _move_atoms(atoms, np.array([0, 0, 2, 2, 0]), similarity, weights, cannot, 0.25)
    assert labels[4] != labels[2]
