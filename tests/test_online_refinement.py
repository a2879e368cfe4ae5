"""The periodic whole-track pass reconciling the live gallery (pipeline/identity/online.py)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import numpy as np

from pipeline.config import IdentityConfig
from pipeline.events import EventType
from pipeline.identity.homography import project
from pipeline.identity.online import OnlineRefinement, reconcile
from pipeline.identity.refine import Refinement, refine_identities
from pipeline.identity.track_log import PackedRecords, TrackLog, TrackRecord
from tests.test_matching import axis, embedded, matcher
from tests.test_refine import MATRIX, _add_track, _calibration_crowd, _walk


def _scene() -> tuple[TrackLog, np.ndarray]:
    """The calibration crowd plus one person walking in both views (tracks 0/60 and 1/160),
    dressed so that the two views' clips look unlike (their own look per view)."""
    rng = np.random.default_rng(7)
    log = TrackLog()
    _calibration_crowd(log, rng)
    feet = _walk((120, 180), (8, 4), seconds=8)
    _add_track(log, 0, 60, 50.0, feet, rng.normal(size=32))
    _add_track(log, 1, 160, 50.0, project(MATRIX, feet), rng.normal(size=32))
    return log, feet


def test_one_person_with_two_online_identities_is_merged_by_geometry():
    log, _ = _scene()
    gallery = matcher()
    # the matcher saw the two views' clips as two people (orthogonal embeddings)
    gallery.update([embedded(0, 60, axis(0), 50.0, 58.0)])
    gallery.update([embedded(1, 160, axis(1), 50.0, 58.0)])
    first, second = gallery.global_id_of(0, 60), gallery.global_id_of(1, 160)
    assert first != second
    result = reconcile(refine_identities(log), gallery)
    merged = [event for event in result.events if event.type is EventType.IDENTITY_MERGED]
    assert len(merged) == 1
    assert merged[0].global_id == min(first, second)
    assert merged[0].merged_ids == [max(first, second)]
    assert gallery.global_id_of(0, 60) == gallery.global_id_of(1, 160) == min(first, second)
    assert max(first, second) in result.removed


def test_identities_seen_together_in_one_camera_are_never_merged():
    """Refinement may put them together (here: forced, by a threshold that merges all), the
    matcher's rule still holds: two tracks seen at once in one camera stay two people."""
    log = TrackLog()
    look = np.ones(8)
    _add_track(log, 0, 1, 0.0, _walk((50, 200), (5, 0), 5), look)
    _add_track(log, 0, 2, 6.0, _walk((250, 200), (-5, 0), 5), look)
    gallery = matcher()
    gallery.update([embedded(0, 1, axis(0), 0.0, 5.0), embedded(0, 7, axis(2), 0.0, 5.0)])
    gallery.update([embedded(0, 2, axis(1), 6.0, 11.0)])
    gallery.update([embedded(0, 7, axis(2), 6.0, 11.0)])  # track 7 was there all along...
    # ...and joins track 2's identity by hand, so it was seen together with track 1's
    gallery.identities[gallery.global_id_of(0, 2)].tracks.update(
        gallery.identities[gallery.global_id_of(0, 7)].tracks
    )
    refinement = refine_identities(log, IdentityConfig(threshold=-1.0))
    assert len(refinement.clusters) == 1
    result = reconcile(refinement, gallery)
    assert result.events == []
    assert gallery.global_id_of(0, 1) != gallery.global_id_of(0, 2)


def test_passes_run_every_refine_every_seconds_of_footage():
    log, _ = _scene()
    gallery = matcher()
    gallery.update([embedded(0, 60, axis(0), 50.0, 58.0)])
    gallery.update([embedded(1, 160, axis(1), 50.0, 58.0)])
    online = OnlineRefinement(
        IdentityConfig(refine_every_seconds=10.0, passes_in_background=False), {}
    )
    first = TrackLog()
    first.records = {key: record for key, record in log.records.items()}
    first._newest = {0: 0.0, 1: 0.0}
    assert online.maybe_refine(first, gallery) is None  # starts the clock
    first._newest = {0: 5.0, 1: 5.0}
    assert online.maybe_refine(first, gallery) is None  # not due
    result = online.maybe_refine(log, gallery)  # 58 s: due
    assert result is not None and online.passes == 1 and online.merges == 1
    assert (0, 1) in online.learned  # learned, kept for the next passes until relearned


