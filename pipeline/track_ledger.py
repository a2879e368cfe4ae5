"""Tracks across runs, kept in Redis: the highest track id given per camera, and the tracks
that were started but never ended.

Track ids count from 0 in every tracker, but ``<p>:tracks`` and an identity's ``tracks`` field
are keyed ``camera:track``, so a new run continues each camera's ids after the highest one any
run published (:func:`highest_track_ids`). A run killed (SIGKILL, power loss) never publishes
``track_ended`` for its open tracks; the next run publishes it for them
(:func:`left_open_events`), so every ``track_started`` on the stream gets its ``track_ended``.

Keys (``<p>`` is ``redis.key_prefix``):

- ``<p>:track_ids``: hash ``camera_id -> highest track id`` started on that camera.
- ``<p>:open_tracks``: hash ``"camera:track" -> JSON`` of the stream fields of the track's
  latest event (``track_started`` or an identity event), removed by its ``track_ended``.

Edges (``--role edge``) send clip messages, not events: their ``started`` messages raise the
same ``<p>:track_ids``, so an edge's track ids also continue over runs. A restarted edge sends
an ``ended`` message marked ``left_open`` for each open track of its cameras; the matcher turns
it into the ``track_ended`` (``pipeline/matcher_role.py``).

Both are written in the same Redis pipeline as the events themselves (live sends and spool
replays alike, :meth:`TrackLedger.record`), so they never lag the stream.

A ``left_open`` ``track_ended`` is published exactly once: it is added to the stream by a Lua
script only while its track is still open, and closes it in the same step
(:meth:`TrackLedger.end_left_open`). Two runs that start together and both read a track as
open publish one ``track_ended``; a killed run's own ``track_ended`` replayed from a spool
before it (a spool replays ahead of any new event) leaves nothing to end.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import redis

from pipeline.events import Event, EventType
from pipeline.identity.store import as_text

logger = logging.getLogger(__name__)

RECORD_TRACKS = """
for i = 1, #ARGV, 3 do
  local operation, key, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if operation == 'open' then
    redis.call('hset', KEYS[1], key, value)
    local camera, track = string.match(key, '([^:]+):([^:]+)')
    local highest = tonumber(redis.call('hget', KEYS[2], camera) or '-1')
    if tonumber(track) > highest then redis.call('hset', KEYS[2], camera, track) end
  elseif operation == 'raise' then
    local camera, track = string.match(key, '([^:]+):([^:]+)')
    local highest = tonumber(redis.call('hget', KEYS[2], camera) or '-1')
    if tonumber(track) > highest then redis.call('hset', KEYS[2], camera, track) end
  elseif operation == 'update' then
    if redis.call('hexists', KEYS[1], key) == 1 then redis.call('hset', KEYS[1], key, value) end
  else
    redis.call('hdel', KEYS[1], key)
  end
