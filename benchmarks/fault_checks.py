"""What the fault-injection scenario (``benchmarks/faults.py``) checks, on what Redis holds.

- :class:`IdentityWatch` samples Redis about once a second while the faults happen: the highest
  global id given (``<p>:max_global_id``, which must never decrease) and each stored
  identity's ``first_seen``. A global id given again to another person (a run that could not
  read the stored gallery) rewrites that identity's hash with the newcomer's later
  ``first_seen``; merges only ever move it earlier. So a ``first_seen`` that moves later is a
  stored identity rewritten: its id given again, or its history lost (the first 10-minute run
  found a split in a later run rebuilding ``first_seen`` from that run's tracks only) — when
  the identity was first seen before the run that moved it started, and its new ``first_seen``
  lies in that run (:func:`stored_identity_rewrites`). Within the run that made an identity,
  a split that takes its first track away moves ``first_seen`` later, rightly.
- :func:`check_events` reads the whole event stream at the end. ``event_id`` is
  ``<run id>:<sequence>`` with sequences 1, 2, 3, … in each process; after dropping
  redeliveries (copies of one ``event_id``, allowed: delivery is at least once), every run's
  sequences must be complete up to its last one, copies must be identical (else two events
  shared an id), no ``camera:track`` key may be started by two runs, and every started track
  must end (a killed run's open tracks are ended by the next run).

A SIGKILLed process can lose the events of the tick it was killed in, before they were
numbered into Redis or the spool; those leave no gap and are not counted.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis


@dataclass
class FirstSeenMove:
    """An identity whose ``first_seen`` moved later between two samples; which of these are
    faults is :func:`stored_identity_rewrites`'s call."""

    global_id: int
    first_seen_before: float
    first_seen_after: float
    seconds: float
    """When it was seen, in seconds since the watch started."""


def stored_identity_rewrites(
    moves: list[FirstSeenMove], run_starts_unix: list[float]
) -> list[FirstSeenMove]:
    """Of the ``first_seen`` moves, those that rewrote an identity an earlier run stored: it
    was first seen before the run writing at that moment started (``run_starts_unix``: the
    crosscam processes' start times, Unix seconds, as the cameras' live timestamps), and the
    new ``first_seen`` is in that run."""
    rewrites = []
    for move in moves:
        started = [start for start in run_starts_unix if start <= move.first_seen_after]
        run_start = max(started, default=float("-inf"))
        if move.first_seen_before < run_start <= move.first_seen_after:
            rewrites.append(move)
    return rewrites


@dataclass
class IdentityWatchResult:
    samples: int = 0
    """Samples taken while Redis answered."""
    unanswered: int = 0
    """Samples while Redis was down."""
    max_global_id_series: list[tuple[float, int]] = field(default_factory=list)
    """``(seconds, max_global_id)`` whenever it changed."""
    max_global_id_decreases: list[tuple[float, int, int]] = field(default_factory=list)
    """``(seconds, before, after)`` for each decrease."""
    identities_seen: int = 0
    first_seen_moves: list[FirstSeenMove] = field(default_factory=list)
    """Every ``first_seen`` that moved later (a within-run split, or a rewrite)."""


