"""MTMC output: every tracked box with its global identity, in the AI City Challenge format.

One line per box: ``camera_id obj_id frame_id xmin ymin width height xworld yworld``, frame ids
0-based, world coordinates ``-1``. Boxes are kept until the end of the run so that identity
merges are reflected; tracks that never got a global identity (too short for a clip) are left
out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.records import FrameDetections


class MtmcRecorder:
    """Collects tracked boxes; ``write`` resolves track ids to global ids at the end."""

    def __init__(self) -> None:
        self._rows: list[np.ndarray] = []

    def update(self, frame_detections: FrameDetections) -> None:
        """Record the tracked boxes of one frame."""
        detections = frame_detections.detections
        if len(detections) == 0 or detections.tracker_id is None:
            return
        count = len(detections)
        rows = np.empty((count, 7), dtype=np.float64)
        rows[:, 0] = frame_detections.camera_id
        rows[:, 1] = np.asarray(detections.tracker_id)
        rows[:, 2] = frame_detections.frame_index
        rows[:, 3:7] = detections.xyxy
        self._rows.append(rows)

    def add_track(
        self, camera_id: int, track_id: int, frame_indices: list[int], xyxy: np.ndarray
    ) -> None:
        """Record a whole track at once: its frame indices and float ``(N, 4)`` boxes."""
        rows = np.empty((len(frame_indices), 7), dtype=np.float64)
        rows[:, 0] = camera_id
        rows[:, 1] = track_id
        rows[:, 2] = frame_indices
        rows[:, 3:7] = xyxy
        self._rows.append(rows)

    def write(self, path: Path, global_id_of: Callable[[int, int, int], int]) -> int:
        """Write the MTMC file; ``global_id_of(camera, track, frame)`` (``-1``: leave the box
        out). Returns the number of lines written."""
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = np.concatenate(self._rows) if self._rows else np.zeros((0, 7))
        lines: list[tuple[int, int, int, str]] = []
        for camera, track, frame, x1, y1, x2, y2 in rows.tolist():
            global_id = global_id_of(int(camera), int(track), int(frame))
            if global_id < 0:
                continue
            text = (
                f"{int(camera)} {global_id} {int(frame)} {round(x1)} {round(y1)} "
                f"{round(x2 - x1)} {round(y2 - y1)} -1 -1"
            )
            lines.append((int(camera), int(frame), global_id, text))
        lines.sort()
        path.write_text("".join(line[3] + "\n" for line in lines))
        return len(lines)
