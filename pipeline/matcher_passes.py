"""The whole-track passes of a distributed matcher (``--role matcher``).

The single process feeds its track log every tracked box; a matcher gets the same boxes from
the clip stream instead, sent by the edges with each track's ``clip`` and ``ended`` messages
(``pipeline/track_boxes.py``). :class:`MatcherPasses` keeps them in a bounded
:class:`~pipeline.identity.track_log.TrackLog` (the last ``identity.window_seconds``) with the
clip embeddings, and runs the same periodic pass as the single process
(:class:`~pipeline.identity.online.OnlineRefinement`, every ``identity.refine_every_seconds``
of footage) and, when the matcher stops, the end-of-run pass (``identity.refine_at_end``).
Passes run in a worker process by default (``identity.passes_in_background``,
:mod:`pipeline.identity.pass_worker`): matching goes on while one runs, the next starts when
it has been reconciled and another is due. Run inline instead, a pass stalls the matcher, so a
matcher that is behind (draining a backlog: its reads come back full) defers it to every
``window_seconds / 2`` of footage: a pass costs the same whatever footage came since the last
one, and one every ``refine_every_seconds`` would keep a busy matcher behind for ever; every
track still meets a pass while it is in the window. Once caught up, passes follow the footage
again.
Messages of edges that send no boxes add nothing to the log, so with only such edges no pass
ever runs.
"""

from __future__ import annotations

import logging
import time

from pipeline.clip_messages import ClipMessage
from pipeline.config import CrosscamConfig
from pipeline.identity import (
    IdentityMatcher,
    MatchResult,
    OnlineRefinement,
    TrackLog,
    ViewHomography,
    known_homographies,
    reconcile,
    refine_identities,
)

logger = logging.getLogger(__name__)


class MatcherPasses:
    """``log(message)`` for every message in stream order; ``refine(matcher)`` when ``due()``;
    ``final(matcher)`` once, when the matcher stops."""

    def __init__(self, config: CrosscamConfig, defer_when_behind: bool = True) -> None:
        self.settings = config.identity
        self.defer_when_behind = defer_when_behind
        self._last_pass_footage: float | None = None
        self.known = known_homographies(config)
        self.track_log = TrackLog(self.settings.window_seconds)
        self.online = (
            OnlineRefinement(self.settings, self.known)
            if self.settings.refine_every_seconds > 0
            else None
        )
        self.enabled = self.online is not None or self.settings.refine_at_end
        """False: both passes off; nothing is logged."""
        self._pruned_at: float | None = None
        self.boxes_logged = 0
        self.final_seconds = 0.0
        """Seconds the end-of-run pass took."""

    def log(self, message: ClipMessage) -> None:
        """Log a message's boxes and, for a track with boxes, its clip embedding; forget
        tracks older than the window every ``refine_every_seconds`` (or 10 s) of footage."""
        if not self.enabled:
            return
        track = message.track
        if message.boxes is not None:
            self.track_log.add_boxes(track.camera_id, track.track_id, message.boxes)
            self.boxes_logged += len(message.boxes)
            newest = self.track_log.newest_timestamp() or 0.0
            if self._pruned_at is None or newest - self._pruned_at >= self._prune_every_seconds:
                self.track_log.prune()
                self._pruned_at = newest
        # an old edge's track never gets boxes: its clips would stay in the log for ever
        logged = (track.camera_id, track.track_id) in self.track_log.records
        if message.kind == "clip" and message.embedded is not None and logged:
            self.track_log.add_clip(message.embedded.clip, message.embedded.embedding)

    @property
    def _prune_every_seconds(self) -> float:
        return self.settings.refine_every_seconds or 10.0

    def warm_up(self) -> None:
        """Start the background worker and wait until it is ready (a long-running matcher
        pays its start-up once, before its first pass)."""
        if self.online is not None and self.online.worker is not None:
            self.online.worker.start(wait=True)

    @property
    def in_background(self) -> bool:
        """Periodic passes run in a worker process."""
        return self.online is not None and self.online.worker is not None

    def due(self, behind: bool = False) -> bool:
        """Whether :meth:`refine` has work: a finished background pass to reconcile, or the
        periodic pass is due and none is in flight (``behind``: the matcher has a backlog;
        defers only an inline pass)."""
        if self.online is None:
            return False
        if self.online.in_flight:
            return self.online.finished
        if not self.online.due(self.track_log):
            return False
        newest = self.track_log.newest_timestamp()
        last = self._last_pass_footage
        inline = self.online.worker is None
        if not (behind and self.defer_when_behind and inline) or last is None or newest is None:
            return True
        return newest - last >= self.settings.window_seconds / 2

    def refine(self, matcher: IdentityMatcher) -> MatchResult | None:
        """The periodic pass, when due (inline), or a finished background pass: the merges
        and splits it made in ``matcher``."""
        if self.online is None:
            return None
        passes = self.online.passes
        result = self.online.maybe_refine(self.track_log, matcher)
        if self.online.passes > passes or self.online.in_flight:
            self._last_pass_footage = self.track_log.newest_timestamp()
        return result

    def settle(self, matcher: IdentityMatcher) -> MatchResult | None:
        """When the matcher stops, before :meth:`final`: with an end-of-run pass to come, the
        background pass in flight is dropped (superseded); without one, it is waited for and
        reconciled, and a periodic pass that is due runs (OnlineRefinement.finish)."""
        if self.online is None:
            return None
        if self.settings.refine_at_end:
            self.online.close()
            return None
        return self.online.finish(self.track_log, matcher)

    def final(self, matcher: IdentityMatcher) -> MatchResult | None:
        """The end-of-run pass over the window (``identity.refine_at_end``), with the
        homographies the periodic passes learned (learned from every track in the window when
        they learned none); None when off or nothing was logged."""
        if not self.settings.refine_at_end or not self.track_log.records:
            return None
        started = time.monotonic()
        refinement = refine_identities(self.track_log, self.settings, self.homographies)
        result = reconcile(refinement, matcher)
        self.final_seconds = time.monotonic() - started
        logger.info(
            "matcher: last identity pass over %d tracks (%.2f s): %d events",
            len(self.track_log),
            self.final_seconds,
            len(result.events),
        )
        return result

    def reset(self) -> None:
        """Forget the logged tracks (a matcher taking the lead: its log has gaps); learned
        homographies are kept."""
        self.track_log = TrackLog(self.settings.window_seconds)
        self._pruned_at = None
        if self.online is not None:
            self.online.discard()

    @property
    def seconds_total(self) -> float:
        """Seconds spent in periodic passes so far."""
        return 0.0 if self.online is None else self.online.seconds_total

    @property
    def homographies(self) -> dict[tuple[int, int], ViewHomography]:
        """The view homographies the periodic passes use (given, then learned)."""
        if self.online is None:
            return dict(self.known)
        return {**self.online.learned, **self.online.known}