end
return 0
"""
"""Lua, KEYS: open tracks hash, track ids hash; ARGV: ``(operation, camera:track, JSON)``
triples in stream order. ``open`` (track_started) stores the track and raises its camera's
highest id, ``raise`` (an edge's ``started`` clip message) only raises that id, ``update``
(identity events) refreshes a track still open, ``close`` (track_ended) removes it."""

END_LEFT_OPEN = """
if redis.call('hexists', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('hdel', KEYS[1], ARGV[1])
redis.call('xadd', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
return 1
"""
"""Lua, KEYS: open tracks hash, event stream; ARGV: ``camera:track``, the stream's approximate
maximum length, then the event's stream fields as name, value pairs. Adds the ``track_ended``
of a left-open track and closes the track, or, when it is no longer open, does nothing.
Returns 1 when added, else 0."""

_OPERATIONS = {
    EventType.TRACK_STARTED.value: "open",
    EventType.IDENTITY_ASSIGNED.value: "update",
    EventType.IDENTITY_MERGED.value: "update",
    EventType.IDENTITY_SPLIT.value: "update",
    EventType.TRACK_ENDED.value: "close",
}


class TrackLedger:
    """Writes and reads the two track keys of one key prefix."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.open_key = f"{prefix}:open_tracks"
        self.ids_key = f"{prefix}:track_ids"
        self._record = client.register_script(RECORD_TRACKS)
        self._end_left_open = client.register_script(END_LEFT_OPEN)

    def record(self, pipe: Any, records: Iterable[dict[str, str]]) -> None:
        """Queue on ``pipe`` the ledger updates for events' stream fields, in order. Of an
        edge's clip messages only ``started`` counts: it raises its camera's highest track id,
        so the edge's next run continues after it (the matcher's events keep the open
        tracks)."""
        arguments: list[str] = []
        for fields in records:
            operation = _OPERATIONS.get(fields.get("type", ""))
            if fields.get("kind") == "started":  # an edge's clip message (clip_messages.py)
                operation = "raise"
            if operation is None or "track_id" not in fields:
                continue
            key = f"{fields['camera_id']}:{fields['track_id']}"
            arguments += [operation, key, json.dumps(fields, separators=(",", ":"))]
        if arguments:
            self._record(keys=[self.open_key, self.ids_key], args=arguments, client=pipe)

    def end_left_open(
        self, pipe: Any, stream: str, max_length: int, fields: dict[str, str]
    ) -> None:
        """Queue on ``pipe`` the ``track_ended`` (stream fields, ``left_open``) of a track an
        earlier run left open: added to ``stream`` only if the track is still open. Its reply
        in ``pipe.execute()`` is 1 when added, 0 when the track had been ended already."""
        key = f"{fields['camera_id']}:{fields['track_id']}"
        pairs = [item for name_value in fields.items() for item in name_value]
        self._end_left_open(
            keys=[self.open_key, stream], args=[key, max_length, *pairs], client=pipe
        )

    def highest_track_ids(self, client: Any) -> dict[int, int]:
        """``camera_id -> highest track id`` any run started there."""
        stored = client.hgetall(self.ids_key)
        return {int(as_text(camera)): int(as_text(track)) for camera, track in stored.items()}

    def left_open_events(
        self, client: Any, camera_ids: Iterable[int], tracks_key: str
    ) -> list[Event]:
        """``track_ended`` events (``left_open``) for the open tracks of ``camera_ids`` (left
        by a killed run), with each track's latest known box and time, and its global id from
        ``tracks_key`` (``<p>:tracks``) when the identity still holds it."""
        wanted = {str(camera_id) for camera_id in camera_ids}
        events = []
        for raw_key, raw_fields in client.hgetall(self.open_key).items():
            key = as_text(raw_key)
            if key.split(":", 1)[0] not in wanted:
                continue
            fields = json.loads(as_text(raw_fields))
            global_id = client.hget(tracks_key, key)
            events.append(
                Event(
                    type=EventType.TRACK_ENDED,
                    camera_id=int(fields["camera_id"]),
                    track_id=int(fields["track_id"]),
                    global_id=int(as_text(global_id)) if global_id else int(fields["global_id"]),
                    bbox=np.asarray(
                        [float(value) for value in fields["bbox"].split(",")], dtype=np.float32
                    ),
                    frame_index=int(fields["frame_index"]),
                    timestamp=float(fields["timestamp"]),
                    score=float(fields["score"]),
                    captured_at=time.monotonic(),
                    left_open=True,
                )
            )
        return sorted(events, key=lambda event: (event.camera_id, event.track_id))


def is_left_open_end(fields: dict[str, str]) -> bool:
    """Whether stream fields are a ``track_ended`` that ends a track an earlier run left open
    (published through :meth:`TrackLedger.end_left_open`, never twice)."""
    return fields.get("type") == EventType.TRACK_ENDED.value and fields.get("left_open") == "1"


def read_track_ledger(
    url: str, prefix: str, camera_ids: Iterable[int]
) -> tuple[dict[int, int], list[Event]]:
    """At a run's start: the highest track id per camera, and ``track_ended`` events for the
    tracks of ``camera_ids`` an earlier run left open.

    Raises:
        redis.RedisError: Redis did not answer.
    """
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        ledger = TrackLedger(client, prefix)
        left_open = ledger.left_open_events(client, camera_ids, f"{prefix}:tracks")
        return ledger.highest_track_ids(client), left_open
    finally:
        client.close()
