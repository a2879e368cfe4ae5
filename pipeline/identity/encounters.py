"""Where a camera's tracker may have swapped people, and who went on as whom.

A per-camera tracker associates each detection with the track whose predicted box overlaps it
most, above an IoU threshold (BoT-SORT's first association: 0.2). When two people's boxes
overlap at least that much, a detection of one is a candidate for the other's track too, and
the tracker may carry a track over to the wrong person: most identity switches inside a track
happen at such *encounters*. One camera cannot tell for sure, so the identity layer asks the
question at every encounter instead of trusting the tracker:

1. every track that goes on through an encounter is cut there (:func:`encounter_cuts`);
2. the pieces that went in (before) and those that came out (after) are paired again by
   appearance, with the tracker's own pairing kept unless the crossed one is more similar
   (:func:`continuations`); pieces without clips keep the tracker's pairing.

Pieces paired this way continue one another (``refine`` joins them, cannot-links permitting);
the other view's geometry still links each piece on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.identity.track_log import TrackRecord


@dataclass(frozen=True)
class Encounter:
    """Two tracks of one camera whose boxes overlapped by at least the encounter IoU.

    Attributes:
        camera_id: the camera.
        tracks: the two track ids.
        start / end: seconds, the first and last common frame of the overlapping stretch.
    """

    camera_id: int
    tracks: tuple[int, int]
    start: float
    end: float

    @property
    def time(self) -> float:
        """The middle of the stretch: where tracks are cut."""
        return (self.start + self.end) / 2.0


def box_iou_pairs(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """IoU of row-aligned xyxy boxes: float ``(N, 4)`` twice → ``(N,)``."""
    top_left = np.maximum(first[:, :2], second[:, :2])
    bottom_right = np.minimum(first[:, 2:], second[:, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
    first_area = np.prod(first[:, 2:] - first[:, :2], axis=1)
    second_area = np.prod(second[:, 2:] - second[:, :2], axis=1)
    return inter / np.maximum(first_area + second_area - inter, 1e-9)


def common_frame_iou(first: TrackRecord, second: TrackRecord) -> tuple[np.ndarray, np.ndarray]:
    """``(timestamps (M,), IoU (M,))`` of two tracks of one camera at the frames both have."""
    first_times, first_frames, first_boxes = first.arrays()
    _, second_frames, second_boxes = second.arrays()
    _, first_at, second_at = np.intersect1d(first_frames, second_frames, return_indices=True)
    if len(first_at) == 0:
        return np.zeros(0), np.zeros(0)
    overlaps = box_iou_pairs(first_boxes[first_at], second_boxes[second_at])
    return first_times[first_at], overlaps


def find_encounters(records: Sequence[TrackRecord], minimum_iou: float) -> list[Encounter]:
    """Every stretch of common frames in which two tracks' boxes overlapped by at least
    ``minimum_iou``, one :class:`Encounter` per stretch (frames of the stretch consecutive
    among the two tracks' common frames)."""
    found: list[Encounter] = []
    by_camera: dict[int, list[TrackRecord]] = {}
    for record in records:
        by_camera.setdefault(record.camera_id, []).append(record)
    for camera_id, tracks in by_camera.items():
        for index, first in enumerate(tracks):
            for second in tracks[index + 1 :]:
                if (
                    first.timestamps[-1] < second.timestamps[0]
                    or second.timestamps[-1] < first.timestamps[0]
                ):
                    continue
                times, overlaps = common_frame_iou(first, second)
                close = np.flatnonzero(overlaps >= minimum_iou)
                if len(close) == 0:
                    continue
                for stretch in np.split(close, np.flatnonzero(np.diff(close) > 1) + 1):
                    found.append(
                        Encounter(
                            camera_id,
                            (first.track_id, second.track_id),
                            float(times[stretch[0]]),
                            float(times[stretch[-1]]),
                        )
                    )
    return found


def encounter_cuts(
    records: Sequence[TrackRecord], encounters: Sequence[Encounter]
) -> dict[int, list[float]]:
    """Cut times per row of ``records``: each track that has boxes both before and after one
    of its encounters is cut at that encounter's time (a track that began or ended during
    the encounter already has its boundary there)."""
    rows = {record.key: row for row, record in enumerate(records)}
    cuts: dict[int, list[float]] = {}
    for encounter in encounters:
        for track in encounter.tracks:
            row = rows[(encounter.camera_id, track)]
            timestamps = records[row].timestamps
            if timestamps[0] < encounter.start and encounter.end < timestamps[-1]:
                cuts.setdefault(row, []).append(encounter.time)
    return cuts
