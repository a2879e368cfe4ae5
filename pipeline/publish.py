"""Publishing events and identity state to Redis, buffering while Redis is unreachable.

Keys (``<p>`` is ``redis.key_prefix``, ``crosscam`` by default):

- ``redis.stream`` (``crosscam:events``): the event stream, XADD with approximate MAXLEN.
- ``<p>:identity:<global_id>``: hash per identity: ``global_id``, ``first_seen``,
  ``last_seen``, ``cameras`` (comma-separated ids), ``tracks`` (``camera:track`` list),
  ``last_seen:<camera_id>`` per camera, ``embedding`` (float32 bytes, little endian),
  ``embedding_dim``, ``schema_version``.
- ``<p>:identities``: sorted set of global ids scored by last-seen timestamp.
- ``<p>:tracks``: hash ``"<camera_id>:<track_id>" -> global_id``, for the tracks the identities
  still hold: a track an identity forgets (``matching.max_tracks_per_identity``) or an
  expired identity's tracks are removed with it, so the hash does not grow without bound.
- ``<p>:run``: hash describing the run that published last.

While Redis is down, events go to a bounded on-disk spool (``pipeline/spool.py``: append-only,
fsync'd per batch, survives SIGKILL) and are replayed in order, before any newer event, when
Redis answers again; each event carries an ``event_id`` so consumers can drop duplicates
(delivery is at least once). Without a spool they wait in a bounded in-memory buffer (oldest
dropped past ``buffer_max_events``, counted). Identity snapshots are coalesced in memory: only the
newest state of each identity is sent.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import numpy as np
import redis

from pipeline.config import CrosscamConfig, RedisConfig
from pipeline.events import SCHEMA_VERSION
from pipeline.identity import Identity
from pipeline.redaction import redact_url
from pipeline.spool import DiskSpool, undelivered_records
from pipeline.track_ledger import TrackLedger, is_left_open_end

logger = logging.getLogger(__name__)


IdentityFields = dict[str, bytes | str]
"""The ``<p>:identity:<global_id>`` hash of one identity."""


class StreamRecord(Protocol):
    """Anything published to a stream: events (``pipeline/events.py``) and clip messages."""

    event_id: str

    @property
    def captured_at(self) -> float: ...

    def to_fields(self) -> dict[str, str]: ...


@dataclass
class PublisherCounters:
    events_published: int = 0
    """Every event that reached Redis, replayed from the spool or not."""
    events_replayed: int = 0
    """Of those, the events replayed from the on-disk spool (this run's or an earlier one's)."""
    events_spooled: int = 0
    events_dropped: int = 0
    identity_updates: int = 0
    connection_failures: int = 0
    left_open_skipped: int = 0
    """``left_open`` track_ended events not added: their track had been ended already (by its
    own run's spooled end, or another run that ended it first)."""


FORGET_TRACKS = """
local old = redis.call('hget', KEYS[1], 'tracks')
if not old then return 0 end
local kept = {}
for track in string.gmatch(ARGV[2], '[^,]+') do kept[track] = true end
local removed = 0
for track in string.gmatch(old, '[^,]+') do
  if not kept[track] and redis.call('hget', KEYS[2], track) == ARGV[1] then
    redis.call('hdel', KEYS[2], track)
    removed = removed + 1
  end
end
return removed
"""
"""Lua, KEYS: identity hash, tracks hash; ARGV: global id, its new ``tracks`` list. Removes from
the tracks hash the identity's previous tracks that are not in the new list and still point
to it (a track moved to another identity by a split or merge points there and stays)."""

RAISE_MAX_GLOBAL_ID = """
local stored = tonumber(redis.call('get', KEYS[1]) or '0')
if tonumber(ARGV[1]) > stored then redis.call('set', KEYS[1], ARGV[1]) end
return 0
"""
"""Lua, KEYS: ``<p>:max_global_id``; ARGV: an id. The highest id given never moves backwards,
whatever a process believes it to be."""


class RedisPublisher:
    """Sends events and identity snapshots to Redis; ``publish`` never raises on outages."""

    def __init__(
        self,
        config: RedisConfig,
        url: str,
        run_id: str,
        retry_max_seconds: float = 5.0,
        socket_timeout_seconds: float = 1.0,
        spool: DiskSpool | None = None,
        track_ledger: bool = False,
    ) -> None:
        """``track_ledger``: keep ``<p>:track_ids`` and ``<p>:open_tracks`` with the events
        (``pipeline/track_ledger.py``; on the clip stream, the edges' highest track ids)."""
        self.config = config
        self.spool = spool
        self.url = url
        self.run_id = run_id
        self.retry_max_seconds = retry_max_seconds
        self.counters = PublisherCounters()
        self.connected = True
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_seconds,
            socket_connect_timeout=socket_timeout_seconds,
        )
        self._forget_tracks = self._client.register_script(FORGET_TRACKS)
        self._raise_max_global_id = self._client.register_script(RAISE_MAX_GLOBAL_ID)
        self.ledger = TrackLedger(self._client, config.key_prefix) if track_ledger else None
        self._events: deque[StreamRecord] = deque()
        self._identities: dict[int, IdentityFields] = {}
        self._removed: set[int] = set()
        self._sequence = 0
        self._max_global_id = 0
        self._retry_at = 0.0
        self._failures_in_row = 0
        self._replayed_since_outage = 0
        if spool is not None and len(spool):
            logger.info(
                "event spool %s holds %d events an earlier run could not publish; replaying "
                "them to %s before any new event",
                spool.directory,
                len(spool),
                redact_url(url),
            )

    @property
    def buffered_events(self) -> int:
        """Events not yet in Redis: in memory plus in the spool."""
        return len(self._events) + (len(self.spool) if self.spool is not None else 0)

    def key(self, *parts: object) -> str:
        return ":".join([self.config.key_prefix, *(str(part) for part in parts)])

    def describe_run(self, fields: dict[str, str]) -> None:
        """Record what this run is (cameras, config) under ``<p>:run``; best effort."""
        try:
            self._client.delete(self.key("run"))
            self._client.hset(self.key("run"), mapping={"run_id": self.run_id} | fields)  # type: ignore[arg-type]
        except redis.RedisError as error:
            self._on_failure(error)

    def publish(
        self,
        events: Sequence[StreamRecord],
        changed: list[Identity] | None = None,
        removed: list[int] | None = None,
    ) -> list[StreamRecord]:
        """Queue events and identity changes, then try to send everything queued.

        Returns the events that reached Redis during this call.
        """
        self.stage(events, identity_snapshots(changed), removed)
        return self.send_staged()

    def stage(
        self,
        events: Sequence[StreamRecord],
        identities: dict[int, IdentityFields],
        removed: list[int] | None = None,
    ) -> None:
        """Queue events (numbered here, in order) and identity snapshots
        (:func:`identity_snapshots`) without sending; spooled while Redis is down."""
        for event in events:
            self._sequence += 1
            event.event_id = f"{self.run_id}:{self._sequence}"
            self._events.append(event)
        overflow = len(self._events) - self.config.buffer_max_events
        for _ in range(max(0, overflow)):
            self._events.popleft()
            self.counters.events_dropped += 1
        for global_id, fields in identities.items():
            self._identities[global_id] = fields
            self._removed.discard(global_id)
        for global_id in removed or []:
            self._identities.pop(global_id, None)
            self._removed.add(global_id)
        if not self.connected:
            self._spill()

    def send_staged(self) -> list[StreamRecord]:
        """Send everything queued unless waiting to retry; the events that reached Redis."""
        if time.monotonic() < self._retry_at:
            return []
        return self._send()

    def flush(self, timeout_seconds: float = 5.0) -> bool:
        """Try to send everything buffered until ``timeout_seconds``; True when all sent."""
        deadline = time.monotonic() + timeout_seconds
        while self._has_pending() and time.monotonic() < deadline:
            self._retry_at = 0.0
            self._send()
            if self._has_pending():
                time.sleep(0.2)
        return not self._has_pending()

    def close(self) -> None:
        self._client.close()

    def _has_pending(self) -> bool:
        spooled = self.spool is not None and len(self.spool) > 0
        return bool(self._events or self._identities or self._removed or spooled)

    def _spill(self) -> None:
        """Move in-memory events to the disk spool (no-op without a spool)."""
        if self.spool is None or not self._events:
            return
        self.spool.append([event.to_fields() for event in self._events])
        self.counters.events_spooled += len(self._events)
        self._events.clear()

    def _replay_spool(self, chunk: int = 500) -> bool:
        """Send spooled events in order; False if Redis failed on the way."""
        if self.spool is None:
            return True
        while len(self.spool):
            records = self.spool.peek(chunk)
            pipe = self._client.pipeline(transaction=False)
            conditional = self._queue_records(pipe, records)
            try:
                replies = pipe.execute()
            except redis.RedisError as error:
                self._on_failure(error)
                return False
            self.spool.acknowledge(len(records))
            added = len(records) - len(self._skipped(conditional, replies))
            self.counters.events_published += added
            self.counters.events_replayed += added
            self._replayed_since_outage += added
            if not len(self.spool):
                logger.info(
                    "replayed %d spooled events to %s",
                    self._replayed_since_outage,
                    redact_url(self.url),
                )
        return True

    def _send(self) -> list[StreamRecord]:
        if not self._replay_spool():
            self._spill()
            return []
        sending = list(self._events)
        pipe = self._client.pipeline(transaction=False)
        conditional = self._queue_records(pipe, [event.to_fields() for event in sending])
        if self._identities:
            self._max_global_id = max(self._max_global_id, *self._identities)
            self._raise_max_global_id(
                keys=[self.key("max_global_id")], args=[self._max_global_id], client=pipe
            )
        tracks_key = self.key("tracks")
        for global_id, fields in self._identities.items():
            identity_key = self.key("identity", global_id)
            self._forget_tracks(
                keys=[identity_key, tracks_key], args=[global_id, fields["tracks"]], client=pipe
            )
            pipe.delete(identity_key)
            pipe.hset(identity_key, mapping=fields)  # type: ignore[arg-type]
            pipe.zadd(self.key("identities"), {str(global_id): float(fields["last_seen"])})
            tracks = str(fields["tracks"])
            if tracks:
                pipe.hset(
                    tracks_key, mapping={track: str(global_id) for track in tracks.split(",")}
                )
        for global_id in self._removed:
            identity_key = self.key("identity", global_id)
            self._forget_tracks(keys=[identity_key, tracks_key], args=[global_id, ""], client=pipe)
            pipe.delete(identity_key)
            pipe.zrem(self.key("identities"), str(global_id))
        try:
            replies = pipe.execute()
        except redis.RedisError as error:
            self._on_failure(error)
            self._spill()
            return []
        skipped = self._skipped(conditional, replies)
        if not self.connected:
            logger.info(
                "Redis at %s is back; sent %d buffered events (%d of them from the spool)",
                redact_url(self.url),
                self._replayed_since_outage + len(sending),
                self._replayed_since_outage,
            )
        self._replayed_since_outage = 0
        self.connected = True
        self._failures_in_row = 0
        for _ in sending:
            self._events.popleft()
        sent = [event for index, event in enumerate(sending) if index not in skipped]
        self.counters.events_published += len(sent)
        self.counters.identity_updates += len(self._identities)
        self._identities.clear()
        self._removed.clear()
        return sent

    def _queue_records(
        self, pipe: redis.client.Pipeline, records: list[dict[str, str]]
    ) -> dict[int, int]:
        """Queue on ``pipe``, in order, the stream entries of ``records`` and their track
        ledger updates. A ``left_open`` track_ended goes through the ledger's check (added
        only while its track is open), after the ledger updates of the records before it, so
        an end replayed just before it counts.

        Returns ``record index -> index of its command in pipe`` for those checked ends.
        """
        conditional: dict[int, int] = {}
        pending: list[dict[str, str]] = []
        for index, fields in enumerate(records):
            if self.ledger is not None and is_left_open_end(fields):
                self.ledger.record(pipe, pending)
                pending = []
                conditional[index] = len(pipe.command_stack)
                self.ledger.end_left_open(
                    pipe, self.config.stream, self.config.stream_max_length, fields
                )
                continue
            pipe.xadd(
                self.config.stream,
                fields,  # type: ignore[arg-type]
                maxlen=self.config.stream_max_length,
                approximate=True,
            )
            pending.append(fields)
        if self.ledger is not None:
            self.ledger.record(pipe, pending)
        return conditional

    def _skipped(self, conditional: dict[int, int], replies: list[object]) -> set[int]:
        """Indices of the checked ``left_open`` ends that were not added (already ended)."""
        skipped = {index for index, command in conditional.items() if not replies[command]}
        if skipped:
            self.counters.left_open_skipped += len(skipped)
            logger.info(
                "%d track_ended for tracks an earlier run left open were not sent: those "
                "tracks had been ended already",
                len(skipped),
            )
        return skipped

    def _on_failure(self, error: Exception) -> None:
        self.counters.connection_failures += 1
        self._failures_in_row += 1
        delay = min(self.retry_max_seconds, 0.25 * 2 ** min(self._failures_in_row, 8))
        self._retry_at = time.monotonic() + delay
        if self.connected:
            logger.warning(
                "Redis at %s unreachable (%s); buffering events and retrying",
                redact_url(self.url),
                error.__class__.__name__,
            )
        self.connected = False


