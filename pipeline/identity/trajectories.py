"""Foot-point trajectories of tracks: where on the ground a tracked person stands, over time.

The foot point of a box is the middle of its bottom edge (image pixels); it lies on the ground
plane, so foot points of one person seen by two overlapping cameras at the same time are
related by the ground-plane homography between the two views.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    indices, positions = common_samples(first, second, max_gap_seconds)
    return first.timestamps[indices], first.feet[indices], positions


def common_samples(
    first: Trajectory, second: Trajectory, max_gap_seconds: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`common_positions` as int ``(M,)`` indices into ``first``'s samples and float64
    ``(M, 2)`` interpolated feet of ``second`` there."""
    times = first.timestamps
    inside = np.flatnonzero((times >= second.start) & (times <= second.end))
    if len(inside) == 0 or len(second.timestamps) < 1:
        return np.zeros(0, dtype=int), np.zeros((0, 2))
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
    return inside[keep], positions[keep]


@dataclass
class PairSamples:
    """The common positions (:func:`common_positions`) of many trajectory pairs, stacked, so a
    homography scores every pair in one array operation.

    Attributes:
        pairs: ``(row, column)`` indices into the first and second trajectory lists.
        owners: int ``(M,)``: the pair (index into ``pairs``) of each sample.
        indices: int ``(M,)``: each sample's index among its first trajectory's samples.
        times: float64 ``(M,)`` seconds (the first trajectory's timestamps).
        source / target: float64 ``(M, 2)`` foot points of the first and second trajectory.
        scales: float64 ``(P,)`` the second trajectory's median height of each pair, pixels.
    """

    pairs: list[tuple[int, int]]
    owners: np.ndarray
    indices: np.ndarray
    times: np.ndarray
    source: np.ndarray
    target: np.ndarray
    scales: np.ndarray

    @classmethod
    def build(
        cls,
        pairs: Sequence[tuple[int, int]],
        first_tracks: Sequence[Trajectory],
        second_tracks: Sequence[Trajectory],
        max_gap_seconds: float = 0.5,
    ) -> PairSamples:
        """:func:`common_positions` of every pair at once (the same samples and values)."""
        if not pairs:
            empty, none = np.zeros((0, 2)), np.zeros(0, dtype=int)
            return cls([], none, none, np.zeros(0), empty, empty, np.zeros(0))
        rows = np.array([row for row, _ in pairs])
        columns = np.array([column for _, column in pairs])
        first, second = _Stacked(first_tracks), _Stacked(second_tracks)
        lengths = first.lengths[rows]
        owners = np.repeat(np.arange(len(pairs)), lengths)
        local = np.arange(len(owners)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        at = first.offsets[rows][owners] + local
        times = first.times[at]
        partner = columns[owners]
        inside = (times >= second.starts[partner]) & (times <= second.ends[partner])
        owners, local, at, times, partner = (
            values[inside] for values in (owners, local, at, times, partner)
        )
        # one search for all pairs: each second trajectory's clock shifted into its own span
        floor = min(float(first.times.min()), float(second.times.min()))
        span = max(float(first.times.max()), float(second.times.max())) - floor + 1.0
        shifted = (second.times - floor) + np.repeat(
            np.arange(len(second.lengths)) * span, second.lengths
        )
        found = np.searchsorted(shifted, (times - floor) + partner * span)
        sizes = second.lengths[partner]
        right = np.clip(found - second.offsets[partner], 1, np.maximum(sizes - 1, 1))
        left = right - 1
        single = sizes == 1
        left, right = np.where(single, 0, left), np.where(single, 0, right)
        left, right = second.offsets[partner] + left, second.offsets[partner] + right
        t_left, t_right = second.times[left], second.times[right]
        gap = t_right - t_left
        keep = gap <= max_gap_seconds
        weight = np.where(gap > 0, (times - t_left) / np.where(gap > 0, gap, 1.0), 0.0)[:, None]
        positions = (1.0 - weight) * second.feet[left] + weight * second.feet[right]
        scales = np.array([second_tracks[column].median_height for column in columns.tolist()])
        return cls(
            list(pairs),
            owners[keep],
            local[keep],
            times[keep],
            first.feet[at[keep]],
            positions[keep],
            scales,
        )

    @cached_property
    def counts(self) -> np.ndarray:
        """int ``(P,)`` samples of each pair."""
        return np.bincount(self.owners, minlength=len(self.pairs))

    @cached_property
    def _stops(self) -> np.ndarray:
        return np.cumsum(self.counts)

    def of(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(source (K, 2), target (K, 2))`` foot points of pair ``index``."""
        stop = int(self._stops[index])
        start = stop - int(self.counts[index])
        return self.source[start:stop], self.target[start:stop]

    def distances(self, matrix: np.ndarray) -> np.ndarray:
        """float64 ``(M,)``: each sample's source foot carried by the ``(3, 3)`` homography,
        to its target foot, in the pair's target median heights."""
        homogeneous = np.hstack([self.source, np.ones((len(self.source), 1))]) @ matrix.T
        depth = homogeneous[:, 2:3]
        carried = homogeneous[:, :2] / np.where(np.abs(depth) < 1e-12, 1e-12, depth)
        return np.linalg.norm(carried - self.target, axis=1) / self.scales[self.owners]

    def medians(self, values: np.ndarray) -> np.ndarray:
        """float64 ``(P,)`` median of ``values`` ``(M,)`` over each pair's samples (``inf``
        for a pair without samples)."""
        return segment_medians(values, self.owners, len(self.pairs))


def segment_medians(values: np.ndarray, owners: np.ndarray, count: int) -> np.ndarray:
    """float64 ``(count,)``: the median of ``values`` ``(M,)`` within each group of int
    ``owners`` ``(M,)`` (``inf`` for an empty group), as :func:`numpy.median` gives it."""
    result = np.full(count, np.inf)
    if len(values) == 0:
        return result
    order = np.lexsort((values, owners))
    ordered = np.asarray(values, dtype=np.float64)[order]
    sizes = np.bincount(owners, minlength=count)
    firsts = np.cumsum(sizes) - sizes
    present = sizes > 0
    low = firsts[present] + (sizes[present] - 1) // 2
    high = firsts[present] + sizes[present] // 2
    result[present] = (ordered[low] + ordered[high]) / 2.0
    return result


class _Stacked:
    """Samples of many trajectories in one array each (trajectory ``i``'s samples are
    ``offsets[i]:offsets[i] + lengths[i]``)."""

    def __init__(self, tracks: Sequence[Trajectory]) -> None:
        self.lengths = np.array([len(track.timestamps) for track in tracks], dtype=int)
        self.offsets = np.cumsum(self.lengths) - self.lengths
        self.times = np.concatenate([track.timestamps for track in tracks])
        self.feet = np.concatenate([track.feet for track in tracks]).reshape(-1, 2)
        self.starts = np.array([track.start for track in tracks])
        self.ends = np.array([track.end for track in tracks])
