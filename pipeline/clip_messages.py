"""The wire format between edges and matchers: the Redis stream ``crosscam:clips``.

An edge (``--role edge``) runs cameras up to clip embeddings and sends four kinds of message;
matchers (``--role matcher``) read them with a consumer group and run the identity service.
All fields are strings (so messages can also wait in the on-disk spool):

- every message: ``schema_version``, ``event_id`` (idempotency key), ``kind`` (``started`` |
  ``clip`` | ``ended`` | ``reconnected``), ``edge``, ``camera_id``, ``track_id``,
  ``frame_index``, ``timestamp``, ``bbox`` (``x1,y1,x2,y2``), ``score`` (detection
  confidence), ``sent_unix``;
- ``clip``: ``embedding`` (base64 of float32 little-endian), ``quality``, ``final``
  (``0``/``1``), ``first_timestamp``, ``last_timestamp``, ``first_bbox`` (optional),
  ``frame_indices`` (optional, ``,``-separated): the source frames of its crops;
- ``clip`` and ``ended``: ``boxes`` (optional, base64 of packed rows): the track's boxes since
  its previous ``clip`` / ``ended`` message, for the matchers' whole-track passes
  (``pipeline/track_boxes.py``);
- ``ended``: ``has_final_clip`` (``0``/``1``): whether a last clip precedes this message;
  ``left_open`` (``1``, optional): sent by a restarted edge for a track an earlier (killed) run
  of it left open, with the track's last known box and time (``pipeline/track_ledger.py``);
- ``reconnected``: the camera came back after ``outage_seconds`` (``pipeline/reconnect.py``);
  ``track_id`` is ``-1`` and the box empty.

``boxes``, ``frame_indices`` and ``left_open`` are optional: messages of edges that predate
them are read as before (a track without boxes, a clip without frame indices, an end of a
track that run itself saw end).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

import numpy as np

from pipeline.clips import Clip, TrackEvent
from pipeline.events import Event
from pipeline.identity import EmbeddedClip
from pipeline.track_boxes import TrackBoxes

CLIP_SCHEMA_VERSION = 1


@dataclass
class ClipMessage:
    """One message from an edge; ``to_fields`` gives its stream fields."""

    kind: str
    edge: str
    track: TrackEvent
    embedded: EmbeddedClip | None = None
    has_final_clip: bool = False
    event_id: str = ""
    outage_seconds: float = 0.0
    boxes: TrackBoxes | None = None
    """The track's boxes since its previous message (``clip`` / ``ended``; None: none)."""
    left_open: bool = False
    """``ended`` only: the end of a track an earlier run of the edge left open (killed)."""

    @property
    def captured_at(self) -> float:
        return self.track.captured_at

    def to_fields(self) -> dict[str, str]:
        track = self.track
        fields = {
            "schema_version": str(CLIP_SCHEMA_VERSION),
            "event_id": self.event_id,
            "kind": self.kind,
            "edge": self.edge,
            "camera_id": str(track.camera_id),
            "track_id": str(track.track_id),
            "frame_index": str(track.frame_index),
            "timestamp": repr(float(track.timestamp)),
            "bbox": ",".join(repr(float(value)) for value in np.asarray(track.box).tolist()),
            "score": repr(float(track.confidence)),
            "sent_unix": f"{time.time():.6f}",
        }
        if self.kind == "clip" and self.embedded is not None:
            clip = self.embedded.clip
            embedding = np.asarray(self.embedded.embedding, dtype="<f4")
            fields |= {
                "embedding": base64.b64encode(embedding.tobytes()).decode("ascii"),
                "quality": repr(float(clip.quality)),
                "final": "1" if clip.final else "0",
                "first_timestamp": repr(float(clip.first_timestamp)),
                "last_timestamp": repr(float(clip.last_timestamp)),
            }
            if clip.first_box is not None:
                fields["first_bbox"] = ",".join(repr(float(v)) for v in clip.first_box.tolist())
            if len(clip.frame_indices):
                fields["frame_indices"] = ",".join(str(int(v)) for v in clip.frame_indices)
        if self.boxes is not None and len(self.boxes):
            fields["boxes"] = self.boxes.encode()
        if self.kind == "ended":
            fields["has_final_clip"] = "1" if self.has_final_clip else "0"
            if self.left_open:
                fields["left_open"] = "1"
        if self.kind == "reconnected":
            fields["outage_seconds"] = repr(float(self.outage_seconds))
        return fields


