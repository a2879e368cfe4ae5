"""Per-camera multi-object tracking with the ``trackers`` package (BoT-SORT by default)."""

from __future__ import annotations

import numpy as np
import supervision as sv
from trackers import BoTSORTTracker, ByteTrackTracker, OCSORTTracker

from pipeline.config import TrackerAlgorithm, TrackerConfig
from pipeline.frame_rate import DEFAULT_FRAME_RATE
from pipeline.records import FrameDetections, select

TRACKERS_REFERENCE_FPS = 30.0
"""``trackers`` counts ``lost_track_buffer`` in frames of a 30 fps video."""


Tracker = BoTSORTTracker | ByteTrackTracker | OCSORTTracker


class CameraTracker:
    """The configured tracker of one camera: ``update(detections)`` sets ``tracker_id``.

    Only confirmed tracks are returned; detections the tracker did not assign are dropped.
    Timestamps drive the motion model, so frame-rate caps and dropped frames are handled.

    Track ids never repeat on one tracker: a ``trackers`` tracker counts its ids from 0 again
    when rebuilt, so after :meth:`reset` they are shifted past the highest id given before
    (identities are keyed by camera and track id, and a repeated id would join two people).
    """

    def __init__(self, config: TrackerConfig, frame_rate: float = DEFAULT_FRAME_RATE) -> None:
        self.config = config
        self.frame_rate = frame_rate
        self._tracker = self._build()
        self._id_offset = 0
        """Added to the inner tracker's ids: past every id given before the last reset."""
        self.highest_track_id = -1
        """The highest track id returned so far, -1 before the first."""

    def _build(self) -> Tracker:
        config = self.config
        buffer = max(1, round(config.lost_track_seconds * TRACKERS_REFERENCE_FPS))
        if config.algorithm is TrackerAlgorithm.BOTSORT:
            return BoTSORTTracker(
                lost_track_buffer=buffer,
                frame_rate=self.frame_rate,
                track_activation_threshold=config.track_activation_threshold,
                minimum_consecutive_frames=config.minimum_consecutive_frames,
                high_conf_det_threshold=config.high_confidence_threshold,
                enable_cmc=config.camera_motion_compensation,
            )
        if config.algorithm is TrackerAlgorithm.OCSORT:
            return OCSORTTracker(
                lost_track_buffer=buffer,
                frame_rate=self.frame_rate,
                minimum_consecutive_frames=config.minimum_consecutive_frames,
                minimum_iou_threshold=config.minimum_iou_threshold,
                high_conf_det_threshold=config.high_confidence_threshold,
            )
        return ByteTrackTracker(
            lost_track_buffer=buffer,
            frame_rate=self.frame_rate,
            track_activation_threshold=config.track_activation_threshold,
            minimum_consecutive_frames=config.minimum_consecutive_frames,
            minimum_iou_threshold=config.minimum_iou_threshold,
            high_conf_det_threshold=config.high_confidence_threshold,
        )

    def update(self, frame_detections: FrameDetections) -> FrameDetections:
        """Assign track ids to one frame's detections (frames must come in time order)."""
        image = frame_detections.frame.image if self.config.camera_motion_compensation else None
        tracked = self._tracker.update(
            frame_detections.detections, frame=image, timestamp=frame_detections.timestamp
        )
        if tracked.tracker_id is None or len(tracked) == 0:
            tracked = _with_empty_ids(tracked)
        else:
            tracked = select(tracked, np.asarray(tracked.tracker_id) >= 0)
            tracked.tracker_id = np.asarray(tracked.tracker_id, dtype=np.int64) + self._id_offset
            if len(tracked):
                self.highest_track_id = max(self.highest_track_id, int(tracked.tracker_id.max()))
        return FrameDetections(
            frame=frame_detections.frame,
            detections=tracked,
            stage_times_ms=frame_detections.stage_times_ms,
        )

    def reset(self) -> None:
        """Forget every track (e.g. after a camera reconnects to a different scene); the new
        tracks' ids continue after the old ones."""
        self._tracker = self._build()
        self._id_offset = self.highest_track_id + 1


def _with_empty_ids(detections: sv.Detections) -> sv.Detections:
    empty = select(detections, np.zeros(len(detections), dtype=bool))
    empty.tracker_id = np.zeros(0, dtype=np.int64)
    return empty
