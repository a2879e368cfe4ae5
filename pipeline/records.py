"""The records passed between stages: a camera frame, and its detections.

Following supervision's ``Detections`` (parallel NumPy arrays), a frame's boxes travel as one
``sv.Detections`` object plus the camera id, frame index and timestamp; stages never use
positional columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import supervision as sv


@dataclass
class Frame:
    """One decoded frame of one camera.

    Attributes:
        camera_id: the camera's configured id.
        frame_index: 0-based index in the source (files: position in the file, counting from
            its first frame, so it matches MTMC frame ids; live: frames read so far).
        timestamp: seconds. Files: media time of the frame; live sources: wall-clock time.
        image: uint8 ``(H, W, 3)`` BGR.
        captured_at: ``time.monotonic()`` when the frame was read, for latency.
    """

    camera_id: int
    frame_index: int
    timestamp: float
    image: np.ndarray
    captured_at: float


@dataclass
class FrameDetections:
    """The person boxes of one frame, before or after tracking.

    ``detections.xyxy`` is float32 ``(N, 4)`` pixels; after tracking ``tracker_id`` is int
    ``(N,)`` with only confirmed tracks kept.
    """

    frame: Frame
    detections: sv.Detections
    stage_times_ms: dict[str, float] = field(default_factory=dict)

    @property
    def camera_id(self) -> int:
        return self.frame.camera_id

    @property
    def frame_index(self) -> int:
        return self.frame.frame_index

    @property
    def timestamp(self) -> float:
        return self.frame.timestamp


def select(detections: sv.Detections, mask: np.ndarray) -> sv.Detections:
    """The detections where the boolean ``mask`` of shape ``(N,)`` is true."""
    selected = detections[mask]
    assert isinstance(selected, sv.Detections)
    return selected