def started_message(edge: str, track: TrackEvent) -> ClipMessage:
    return ClipMessage("started", edge, track)


def ended_message(
    edge: str, track: TrackEvent, has_final_clip: bool, boxes: TrackBoxes | None = None
) -> ClipMessage:
    return ClipMessage("ended", edge, track, has_final_clip=has_final_clip, boxes=boxes)


def left_open_message(edge: str, event: Event) -> ClipMessage:
    """The ``ended`` message for a track an earlier run left open, from its ``track_ended``
    (``pipeline/track_ledger.py``: the track's last known box, frame and time); no last clip
    follows it."""
    track = TrackEvent(
        camera_id=event.camera_id,
        track_id=event.track_id,
        frame_index=event.frame_index,
        timestamp=event.timestamp,
        box=np.asarray(event.bbox, dtype=np.float32),
        confidence=event.score,
        captured_at=event.captured_at,
    )
    return ClipMessage("ended", edge, track, left_open=True)


def reconnected_message(edge: str, camera_id: int, outage_seconds: float) -> ClipMessage:
    track = TrackEvent(
        camera_id=camera_id,
        track_id=-1,
        frame_index=0,
        timestamp=0.0,
        box=np.zeros(4, dtype=np.float32),
        confidence=0.0,
        captured_at=time.monotonic(),
    )
    return ClipMessage("reconnected", edge, track, outage_seconds=outage_seconds)


def clip_message(edge: str, embedded: EmbeddedClip, boxes: TrackBoxes | None = None) -> ClipMessage:
    clip = embedded.clip
    track = TrackEvent(
        camera_id=clip.camera_id,
        track_id=clip.track_id,
        frame_index=clip.last_frame_index,
        timestamp=clip.last_timestamp,
        box=clip.last_box,
        confidence=clip.quality,
        captured_at=clip.captured_at,
    )
    return ClipMessage("clip", edge, track, embedded=embedded, boxes=boxes)


def parse_message(fields: dict[str, str]) -> ClipMessage:
    """Rebuild a message from stream fields (``captured_at`` becomes local monotonic now)."""
    track = TrackEvent(
        camera_id=int(fields["camera_id"]),
        track_id=int(fields["track_id"]),
        frame_index=int(fields["frame_index"]),
        timestamp=float(fields["timestamp"]),
        box=_box(fields["bbox"]),
        confidence=float(fields["score"]),
        captured_at=time.monotonic(),
    )
    kind = fields["kind"]
    message = ClipMessage(kind, fields["edge"], track, event_id=fields.get("event_id", ""))
    if "boxes" in fields:
        message.boxes = TrackBoxes.decode(fields["boxes"])
    if kind == "clip":
        embedding = np.frombuffer(base64.b64decode(fields["embedding"]), dtype="<f4")
        clip = Clip(
            camera_id=track.camera_id,
            track_id=track.track_id,
            crops=np.zeros((0, 1, 1, 3), dtype=np.uint8),
            frame_indices=_frame_indices(fields.get("frame_indices", "")),
            quality=float(fields["quality"]),
            final=fields["final"] == "1",
            first_timestamp=float(fields["first_timestamp"]),
            last_timestamp=float(fields["last_timestamp"]),
            last_frame_index=track.frame_index,
            last_box=track.box,
            captured_at=track.captured_at,
            first_box=_box(fields["first_bbox"]) if "first_bbox" in fields else None,
        )
        message.embedded = EmbeddedClip(clip, embedding.astype(np.float32))
    elif kind == "ended":
        message.has_final_clip = fields.get("has_final_clip") == "1"
        message.left_open = fields.get("left_open") == "1"
    elif kind == "reconnected":
        message.outage_seconds = float(fields["outage_seconds"])
    elif kind != "started":
        raise ValueError(f"unknown clip message kind {kind!r}")
    return message


def _box(text: str) -> np.ndarray:
    return np.asarray([float(value) for value in text.split(",")], dtype=np.float32)


def _frame_indices(text: str) -> np.ndarray:
    """int64 ``(T,)`` from ``1,2,3`` (empty: none, a message of an older edge)."""
    return np.asarray([int(value) for value in text.split(",") if value], dtype=np.int64)
