"""Publishing on a thread of its own, so a slow or unreachable Redis never holds up the loop.

:class:`AsyncPublisher` wraps the run's :class:`~pipeline.publish.RedisPublisher`: ``publish``
snapshots the changed identities (the matcher goes on changing them), puts the batch on a
bounded queue and returns; one thread takes the batches in order, queues them in the publisher
(which numbers the events) and sends. Only that thread touches the publisher, in the order the
loop published, so the guarantees of ``pipeline/publish.py`` hold as they are: events in order,
spooled to disk while Redis is down and replayed before any newer one, identity snapshots
coalesced. Batches that wait while a send is in flight go out together in the next send.

The queue holds at most ``max_queued_batches`` batches (a few per tick); beyond that
``publish`` waits for room, so memory stays bounded even if sending stalls (a send waits at
most the socket timeout, then the publisher spools and retries later without blocking).
Events sent are reported through ``on_sent(events, send_ms, sent_at)`` from the thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pipeline.identity import Identity
from pipeline.publish import (
    IdentityFields,
    PublisherCounters,
    RedisPublisher,
    StreamRecord,
    identity_snapshots,
)

logger = logging.getLogger(__name__)


@dataclass
class _Batch:
    events: Sequence[StreamRecord]
    identities: dict[int, IdentityFields]
    removed: list[int] | None
    after_send: Callable[[float], None] | None = None


@dataclass
class _Stop:
    """Every batch before it is sent: the thread ends."""


@dataclass
class _Call:
    """Something only the thread may do with the publisher, waited for by the caller."""

    run: Callable[[RedisPublisher], object]
    done: threading.Event = field(default_factory=threading.Event)
    result: object = None


class AsyncPublisher:
    """``publish(events, changed, removed)`` returns at once; see the module docstring.

    Offers what the runner, the console and ``/metrics`` use of a :class:`RedisPublisher`:
    ``describe_run``, ``flush``, ``close``, ``counters``, ``connected``, ``buffered_events``.
    """

    def __init__(
        self,
        publisher: RedisPublisher,
        on_sent: Callable[[list[StreamRecord], float, float], None] | None = None,
        max_queued_batches: int = 1024,
    ) -> None:
        self.publisher = publisher
        self.on_sent = on_sent
        self._queue: queue.Queue[_Batch | _Call | _Stop] = queue.Queue(max(1, max_queued_batches))
        self._queued_events = 0
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()

    @property
    def counters(self) -> PublisherCounters:
        return self.publisher.counters

    @property
    def connected(self) -> bool:
        return self.publisher.connected

    @property
    def buffered_events(self) -> int:
        """Events not yet in Redis: waiting for the thread, in memory, or in the spool."""
        with self._lock:
            queued = self._queued_events
        return queued + self.publisher.buffered_events

    def publish(
        self,
        events: Sequence[StreamRecord],
        changed: list[Identity] | None = None,
        removed: list[int] | None = None,
        after_send: Callable[[float], None] | None = None,
    ) -> list[StreamRecord]:
        """Hand the batch to the thread; always ``[]`` (events sent go to ``on_sent``).
        ``after_send(sent_at)`` is called from the thread after the send that tried it.

        Raises what the thread raised, if it failed (a full disk under the spool)."""
        self._raise_failure()
        idle = not events and not changed and not removed and after_send is None
        if idle and self._queue.qsize() > 0:
            return []  # an idle tick's retry: the thread is busy anyway
        with self._lock:
            self._queued_events += len(events)
        self._put(_Batch(list(events), identity_snapshots(changed), removed, after_send))
        return []

    def describe_run(self, fields: dict[str, str]) -> None:
        self._put(_Call(lambda publisher: publisher.describe_run(fields)))

    def flush(self, timeout_seconds: float = 5.0) -> bool:
        """Wait for every queued batch, then try to send everything buffered until
        ``timeout_seconds``; True when all was sent."""
        call = _Call(lambda publisher: publisher.flush(timeout_seconds))
        self._put(call)
        while not call.done.wait(timeout=0.1):
            if not self._thread.is_alive():
                break
        self._raise_failure()
        return bool(call.result)

    def close(self) -> None:
        """Stop the thread after what is queued (not flushed: call :meth:`flush` first)."""
        if self._thread.is_alive():
            self._put(_Stop())
            self._thread.join(timeout=30.0)
        self.publisher.close()

    def _put(self, item: _Batch | _Call | _Stop) -> None:
        while True:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                self._raise_failure()
                if not self._thread.is_alive():
                    return

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise RuntimeError("the publisher thread failed") from self._error

    def _run(self) -> None:
        try:
            while True:
                item: _Batch | _Call | _Stop | None = self._queue.get()
                if isinstance(item, _Batch):
                    staged: list[_Batch] = []
                    while isinstance(item, _Batch):  # what waited goes out in one send
                        self._stage(item)
                        staged.append(item)
                        try:
                            item = self._queue.get_nowait()
                        except queue.Empty:
                            item = None
                    sent_at = self._send()
                    for batch in staged:
                        if batch.after_send is not None:
                            batch.after_send(sent_at)
                if isinstance(item, _Stop):
                    return
                if isinstance(item, _Call):
                    item.result = item.run(self.publisher)
                    item.done.set()
        except BaseException as error:  # raised again in the loop by the next publish
            logger.exception("publisher thread failed")
            self._error = error

    def _stage(self, batch: _Batch) -> None:
        self.publisher.stage(batch.events, batch.identities, batch.removed)
        with self._lock:
            self._queued_events -= len(batch.events)

    def _send(self) -> float:
        """Send what is staged; the time it finished."""
        started = time.monotonic()
        sent = self.publisher.send_staged()
        finished = time.monotonic()
        if self.on_sent is not None:
            self.on_sent(sent, (finished - started) * 1000.0, finished)
        return finished
