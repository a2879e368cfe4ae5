"""Identities revised while the run goes on: the whole-track pass, applied periodically.

Every ``identity.refine_every_seconds`` of footage the runner re-clusters the tracks of the
last ``identity.window_seconds`` in its track log
(:func:`~pipeline.identity.refine.refine_identities`; the homographies, once learned, are kept
and reused) and reconciles the live gallery with the result: when one refined cluster holds
tracks of several online identities, those identities are merged in the matcher, which
publishes the usual ``identity_merged`` event (score 1.0), unless they were seen at the same
time in one camera (the matcher's own rule, kept). Only tracks the pass left whole vote: a
track it cut where the tracker swapped people belongs to two clusters and proves nothing.
Identity splits stay with the matcher (``pipeline/splits.py``). Distributed matchers
(``--role matcher``) get clips, not every box, and do not run this pass.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

import numpy as np

from pipeline.config import IdentityConfig
from pipeline.events import Event, EventType
from pipeline.identity.homography import ViewHomography
from pipeline.identity.refine import Refinement, refine_identities
from pipeline.identity.track_log import TrackLog
from pipeline.matching import IdentityMatcher, MatchResult

logger = logging.getLogger(__name__)


class OnlineRefinement:
    """``maybe_refine(log, matcher) -> MatchResult | None``, due every
    ``refine_every_seconds`` of footage (the newest logged timestamp)."""

    def __init__(
        self, config: IdentityConfig, known: dict[tuple[int, int], ViewHomography]
    ) -> None:
        self.config = config
        self.homographies = dict(known)
        self._last_refined: float | None = None
        self.passes = 0
        self.merges = 0
        self.seconds_total = 0.0

    def due(self, log: TrackLog) -> bool:
        newest = log.newest_timestamp()
        if newest is None or self.config.refine_every_seconds <= 0:
            return False
        if self._last_refined is None:
            self._last_refined = newest
            return False
        return newest - self._last_refined >= self.config.refine_every_seconds

    def maybe_refine(self, log: TrackLog, matcher: IdentityMatcher) -> MatchResult | None:
        """Refine when due; the merges it made (None when not due)."""
        if not self.due(log):
            return None
        started = time.monotonic()
        self._last_refined = log.newest_timestamp()
        log.prune()
        window = log.recent(self.config.window_seconds)
        refinement = refine_identities(window, self.config, self.homographies)
        self.homographies.update(refinement.homographies)
        result = reconcile(refinement, matcher)
        self.passes += 1
        self.merges += sum(event.type is EventType.IDENTITY_MERGED for event in result.events)
        self.seconds_total += time.monotonic() - started
        if result.events:
            logger.info(
                "identity pass %d: %d identities merged (%d clusters, %d swap cuts)",
                self.passes,
                len(result.events),
                len(refinement.clusters),
                refinement.swap_cuts,
            )
        return result


def reconcile(refinement: Refinement, matcher: IdentityMatcher) -> MatchResult:
    """Merge the online identities that one refined cluster holds (module docstring)."""
    result = MatchResult()
    clusters_of_track: dict[tuple[int, int], set[int]] = {}
    for index, keys in enumerate(refinement.clusters):
        for key in keys:
            clusters_of_track.setdefault((key[0], key[1]), set()).add(index)
    for keys in refinement.clusters:
        votes: Counter[int] = Counter()
        last_piece = None
        for key in keys:
            track = (key[0], key[1])
            online = matcher.global_id_of(*track)
            if online < 0 or len(clusters_of_track[track]) > 1:
                continue
            piece = refinement.pieces[key]
            votes[online] += len(piece.timestamps)
            if last_piece is None or piece.last_timestamp > last_piece.last_timestamp:
                last_piece = piece
        if len(votes) < 2 or last_piece is None:
            continue
        keep = min(votes)
        for other in sorted(votes):
            if other == keep:
                continue
            event = Event(
                type=EventType.IDENTITY_MERGED,
                camera_id=last_piece.camera_id,
                track_id=last_piece.track_id,
                global_id=keep,
                bbox=np.asarray(last_piece.boxes[-1], dtype=np.float32),
                frame_index=last_piece.frame_indices[-1],
                timestamp=last_piece.timestamps[-1],
                score=1.0,
                captured_at=time.monotonic(),
            )
            matcher.merge_identities(keep, other, event, result)
    return result
