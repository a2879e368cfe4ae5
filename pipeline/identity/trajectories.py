"""Foot-point trajectories of tracks: where on the ground a tracked person stands, over time.

The foot point of a box is the middle of its bottom edge (image pixels); it lies on the ground
plane, so foot points of one person seen by two overlapping cameras at the same time are
related by the ground-plane homography between the two views.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


def foot_points(xyxy: np.ndarray) -> np.ndarray:
    """float64 ``(N, 2)`` bottom-centre points of float ``(N, 4)`` xyxy boxes (pixels)."""
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2.0, boxes[:, 3]], axis=1)


@dataclass
class Trajectory:
    """One track's foot points in time order.

    Attributes:
        camera_id / track_id: the track's key.
        timestamps: float64 ``(N,)`` seconds, increasing.
        feet: float64 ``(N, 2)`` foot points, pixels.
        heights: float64 ``(N,)`` box heights, pixels (a person's scale in the image).
    """

    camera_id: int
    track_id: int
    timestamps: np.ndarray
    feet: np.ndarray
    heights: np.ndarray

    @classmethod
    def from_boxes(
        cls, camera_id: int, track_id: int, timestamps: np.ndarray, xyxy: np.ndarray
    ) -> Trajectory:
        """Build from float ``(N,)`` timestamps and ``(N, 4)`` xyxy boxes (any order)."""
        order = np.argsort(np.asarray(timestamps, dtype=np.float64), kind="stable")
        boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)[order]
        return cls(
            camera_id,
            track_id,
            np.asarray(timestamps, dtype=np.float64)[order],
            foot_points(boxes),
            boxes[:, 3] - boxes[:, 1],
        )

    @property
    def key(self) -> tuple[int, int]:
        return (self.camera_id, self.track_id)

    @cached_property
    def start(self) -> float:
        return float(self.timestamps[0])

    @cached_property
    def end(self) -> float:
        return float(self.timestamps[-1])

    @cached_property
    def median_height(self) -> float:
        """Median box height, pixels (at least 1)."""
        return max(float(np.median(self.heights)), 1.0)

    def overlap_seconds(self, other: Trajectory) -> float:
        """How long both tracks were visible (negative: the gap between them)."""
        return min(self.end, other.end) - max(self.start, other.start)


def common_positions(
    first: Trajectory, second: Trajectory, max_gap_seconds: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Foot points of both tracks at ``first``'s timestamps where ``second`` was visible.

    ``second``'s positions are interpolated linearly between its two nearest samples, and only
    where those samples are at most ``max_gap_seconds`` apart (cameras need not share frame
    times: live cameras have their own clocks and rates).

    Returns:
        ``(timestamps (M,), first feet (M, 2), second feet (M, 2))``, float64.
    """
    times = first.timestamps
    inside = (times >= second.start) & (times <= second.end)
    if not inside.any() or len(second.timestamps) < 1:
        empty = np.zeros((0, 2))
        return np.zeros(0), empty, empty
    times = times[inside]
    last = max(len(second.timestamps) - 1, 1)
    right = np.clip(np.searchsorted(second.timestamps, times), 1, last)
    left = right - 1
    if len(second.timestamps) == 1:
        left = right = np.zeros_like(right)
    t_left, t_right = second.timestamps[left], second.timestamps[right]
    span = t_right - t_left
    keep = span <= max_gap_seconds
    weight = np.where(span > 0, (times - t_left) / np.where(span > 0, span, 1.0), 0.0)[:, None]
    positions = (1.0 - weight) * second.feet[left] + weight * second.feet[right]
    return times[keep], first.feet[inside][keep], positions[keep]