def test_a_pass_in_the_background_gives_what_the_inline_pass_gives():
    """The worker process gets the window as flat arrays and hands back the pass: reconciled
    on a later call, with the same merge and the same learned view as inline, while the
    caller goes on meanwhile (the call that hands it over returns at once)."""
    log, _ = _scene()
    results = {}
    for background in (False, True):
        gallery = matcher()
        gallery.update([embedded(0, 60, axis(0), 50.0, 58.0)])
        gallery.update([embedded(1, 160, axis(1), 50.0, 58.0)])
        online = OnlineRefinement(
            IdentityConfig(refine_every_seconds=10.0, passes_in_background=background), {}
        )
        online._last_refined = 0.0
        result = online.maybe_refine(log, gallery)
        if background:
            assert result is None and online.in_flight
            deadline = time.monotonic() + 60.0
            while not online.finished and time.monotonic() < deadline:
                time.sleep(0.05)
            result = online.maybe_refine(log, gallery)
            online.close()
        assert result is not None and online.passes == 1 and online.merges == 1
        assert gallery.global_id_of(0, 60) == gallery.global_id_of(1, 160)
        results[background] = online.learned[(0, 1)].matrix
    np.testing.assert_array_equal(results[False], results[True])


def test_packed_records_come_back_field_by_field():
    log, _ = _scene()
    records = log.usable(1, need_embedding=False)
    records[1].cut_before = True
    unpacked = PackedRecords.pack(records).unpack()
    assert len(unpacked) == len(records)
    for original, copy in zip(records, unpacked, strict=True):
        assert copy.key == original.key and copy.cut_before == original.cut_before
        assert copy.timestamps == original.timestamps
        assert copy.frame_indices == original.frame_indices
        assert copy.confidences == original.confidences
        np.testing.assert_array_equal(np.stack(copy.boxes), np.stack(original.boxes))
        np.testing.assert_array_equal(np.stack(copy.embeddings), np.stack(original.embeddings))
        assert copy.qualities == original.qualities and copy.clip_frames == original.clip_frames


def test_a_track_the_pass_puts_with_someone_else_is_split_off_and_merged_there():
    """The matcher put camera 1's track 160 with camera 0's track 70 (alike clips), but the
    feet say 160 is where track 60 walks: 160 moves off 70's identity straight onto 60's,
    one identity_split into 60's identity (no new id in between, no merge)."""
    log, _ = _scene()
    rng = np.random.default_rng(8)
    _add_track(log, 0, 70, 50.0, _walk((300, 120), (-6, 2), seconds=8), rng.normal(size=32))
    gallery = matcher()
    gallery.update([embedded(0, 60, axis(0), 50.0, 58.0)])
    gallery.update([embedded(0, 70, axis(1), 50.0, 58.0)])
    gallery.update([embedded(1, 160, axis(1), 50.0, 58.0)])
    assert gallery.global_id_of(1, 160) == gallery.global_id_of(0, 70)
    person_p, person_q = gallery.global_id_of(0, 60), gallery.global_id_of(0, 70)
    result = reconcile(refine_identities(log), gallery)
    assert [(event.type, event.global_id, event.split_from) for event in result.events] == [
        (EventType.IDENTITY_SPLIT, person_p, person_q)
    ]
    assert gallery.global_id_of(1, 160) == person_p
    assert gallery.global_id_of(0, 70) != gallery.global_id_of(0, 60)


