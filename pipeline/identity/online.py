"""Identities revised while the run goes on: the whole-track pass, applied periodically.

Every ``identity.refine_every_seconds`` of footage the runner re-clusters the tracks of the
last ``identity.window_seconds`` in its track log
(:func:`~pipeline.identity.refine.refine_identities`; the homographies, once learned, are kept
and reused) and relabels the live gallery to agree with the result (:func:`reconcile`): each
refined cluster keeps the online identity that holds most of its boxes (one identity per
cluster), and every track goes to its cluster's identity: an identity wholly inside one
cluster is merged into it (``identity_merged``, score 1.0), any other track moves on its own
(``identity_split`` into that identity, or into a new one when its cluster has none). The
matcher's rule still holds (never one identity for two tracks seen at the same time in one
camera), judged on the piece of a track the pass says it follows now; moves it refuses are
tried again once the tracks in their way have left. A live track moves only when two passes in
a row want the same move (an ended track at once), and the end of a run makes the moves its
last pass held back. A track the pass cut where the tracker swapped people counts as its newest
piece: who it follows now.
Distributed matchers (``--role matcher``) run it too, on the boxes edges send on the clip
stream (``pipeline/matcher_passes.py``). By default the pass runs in a worker process
(:mod:`.pass_worker`, ``identity.passes_in_background``) and is reconciled when it is back,
so neither the clip matcher nor the detector loop waits for it.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

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
        self._held_back: Refinement | None = None
        """The last pass, while it wanted moves that wait for the next pass to agree."""
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
        footage since the last pass is revised too), and make the moves the last pass wanted
        that were waiting for a next pass to agree; stops the worker. What they changed
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
        if self._held_back is not None:  # the run ends: no next pass will confirm them
            results.append(reconcile(self._held_back, matcher))
            self._held_back = None
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
        self._held_back = refinement if self._pending_moves else None
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
    sweeps: int = 4,
) -> MatchResult:
    """Relabel the live gallery to agree with the refined clusters (module docstring).

    Each cluster is given the online identity that holds most of its boxes, one identity per
    cluster (a maximum-weight assignment, so an identity that mixes two people stays with
    the one it holds most of); a cluster no identity is given to gets a new one. Then every
    track goes to its cluster's identity: an online identity whose tracks in the window all
    lie in one cluster is merged into that cluster's identity (``identity_merged``); any
    other track moves on its own (``identity_split`` into the cluster's identity, or a new
    one). A move or merge the matcher refuses (seen at the same time in one camera as a
    track still in the way) is tried again after the others, up to ``sweeps`` rounds. With
    ``pending`` (kept by the caller from pass to pass), a track moves only when the previous
    pass wanted the same identity for it: clusters of a live window change a little from
    pass to pass, and a move undone ten seconds later is noise to every consumer. Merges are
    not held back (two ids for one person is what the pass exists to fix)."""
    result = MatchResult()
    now = _current_pieces(refinement)
    for track, (_, piece) in now.items():
        if piece.cut_before:
            matcher.follow_from(track, piece.timestamps[0])
    members: dict[int, list[TrackKey]] = {}
    for track, (cluster, _) in sorted(now.items()):
        if matcher.global_id_of(*track) >= 0:
            members.setdefault(cluster, []).append(track)
    relabel = _Relabel(members, now, matcher, pending, result)
    for _ in range(sweeps):
        changed = relabel.move_home()
        changed |= relabel.leave_squatted()
        changed |= relabel.merge_home()
        if not changed:
            break
    if pending is not None:
        pending.clear()
        pending.update(relabel.wanted)
    return result


class _Relabel:
    """One reconciliation's state: each cluster's tracks (those with an identity), the cluster
    each track belongs to, each cluster's anchor track (whose identity the cluster keeps), and
    the moves wanted (for the hysteresis of the next pass)."""

    def __init__(
        self,
        members: dict[int, list[TrackKey]],
        now: dict[TrackKey, tuple[int, TrackRecord]],
        matcher: IdentityMatcher,
        pending: dict[TrackKey, int | None] | None,
        result: MatchResult,
    ) -> None:
        self.members = members
        self.now = now
        self.matcher = matcher
        self.pending = pending
        self.result = result
        self.home = {track: cluster for cluster, tracks in members.items() for track in tracks}
        self.labels = _cluster_labels(members, now, matcher)
        self.wanted: dict[TrackKey, int | None] = {}

    def target(self, cluster: int) -> int | None:
        """The identity ``cluster`` keeps now (its anchor's: merges change ids)."""
        anchor = self.labels.get(cluster)
        return None if anchor is None else self.matcher.global_id_of(*anchor)

    def allowed(self, track: TrackKey, target: int | None) -> bool:
        """Record the wish; True when the previous pass wished the same, or the track has
        ended (its move corrects the record, no live box flickers), or without hysteresis."""
        self.wanted[track] = target
        if self.pending is None or not self.matcher.is_live(track):
            return True
        return track in self.pending and self.pending[track] == target

    def alone_in(self, identity: int, cluster: int) -> bool:
        """Every track of ``identity`` the pass placed lies in ``cluster``."""
        held = self.matcher.identities.get(identity)
        return held is not None and all(
            self.home.get(track, cluster) == cluster for track in held.tracks
        )

    def move_home(self) -> bool:
        """Tracks away from their cluster's identity move onto it where they fit there (an
        identity wholly in the cluster is merged instead: :meth:`merge_home`)."""
        changed = False
        for cluster, tracks in sorted(self.members.items()):
            target = self.target(cluster)
            for track in tracks:
                current = self.matcher.global_id_of(*track)
                if target is None or current == target or self.alone_in(current, cluster):
                    continue
                if self.allowed(track, target):
                    changed |= self.matcher.move_track(track, target, self.result)
        return changed

    def leave_squatted(self) -> bool:
        """Tracks still held by another cluster's identity (or whose cluster has none) leave
        it for a new identity: first out of the way, merged home afterwards."""
        changed = False
        kept = {self.target(cluster) for cluster in self.labels}
        for cluster, tracks in sorted(self.members.items()):
            target = self.target(cluster)
            for track in tracks:
                current = self.matcher.global_id_of(*track)
                if current == target or (current not in kept and target is not None):
                    continue
                if target is not None and self.alone_in(current, cluster):
                    continue
                if not self.allowed(track, target):
                    continue
                if not self.matcher.split_track(track, self.result):
                    continue
                changed = True
                if target is None:  # the track starts its cluster's identity
                    self.labels[cluster] = track
                    target = self.matcher.global_id_of(*track)
                    kept.add(target)
        return changed

    def merge_home(self) -> bool:
        """Identities whose tracks in the window all lie in one cluster merge into its
        identity."""
        changed = False
        for cluster, tracks in sorted(self.members.items()):
            for track in tracks:
                target = self.target(cluster)
                current = self.matcher.global_id_of(*track)
                if target is None or current == target or not self.alone_in(current, cluster):
                    continue
                event = _event_at(self.now[track][1])
                changed |= self.matcher.merge_identities(target, current, event, self.result)
        return changed


def _cluster_labels(
    members: dict[int, list[TrackKey]],
    now: dict[TrackKey, tuple[int, TrackRecord]],
    matcher: IdentityMatcher,
) -> dict[int, TrackKey]:
    """Cluster → an anchor track holding the online identity the cluster keeps: the
    maximum-weight one-to-one assignment of clusters to identities by boxes held (clusters
    left without one are absent)."""
    clusters = sorted(members)
    identities = sorted(
        {matcher.global_id_of(*track) for tracks in members.values() for track in tracks}
    )
    if not clusters or not identities:
        return {}
    column = {identity: index for index, identity in enumerate(identities)}
    boxes = np.zeros((len(clusters), len(identities)))
    for row, cluster in enumerate(clusters):
        for track in members[cluster]:
            boxes[row, column[matcher.global_id_of(*track)]] += len(now[track][1].timestamps)
    rows, columns = linear_sum_assignment(boxes, maximize=True)
    labels: dict[int, TrackKey] = {}
    for row, index in zip(rows.tolist(), columns.tolist(), strict=True):
        if boxes[row, index] <= 0:
            continue
        identity = identities[index]
        held = [t for t in members[clusters[row]] if matcher.global_id_of(*t) == identity]
        labels[clusters[row]] = max(held, key=lambda t: len(now[t][1].timestamps))
    return labels


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
