"""When the glue baseline computes a ReID feature: every box every frame, or every N frames per
track, the way careful users cut ReID cost (``benchmarks/peers.py``).

A track's first box always gets a feature (a new track needs an identity); after that one box
in every ``every_frames`` of the track does. ``every_frames=1`` is every box of every frame.
"""

from __future__ import annotations

import numpy as np


class ReidSchedule:
    """``due(camera_id, track_ids) -> mask`` per frame; state lives on the instance."""

    def __init__(self, every_frames: int = 1) -> None:
        if every_frames < 1:
            raise ValueError(f"every_frames must be >= 1, got {every_frames}")
        self.every_frames = every_frames
        self.reset()

    def reset(self) -> None:
        """Forget every track."""
        self._frames_since_feature: dict[tuple[int, int], int] = {}

    def due(self, camera_id: int, track_ids: np.ndarray) -> np.ndarray:
        """Which of one frame's tracked boxes get a feature now.

        Args:
            camera_id: the camera of the frame.
            track_ids: int ``(N,)`` camera-local track ids of the frame's boxes.

        Returns:
            bool ``(N,)``: True for a track's first box and every ``every_frames``-th after.
        """
        mask = np.zeros(len(track_ids), dtype=bool)
        for index, track_id in enumerate(np.asarray(track_ids).tolist()):
            key = (camera_id, int(track_id))
            frames = self._frames_since_feature.get(key)
            frames = self.every_frames if frames is None else frames + 1
            mask[index] = frames >= self.every_frames
            self._frames_since_feature[key] = 0 if mask[index] else frames
        return mask