def identity_snapshots(changed: list[Identity] | None) -> dict[int, IdentityFields]:
    """Global id -> the hash fields of each changed identity, as it is now (the matcher goes
    on changing its identities while a publisher thread sends)."""
    return {identity.global_id: _identity_fields(identity) for identity in changed or []}


def _identity_fields(identity: Identity) -> IdentityFields:
    embedding = np.asarray(identity.feature, dtype="<f4")
    fields: IdentityFields = {
        "schema_version": str(SCHEMA_VERSION),
        "global_id": str(identity.global_id),
        "first_seen": f"{identity.first_seen:.3f}",
        "last_seen": f"{identity.last_seen:.3f}",
        "cameras": ",".join(str(camera) for camera in identity.cameras),
        "tracks": ",".join(f"{camera}:{track}" for camera, track in identity.tracks),
        "embedding": embedding.tobytes(),
        "embedding_dim": str(embedding.shape[0]),
        "weight": f"{identity.weight:.4f}",
    }
    for camera_id, seen in identity.last_seen_by_camera.items():
        fields[f"last_seen:{camera_id}"] = f"{seen:.3f}"
    return fields


def build_publisher(
    config: CrosscamConfig, url: str, run_id: str, edge_name: str | None = None
) -> RedisPublisher:
    """The publisher of a run: to the event stream, or for an edge to the clip stream, each
    with its own on-disk spool."""
    redis_config = config.redis
    spool_parent = redis_config.spool_directory or config.outputs.run_directory / "spool"
    spool_root = spool_parent / spool_folder_name(redis_config.url)
    spool_directory = spool_root if edge_name is None else spool_root / f"edge-{edge_name}"
    warn_about_unaddressed_spools(spool_parent, spool_directory, url)
    if edge_name is not None:
        redis_config = redis_config.model_copy(update={"stream": redis_config.clip_stream})
    return RedisPublisher(
        redis_config,
        url,
        run_id,
        spool=DiskSpool(spool_directory, int(redis_config.spool_max_megabytes * 2**20)),
        track_ledger=True,
    )


