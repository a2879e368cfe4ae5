"""Global identities across a camera reconnect.

While a live camera is away its tracker sees no frames, so the people still in view come back
as new local tracks after the reconnect. Their first clips are matched to the gallery like any
new track, and a first clip of a few frames is often below the cross-camera similarity
threshold: measured on the terrace RTSP test, only 1 of 5 re-acquired tracks kept its identity.
Same-camera re-association (``matching.reassociation_*``, off by default) is made for exactly
this: a new track that starts near where a track of the same camera ended, soon after, and looks
like it, continues that track's identity.

:class:`ReconnectContinuity` turns re-association on for the outage: when a camera reconnects,
the matcher's ``reassociation_seconds`` is raised to cover the gap (outage plus a margin for
the new track to be confirmed) and ``reassociation_distance`` by how far a walking person gets
in that time, for ``window_seconds``; then both go back to their configured values. On the
terrace RTSP test this keeps 4-5 of 5 re-acquired tracks on their identity (3 of 5 with the
time window alone: people walk out of the 1.5 box heights). The matcher config is global, so
during the window broken tracks of other cameras may be re-associated too, under the same
position and similarity checks.

With ``--role all`` the pipeline feeds reconnects from its own cameras
(:class:`ReconnectWatcher`); with separate edges and matchers an edge sends a ``reconnected``
clip message (``pipeline/clip_messages.py``) and the leading matcher applies it, in stream
order, before the new tracks' clips.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from pipeline.config import MatchingConfig
from pipeline.sources import CameraSource

WALKING_BOX_HEIGHTS_PER_SECOND = 0.8
"""A walking person (about 1.4 m/s) covers about 0.8 of their own height per second."""

logger = logging.getLogger(__name__)


class ReconnectContinuity:
    """Widens same-camera re-association after reconnects: :meth:`camera_reconnected` for each
    reconnect (from a :class:`ReconnectWatcher` or an edge's message), :meth:`refresh` once per
    tick.

    ``matching`` must be the matcher's own config object (the runner gives the matcher a copy,
    so the run's config, compared on reload, is never changed).
    """

    def __init__(
        self,
        matching: MatchingConfig,
        margin_seconds: float = 3.0,
        window_seconds: float = 20.0,
    ) -> None:
        self.matching = matching
        self.configured_seconds = matching.reassociation_seconds
        self.configured_distance = matching.reassociation_distance
        self.margin_seconds = margin_seconds
        self.window_seconds = window_seconds
        self._windows: dict[int, tuple[float, float, float]] = {}
        """camera id → (monotonic end of the window, re-association seconds and distance)."""

    def camera_reconnected(
        self, camera_id: int, outage_seconds: float, now: float | None = None
    ) -> None:
        """Open (or reopen) ``camera_id``'s window for an outage of ``outage_seconds``."""
        now = time.monotonic() if now is None else now
        seconds = max(self.configured_seconds, outage_seconds + self.margin_seconds)
        distance = self.configured_distance + WALKING_BOX_HEIGHTS_PER_SECOND * outage_seconds
        self._windows[camera_id] = (now + self.window_seconds, seconds, distance)
        logger.info(
            "camera %s: for %.0f s, new tracks continue identities of tracks that ended "
            "up to %.1f s before within %.1f box heights (outage %.1f s)",
            camera_id,
            self.window_seconds,
            seconds,
            distance,
            outage_seconds,
        )
        self.refresh(now)

    def refresh(self, now: float | None = None) -> None:
        """Close the windows that ended and set the matcher to the widest one still open."""
        now = time.monotonic() if now is None else now
        self._windows = {
            camera_id: window for camera_id, window in self._windows.items() if window[0] > now
        }
        seconds = max([self.configured_seconds, *(w[1] for w in self._windows.values())])
        distance = max([self.configured_distance, *(w[2] for w in self._windows.values())])
        if self.matching.reassociation_seconds != seconds:
            self.matching.reassociation_seconds = seconds
        if self.matching.reassociation_distance != distance:
            self.matching.reassociation_distance = distance


class ReconnectWatcher:
    """Which cameras reconnected since the last :meth:`poll`, and after how long an outage."""

    def __init__(self) -> None:
        self._reconnects_seen: dict[int, int] = {}

    def poll(self, sources: Iterable[CameraSource]) -> list[tuple[int, float]]:
        """``(camera id, outage seconds)`` for each camera whose reconnect count went up."""
        reconnected = []
        for source in sources:
            camera_id = source.camera.id
            reconnects = source.counters.reconnects
            if reconnects > self._reconnects_seen.get(camera_id, 0):
                reconnected.append((camera_id, float(source.last_outage_seconds)))
            self._reconnects_seen[camera_id] = reconnects
        return reconnected
