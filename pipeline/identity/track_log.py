"""What the identity layer remembers of every track: where it was, when, and what it looked like.

The clip matcher decides online, clip by clip; geometry learning (:mod:`.homography`) and the
trajectory-level refinement (:mod:`.refine`) need whole tracks instead. A :class:`TrackLog` is
fed by the runner with every tracked frame (boxes) and every embedded clip (appearance), and
hands out :class:`~pipeline.identity.trajectories.Trajectory` objects and mean embeddings per
track. Live runs keep only the last ``keep_seconds`` (a bounded window); file replays keep
everything for the end-of-run pass. A log can be saved and loaded (``.npz``), so refinement
choices can be measured on one recorded run (``benchmarks/accuracy.py --track-log``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.clips import Clip
from pipeline.identity.gallery import TrackKey
from pipeline.identity.trajectories import Trajectory
from pipeline.records import FrameDetections

if TYPE_CHECKING:
    from pipeline.track_boxes import TrackBoxes

PieceKey = tuple[int, int, int]
"""``(camera id, track id, first frame index)`` of a track or of a piece of one."""


@dataclass
class TrackRecord:
    """Everything logged of one track (lists grow as frames and clips arrive).

    Attributes:
        timestamps / frame_indices: one per tracked box, seconds / source frame index.
        boxes: xyxy float ``(4,)`` per box, pixels.
        confidences: detector confidence per box.
        embeddings: L2-normalised float32 ``(D,)`` per embedded clip.
        qualities: clip quality per embedding (``pipeline.clips.Clip.quality``).
        clip_frames: the middle source frame index of each embedded clip.
        cut_before: this record is a piece of a track cut where the tracker swapped people
            (:mod:`.swaps`); ``frame_indices[0]`` is where the piece starts.
    """

    camera_id: int
    track_id: int
    timestamps: list[float] = field(default_factory=list)
    frame_indices: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)
    qualities: list[float] = field(default_factory=list)
    clip_frames: list[int] = field(default_factory=list)
    cut_before: bool = False
    _arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(timestamps float64 (N,), frame indices int64 (N,), boxes float32 (N, 4))``,
        kept until more boxes are logged (the lists only grow)."""
        if self._arrays is None or len(self._arrays[0]) != len(self.timestamps):
            self._arrays = (
                np.asarray(self.timestamps, dtype=np.float64),
                np.asarray(self.frame_indices, dtype=np.int64),
                np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4),
            )
        return self._arrays

    @property
    def key(self) -> TrackKey:
        return (self.camera_id, self.track_id)

    @property
    def piece_key(self) -> PieceKey:
        """``(camera, track, first frame index)``: tells pieces of one track apart."""
        return (self.camera_id, self.track_id, self.frame_indices[0] if self.frame_indices else 0)

    def piece(self, start: int, stop: int, cut_before: bool) -> TrackRecord:
        """Boxes ``start:stop`` as a record of their own, with the clips whose middle frame
        falls inside them."""
        first = self.frame_indices[start]
        last = self.frame_indices[stop - 1]
        clips = [index for index, frame in enumerate(self.clip_frames) if first <= frame <= last]
        return TrackRecord(
            self.camera_id,
            self.track_id,
            self.timestamps[start:stop],
            self.frame_indices[start:stop],
            self.boxes[start:stop],
            self.confidences[start:stop],
            [self.embeddings[index] for index in clips],
            [self.qualities[index] for index in clips],
            [self.clip_frames[index] for index in clips],
            cut_before,
        )

    @property
    def last_timestamp(self) -> float:
        return self.timestamps[-1] if self.timestamps else float("-inf")

    def trajectory(self) -> Trajectory:
        timestamps, _, boxes = self.arrays()
        return Trajectory.from_boxes(self.camera_id, self.track_id, timestamps, boxes)

    def mean_embedding(self) -> np.ndarray | None:
        """Quality-weighted mean of the clip embeddings, L2-normalised; None without clips."""
        if not self.embeddings:
            return None
        weights = np.maximum(np.asarray(self.qualities, dtype=np.float64), 1e-3)
        mean = (np.stack(self.embeddings).astype(np.float64) * weights[:, None]).sum(axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


@dataclass
class PackedRecords:
    """Track records as a few flat arrays: cheap to pickle (one array per field, not one per
    box), for handing a window of tracks to another process and back.

    Attributes:
        keys: int64 ``(R, 3)`` camera id, track id, cut_before of each record.
        box_counts / clip_counts: int64 ``(R,)`` boxes and clips of each record.
        timestamps / frame_indices / confidences: ``(N,)`` per box, records in order.
        boxes: float32 ``(N, 4)`` xyxy.
        embeddings: float32 ``(C, D)``; qualities float64 / clip_frames int64 ``(C,)``.
    """

    keys: np.ndarray
    box_counts: np.ndarray
    clip_counts: np.ndarray
    timestamps: np.ndarray
    frame_indices: np.ndarray
    confidences: np.ndarray
    boxes: np.ndarray
    embeddings: np.ndarray
    qualities: np.ndarray
    clip_frames: np.ndarray

    @classmethod
    def pack(cls, records: list[TrackRecord]) -> PackedRecords:
        arrays = [record.arrays() for record in records]
        embeddings = [embedding for record in records for embedding in record.embeddings]
        dimension = embeddings[0].shape[0] if embeddings else 0
        return cls(
            np.array(
                [[r.camera_id, r.track_id, int(r.cut_before)] for r in records], dtype=np.int64
            ).reshape(-1, 3),
            np.array([len(record.timestamps) for record in records], dtype=np.int64),
            np.array([len(record.embeddings) for record in records], dtype=np.int64),
            np.concatenate([a[0] for a in arrays]) if arrays else np.zeros(0),
            np.concatenate([a[1] for a in arrays]) if arrays else np.zeros(0, dtype=np.int64),
            np.array([c for record in records for c in record.confidences], dtype=np.float64),
            np.concatenate([a[2] for a in arrays]) if arrays else np.zeros((0, 4), np.float32),
            np.asarray(embeddings, dtype=np.float32).reshape(len(embeddings), dimension),
            np.array([q for record in records for q in record.qualities], dtype=np.float64),
            np.array([f for record in records for f in record.clip_frames], dtype=np.int64),
        )

    def unpack(self) -> list[TrackRecord]:
        """The records :meth:`pack` was given (equal field by field)."""
        records: list[TrackRecord] = []
        box_stops = np.cumsum(self.box_counts).tolist()
        clip_stops = np.cumsum(self.clip_counts).tolist()
        box_start = clip_start = 0
        for (camera, track, cut), box_stop, clip_stop in zip(
            self.keys.tolist(), box_stops, clip_stops, strict=True
        ):
            boxes = slice(box_start, box_stop)
            clips = slice(clip_start, clip_stop)
            records.append(
                TrackRecord(
                    camera,
                    track,
                    self.timestamps[boxes].tolist(),
                    self.frame_indices[boxes].tolist(),
                    list(self.boxes[boxes]),
                    self.confidences[boxes].tolist(),
                    list(self.embeddings[clips]),
                    self.qualities[clips].tolist(),
                    self.clip_frames[clips].tolist(),
                    bool(cut),
                )
            )
            box_start, clip_start = box_stop, clip_stop
        return records


class TrackLog:
    """Per-track boxes and clip embeddings of a run (see the module docstring)."""

    def __init__(self, keep_seconds: float | None = None) -> None:
        """``keep_seconds`` None: keep every track; else forget tracks whose last box is older
        than this (relative to the newest timestamp of their camera)."""
        self.keep_seconds = keep_seconds
        self.records: dict[TrackKey, TrackRecord] = {}
        self._newest: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self.records)

    def _record(self, camera_id: int, track_id: int) -> TrackRecord:
        key = (camera_id, track_id)
        record = self.records.get(key)
        if record is None:
            record = self.records[key] = TrackRecord(camera_id, track_id)
        return record

    def add_frame(self, frame_detections: FrameDetections) -> None:
        """Log the tracked boxes of one frame (``tracker_id`` set)."""
        detections = frame_detections.detections
        camera_id = frame_detections.camera_id
        timestamp = float(frame_detections.timestamp)
        self._newest[camera_id] = max(self._newest.get(camera_id, timestamp), timestamp)
        if detections.tracker_id is None or len(detections) == 0:
            return
        confidences = (
            np.ones(len(detections)) if detections.confidence is None else detections.confidence
        )
        for track_id, box, confidence in zip(
            np.asarray(detections.tracker_id).tolist(), detections.xyxy, confidences, strict=True
        ):
            record = self._record(camera_id, int(track_id))
            record.timestamps.append(timestamp)
            record.frame_indices.append(frame_detections.frame_index)
            record.boxes.append(np.asarray(box, dtype=np.float32))
            record.confidences.append(float(confidence))

    def add_boxes(self, camera_id: int, track_id: int, boxes: TrackBoxes) -> None:
        """Log boxes of one track that came after those logged so far (an edge's message)."""
        if not len(boxes):
            return
        record = self._record(camera_id, track_id)
        record.timestamps.extend(boxes.timestamps.tolist())
        record.frame_indices.extend(boxes.frame_indices.tolist())
        record.boxes.extend(np.asarray(boxes.xyxy, dtype=np.float32))
        record.confidences.extend(boxes.confidences.tolist())
        newest = float(boxes.timestamps.max())
        self._newest[camera_id] = max(self._newest.get(camera_id, newest), newest)

    def add_clip(self, clip: Clip, embedding: np.ndarray) -> None:
        """Log one embedded clip at its middle source frame (its newest frame when the clip
        carries no frame indices: a message of an older edge)."""
        frames = clip.frame_indices
        frame = int(np.median(frames)) if len(frames) else clip.last_frame_index
        self.add_embedding(clip.camera_id, clip.track_id, embedding, clip.quality, frame)

    def add_embedding(
        self, camera_id: int, track_id: int, embedding: np.ndarray, quality: float, frame: int
    ) -> None:
        """Log one embedded clip of a track (``frame``: its middle source frame index)."""
        record = self._record(camera_id, track_id)
        record.embeddings.append(np.asarray(embedding, dtype=np.float32))
        record.qualities.append(float(quality))
        record.clip_frames.append(int(frame))

    def segment(self, bounds: dict[int, tuple[float, float | None]]) -> TrackLog:
        """A log of the boxes (and the clips centred on them) of each camera between its
        ``(start, end)`` seconds (``end`` None: to the end); cameras not in ``bounds`` are
        left out."""
        segment = TrackLog(self.keep_seconds)
        for key, record in self.records.items():
            if key[0] not in bounds:
                continue
            start, end = bounds[key[0]]
            inside = [
                index
                for index, timestamp in enumerate(record.timestamps)
                if timestamp >= start and (end is None or timestamp < end)
            ]
            if inside:
                segment.records[key] = record.piece(inside[0], inside[-1] + 1, cut_before=False)
        return segment

    def recent(self, seconds: float) -> TrackLog:
        """The tracks seen in the last ``seconds`` (relative to their camera's newest frame),
        sharing this log's records."""
        recent = TrackLog(self.keep_seconds)
        recent._newest = dict(self._newest)
        recent.records = {
            key: record
            for key, record in self.records.items()
            if record.timestamps
            and self._newest.get(key[0], 0.0) - record.last_timestamp <= seconds
        }
        return recent

    def newest_timestamp(self) -> float | None:
        """The newest frame timestamp logged, any camera (None before the first frame)."""
        return max(self._newest.values()) if self._newest else None

    def prune(self) -> int:
        """Forget tracks older than ``keep_seconds``; returns how many were forgotten."""
        if self.keep_seconds is None:
            return 0
        old = [
            key
            for key, record in self.records.items()
            if record.timestamps
            and self._newest.get(key[0], 0.0) - record.last_timestamp > self.keep_seconds
        ]
        for key in old:
            del self.records[key]
        return len(old)

    def usable(self, min_boxes: int = 2, need_embedding: bool = True) -> list[TrackRecord]:
        """Records with at least ``min_boxes`` boxes (and one embedding when
        ``need_embedding``), in key order."""
        return [
            record
            for _, record in sorted(self.records.items())
            if len(record.timestamps) >= min_boxes and (record.embeddings or not need_embedding)
        ]

    def save(self, path: Path) -> None:
        """Write the log as one ``.npz`` (flat arrays, no pickles)."""
        records = list(self.records.values())
        box_rows = [
            (r.camera_id, r.track_id, t, f, *b, c)
            for r in records
            for t, f, b, c in zip(
                r.timestamps, r.frame_indices, r.boxes, r.confidences, strict=True
            )
        ]
        clip_rows = [
            (r.camera_id, r.track_id, q, f)
            for r in records
            for q, f in zip(r.qualities, r.clip_frames, strict=True)
        ]
        embeddings = [e for r in records for e in r.embeddings]
        dimension = embeddings[0].shape[0] if embeddings else 0
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            boxes=np.asarray(box_rows, dtype=np.float64).reshape(-1, 9),
            clips=np.asarray(clip_rows, dtype=np.float64).reshape(-1, 4),
            embeddings=np.asarray(embeddings, dtype=np.float32).reshape(len(embeddings), dimension),
        )

    @classmethod
    def load(cls, path: Path) -> TrackLog:
        """Read a log written by :meth:`save`."""
        log = cls()
        with np.load(path) as data:
            boxes, clips, embeddings = data["boxes"], data["clips"], data["embeddings"]
        for camera, track, timestamp, frame, x1, y1, x2, y2, confidence in boxes.tolist():
            record = log._record(int(camera), int(track))
            record.timestamps.append(timestamp)
            record.frame_indices.append(int(frame))
            record.boxes.append(np.asarray([x1, y1, x2, y2], dtype=np.float32))
            record.confidences.append(confidence)
            log._newest[int(camera)] = max(log._newest.get(int(camera), timestamp), timestamp)
        for (camera, track, quality, frame), embedding in zip(
            clips.tolist(), embeddings, strict=True
        ):
            log.add_embedding(int(camera), int(track), embedding, quality, int(frame))
        return log
