"""Where a run's tracks and embedded clips go: matched here, or sent to the matchers.

A single-process run (``--role all``, the default) matches every embedded clip against its
own gallery and publishes identity events (:class:`LocalIdentity`). An edge (``--role
edge``) matches nothing: it sends each track's start, clips (with the boxes since its
previous message) and end on the clip stream, and distributed matchers do the rest
(:class:`ClipStream`, ``pipeline/matcher_role.py``). :class:`~pipeline.runner.Pipeline` runs
the same loop for both and hands what it has to its sink; what comes back is published in
order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from pipeline.clip_messages import (
    clip_message,
    ended_message,
    left_open_message,
    reconnected_message,
    started_message,
)
from pipeline.clips import TrackEvent
from pipeline.config import RedisConfig
from pipeline.events import Event
from pipeline.identity import EmbeddedClip, IdentityService, MatchResult, TrackKey, restore_gallery
from pipeline.publish import StreamRecord
from pipeline.reconnect import ReconnectContinuity
from pipeline.records import FrameDetections
from pipeline.track_boxes import BoxHistory


class TrackSink(Protocol):
    """What the loop hands on, and what it publishes back."""

    matches: bool
    """Matches clips here (a gallery, identity passes, an end-of-run reconcile)."""
    left_open_action: str
    """How the tracks a killed run left open are ended (for the log line)."""

    def restore(self, should_stop: Callable[[], bool]) -> bool:
        """Ready to run (a stored gallery read, waiting for Redis); False if it never was."""
        ...

    def observe(self, tracked: FrameDetections) -> None:
        """One camera's tracked boxes of a frame."""
        ...

    def reconnected(self, cameras: Sequence[tuple[int, float]]) -> list[StreamRecord]:
        """Every tick: the cameras that reconnected since the last, with their outage (s)."""
        ...

    def left_open(self, ends: Sequence[Event]) -> list[StreamRecord]:
        """The ``track_ended`` events of a killed run's open tracks."""
        ...

    def tracks(
        self,
        started: Sequence[TrackEvent],
        ended: Sequence[TrackEvent],
        final_keys: set[TrackKey],
    ) -> list[StreamRecord]:
        """Tracks that started and ended this tick (``final_keys``: those ending with a final
        clip still to come)."""
        ...

    def clips(self, embedded: Sequence[EmbeddedClip]) -> tuple[list[StreamRecord], MatchResult]:
        """Embedded clips (non-empty): the records to publish and what matching changed
        (empty for a sink that does not match)."""
        ...

    def pending_ends(self) -> list[StreamRecord]:
        """At shutdown: ends still waiting for a final clip."""
        ...


class LocalIdentity:
    """The single process: clips matched against this run's gallery (``IdentityService``),
    re-association widened after a camera reconnects."""

    matches = True
    left_open_action = "publishing their track_ended"

    def __init__(self, identity: IdentityService, redis_url: str, redis: RedisConfig) -> None:
        self.identity = identity
        self.continuity = ReconnectContinuity(identity.matcher.config)
        self.redis_url = redis_url
        self.redis = redis

    def restore(self, should_stop: Callable[[], bool]) -> bool:
        return restore_gallery(self.redis_url, self.redis, self.identity.matcher, should_stop)

    def observe(self, tracked: FrameDetections) -> None:
        return None

    def reconnected(self, cameras: Sequence[tuple[int, float]]) -> list[StreamRecord]:
        for camera_id, outage_seconds in cameras:
            self.continuity.camera_reconnected(camera_id, outage_seconds)
        self.continuity.refresh()
        return []

    def left_open(self, ends: Sequence[Event]) -> list[StreamRecord]:
        return list(ends)

    def tracks(
        self,
        started: Sequence[TrackEvent],
        ended: Sequence[TrackEvent],
        final_keys: set[TrackKey],
    ) -> list[StreamRecord]:
        records: list[StreamRecord] = [*self.identity.started(list(started))]
        records += self.identity.ended(list(ended), final_keys)
        return records

    def clips(self, embedded: Sequence[EmbeddedClip]) -> tuple[list[StreamRecord], MatchResult]:
        result = self.identity.embedded(list(embedded))
        return list(result.events), result

    def pending_ends(self) -> list[StreamRecord]:
        return list(self.identity.pending_ends())


class ClipStream:
    """An edge: started, clip (with the boxes since the track's previous message) and ended
    messages on the clip stream, for the distributed matchers."""

    matches = False
    left_open_action = "sending their ended messages to the matchers"

    def __init__(self, edge_name: str) -> None:
        self.edge_name = edge_name
        self.box_history = BoxHistory()

    def restore(self, should_stop: Callable[[], bool]) -> bool:
        return True  # the matchers hold the gallery

    def observe(self, tracked: FrameDetections) -> None:
        self.box_history.update(tracked)

    def reconnected(self, cameras: Sequence[tuple[int, float]]) -> list[StreamRecord]:
        return [reconnected_message(self.edge_name, *item) for item in cameras]

    def left_open(self, ends: Sequence[Event]) -> list[StreamRecord]:
        return [left_open_message(self.edge_name, event) for event in ends]

    def tracks(
        self,
        started: Sequence[TrackEvent],
        ended: Sequence[TrackEvent],
        final_keys: set[TrackKey],
    ) -> list[StreamRecord]:
        records: list[StreamRecord] = [started_message(self.edge_name, t) for t in started]
        records += [
            ended_message(
                self.edge_name,
                track,
                (track.camera_id, track.track_id) in final_keys,
                self.box_history.take(track.camera_id, track.track_id),
            )
            for track in ended
        ]
        return records

    def clips(self, embedded: Sequence[EmbeddedClip]) -> tuple[list[StreamRecord], MatchResult]:
        records: list[StreamRecord] = [
            clip_message(
                self.edge_name,
                item,
                self.box_history.take(item.clip.camera_id, item.clip.track_id),
            )
            for item in embedded
        ]
        return records, MatchResult()

    def pending_ends(self) -> list[StreamRecord]:
        return []