def test_learned_geometry_is_learned_again_from_the_recent_window():
    """A camera that moved (or a first fit from thin evidence) is not stuck with its first
    homography: after relearn_geometry_seconds of footage the pass learns it again, and a
    user's calibration is never replaced."""
    log, _ = _scene()
    gallery = matcher()
    online = OnlineRefinement(
        IdentityConfig(
            refine_every_seconds=1.0, relearn_geometry_seconds=30.0, passes_in_background=False
        ),
        {},
    )
    online._last_refined = 0.0
    online.maybe_refine(log, gallery)
    first = online.learned[(0, 1)]
    stale = first.inverse().inverse()
    stale.matrix = np.eye(3)  # as if the first fit were wrong
    online.learned[(0, 1)] = stale
    online._last_refined = 0.0
    online.maybe_refine(log, gallery)  # learned at this very footage time: kept
    assert online.learned[(0, 1)] is stale
    online._learned_at -= 30.0
    online._last_refined = 0.0
    online.maybe_refine(log, gallery)
    np.testing.assert_allclose(online.learned[(0, 1)].matrix, MATRIX, rtol=1e-2, atol=1e-4)
    calibrated = OnlineRefinement(
        IdentityConfig(
            refine_every_seconds=1.0, relearn_geometry_seconds=30.0, passes_in_background=False
        ),
        {(0, 1): stale, (1, 0): stale.inverse()},
    )
    calibrated._last_refined = 0.0
    calibrated.maybe_refine(log, gallery)
    assert calibrated.learned == {}
    assert calibrated.known[(0, 1)] is stale


def test_a_track_moves_onto_its_clusters_identity_once_two_passes_agree():
    """Person Q is tracks 70 and then 71 (camera 0, picked up where 70 was lost); the matcher
    also gave Q camera 1's track 160, which stands on person P's feet (track 60). The pass
    moves 160 onto P's identity: one identity_split into P's id, no new id used up, and,
    live, only when a second pass wants the same move."""
    log, _ = _scene()
    rng = np.random.default_rng(9)
    feet = _walk((300, 120), (-6, 2), seconds=16)
    look = rng.normal(size=32)
    _add_track(log, 0, 70, 50.0, feet[:80], look)
    _add_track(log, 0, 71, 58.5, feet[85:], look)
    gallery = matcher()
    gallery.update([embedded(0, 60, axis(0), 50.0, 58.0)])
    gallery.update([embedded(0, 70, axis(1), 50.0, 58.0)])
    gallery.update([embedded(1, 160, axis(1), 50.0, 58.0)])
    gallery.end_track(0, 70, 58.0)
    gallery.update([embedded(0, 71, axis(1), 58.5, 66.0)])
    person_p, person_q = gallery.global_id_of(0, 60), gallery.global_id_of(0, 70)
    assert gallery.global_id_of(1, 160) == gallery.global_id_of(0, 71) == person_q
    highest = max(gallery.identities)
    refinement = refine_identities(log)
    pending: dict[tuple[int, int], int | None] = {}
    assert reconcile(refinement, gallery, pending).events == []  # first pass: noted only
    assert pending == {(1, 160): person_p}
    result = reconcile(refinement, gallery, pending)
    assert [(event.type, event.global_id, event.split_from) for event in result.events] == [
        (EventType.IDENTITY_SPLIT, person_p, person_q)
    ]
    assert gallery.global_id_of(1, 160) == person_p
    assert gallery.global_id_of(0, 71) == gallery.global_id_of(0, 70) == person_q
    assert max(gallery.identities) == highest


def _background_pass_in_flight() -> tuple[OnlineRefinement, TrackLog, object]:
    """A background pass over the scene handed to a worker that is up and ready."""
    log, _ = _scene()
    gallery = matcher()
    gallery.update([embedded(0, 60, axis(0), 50.0, 58.0)])
    gallery.update([embedded(1, 160, axis(1), 50.0, 58.0)])
    online = OnlineRefinement(IdentityConfig(refine_every_seconds=10.0), {})
    assert online.worker is not None
    online.worker.start(wait=True)
    online._last_refined = 0.0
    assert online.maybe_refine(log, gallery) is None and online.in_flight
    return online, log, gallery


def test_ctrl_c_reaches_the_pass_worker_without_losing_its_pass():
    """A terminal's Ctrl-C goes to the whole process group, the worker included; the worker
    ignores it (the parent stops it after flushing) and its pass still comes back."""
    online, log, gallery = _background_pass_in_flight()
    try:
        for child in multiprocessing.active_children():
            os.kill(child.pid, signal.SIGINT)
        deadline = time.monotonic() + 60.0
        while not online.finished and time.monotonic() < deadline:
            time.sleep(0.05)
        result = online.maybe_refine(log, gallery)
        assert result is not None and online.merges == 1
    finally:
        online.close()


