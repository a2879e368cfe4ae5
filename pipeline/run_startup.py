"""The start of a run against Redis: the stored gallery, and track ids after earlier runs.

Before the cameras start, the single process reads the stored gallery, waiting for Redis
(:meth:`RunStartup._restore_gallery`; an edge matches nothing and needs none), and every
camera's track ids continue after those of earlier runs, whose tracks left open by a killed
run are ended (:meth:`RunStartup._continue_tracks`, ``pipeline/track_ledger.py``). A part of
:class:`~pipeline.runner.Pipeline`.
"""

from __future__ import annotations

import logging

import redis

from pipeline.batch_step import BatchStep
from pipeline.reload import ContinuingTracker
from pipeline.track_ledger import read_track_ledger

logger = logging.getLogger(__name__)


class RunStartup(BatchStep):
    """What a run reads from Redis before its cameras start."""

    def _restore_gallery(self) -> bool:
        """Read the stored gallery, waiting for Redis (until stopped or out of time); False
        when it never answered. Edges match nothing and need no gallery."""
        return self.sink.restore(lambda: self._stop.is_set() or self._out_of_time())

    def _continue_tracks(self) -> None:
        """Continue each camera's track ids after those of earlier runs, and end the tracks a
        killed run left open (``pipeline/track_ledger.py``). An earlier run's spool is replayed
        first, so its tracks count. Edges continue their ids too, and send an ``ended`` message
        (``left_open``) for each such track, which the matcher publishes as ``track_ended``.
        Either way each track gets one ``track_ended``, whatever other runs start at once."""
        self.publisher.flush(timeout_seconds=10.0)
        camera_ids = [camera.id for camera in self.config.cameras]
        try:
            highest, left_open = read_track_ledger(
                self.redis_url, self.config.redis.key_prefix, camera_ids
            )
        except redis.RedisError as error:
            logger.warning(
                "could not read the track ids of earlier runs (%s); track ids restart at 0",
                error.__class__.__name__,
            )
            return
        for camera_id, track_id in highest.items():
            self._highest_track_id[camera_id] = track_id
            if camera_id in self.trackers:
                self.trackers[camera_id] = ContinuingTracker(self.trackers[camera_id], track_id + 1)
        if not left_open:
            return
        logger.info(
            "%d tracks of an earlier run were never ended (killed?); %s",
            len(left_open),
            self.sink.left_open_action,
        )
        self._publish(self.sink.left_open(left_open))
