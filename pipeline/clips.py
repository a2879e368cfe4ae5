"""Per-track crop buffers that turn tracked boxes into fixed-length clips for the encoder.

Each confirmed track of a camera keeps its newest boxes, each cropped and resized to the
encoder's input size only when a clip samples it (``pipeline/lazy_crops.py``: until then the
box and a reference to its frame, the camera's frames held within
``clips.held_frames_megabytes``). A clip of ``T`` frames, chosen by the shared sampling policy,
is emitted when the track first has ``T`` frames, again every ``refresh_seconds`` while it
lives, and a last time when it ends (if it has at least ``min_frames``). Memory is bounded by
``max_tracks`` per camera and ``max_frames_per_track`` boxes (crops once taken) per track, plus
the held frames.

Encounters (given ``encounter_iou``): where a track's box overlaps another's by that IoU, the
tracker may swap the two people, and the identity layer cuts the track there
(:mod:`pipeline.identity.encounters`) and identifies each piece by its looks. So each piece
gets a clip of its own: one from the crops since the last clip when the encounter begins (if
there are ``min_frames`` of them), and one from the first ``T`` crops clear of it afterwards.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import supervision as sv

from pipeline.config import ClipsConfig
from pipeline.lazy_crops import HeldFrames, LazyCrop, crop_box
from pipeline.records import FrameDetections
from reid_models.sampling import sample_clip_indices

ClipKind = Literal["first", "refresh", "encounter", "final"]


@dataclass
class Clip:
    """``T`` crops of one track, ready for the encoder.

    Attributes:
        crops: uint8 ``(T, H, W, 3)`` BGR, ``H x W`` the configured crop size (``all`` sampling:
            every buffered crop, padded to a multiple of ``T``).
        frame_indices: int64 ``(T,)`` source frame index of each crop.
        quality: in ``[0, 1]``: mean detection confidence times the fraction of distinct frames.
        final: True when the track has ended and this is its last clip.
        first_timestamp / last_timestamp: seconds, span of the whole track so far.
        last_box: float32 ``(4,)`` xyxy of the newest box.
        captured_at: monotonic time the newest frame of the clip was read (for latency).
        first_box: float32 ``(4,)`` xyxy of the track's first box (same-camera re-association).
        kind: why it was emitted: ``first`` (the track reached ``T`` frames), ``refresh``
            (``refresh_seconds`` later), ``encounter`` (a piece before or after boxes met) or
            ``final`` (the track ended); ``pipeline/refresh_policy.py`` may skip refreshes.
        box_height: mean height in pixels of the sampled boxes.
    """

    camera_id: int
    track_id: int
    crops: np.ndarray
    frame_indices: np.ndarray
    quality: float
    final: bool
    first_timestamp: float
    last_timestamp: float
    last_frame_index: int
    last_box: np.ndarray
    captured_at: float
    first_box: np.ndarray | None = None
    kind: ClipKind = "refresh"
    box_height: float = 0.0


@dataclass
class TrackEvent:
    """A track appearing or disappearing in one camera."""

    camera_id: int
    track_id: int
    frame_index: int
    timestamp: float
    box: np.ndarray
    confidence: float
    captured_at: float


@dataclass
class ClipBufferOutput:
    """What one :meth:`ClipBuffer.update` produced."""

    clips: list[Clip] = field(default_factory=list)
    started: list[TrackEvent] = field(default_factory=list)
    ended: list[TrackEvent] = field(default_factory=list)

    def extend(self, other: ClipBufferOutput) -> None:
        self.clips.extend(other.clips)
        self.started.extend(other.started)
        self.ended.extend(other.ended)


@dataclass
class _TrackState:
    crops: deque[LazyCrop]
    frame_indices: deque[int]
    confidences: deque[float]
    first_timestamp: float
    last_timestamp: float
    last_frame_index: int
    last_box: np.ndarray
    first_box: np.ndarray
    last_confidence: float
    captured_at: float
    frames_seen: int = 0
    frames_at_last_clip: int = 0
    last_clip_timestamp: float | None = None
    meeting: bool = False
    """Its box overlapped another's by the encounter IoU in its newest frame."""
    clear_since: int | None = None
    """``frames_seen`` when it last came out of an encounter, until that piece's clip."""


