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
    """``update(sources)`` once per tick: widens same-camera re-association after reconnects.

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
        self._reconnects_seen: dict[int, int] = {}
        self._windows: dict[int, tuple[float, float, float]] = {}
        """camera id → (monotonic end of the window, re-association seconds and distance)."""

    def update(self, sources: Iterable[CameraSource], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for source in sources:
            camera_id = source.camera.id
            reconnects = source.counters.reconnects
            if reconnects > self._reconnects_seen.get(camera_id, 0):
                outage = source.last_outage_seconds
                seconds = max(self.configured_seconds, outage + self.margin_seconds)
                distance = self.configured_distance + WALKING_BOX_HEIGHTS_PER_SECOND * outage
                self._windows[camera_id] = (now + self.window_seconds, seconds, distance)
                logger.info(
                    "camera %s: for %.0f s, new tracks continue identities of tracks that ended "
                    "up to %.1f s before within %.1f box heights (outage %.1f s)",
                    camera_id,
                    self.window_seconds,
                    seconds,
                    distance,
                    outage,
                )
            self._reconnects_seen[camera_id] = reconnects
        self._windows = {
            camera_id: window for camera_id, window in self._windows.items() if window[0] > now
        }
        seconds = max([self.configured_seconds, *(w[1] for w in self._windows.values())])
        distance = max([self.configured_distance, *(w[2] for w in self._windows.values())])
        if self.matching.reassociation_seconds != seconds:
            self.matching.reassociation_seconds = seconds
        if self.matching.reassociation_distance != distance:
            self.matching.reassociation_distance = distance
