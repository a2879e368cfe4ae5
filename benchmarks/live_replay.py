"""A saved track log replayed through the live identity path, in seconds instead of a run.

A live run's identities come from the clip matcher, revised every
``identity.refine_every_seconds`` by the whole-track pass reconciled into the live gallery
(:mod:`pipeline.identity.online`); no end-of-run pass. :func:`replay_live` feeds a saved log
(``<name>.mtmc.tracks.npz`` of ``benchmarks.accuracy``) to that path in footage order: each
track's boxes as they were seen, each clip embedding when its clip was complete, each track's
end ``clips.track_end_seconds`` after its last box (as the clip buffer ends it), and the
periodic passes inline over what had been seen by then. The detector, tracker and encoder are
not run again, so a change to matching or reconciling is measured on the same tracks in
seconds. ``python -m benchmarks.accuracy --track-log LOG --live`` scores the outcome: each
track's final live identity (the per-track state a live consumer reads from Redis).

The clip times are reconstructed: the log keeps each clip's middle frame, and a clip of
``clips.max_frames_per_track`` newest crops sampled evenly is complete about as many frames
after its middle as it began before (capped at half the buffer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.clips import Clip
from pipeline.config import CrosscamConfig
from pipeline.identity import IdentityMatcher, OnlineRefinement, TrackLog, known_homographies
from pipeline.identity.matching import EmbeddedClip
from pipeline.identity.track_log import TrackRecord
from pipeline.track_boxes import TrackBoxes

STEP_SECONDS = 0.5
"""How often the replay hands over what came (the runner's batches are shorter; the passes,
every ``refine_every_seconds``, are what this measures)."""


@dataclass(frozen=True)
class _Arrival:
    """One thing the live path receives: a clip (``clip >= 0``) or a track's end."""

    time: float
    order: int
    """0 for clips, 1 for ends (a clip and an end at one time: the clip first)."""
    key: tuple[int, int]
    clip: int
    first: float
    last: float
    box: int


def _arrivals(log: TrackLog, config: CrosscamConfig) -> list[_Arrival]:
    """Clips and track ends of ``log`` in the order the live path gets them."""
    half = config.clips.max_frames_per_track // 2
    arrivals: list[_Arrival] = []
    for key, record in log.records.items():
        frames = np.asarray(record.frame_indices)
        times = np.asarray(record.timestamps)
        for index, middle in enumerate(record.clip_frames):
            at = int(np.clip(np.searchsorted(frames, middle), 0, len(frames) - 1))
            last = min(at + min(at, half), len(frames) - 1)
            first = max(0, last - config.clips.max_frames_per_track + 1)
            arrivals.append(
                _Arrival(float(times[last]), 0, key, index, float(times[first]), times[last], last)
            )
        end = float(times[-1])
        arrivals.append(
            _Arrival(end + config.clips.track_end_seconds, 1, key, -1, end, end, len(times) - 1)
        )
    return sorted(arrivals, key=lambda arrival: (arrival.time, arrival.order, arrival.key))


def _embedded(record: TrackRecord, arrival: _Arrival) -> EmbeddedClip:
    clip = Clip(
        camera_id=record.camera_id,
        track_id=record.track_id,
        crops=np.zeros((1, 1, 1, 3), dtype=np.uint8),
        frame_indices=np.array([record.clip_frames[arrival.clip]], dtype=np.int64),
        quality=record.qualities[arrival.clip],
        final=False,
        first_timestamp=arrival.first,
        last_timestamp=arrival.last,
        last_frame_index=int(record.frame_indices[arrival.box]),
        last_box=np.asarray(record.boxes[arrival.box], dtype=np.float32),
        captured_at=0.0,
    )
    return EmbeddedClip(clip, np.asarray(record.embeddings[arrival.clip], dtype=np.float32))


def replay_live(log: TrackLog, config: CrosscamConfig) -> tuple[IdentityMatcher, OnlineRefinement]:
    """The live identity path over ``log`` (module docstring), passes inline; the matcher at
    the end (after :meth:`OnlineRefinement.finish`) and the refinement's counters."""
    settings = config.identity.model_copy(update={"passes_in_background": False})
    matcher = IdentityMatcher(config.matching)
    online = OnlineRefinement(settings, known_homographies(config))
    seen = TrackLog(settings.window_seconds)
    arrivals = _arrivals(log, config)
    boxes_seen = dict.fromkeys(log.records, 0)
    position = 0
    now = 0.0
    last = max((arrival.time for arrival in arrivals), default=0.0)
    while now <= last:
        now += STEP_SECONDS
        for key, record in log.records.items():
            count = int(np.searchsorted(record.timestamps, now, side="right"))
            if count > boxes_seen[key]:
                _see_boxes(seen, record, boxes_seen[key], count)
                boxes_seen[key] = count
        batch: list[EmbeddedClip] = []
        ended: list[_Arrival] = []
        while position < len(arrivals) and arrivals[position].time <= now:
            arrival = arrivals[position]
            position += 1
            record = log.records[arrival.key]
            if arrival.clip < 0:
                ended.append(arrival)
                continue
            batch.append(_embedded(record, arrival))
            seen.add_embedding(
                *arrival.key,
                record.embeddings[arrival.clip],
                record.qualities[arrival.clip],
                record.clip_frames[arrival.clip],
            )
        if batch:
            matcher.update(batch)
        for arrival in ended:
            box = np.asarray(log.records[arrival.key].boxes[arrival.box], dtype=np.float32)
            matcher.end_track(*arrival.key, arrival.last, box)
        online.maybe_refine(seen, matcher)
    online.finish(seen, matcher)
    return matcher, online


def _see_boxes(seen: TrackLog, record: TrackRecord, start: int, stop: int) -> None:
    """Boxes ``start:stop`` of ``record`` arrive in ``seen``."""
    boxes = TrackBoxes(
        np.asarray(record.frame_indices[start:stop], dtype=np.int64),
        np.asarray(record.timestamps[start:stop], dtype=np.float64),
        np.asarray(record.boxes[start:stop], dtype=np.float32).reshape(-1, 4),
        np.asarray(record.confidences[start:stop], dtype=np.float32),
    )
    seen.add_boxes(record.camera_id, record.track_id, boxes)