def test_a_worker_killed_from_outside_loses_one_pass_and_the_next_one_starts_it_again():
    """An OOM kill or a signal to the whole control group ends the worker mid-pass: the pass
    is dropped at once (no 30 s wait, no hang on close) and the next pass runs in a new
    worker and merges as the lost one would have."""
    online, log, gallery = _background_pass_in_flight()
    assert online.worker is not None
    try:
        child = online.worker._child
        assert child is not None and child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(10.0)
        started = time.monotonic()
        assert online.worker.finished
        assert online.worker.collect(wait=True) is None and online.worker.idle
        assert time.monotonic() - started < 5.0
        assert online.merges == 0
        online._last_refined = 0.0
        assert online.maybe_refine(log, gallery) is None and online.in_flight
        deadline = time.monotonic() + 60.0
        while not online.finished and time.monotonic() < deadline:
            time.sleep(0.05)
        assert online.maybe_refine(log, gallery) is not None and online.merges == 1
        assert gallery.global_id_of(0, 60) == gallery.global_id_of(1, 160)
    finally:
        started = time.monotonic()
        online.close()
        assert time.monotonic() - started < 10.0


def test_a_discarded_pass_coming_back_late_is_not_taken_for_the_next():
    """Passes are numbered: the result of a discarded pass, arriving while the next one runs,
    is dropped rather than reconciled as the next pass's."""
    online, _, _ = _background_pass_in_flight()
    assert online.worker is not None
    try:
        online.discard()
        assert not online.in_flight
        empty = TrackLog()
        online.worker.submit(empty, online.config, {}, 0.0, False)
        result = online.worker.collect(wait=True)
        assert result is not None and result.refinement.pieces == {}
        assert online.worker.collect(wait=False) is None
    finally:
        online.close()


def _refinement(*clusters: list[tuple[int, int, float, float, bool]]) -> Refinement:
    """A pass's outcome by hand: clusters of pieces ``(camera, track, start s, end s,
    cut_before)`` (boxes every 0.1 s)."""
    pieces = {}
    grouped = []
    for members in clusters:
        keys = []
        for camera, track, start, end, cut_before in members:
            times = np.arange(start, end + 1e-9, 0.1)
            frames = np.round(times * 10).astype(int)
            record = TrackRecord(
                camera,
                track,
                times.tolist(),
                frames.tolist(),
                [np.array([0, 0, 10, 40], dtype=np.float32)] * len(times),
                [0.9] * len(times),
                [],
                [],
                [],
                cut_before,
            )
            pieces[record.piece_key] = record
            keys.append(record.piece_key)
        grouped.append(keys)
    return Refinement(grouped, {}, 0.5, pieces=pieces)


def test_an_identity_mixing_two_people_stays_with_the_one_it_holds_most():
    """The matcher put tracks of P (long) and Q (short) in one identity, and Q's other track
    in a second: P keeps the identity, Q's track moves onto Q's, one event, no new id."""
    gallery = matcher()
    gallery.update([embedded(0, 1, axis(0), 0.0, 20.0), embedded(1, 2, axis(0), 0.0, 20.0)])
    gallery.end_track(0, 1, 20.0)
    gallery.end_track(1, 2, 20.0)
    gallery.update([embedded(0, 3, axis(0), 30.0, 33.0)])  # Q, alike: joined P's identity
    gallery.update([embedded(1, 4, axis(1), 30.0, 40.0)])  # Q in the other view
    mixed, q_own = gallery.global_id_of(0, 1), gallery.global_id_of(1, 4)
    assert gallery.global_id_of(0, 3) == mixed != q_own
    refinement = _refinement(
        [(0, 1, 0.0, 20.0, False), (1, 2, 0.0, 20.0, False)],
        [(0, 3, 30.0, 33.0, False), (1, 4, 30.0, 40.0, False)],
    )
    result = reconcile(refinement, gallery)
    assert [(event.type, event.global_id, event.split_from) for event in result.events] == [
        (EventType.IDENTITY_SPLIT, q_own, mixed)
    ]
    assert gallery.global_id_of(0, 1) == gallery.global_id_of(1, 2) == mixed
    assert gallery.global_id_of(0, 3) == q_own


