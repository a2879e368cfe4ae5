"""Cameras joining and leaving a running pipeline: at start-up and on a config reload.

Each camera gets a source, a tracker and a clip buffer (:meth:`CameraChanges._add_camera`);
a camera that leaves is stopped and its clip buffer flushed as at shutdown
(:meth:`CameraChanges._remove_camera`). ``request_reload()`` (SIGHUP) makes the loop call
:meth:`CameraChanges.apply_reload` between ticks, which re-reads the config and stops, starts
or restarts the cameras that changed (``pipeline/reload.py``); a restarted camera never reuses
one of its track ids. A part of :class:`~pipeline.runner.Pipeline`.
"""

from __future__ import annotations

import logging
from typing import Literal

from pipeline.batch_step import BatchStep
from pipeline.clips import ClipBuffer
from pipeline.config import CameraConfig
from pipeline.frame_rate import frame_rate_or_default
from pipeline.reload import ContinuingTracker, ReloadPlan, plan_reload
from pipeline.sources import CameraSource
from pipeline.stats import CameraCounters
from pipeline.track import CameraTracker

logger = logging.getLogger(__name__)


class CameraChanges(BatchStep):
    """Adding, removing and reloading the cameras of a run."""

    def _add_camera(self, camera: CameraConfig) -> CameraSource:
        """Build the source, tracker and clip buffer of a camera (not started yet)."""
        source = CameraSource(camera)
        self.sources.append(source)
        tracker = CameraTracker(self.config.tracker, frame_rate_or_default(camera.fps_cap))
        if camera.id in self._highest_track_id:  # restarted: never reuse one of its track ids
            self.trackers[camera.id] = ContinuingTracker(
                tracker, self._highest_track_id[camera.id] + 1
            )
        else:
            self.trackers[camera.id] = tracker
        identity = self.config.identity
        encounter_iou = identity.encounter_iou if identity.cut_encounters else None
        self.buffers[camera.id] = ClipBuffer(self.config.clips, camera.id, encounter_iou)
        self.totals.cameras.setdefault(camera.id, CameraCounters())
        self.removed_cameras.pop(camera.id, None)
        return source

    def _remove_camera(self, camera_id: int) -> None:
        """Stop a camera's reader (joined), flush its clip buffer into the encoder and publish
        its ended tracks, as shutdown does; the clips' identities follow in the next ticks."""
        source = next(source for source in self.sources if source.camera.id == camera_id)
        source.request_stop()
        source.stop()
        self.sources.remove(source)
        self.trackers.pop(camera_id, None)
        buffer = self.buffers.pop(camera_id)
        self._handle_buffer_output(buffer.flush())
        self.removed_cameras[camera_id] = source.camera

    def _encoder_overflow(self) -> Literal["block", "shed"]:
        """Fast file replay waits for the encoder (no clip lost); live and real-time cameras
        cannot wait, so an overloaded encoder sheds refresh clips (``pipeline.encode``)."""
        return "block" if all(source.lockstep for source in self.sources) else "shed"

    def apply_reload(self) -> ReloadPlan | None:
        """Re-read the config and apply its camera changes; None when it did not load."""
        if self.config_loader is None:
            logger.warning("config reload requested, but this run has no config file to read")
            return None
        new_config = self.config_loader()
        if new_config is None:
            return None
        plan = plan_reload(self.config, new_config)
        if plan.restart_needed:
            logger.warning(
                "config reload: %s changed; restart crosscam to apply (only cameras change live)",
                ", ".join(plan.restart_needed),
            )
        for camera_id in plan.removed:
            self._remove_camera(camera_id)
            logger.info("camera %s removed", camera_id)
        for camera in plan.changed:
            self._remove_camera(camera.id)
            self._add_camera(camera).start()
            logger.info("camera %s restarted with its new settings", camera.id)
        for camera in plan.added:
            self._add_camera(camera).start()
            logger.info("camera %s added (%s)", camera.id, camera.display_name)
        if plan.empty:
            logger.info("config reload: cameras unchanged")
        self.config.cameras = [camera.model_copy() for camera in new_config.cameras]
        self.encoder.overflow = self._encoder_overflow()
        return plan