class IdentityWatch:
    """Samples ``max_global_id`` and every identity's ``first_seen`` on a thread."""

    def __init__(self, url: str, prefix: str = "crosscam", interval_seconds: float = 1.0) -> None:
        self.url = url
        self.prefix = prefix
        self.interval_seconds = interval_seconds
        self.result = IdentityWatchResult()
        self._first_seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="identity-watch", daemon=True)

    def start(self) -> IdentityWatch:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> IdentityWatchResult:
        """Stop, take one last sample, and return what was seen."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=30)
        self.sample()
        self.result.identities_seen = len(self._first_seen)
        return self.result

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self.sample()

    def sample(self) -> None:
        """One look at Redis; a Redis that does not answer is counted, not an error."""
        seconds = round(time.monotonic() - self._started, 1)
        client = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=1)
        try:
            stored_max = int(client.get(f"{self.prefix}:max_global_id") or 0)
            keys = list(client.scan_iter(f"{self.prefix}:identity:*", count=1000))
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hget(key, "first_seen")
            first_seen = pipe.execute()
        except redis.RedisError:
            self.result.unanswered += 1
            return
        finally:
            client.close()
        self.result.samples += 1
        self._record_max(seconds, stored_max)
        for key, value in zip(keys, first_seen, strict=True):
            if value is None:
                continue
            global_id = int(key.decode().rsplit(":", 1)[1])
            self._record_first_seen(seconds, global_id, float(value))

    def _record_max(self, seconds: float, stored_max: int) -> None:
        series = self.result.max_global_id_series
        if series and stored_max < series[-1][1]:
            self.result.max_global_id_decreases.append((seconds, series[-1][1], stored_max))
        if not series or stored_max != series[-1][1]:
            series.append((seconds, stored_max))

    def _record_first_seen(self, seconds: float, global_id: int, first_seen: float) -> None:
        known = self._first_seen.get(global_id)
        if known is None or first_seen < known:
            self._first_seen[global_id] = first_seen
        elif first_seen > known + 1e-3:
            move = FirstSeenMove(global_id, known, first_seen, seconds)
            self.result.first_seen_moves.append(move)
            self._first_seen[global_id] = first_seen


@dataclass
class EventCheck:
    """What the event stream holds after the scenario, and what is wrong with it."""

    entries: int = 0
    unique_events: int = 0
    redelivered: int = 0
    """Copies dropped by de-duplication on ``event_id`` (at-least-once redeliveries)."""
    conflicting_ids: list[str] = field(default_factory=list)
    """``event_id``s whose copies differ: two events shared an id."""
    runs: dict[str, int] = field(default_factory=dict)
    """``run id -> events`` (unique)."""
    missing_ids: list[str] = field(default_factory=list)
    """``run:sequence`` absent below that run's highest sequence."""
    tracks: int = 0
    track_keys_shared_by_runs: list[str] = field(default_factory=list)
    tracks_never_ended: list[str] = field(default_factory=list)
    never_ended_history: dict[str, list[str]] = field(default_factory=dict)
    """For each track never ended: ``event_id type timestamp`` of its events, in order."""
    events_by_type: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not (
            self.conflicting_ids
            or self.missing_ids
            or self.track_keys_shared_by_runs
            or self.tracks_never_ended
        )


def read_stream(
    url: str, stream: str = "crosscam:events", chunk: int = 10_000
) -> list[dict[str, str]]:
    """Every entry of ``stream``, in order, as text fields."""
    client: Any = redis.Redis.from_url(url, decode_responses=True)
    entries: list[dict[str, str]] = []
    start = "-"
    try:
        while True:
            batch: list[tuple[str, dict[str, str]]] = client.xrange(stream, min=start, count=chunk)
            entries += [fields for _, fields in batch]
            if len(batch) < chunk:
                return entries
            start = "(" + batch[-1][0]
    finally:
        client.close()


def check_events(entries: list[dict[str, Any]]) -> EventCheck:
    """Apply the checks of the module docstring to the event stream's entries."""
    check = EventCheck(entries=len(entries))
    copies: dict[str, dict[str, Any]] = {}
    for fields in entries:
        event_id = fields["event_id"]
        first = copies.setdefault(event_id, fields)
        if first is not fields:
            check.redelivered += 1
            if first != fields and event_id not in check.conflicting_ids:
                check.conflicting_ids.append(event_id)
    check.unique_events = len(copies)
    sequences: dict[str, set[int]] = defaultdict(set)
    for event_id in copies:
        run, sequence = event_id.rsplit(":", 1)
        sequences[run].add(int(sequence))
    for run in sorted(sequences):
        seen = sequences[run]
        check.runs[run] = len(seen)
        check.missing_ids += [f"{run}:{s}" for s in range(1, max(seen) + 1) if s not in seen]
    check.events_by_type = dict(Counter(fields["type"] for fields in copies.values()))
    runs_of_key: dict[str, set[str]] = defaultdict(set)
    open_count: Counter[str] = Counter()
    for event_id, fields in copies.items():
        key = f"{fields['camera_id']}:{fields['track_id']}"
        if fields["type"] == "track_started":
            runs_of_key[key].add(event_id.rsplit(":", 1)[0])
            open_count[key] += 1
        elif fields["type"] == "track_ended":
            open_count[key] -= 1
    check.tracks = len(runs_of_key)
    check.track_keys_shared_by_runs = sorted(k for k, runs in runs_of_key.items() if len(runs) > 1)
    check.tracks_never_ended = sorted(key for key, count in open_count.items() if count > 0)
    never_ended = set(check.tracks_never_ended)
    for event_id, fields in copies.items():
        key = f"{fields['camera_id']}:{fields['track_id']}"
        if key in never_ended:
            line = f"{event_id} {fields['type']} {fields.get('timestamp', '')}"
            check.never_ended_history.setdefault(key, []).append(line)
    return check
