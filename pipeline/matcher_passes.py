"""The whole-track passes of a distributed matcher (``--role matcher``).

The single process feeds its track log every tracked box; a matcher gets the same boxes from
the clip stream instead, sent by the edges with each track's ``clip`` and ``ended`` messages
(``pipeline/track_boxes.py``). :class:`MatcherPasses` keeps them in a bounded
:class:`~pipeline.identity.track_log.TrackLog` (the last ``identity.window_seconds``) with the
clip embeddings, and runs the same periodic pass as the single process
(:class:`~pipeline.identity.online.OnlineRefinement`, every ``identity.refine_every_seconds``
of footage) and, when the matcher stops, the end-of-run pass (``identity.refine_at_end``).
Messages of edges that send no boxes add nothing to the log, so with only such edges no pass
ever runs.
"""

from __future__ import annotations

import logging
import time

from pipeline.clip_messages import ClipMessage
from pipeline.config import CrosscamConfig
from pipeline.identity.calibration import known_homographies
from pipeline.identity.homography import ViewHomography
from pipeline.identity.online import OnlineRefinement, reconcile
from pipeline.identity.refine import refine_identities
from pipeline.identity.track_log import TrackLog
from pipeline.matching import IdentityMatcher, MatchResult

logger = logging.getLogger(__name__)


class MatcherPasses:
    """``log(message)`` for every message in stream order; ``refine(matcher)`` when ``due()``;
    ``final(matcher)`` once, when the matcher stops."""

    def __init__(self, config: CrosscamConfig) -> None:
        self.settings = config.identity
        self.known = known_homographies(config)
        self.track_log = TrackLog(self.settings.window_seconds)
        self.online = (
            OnlineRefinement(self.settings, self.known)
            if self.settings.refine_every_seconds > 0
            else None
        )
        self.boxes_logged = 0
        self.final_seconds = 0.0
        """Seconds the end-of-run pass took."""

    def log(self, message: ClipMessage) -> None:
        """Log a message's boxes and, for a track with boxes, its clip embedding."""
        track = message.track
        if message.boxes is not None:
            self.track_log.add_boxes(track.camera_id, track.track_id, message.boxes)
            self.boxes_logged += len(message.boxes)
        # an old edge's track never gets boxes: its clips would stay in the log for ever
        logged = (track.camera_id, track.track_id) in self.track_log.records
        if message.kind == "clip" and message.embedded is not None and logged:
            self.track_log.add_clip(message.embedded.clip, message.embedded.embedding)

    def due(self) -> bool:
        return self.online is not None and self.online.due(self.track_log)

    def refine(self, matcher: IdentityMatcher) -> MatchResult | None:
        """The periodic pass, when due: the merges and splits it made in ``matcher``."""
        if self.online is None:
            return None
        return self.online.maybe_refine(self.track_log, matcher)

    def final(self, matcher: IdentityMatcher) -> MatchResult | None:
        """The end-of-run pass over the window (``identity.refine_at_end``), geometry learned
        again from every track in it; None when off or nothing was logged."""
        if not self.settings.refine_at_end or not self.track_log.records:
            return None
        started = time.monotonic()
        refinement = refine_identities(self.track_log, self.settings, self.known)
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
