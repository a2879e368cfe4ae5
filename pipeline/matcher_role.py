"""``run.py --role matcher``: assigns global identities for clips sent by any number of edges.

Matchers read the clip stream (``crosscam:clips``, see ``pipeline/clip_messages.py``) through
the consumer group ``matchers`` and run the same :class:`IdentityService` as the single-process
pipeline. One gallery must see every clip in order, so one matcher is active at a time: it holds
a leader lease in Redis (``<prefix>:matcher:leader``, renewed every second); the others wait as
hot standbys. A matcher that becomes leader first claims the entries other consumers left
pending (a killed matcher loses no clip), restores the gallery from Redis, then reads new
entries. Entries are acknowledged only after their events were handed to the publisher. An
edge's ``reconnected`` message widens same-camera re-association for a while, as in the
single-process pipeline (``pipeline/reconnect.py``); its ``ended`` messages marked
``left_open`` (sent at its start for tracks a killed run of it left open) become one
``track_ended`` each (``pipeline/track_ledger.py``). The leader also runs the whole-track
passes on the boxes edges send (``pipeline/matcher_passes.py``): each at the stream position
where it falls due (after the clips before it were matched), its merges and splits published
with that batch's events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

from pipeline.clip_messages import ClipMessage, parse_message
from pipeline.config import CrosscamConfig
from pipeline.events import Event
from pipeline.identity import EmbeddedClip, IdentityService, MatchResult, restore_gallery
from pipeline.matcher_passes import MatcherPasses
from pipeline.publish import build_publisher
from pipeline.reconnect import ReconnectContinuity

logger = logging.getLogger(__name__)

GROUP = "matchers"

Result = TypeVar("Result")


@dataclass
class MatcherCounters:
    messages: int = 0
    clips: int = 0
    claimed: int = 0
    batches: int = 0
    passes: int = 0
    """Whole-track passes run (``pipeline/matcher_passes.py``)."""


class DistributedMatcher:
    """One matcher process: ``run()`` until ``stop()`` or, if set, an idle timeout."""

    def __init__(
        self,
        config: CrosscamConfig,
        redis_url: str,
        consumer: str,
        run_id: str,
        lease_seconds: float = 5.0,
        batch_size: int = 256,
        defer_passes_when_behind: bool = True,
    ) -> None:
        """``defer_passes_when_behind``: see ``pipeline/matcher_passes.py``."""
        self.config = config
        self.redis_url = redis_url
        self.consumer = consumer
        self.lease_seconds = lease_seconds
        self.batch_size = batch_size
        self.stream = config.redis.clip_stream
        self.leader_key = f"{config.redis.key_prefix}:matcher:leader"
        # the matcher's own copy of the matching config: reconnects widen re-association
        self.identity = IdentityService(config.matching.model_copy())
        self.continuity = ReconnectContinuity(self.identity.matcher.config)
        self.passes = MatcherPasses(config, defer_passes_when_behind)
        self.publisher = build_publisher(config, redis_url, run_id)
        self.counters = MatcherCounters()
        self.on_batch: Callable[[DistributedMatcher], None] | None = None
        self._client: Any = redis.Redis.from_url(redis_url, socket_timeout=5, decode_responses=True)
        self._stop = threading.Event()
        self._leading = False

    def stop(self) -> None:
        self._stop.set()

    def run(self, idle_exit_seconds: float | None = None) -> MatcherCounters:
        """Process clip messages; return when stopped or idle for ``idle_exit_seconds``."""
        self._ensure_group()
        last_activity = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    if not self._hold_lease():
                        self._stop.wait(1.0)
                        continue
                    entries = self._read()
                except redis.RedisError as error:
                    logger.warning("matcher: Redis error %s; retrying", error.__class__.__name__)
                    self._leading = False
                    self._stop.wait(1.0)
                    continue
                self.continuity.refresh()
                if entries:
                    self._process(entries)
                    last_activity = time.monotonic()
                    continue
                idle_seconds = time.monotonic() - last_activity
                if idle_exit_seconds is not None and idle_seconds >= idle_exit_seconds:
                    break
                self._reconcile_finished_pass()
                self.publisher.publish([])  # retries spooled events while idle
        finally:
            self._shutdown()
        return self.counters

    def _ensure_group(self) -> None:
        try:
            self._client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def _hold_lease(self) -> bool:
        """Take or renew the leader lease; on taking it, claim pending entries and restore."""
        milliseconds = int(self.lease_seconds * 1000)
        if self._leading:
            if self._renew_lease():
                return True
            logger.warning("matcher %s lost the leader lease", self.consumer)
            self._leading = False
            return False
        if not self._client.set(self.leader_key, self.consumer, nx=True, px=milliseconds):
            return False
        self._leading = True
        logger.info("matcher %s is the leader", self.consumer)
        restore_gallery(self.redis_url, self.config.redis, self.identity.matcher, self._stop.is_set)
        self.passes.reset()
        self._claim_pending()
        return True

    def _renew_lease(self) -> bool:
        """Extend the lease this matcher holds; False when it no longer holds it."""
        renewed = self._client.eval(
            "if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end",
            1,
            self.leader_key,
            self.consumer,
            int(self.lease_seconds * 1000),
        )
        return bool(renewed)

    def _holding_lease(self, work: Callable[[], Result]) -> Result:
        """``work()`` (a whole-track pass) with the lease renewed while it runs (every second,
        or a third of the lease if shorter): a pass over a busy window can outlast the lease,
        and a standby must not take over from a matcher that is alive and working."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(min(1.0, self.lease_seconds / 3)):
                try:
                    if not self._renew_lease():
                        return
                except redis.RedisError:
                    logger.debug("could not renew the leader lease during a pass")

        keeper = threading.Thread(target=renew, name="lease-keeper", daemon=True)
        keeper.start()
        try:
            return work()
        finally:
            done.set()
            keeper.join()

    def _claim_pending(self) -> None:
        """Take over the entries other (dead) consumers read but never acknowledged."""
        start = "0-0"
        while True:
            reply = self._client.xautoclaim(
                self.stream, GROUP, self.consumer, min_idle_time=0, start_id=start, count=500
            )
            start, entries = reply[0], reply[1]
            if entries:
                self.counters.claimed += len(entries)
                logger.info("matcher %s claimed %d pending clips", self.consumer, len(entries))
                self._process(entries)
            if start == "0-0" or not entries:
                return

    def _read(self) -> list[tuple[str, dict[str, str]]]:
        own_pending = self._client.xreadgroup(
            GROUP, self.consumer, {self.stream: "0"}, count=self.batch_size
        )
        if own_pending and own_pending[0][1]:
            return list(own_pending[0][1])
        reply = self._client.xreadgroup(
            GROUP, self.consumer, {self.stream: ">"}, count=self.batch_size, block=500
        )
        return list(reply[0][1]) if reply else []

    def _process(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Run the identity service over entries in stream order, publish, then acknowledge."""
        events: list[Event] = []
        changed: dict[int, Any] = {}
        removed: list[int] = []
        clips: list[EmbeddedClip] = []
        behind = len(entries) >= self.batch_size  # a full read: more are waiting

        def match_clips() -> None:
            if clips:
                result = self.identity.embedded(clips)
                _collect(result, events, changed, removed)
                self.counters.clips += len(clips)
                clips.clear()

        def refine() -> None:
            match_clips()
            result = self._pass_step()
            if result is not None:
                _collect(result, events, changed, removed)
                self.counters.passes += 1

        for _entry_id, fields in entries:
            message: ClipMessage = parse_message(fields)
            self.passes.log(message)
            track = message.track
            if message.kind == "clip" and message.embedded is not None:
                clips.append(message.embedded)
            elif message.kind == "started":
                match_clips()
                events += self.identity.started([track])
            elif message.kind == "reconnected":
                match_clips()
                self.continuity.camera_reconnected(track.camera_id, message.outage_seconds)
            elif message.left_open:  # a restarted edge ends what its killed run left open
                match_clips()
                events += self.identity.ended_left_open(track)
            else:
                match_clips()
                key = {(track.camera_id, track.track_id)} if message.has_final_clip else set()
                events += self.identity.ended([track], key)
            if message.boxes is not None and self.passes.due(behind):
                refine()
        if self.passes.due(behind):  # a background pass finished meanwhile
            refine()
        match_clips()
        self.publisher.publish(events, list(changed.values()), removed)
        self._client.xack(self.stream, GROUP, *[entry_id for entry_id, _ in entries])
        self.counters.messages += len(entries)
        self.counters.batches += 1
        if self.on_batch is not None:
            self.on_batch(self)

    def _reconcile_finished_pass(self) -> None:
        """Publish what a background pass that finished while no messages came changed."""
        if not self.passes.due():
            return
        result = self._pass_step()
        if result is not None:
            self.counters.passes += 1
            self.publisher.publish(result.events, result.changed, result.removed)

    def _pass_step(self) -> MatchResult | None:
        """:meth:`MatcherPasses.refine`; an inline pass with the lease renewed meanwhile (a
        background one only hands over or reconciles: quick)."""
        if self.passes.in_background:
            return self.passes.refine(self.identity.matcher)
        return self._holding_lease(lambda: self.passes.refine(self.identity.matcher))

    def _shutdown(self) -> None:
        self.publisher.publish(self.identity.pending_ends())
        final = None
        if self._leading:
            settled = self._holding_lease(lambda: self.passes.settle(self.identity.matcher))
            if settled is not None:
                self.counters.passes += 1
                self.publisher.publish(settled.events, settled.changed, settled.removed)
            final = self._holding_lease(lambda: self.passes.final(self.identity.matcher))
        if final is not None:
            self.publisher.publish(final.events, final.changed, final.removed)
        if not self.publisher.flush():
            logger.error("matcher: %d events left in the spool", self.publisher.buffered_events)
        self.publisher.close()
        if self._leading:
            try:
                self._client.eval(
                    "if redis.call('get', KEYS[1]) == ARGV[1] then "
                    "return redis.call('del', KEYS[1]) else return 0 end",
                    1,
                    self.leader_key,
                    self.consumer,
                )
            except redis.RedisError:
                logger.debug("could not release the leader lease")
        self._client.close()


def _collect(
    result: MatchResult, events: list[Event], changed: dict[int, Any], removed: list[int]
) -> None:
    events.extend(result.events)
    for identity in result.changed:
        changed[identity.global_id] = identity
    for global_id in result.removed:
        changed.pop(global_id, None)
        removed.append(global_id)
