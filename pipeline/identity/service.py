"""The identity layer as one service: the matcher plus track life-cycle bookkeeping.

The same class runs inside the single-process pipeline (``--role all``) and in the distributed
matcher (``--role matcher``), so both assign identities with exactly the same code. It turns
track starts, embedded clips and track ends into events:

- ``track_started`` when a track appears (global id ``-1``, unknown yet);
- ``identity_assigned`` / ``identity_merged`` / ``identity_split`` from the matcher;
- ``track_ended`` after the track's last clip was matched, so it carries the final global id.

A track's end can reveal that two tracks of one identity were visible at the same time in one
camera (its end time comes later than its last clip); the matcher then splits the identity, in
:meth:`IdentityService.embedded` right after the final clips, or else with the next batch.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from pipeline.clips import TrackEvent
from pipeline.config import MatchingConfig
from pipeline.events import Event, EventType
from pipeline.identity.matching import EmbeddedClip, IdentityMatcher, MatchResult, TrackKey

MATCH_LATENCY_SAMPLES = 10_000
"""Match times kept for percentiles (the newest ones)."""


class IdentityService:
    """``started(tracks)``, ``ended(tracks, keys_with_final_clip)``, ``embedded(clips)``,
    ``ended_left_open(track)``."""

    def __init__(self, config: MatchingConfig) -> None:
        self.matcher = IdentityMatcher(config)
        self._ending: dict[TrackKey, deque[Event]] = {}
        """``track_ended`` events waiting for their track's last clip, oldest first: the
        tracker can hand out one track id again after the clip buffer ended it (it found the
        person again), so one key may end twice before the first last clip is matched."""
        self.match_latency_ms: deque[float] = deque(maxlen=MATCH_LATENCY_SAMPLES)
        """The latest batches' match times (bounded: a 24/7 matcher must not grow)."""
        self.match_seconds_total = 0.0
        """Time spent matching since the service started, all batches."""

    def started(self, tracks: list[TrackEvent]) -> list[Event]:
        return [self._track_event(EventType.TRACK_STARTED, track) for track in tracks]

    def ended(self, tracks: list[TrackEvent], keys_with_final_clip: set[TrackKey]) -> list[Event]:
        """Events for ended tracks; those with a last clip in flight wait for it."""
        events = []
        for track in tracks:
            key = (track.camera_id, track.track_id)
            event = self._track_event(EventType.TRACK_ENDED, track)
            if key in keys_with_final_clip:
                self._ending.setdefault(key, deque()).append(event)
            else:
                self.matcher.end_track(track.camera_id, track.track_id, track.timestamp, track.box)
                event.global_id = self.matcher.global_id_of(*key)
                events.append(event)
        return events

    def ended_left_open(self, track: TrackEvent) -> list[Event]:
        """The end of a track an earlier run of its edge left open (killed), at its last known
        box and time. An end of that run still waiting for a last clip that will never come is
        published instead; else one ``track_ended`` marked ``left_open``, which the publisher
        adds only while the track is open (``pipeline/track_ledger.py``)."""
        key = (track.camera_id, track.track_id)
        waiting = self._ending.pop(key, None)
        if waiting:
            for event in waiting:
                self.matcher.end_track(*key, event.timestamp, event.bbox)
                event.global_id = self.matcher.global_id_of(*key)
            return list(waiting)
        events = self.ended([track], set())
        for event in events:
            event.left_open = True
        return events

    def embedded(self, embedded: list[EmbeddedClip]) -> MatchResult:
        """Match a batch of embedded clips; deferred ``track_ended`` events follow their clip."""
        started = time.monotonic()
        result = self.matcher.update(embedded)
        ended = []
        for item in embedded:
            if not item.clip.final:
                continue
            key = item.key
            self.matcher.end_track(key[0], key[1], item.clip.last_timestamp, item.clip.last_box)
            waiting = self._ending.get(key)
            if waiting:
                ended.append(waiting.popleft())
                if not waiting:
                    del self._ending[key]
        self.matcher.check_splits(result)  # before the ends, so they carry the id after a split
        for event in ended:
            event.global_id = self.matcher.global_id_of(event.camera_id, event.track_id)
            result.events.append(event)
        if embedded:
            elapsed = time.monotonic() - started
            self.match_latency_ms.append(elapsed * 1000.0)
            self.match_seconds_total += elapsed
        return result

    def pending_ends(self) -> list[Event]:
        """Ended tracks whose last clip never arrived (shutdown): publish them as they are."""
        events = [event for waiting in self._ending.values() for event in waiting]
        self._ending.clear()
        for event in events:
            event.global_id = self.matcher.global_id_of(event.camera_id, event.track_id)
        return events

    def _track_event(self, event_type: EventType, track: TrackEvent) -> Event:
        return Event(
            type=event_type,
            camera_id=track.camera_id,
            track_id=track.track_id,
            global_id=self.matcher.global_id_of(track.camera_id, track.track_id),
            bbox=np.asarray(track.box, dtype=np.float32),
            frame_index=track.frame_index,
            timestamp=track.timestamp,
            score=track.confidence,
            captured_at=track.captured_at,
        )
