"""Tracked boxes on the clip stream: what an edge sends so matchers can run whole-track passes.

The whole-track pass (:mod:`pipeline.identity.refine`) needs every tracked box, not only the
clips. An edge keeps, per track, the boxes tracked since that track's previous message in a
:class:`BoxHistory` and sends them with the track's next ``clip`` or ``ended`` message as one
``boxes`` field (:meth:`TrackBoxes.encode`); every box of a track lies between its ``started``
and ``ended`` messages, so every box reaches the matchers. A track whose clips are shed by an
overloaded encoder could pile up boxes: past ``max_boxes`` the pending boxes are thinned
(every other one dropped), which keeps the time span and bounds a message.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

from pipeline.identity import TrackLog, TrackRecord
from pipeline.records import FrameDetections

BOX_RECORD = np.dtype(
    [("frame_index", "<i8"), ("timestamp", "<f8"), ("xyxy", "<f4", (4,)), ("confidence", "<f4")]
)
"""One box on the wire: 36 bytes, little-endian (48 characters of base64)."""

MAX_BOXES_PER_MESSAGE = 512
"""Pending boxes of one track beyond this are thinned (see the module docstring)."""


@dataclass
class TrackBoxes:
    """Boxes of one track in time order, as parallel arrays.

    Attributes:
        frame_indices: int64 ``(N,)`` source frame indices.
        timestamps: float64 ``(N,)`` seconds.
        xyxy: float32 ``(N, 4)`` boxes, pixels.
        confidences: float32 ``(N,)`` detector confidences in ``[0, 1]``.
    """

    frame_indices: np.ndarray
    timestamps: np.ndarray
    xyxy: np.ndarray
    confidences: np.ndarray

    def __len__(self) -> int:
        return len(self.frame_indices)

    def encode(self) -> str:
        """Base64 of the boxes as :data:`BOX_RECORD` rows."""
        rows = np.zeros(len(self), dtype=BOX_RECORD)
        rows["frame_index"] = self.frame_indices
        rows["timestamp"] = self.timestamps
        rows["xyxy"] = self.xyxy
        rows["confidence"] = self.confidences
        return base64.b64encode(rows.tobytes()).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> TrackBoxes:
        """The boxes :meth:`encode` wrote."""
        rows = np.frombuffer(base64.b64decode(text), dtype=BOX_RECORD)
        return cls(
            rows["frame_index"].astype(np.int64),
            rows["timestamp"].astype(np.float64),
            rows["xyxy"].astype(np.float32).reshape(-1, 4),
            rows["confidence"].astype(np.float32),
        )


class BoxHistory:
    """An edge's boxes per track since its last message: ``update(frame_detections)`` logs a
    frame, ``take(camera_id, track_id)`` hands the track's pending boxes over."""

    def __init__(self, max_boxes: int = MAX_BOXES_PER_MESSAGE) -> None:
        self.max_boxes = max_boxes
        self._log = TrackLog()

    def update(self, frame_detections: FrameDetections) -> None:
        """Log the tracked boxes of one frame (``tracker_id`` set; others are ignored)."""
        self._log.add_frame(frame_detections)
        track_ids = frame_detections.detections.tracker_id
        if track_ids is None:
            return
        for track_id in np.asarray(track_ids).tolist():
            record = self._log.records[(frame_detections.camera_id, int(track_id))]
            if len(record.timestamps) > self.max_boxes:
                _thin(record)

    def take(self, camera_id: int, track_id: int) -> TrackBoxes | None:
        """The track's boxes since the previous ``take`` (None: none), forgotten here."""
        record = self._log.records.pop((camera_id, track_id), None)
        if record is None or not record.timestamps:
            return None
        return TrackBoxes(
            np.asarray(record.frame_indices, dtype=np.int64),
            np.asarray(record.timestamps, dtype=np.float64),
            np.stack(record.boxes).astype(np.float32),
            np.asarray(record.confidences, dtype=np.float32),
        )

    def reset(self) -> None:
        self._log = TrackLog()

    @property
    def pending_tracks(self) -> int:
        return len(self._log)


def _thin(record: TrackRecord) -> None:
    """Drop every other box of ``record`` (the newest is kept)."""
    keep = slice(len(record.timestamps) - 1, None, -2)
    record.timestamps = record.timestamps[keep][::-1]
    record.frame_indices = record.frame_indices[keep][::-1]
    record.boxes = record.boxes[keep][::-1]
    record.confidences = record.confidences[keep][::-1]