class ClipBuffer:
    """The crop buffers of one camera: ``update(frame_detections) -> ClipBufferOutput``."""

    def __init__(
        self, config: ClipsConfig, camera_id: int, encounter_iou: float | None = None
    ) -> None:
        self.config = config
        self.camera_id = camera_id
        self.encounter_iou = encounter_iou
        self._tracks: dict[int, _TrackState] = {}
        self._generator = np.random.default_rng(camera_id)
        self.held_frames = HeldFrames(
            int(config.held_frames_megabytes * 2**20), (config.crop_height, config.crop_width)
        )
        """The frames the buffered boxes refer to; ``held_frames.crops_taken`` counts crops."""

    @property
    def active_track_ids(self) -> list[int]:
        return list(self._tracks)

    @property
    def buffered_crops(self) -> int:
        """Boxes buffered right now, cropped or not (at most max_tracks x
        max_frames_per_track)."""
        return sum(len(state.crops) for state in self._tracks.values())

    def update(self, frame_detections: FrameDetections) -> ClipBufferOutput:
        """Add the tracked boxes of one frame; return new clips and track starts/ends."""
        output = ClipBufferOutput()
        detections = frame_detections.detections
        frame = frame_detections.frame
        track_ids: np.ndarray = (
            np.asarray(detections.tracker_id)
            if detections.tracker_id is not None
            else np.zeros(len(detections), dtype=np.int64)
        )
        confidences = (
            np.asarray(detections.confidence)
            if detections.confidence is not None
            else np.ones(len(detections), dtype=np.float32)
        )
        meeting = self._meeting(np.asarray(detections.xyxy))
        crops = self.held_frames.add(frame.image, np.asarray(detections.xyxy))
        for box, crop, track_id, confidence, met in zip(
            detections.xyxy, crops, track_ids, confidences, meeting, strict=True
        ):
            track_id = int(track_id)
            state = self._tracks.get(track_id)
            if state is None:
                self._make_room(frame.timestamp, output)
                state = self._new_state(frame_detections, box, float(confidence))
                self._tracks[track_id] = state
                output.started.append(self._track_event(track_id, state))
            if len(state.crops) == state.crops.maxlen:
                state.crops[0].release()  # about to be dropped: no clip samples it again
            state.crops.append(crop)
            state.frame_indices.append(frame.frame_index)
            state.confidences.append(float(confidence))
            state.frames_seen += 1
            state.last_timestamp = frame.timestamp
            state.last_frame_index = frame.frame_index
            state.last_box = np.asarray(box, dtype=np.float32)
            state.last_confidence = float(confidence)
            state.captured_at = frame.captured_at
            if self.encounter_iou is not None:
                output.clips.extend(self._encounter_clips(track_id, state, bool(met)))
            if not state.meeting and self._clip_due(state, frame.timestamp):
                kind: ClipKind = "first" if state.last_clip_timestamp is None else "refresh"
                output.clips.append(self._emit(track_id, state, final=False, kind=kind))
        self._end_stale_tracks(frame.timestamp, output)
        return output

    def flush(self) -> ClipBufferOutput:
        """End every track now (shutdown or end of stream), emitting their last clips."""
        output = ClipBufferOutput()
        for track_id in list(self._tracks):
            self._end_track(track_id, output)
        return output

    def reset(self) -> None:
        """Drop every buffer without emitting anything."""
        self._tracks.clear()
        self.held_frames.clear()

    def _new_state(
        self, frame_detections: FrameDetections, box: np.ndarray, confidence: float
    ) -> _TrackState:
        max_frames = self.config.max_frames_per_track
        return _TrackState(
            crops=deque(maxlen=max_frames),
            frame_indices=deque(maxlen=max_frames),
            confidences=deque(maxlen=max_frames),
            first_timestamp=frame_detections.timestamp,
            last_timestamp=frame_detections.timestamp,
            last_frame_index=frame_detections.frame_index,
            last_box=np.asarray(box, dtype=np.float32),
            first_box=np.asarray(box, dtype=np.float32),
            last_confidence=confidence,
            captured_at=frame_detections.frame.captured_at,
        )

    def _meeting(self, xyxy: np.ndarray) -> np.ndarray:
        """bool ``(N,)``: boxes overlapping another box of the frame by the encounter IoU."""
        if self.encounter_iou is None or len(xyxy) < 2:
            return np.zeros(len(xyxy), dtype=bool)
        overlaps = np.asarray(sv.box_iou_batch(xyxy, xyxy), dtype=np.float64)
        np.fill_diagonal(overlaps, 0.0)
        meeting: np.ndarray = np.any(overlaps >= self.encounter_iou, axis=1)
        return meeting

    def _encounter_clips(self, track_id: int, state: _TrackState, met: bool) -> list[Clip]:
        """The clip of the piece before an encounter (when it begins) or after it (once
        ``T`` crops clear of it are buffered); see the module docstring."""
        clips: list[Clip] = []
        if met and not state.meeting:
            since = max(state.frames_at_last_clip, state.clear_since or 0)
            unclipped = state.frames_seen - 1 - since  # this frame's crop is in the encounter
            if unclipped >= self.config.min_frames:
                clips.append(
                    self._emit(
                        track_id, state, final=False, newest=unclipped, skip=1, kind="encounter"
                    )
                )
            state.clear_since = None
        elif not met and state.meeting:
            state.clear_since = state.frames_seen - 1
        state.meeting = met
        if not met and state.clear_since is not None:
            clear = state.frames_seen - state.clear_since
            if clear >= self.config.clip_length:
                clips.append(
                    self._emit(track_id, state, final=False, newest=clear, kind="encounter")
                )
                state.clear_since = None
        return clips

    def _clip_due(self, state: _TrackState, timestamp: float) -> bool:
        if state.last_clip_timestamp is None:
            return len(state.crops) >= self.config.clip_length
        return timestamp - state.last_clip_timestamp >= self.config.refresh_seconds

    def _emit(
        self,
        track_id: int,
        state: _TrackState,
        final: bool,
        newest: int | None = None,
        skip: int = 0,
        kind: ClipKind = "refresh",
    ) -> Clip:
        """A clip of the buffered crops, or of the ``newest`` of them but the last ``skip``."""
        frame_count = len(state.crops)
        window = min(newest, frame_count - skip) if newest is not None else frame_count
        offset = frame_count - skip - window if newest is not None else 0
        indices = offset + sample_clip_indices(
            window, self.config.clip_length, self.config.sampling, self._generator
        )
        crops = list(state.crops)
        frame_indices = list(state.frame_indices)
        confidences = np.asarray(state.confidences, dtype=np.float32)[indices]
        distinct_fraction = min(1.0, len(set(indices.tolist())) / len(indices))
        state.last_clip_timestamp = state.last_timestamp
        state.frames_at_last_clip = state.frames_seen
        return Clip(
            camera_id=self.camera_id,
            track_id=track_id,
            crops=np.stack([crops[i].array() for i in indices]),
            frame_indices=np.asarray([frame_indices[i] for i in indices], dtype=np.int64),
            quality=float(confidences.mean() * distinct_fraction),
            final=final,
            first_timestamp=state.first_timestamp,
            last_timestamp=state.last_timestamp,
            last_frame_index=state.last_frame_index,
            last_box=state.last_box.copy(),
            captured_at=state.captured_at,
            first_box=state.first_box.copy(),
            kind=kind,
            box_height=float(np.mean([crops[i].box[3] - crops[i].box[1] for i in indices])),
        )

    def _end_stale_tracks(self, now: float, output: ClipBufferOutput) -> None:
        for track_id, state in list(self._tracks.items()):
            if now - state.last_timestamp >= self.config.track_end_seconds:
                self._end_track(track_id, output)

    def _make_room(self, now: float, output: ClipBufferOutput) -> None:
        """Keep at most ``max_tracks`` tracks: end the least recently seen ones."""
        while len(self._tracks) >= self.config.max_tracks:
            oldest = min(self._tracks, key=lambda track_id: self._tracks[track_id].last_timestamp)
            self._end_track(oldest, output)

    def _end_track(self, track_id: int, output: ClipBufferOutput) -> None:
        state = self._tracks.pop(track_id)
        has_new_frames = state.frames_seen > state.frames_at_last_clip
        if has_new_frames and len(state.crops) >= self.config.min_frames:
            output.clips.append(self._emit(track_id, state, final=True, kind="final"))
        for crop in state.crops:
            crop.release()
        output.ended.append(self._track_event(track_id, state))

    def _track_event(self, track_id: int, state: _TrackState) -> TrackEvent:
        return TrackEvent(
            camera_id=self.camera_id,
            track_id=track_id,
            frame_index=state.last_frame_index,
            timestamp=state.last_timestamp,
            box=state.last_box.copy(),
            confidence=state.last_confidence,
            captured_at=state.captured_at if state.captured_at else time.monotonic(),
        )


__all__ = ["Clip", "ClipBuffer", "ClipBufferOutput", "TrackEvent", "crop_box"]
