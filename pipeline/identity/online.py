"""Identities revised while the run goes on: the whole-track pass, applied periodically.

Every ``identity.refine_every_seconds`` of footage the runner re-clusters the tracks of the
last ``identity.window_seconds`` in its track log
(:func:`~pipeline.identity.refine.refine_identities`; the homographies, once learned, are kept
and reused) and reconciles the live gallery with the result: when one refined cluster holds
tracks of several online identities, those identities are merged in the matcher, which
publishes the usual ``identity_merged`` event (score 1.0), unless they were seen at the same
time in one camera (the matcher's own rule, kept); when one online identity holds tracks of
several clusters, each track outside its main cluster (most boxes) moves onto its own
cluster's identity (``identity_split`` into that identity, score 1.0; only where the matcher's
rule lets it join, and only when two passes in a row want the same move), or into a new one
when its cluster holds no other identity. A track the
pass cut where the tracker swapped people counts as its newest piece: who it follows now.
Distributed matchers (``--role matcher``) run it too, on the boxes edges send on the clip
stream (``pipeline/matcher_passes.py``). By default the pass runs in a worker process
(:mod:`.pass_worker`, ``identity.passes_in_background``) and is reconciled when it is back,
so neither the clip matcher nor the detector loop waits for it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

import numpy as np

from pipeline.config import IdentityConfig
from pipeline.events import Event, EventType
from pipeline.identity.gallery import TrackKey
from pipeline.identity.homography import ViewHomography
from pipeline.identity.matching import IdentityMatcher, MatchResult
from pipeline.identity.pass_worker import PassResult, PassWorker
from pipeline.identity.refine import Refinement, refine_identities
from pipeline.identity.track_log import TrackLog, TrackRecord

logger = logging.getLogger(__name__)


class OnlineRefinement:
    """``maybe_refine(log, matcher) -> MatchResult | None``, due every
    ``refine_every_seconds`` of footage (the newest logged timestamp).

    With ``identity.passes_in_background`` the pass runs in a worker process
    (:mod:`.pass_worker`): ``maybe_refine`` hands the window over when a pass is due and no
    other is in flight, and reconciles a finished one on a later call (call it often: every
    batch). Else the pass runs inline, in the call that finds it due."""

    def __init__(
        self, config: IdentityConfig, known: dict[tuple[int, int], ViewHomography]
    ) -> None:
        self.config = config
        self.known = dict(known)
        self.learned: dict[tuple[int, int], ViewHomography] = {}
        self._learned_at: float | None = None
        self._last_refined: float | None = None
        self._pending_moves: dict[TrackKey, int | None] = {}
        """Moves the last pass wanted (made when the next pass wants them too)."""
        self.worker = PassWorker() if config.passes_in_background else None
        self.passes = 0
        self.merges = 0
        self.splits = 0
        self.seconds_total = 0.0
        """Seconds the passes took (in the worker, when in the background)."""

    def due(self, log: TrackLog) -> bool:
        newest = log.newest_timestamp()
        if newest is None or self.config.refine_every_seconds <= 0:
            return False
        if self._last_refined is None:
            self._last_refined = newest
            return False
        return newest - self._last_refined >= self.config.refine_every_seconds

    @property
    def in_flight(self) -> bool:
        """A background pass is running (or finished, not yet reconciled)."""
        return self.worker is not None and not self.worker.idle

    @property
    def finished(self) -> bool:
        """A background pass has finished and waits to be reconciled."""
        return self.worker is not None and self.worker.finished

    def maybe_refine(self, log: TrackLog, matcher: IdentityMatcher) -> MatchResult | None:
        """Reconcile a finished background pass, start one when due; inline: refine when
        due. The merges and moves made (None when no pass ended in this call)."""
        if self.worker is not None:
            finished = self.worker.collect()
            result = None if finished is None else self._apply(finished, matcher)
            if self.worker.idle and self.due(log):
                newest, window, given, relearn = self._window(log)
                self.worker.submit(window, self.config, given, newest, relearn)
            return result
        if not self.due(log):
            return None
        started = time.monotonic()
        newest, window, given, relearn = self._window(log)
        refinement = refine_identities(window, self.config, given)
        return self._apply(
            PassResult(refinement, newest, relearn, time.monotonic() - started), matcher
        )

    def finish(self, log: TrackLog, matcher: IdentityMatcher) -> MatchResult | None:
        """At the end of a run without an end-of-run pass: wait for the background pass in
        flight and reconcile it, then run the pass that is due, if one is, inline (the
        footage since the last pass is revised too); stops the worker. What they changed
        (None when nothing ran)."""
        results: list[MatchResult] = []
        if self.worker is not None:
            finished = self.worker.collect(wait=True)
            self.worker.close()
            self.worker = None
            if finished is not None:
                results.append(self._apply(finished, matcher))
        last = self.maybe_refine(log, matcher)
        if last is not None:
            results.append(last)
        if not results:
            return None
        combined = MatchResult()
        for result in results:
            combined.events += result.events
            combined.changed += result.changed
            combined.removed += result.removed
        return combined

    def discard(self) -> None:
        """Drop the result of a background pass in flight (its window is no longer the
        log's: a matcher taking the lead)."""
        if self.worker is not None:
            self.worker.discard()

    def close(self) -> None:
        """Stop the worker process (a pass in flight is dropped)."""
        if self.worker is not None:
            self.worker.close()

    def _window(
        self, log: TrackLog
    ) -> tuple[float, TrackLog, dict[tuple[int, int], ViewHomography], bool]:
        """The newest timestamp, the window to refine, the homographies it is given, and
        whether it learns the others again (every ``relearn_geometry_seconds``)."""
        newest = log.newest_timestamp() or 0.0
        self._last_refined = newest
        log.prune()
        window = log.recent(self.config.window_seconds)
        relearn = (
            self._learned_at is None
            or newest - self._learned_at >= self.config.relearn_geometry_seconds
        )
        given = self.known if relearn else {**self.learned, **self.known}
        return newest, window, given, relearn

    def _apply(self, finished: PassResult, matcher: IdentityMatcher) -> MatchResult:
        refinement = finished.refinement
        if finished.relearned:
            fresh = {
                pair: view
                for pair, view in refinement.homographies.items()
                if pair not in self.known
            }
            self.learned.update(fresh)  # a pair not found this time keeps its earlier fit
            if fresh:
                self._learned_at = finished.newest
        result = reconcile(refinement, matcher, self._pending_moves)
        self.passes += 1
        merges = sum(event.type is EventType.IDENTITY_MERGED for event in result.events)
        splits = sum(event.type is EventType.IDENTITY_SPLIT for event in result.events)
        self.merges += merges
        self.splits += splits
        self.seconds_total += finished.seconds
        if result.events:
            logger.info(
                "identity pass %d: %d identities merged, %d tracks split off (%d clusters, "
                "%d cuts)",
                self.passes,
                merges,
                splits,
                len(refinement.clusters),
                refinement.swap_cuts + refinement.encounter_cuts,
            )
        return result


def reconcile(
    refinement: Refinement,
    matcher: IdentityMatcher,
    pending: dict[TrackKey, int | None] | None = None,
) -> MatchResult:
    """Move tracks and merge online identities to agree with the refined clusters (module
    docstring). With ``pending`` (kept by the caller from pass to pass), a track moves only
    when the previous pass wanted the same move: clusters of a live window change a little
    from pass to pass, and a move undone ten seconds later is noise to every consumer."""
    result = MatchResult()
    wanted: dict[TrackKey, int | None] = {}
    now = _current_pieces(refinement)
    holders: dict[int, Counter[int]] = {}
    """cluster → boxes of each online identity among its tracks."""
    for track, (cluster, piece) in now.items():
        online = matcher.global_id_of(*track)
        if online >= 0:
            holders.setdefault(cluster, Counter())[online] += len(piece.timestamps)
    by_identity: dict[int, list[TrackKey]] = {}
    for track in sorted(now):
        online = matcher.global_id_of(*track)
        if online >= 0:
            by_identity.setdefault(online, []).append(track)
    for online, tracks in by_identity.items():
        votes: Counter[int] = Counter()
        for track in tracks:
            votes[now[track][0]] += len(now[track][1].timestamps)
        if len(votes) < 2:
            continue
        stays = max(sorted(votes), key=lambda cluster: votes[cluster])
        for track in tracks:
            cluster = now[track][0]
            if cluster == stays:
                continue
            others = {other: count for other, count in holders[cluster].items() if other != online}
            target = max(sorted(others), key=others.__getitem__) if others else None
            wanted[track] = target
            if pending is not None and (track not in pending or pending[track] != target):
                continue
            if target is None:  # its cluster holds no identity yet: a new one
                matcher.split_track(track, result)
            else:  # onto its cluster's identity where it fits there (no new id used up)
                matcher.move_track(track, target, result)
    members: dict[int, list[TrackKey]] = {}
    for track, (cluster, _) in sorted(now.items()):
        members.setdefault(cluster, []).append(track)
    for tracks in members.values():
        weights: Counter[int] = Counter()
        for track in tracks:
            online = matcher.global_id_of(*track)
            if online >= 0:
                weights[online] += len(now[track][1].timestamps)
        if len(weights) < 2:
            continue
        newest = max((now[track][1] for track in tracks), key=lambda piece: piece.last_timestamp)
        keep = min(weights)
        for other in sorted(weights):
            if other != keep:
                matcher.merge_identities(keep, other, _event_at(newest), result)
    if pending is not None:
        pending.clear()
        pending.update(wanted)
    return result


def _current_pieces(refinement: Refinement) -> dict[TrackKey, tuple[int, TrackRecord]]:
    """Track → (cluster, piece) of its newest piece: who the track follows now (a track cut
    where the tracker swapped people goes on as its last piece's person)."""
    now: dict[TrackKey, tuple[int, TrackRecord]] = {}
    for index, keys in enumerate(refinement.clusters):
        for key in keys:
            piece = refinement.pieces[key]
            track = (key[0], key[1])
            if track not in now or piece.last_timestamp > now[track][1].last_timestamp:
                now[track] = (index, piece)
    return now


def _event_at(piece: TrackRecord) -> Event:
    """An event at ``piece``'s newest box (type and global id are set by the matcher)."""
    return Event(
        type=EventType.IDENTITY_MERGED,
        camera_id=piece.camera_id,
        track_id=piece.track_id,
        global_id=-1,
        bbox=np.asarray(piece.boxes[-1], dtype=np.float32),
        frame_index=piece.frame_indices[-1],
        timestamp=piece.timestamps[-1],
        score=1.0,
        captured_at=time.monotonic(),
    )
