"""The event schema published to Redis (version 1).

Every event is one entry of the Redis stream ``crosscam:events`` whose fields are strings:

==============  =====================================================================
field           meaning
==============  =====================================================================
schema_version  ``"1"``
event_id        ``<run id>:<sequence>``, unique; consumers drop duplicates by it
type            ``track_started`` | ``identity_assigned`` | ``identity_merged`` |
                ``identity_split`` | ``track_ended``
camera_id       camera id from the YAML
track_id        the camera-local track id
global_id       the cross-camera identity, ``-1`` while unknown
bbox            ``x1,y1,x2,y2`` pixels of the newest box
frame_index     0-based frame index in the camera's source
timestamp       seconds (files: media time; live: Unix time)
score           matching similarity (assigned/merged) or detection confidence
merged_ids      ``identity_merged`` only: comma-separated ids folded into global_id
split_from      ``identity_split`` only: the identity the track (camera_id, track_id)
                left; global_id is the new identity it now has
left_open       ``track_ended`` only, ``1`` when present: a later run ended the track an
                earlier run left open (killed); box, frame and time are its last known
==============  =====================================================================

``identity_split`` (added within version 1: a new type and a field only it carries, so
consumers that skip unknown types keep working) says an identity held two people: the track
``(camera_id, track_id)`` moved from ``split_from`` to the new ``global_id``; its later events
carry the new id. ``score`` is the track's similarity to the rest of the old identity, ``-1``
when the split came from the two tracks being seen at the same time in one camera.

``left_open`` (added within version 1 the same way) marks the ``track_ended`` that a run
publishes at its start for a track a killed run never ended (``pipeline/track_ledger.py``). It
is published once, whatever runs start: not when the track was ended meanwhile (its own
``track_ended`` replayed from a spool, or another run's ``left_open`` one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

SCHEMA_VERSION = 1


class EventType(StrEnum):
    """Kinds of events."""

    TRACK_STARTED = "track_started"
    IDENTITY_ASSIGNED = "identity_assigned"
    IDENTITY_MERGED = "identity_merged"
    IDENTITY_SPLIT = "identity_split"
    TRACK_ENDED = "track_ended"


@dataclass
class Event:
    """One published event; ``captured_at`` (monotonic) stays local, for latency."""

    type: EventType
    camera_id: int
    track_id: int
    global_id: int
    bbox: np.ndarray
    frame_index: int
    timestamp: float
    score: float
    captured_at: float
    merged_ids: list[int] = field(default_factory=list)
    event_id: str = ""
    split_from: int = -1
    left_open: bool = False
    """``track_ended`` of a track an earlier (killed) run left open; published only while the
    track ledger still holds it open (``pipeline/track_ledger.py``)."""

    def to_fields(self) -> dict[str, str]:
        """The Redis stream fields of this event (all strings)."""
        fields = {
            "schema_version": str(SCHEMA_VERSION),
            "event_id": self.event_id,
            "type": self.type.value,
            "camera_id": str(self.camera_id),
            "track_id": str(self.track_id),
            "global_id": str(self.global_id),
            "bbox": ",".join(f"{value:.1f}" for value in np.asarray(self.bbox).tolist()),
            "frame_index": str(self.frame_index),
            "timestamp": f"{self.timestamp:.3f}",
            "score": f"{self.score:.4f}",
        }
        if self.type is EventType.IDENTITY_MERGED:
            fields["merged_ids"] = ",".join(str(identity) for identity in self.merged_ids)
        if self.type is EventType.IDENTITY_SPLIT:
            fields["split_from"] = str(self.split_from)
        if self.left_open and self.type is EventType.TRACK_ENDED:
            fields["left_open"] = "1"
        return fields


def parse_fields(fields: dict[str, str]) -> dict[str, object]:
    """Decode stream fields back into typed values (for consumers and tests)."""
    parsed: dict[str, object] = dict(fields)
    for key in ("schema_version", "camera_id", "track_id", "global_id", "frame_index"):
        parsed[key] = int(fields[key])
    for key in ("timestamp", "score"):
        parsed[key] = float(fields[key])
    parsed["bbox"] = [float(value) for value in fields["bbox"].split(",")]
    if fields.get("merged_ids"):
        parsed["merged_ids"] = [int(value) for value in fields["merged_ids"].split(",")]
    if "split_from" in fields:
        parsed["split_from"] = int(fields["split_from"])
    if "left_open" in fields:
        parsed["left_open"] = fields["left_open"] == "1"
    return parsed