def warn_about_unaddressed_spools(spool_parent: Path, spool_directory: Path, url: str) -> None:
    """One warning per spool in the layout from before spools were kept per Redis
    (``<spool>/spool.jsonl``, ``<spool>/edge-<name>/spool.jsonl``) that still holds events.

    Such a spool does not say which Redis its events were for, so it is never replayed on its
    own; the line names the file and the two ways out (move it into this run's spool folder
    to replay it into this Redis, or delete it)."""
    old_folders = [spool_parent, *sorted(spool_parent.glob("edge-*"))]
    for folder in old_folders:
        pending = undelivered_records(folder)
        if pending:
            logger.warning(
                "event spool %s holds %d events from an older crosscam that did not record "
                "which Redis they were for; they are not replayed. To send them to %s, move "
                "spool.jsonl and spool.offset from %s into %s while crosscam is stopped and that "
                "folder holds no spool of its own; else delete them",
                folder / "spool.jsonl",
                pending,
                redact_url(url),
                folder,
                spool_directory,
            )


def spool_folder_name(configured_url: str) -> str:
    """The spool folder of one Redis: a spool replays only into the Redis it was written for.

    ``embedded`` for the embedded Redis (``redis.url`` empty; its port changes every run, its
    data folder does not), else scheme, host, port and database of the URL, never its
    credentials: ``redis-10.0.0.7-6379-db0``, ``unix-run-redis.sock-db0``.
    """
    if not configured_url:
        return "embedded"
    parsed = urlsplit(configured_url)
    query = dict(part.partition("=")[::2] for part in parsed.query.split("&") if part)
    if parsed.scheme == "unix":
        where = parsed.path.strip("/").replace("/", "-")
        database = query.get("db", "0")
    else:
        where = f"{parsed.hostname or 'localhost'}-{parsed.port or 6379}"
        database = parsed.path.strip("/") or query.get("db", "0")
    name = f"{parsed.scheme}-{where}-db{database}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)