def test_a_move_blocked_by_a_track_in_the_way_is_made_once_that_track_has_left():
    """Track 5 must join identity A, which still holds track 6 (another person, seen with 5
    in camera 0): refused at first; once 6 has moved to its own identity, 5 moves."""
    gallery = matcher()
    gallery.update([embedded(1, 1, axis(0), 0.0, 10.0)])  # A (camera 1)
    gallery.update([embedded(0, 6, axis(0), 0.0, 10.0)])  # joins A: wrong
    gallery.update([embedded(1, 2, axis(1), 0.0, 10.0)])  # B (camera 1)
    gallery.update([embedded(0, 5, axis(1), 0.0, 10.0)])  # joins B: wrong
    first, second = gallery.global_id_of(1, 1), gallery.global_id_of(1, 2)
    assert gallery.global_id_of(0, 6) == first and gallery.global_id_of(0, 5) == second
    refinement = _refinement(
        [(1, 1, 0.0, 10.0, False), (0, 5, 0.0, 10.0, False)],
        [(1, 2, 0.0, 10.0, False), (0, 6, 0.0, 10.0, False)],
    )
    reconcile(refinement, gallery)
    assert gallery.global_id_of(0, 5) == gallery.global_id_of(1, 1) == first
    assert gallery.global_id_of(0, 6) == gallery.global_id_of(1, 2) == second


def test_a_track_cut_at_a_swap_joins_the_person_it_follows_now():
    """Camera 0's track 3 followed Q, then (a tracker swap at 10 s) P, while P's own first
    track 1 was still there until 10 s: by whole spans 3 and 1 were seen together, yet from
    the cut on track 3 is P, so it joins P's identity."""
    gallery = matcher()
    gallery.update([embedded(0, 1, axis(0), 0.0, 10.0)])
    gallery.end_track(0, 1, 10.0)
    gallery.update([embedded(0, 3, axis(1), 0.0, 20.0)])
    person_p = gallery.global_id_of(0, 1)
    assert gallery.global_id_of(0, 3) != person_p
    gallery.update([embedded(0, 9, axis(1), 0.0, 8.0)])  # Q's identity has another track
    refinement = _refinement(
        [(0, 1, 0.0, 10.0, False), (0, 3, 10.1, 20.0, True)],
        [(0, 3, 0.0, 10.0, False), (0, 9, 0.0, 8.0, False)],
    )
    reconcile(refinement, gallery)
    assert gallery.global_id_of(0, 3) == person_p


def test_ended_tracks_move_at_once_and_the_last_pass_of_a_run_is_applied_in_full():
    """Hysteresis holds back moves of live tracks only (a live box's id flickering is what
    consumers see); an ended track's move corrects the record at the first pass. At the end
    of a run the moves the last pass held back are made (no later pass will agree)."""
    gallery = matcher()
    gallery.update([embedded(0, 1, axis(0), 0.0, 20.0)])
    gallery.update([embedded(1, 2, axis(0), 0.0, 20.0)])  # joined 1: wrong, still live
    gallery.update([embedded(2, 3, axis(0), 0.0, 5.0)])  # joined 1: wrong...
    gallery.end_track(2, 3, 4.0)  # ...and ended
    gallery.update([embedded(0, 4, axis(1), 0.0, 20.0)])
    own = gallery.global_id_of(0, 1)
    other = gallery.global_id_of(0, 4)
    assert gallery.global_id_of(1, 2) == gallery.global_id_of(2, 3) == own != other
    refinement = _refinement(
        [(0, 1, 0.0, 20.0, False), (1, 5, 0.0, 20.0, False)],
        [(1, 2, 0.0, 20.0, False), (2, 3, 0.0, 4.0, False), (0, 4, 0.0, 20.0, False)],
    )
    pending: dict[tuple[int, int], int | None] = {}
    reconcile(refinement, gallery, pending)
    assert gallery.global_id_of(2, 3) == other  # ended: moved at once
    assert gallery.global_id_of(1, 2) == own and pending[(1, 2)] == other  # live: noted
    online = OnlineRefinement(IdentityConfig(passes_in_background=False), {})
    online._pending_moves = pending
    online._held_back = refinement
    online.finish(TrackLog(), gallery)
    assert gallery.global_id_of(1, 2) == other
