"""Whole-track passes in a process of their own, so matching never waits for one.

A pass over the last minutes of tracks takes a second or more (learning homographies,
clustering); the clip matcher handles a clip in a fraction of a millisecond. Run inline, every
pass stalls matching, publishing and (in the single process) the detector loop. A
:class:`PassWorker` hands the window to one child process instead (``spawn``: the child
imports only the identity layer, never the detector or encoder) and hands the result back
when it is ready; the caller polls it between batches and reconciles the live gallery then
(:mod:`.online`). The child runs at a lower CPU priority than the loop (``nice`` 10). Tracks
and pieces cross the process boundary as a few flat arrays
(:class:`~pipeline.identity.track_log.PackedRecords`), not one object per box.

A result describes the window when it was handed over; the clips matched meanwhile keep the
identities the matcher gave them until the next pass. One pass is in flight at a time.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import queue
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess

from pipeline.config import IdentityConfig
from pipeline.identity.homography import ViewHomography
from pipeline.identity.refine import Refinement, refine_identities
from pipeline.identity.track_log import PackedRecords, TrackLog

logger = logging.getLogger(__name__)


@dataclass
class PassResult:
    """A finished pass.

    Attributes:
        refinement: the pass's outcome (pieces unpacked in this process).
        newest: the newest footage timestamp of the window it was given (seconds).
        relearned: whether it was asked to learn the homographies again.
        seconds: how long the child worked on it.
    """

    refinement: Refinement
    newest: float
    relearned: bool
    seconds: float


class PassWorker:
    """``submit(window, settings, given, ...)`` when ``idle``; ``collect()`` returns the
    finished pass once (None while it runs); ``close()`` at the end.

    The child is one plain process fed through two queues (their feeder threads mean neither
    side ever blocks on a send). Every pass carries a number, so a result that arrives after
    it was discarded or given up on is recognised and dropped. A child that dies (killed from
    outside: an OOM kill, a signal to the whole control group) is noticed by its exit code,
    its pass is dropped with a warning, and the next pass starts a new child.
    """

    def __init__(self, finish_timeout_seconds: float = 30.0) -> None:
        self.finish_timeout_seconds = finish_timeout_seconds
        """How long ``collect(wait=True)`` waits (a child killed from outside never answers)."""
        self._child: SpawnProcess | None = None
        self._inbox: multiprocessing.Queue[_Request | None] | None = None
        self._outbox: multiprocessing.Queue[_Reply] | None = None
        self._numbers = itertools.count(1)
        self._in_flight: int | None = None
        self._finished: _Reply | None = None
        self._submitted: tuple[float, bool] = (0.0, False)

    def start(self, wait: bool = False) -> None:
        """Start the child now (else at the first pass); ``wait``: until it is ready (its
        imports done), as a long-running matcher's is before its first pass."""
        if self._child is None or not self._child.is_alive():
            self._stop_child()
            context = multiprocessing.get_context("spawn")
            self._inbox = context.Queue()
            self._outbox = context.Queue()
            self._child = context.Process(
                target=_serve,
                args=(self._inbox, self._outbox),
                name="crosscam-identity-pass",
                daemon=True,
            )
            self._child.start()
        if wait:
            number = next(self._numbers)
            assert self._inbox is not None
            self._inbox.put(_Request(number, None))
            self._receive(number, self.finish_timeout_seconds)

    @property
    def idle(self) -> bool:
        """No pass in flight (a finished one not yet collected counts as in flight)."""
        return self._in_flight is None

    @property
    def finished(self) -> bool:
        """The pass in flight has ended (:meth:`collect` returns it without waiting)."""
        if self._in_flight is None:
            return False
        if self._finished is None:
            self._finished = self._receive(self._in_flight, 0.0)
        return self._finished is not None or not self._child_alive()

    def submit(
        self,
        window: TrackLog,
        settings: IdentityConfig,
        given: dict[tuple[int, int], ViewHomography],
        newest: float,
        relearn: bool,
    ) -> None:
        """Start a pass over ``window``'s tracks (``given``: homographies not to learn)."""
        if self._in_flight is not None:
            raise RuntimeError("a whole-track pass is already in flight")
        self.start()
        assert self._inbox is not None
        packed = PackedRecords.pack(list(window.records.values()))
        number = next(self._numbers)
        self._inbox.put(_Request(number, (packed, settings, given)))
        self._in_flight = number
        self._finished = None
        self._submitted = (newest, relearn)

    def collect(self, wait: bool = False) -> PassResult | None:
        """The finished pass (once), or None while it runs (``wait``: block until it ends, at
        most ``finish_timeout_seconds``). A pass that failed in the child, did not end in
        time, or whose child died, is logged and dropped."""
        number = self._in_flight
        if number is None:
            return None
        reply = self._finished
        if reply is None:
            reply = self._receive(number, self.finish_timeout_seconds if wait else 0.0)
        if reply is None:
            if self._child_alive() and not wait:
                return None
            if self._child_alive():
                logger.warning(
                    "the identity pass in flight did not end within %.0f s; dropped",
                    self.finish_timeout_seconds,
                )
            else:
                logger.warning(
                    "the identity pass worker process ended (exit code %s); its pass is "
                    "dropped and the next pass starts a new one",
                    None if self._child is None else self._child.exitcode,
                )
            self._in_flight = None
            return None
        self._in_flight = None
        self._finished = None
        if reply.error is not None:
            logger.error("the identity pass failed in its worker process; skipped\n%s", reply.error)
            return None
        assert reply.outcome is not None
        packed_pieces, refinement, seconds = reply.outcome
        pieces = packed_pieces.unpack()
        refinement.pieces = {piece.piece_key: piece for piece in pieces}
        newest, relearn = self._submitted
        return PassResult(refinement, newest, relearn, seconds)

    def discard(self) -> None:
        """Forget the pass in flight (the child still finishes it; its result is dropped)."""
        self._in_flight = None
        self._finished = None

    def close(self) -> None:
        """Stop the child at once (a pass still in flight is dropped, not waited for)."""
        self._stop_child(politely=self._in_flight is None)
        self._in_flight = None
        self._finished = None

    def _child_alive(self) -> bool:
        return self._child is not None and self._child.is_alive()

    def _receive(self, number: int, timeout_seconds: float) -> _Reply | None:
        """The reply to request ``number``, waiting at most ``timeout_seconds`` (replies to
        older, discarded requests are dropped on the way); None when none came in time or the
        child died."""
        if self._outbox is None:
            return None
        deadline = time.monotonic() + timeout_seconds
        while True:
            remaining = deadline - time.monotonic()
            try:
                # Short waits, so a dead child is noticed within a fraction of a second.
                reply = self._outbox.get(timeout=min(max(remaining, 0.0), 0.2))
            except (queue.Empty, EOFError, OSError):  # nothing yet, or a child killed mid-send
                if remaining <= 0 or not self._child_alive():
                    return None
                continue
            if reply.number == number:
                return reply

    def _stop_child(self, politely: bool = True) -> None:
        """Ask the child to stop (``politely``: an idle child), else or when it does not,
        terminate and then kill it; never blocks more than a few seconds (a dead child's
        queues are abandoned, not flushed)."""
        child, inbox, outbox = self._child, self._inbox, self._outbox
        self._child = self._inbox = self._outbox = None
        if child is not None:
            if politely and child.is_alive() and inbox is not None:
                inbox.put(None)
                child.join(_STOP_GRACE_SECONDS)
            if child.is_alive():
                child.terminate()
                child.join(_STOP_GRACE_SECONDS)
            if child.is_alive():
                child.kill()
                child.join(_STOP_GRACE_SECONDS)
            if not child.is_alive():
                child.close()
        for channel in (inbox, outbox):
            if channel is not None:
                channel.cancel_join_thread()
                channel.close()


_STOP_GRACE_SECONDS = 2.0


@dataclass
class _Request:
    """Pass ``number``'s input (None: just answer, the child is ready)."""

    number: int
    work: tuple[PackedRecords, IdentityConfig, dict[tuple[int, int], ViewHomography]] | None


@dataclass
class _Reply:
    """The child's answer to request ``number``: the outcome, or the failure's traceback."""

    number: int
    outcome: tuple[PackedRecords, Refinement, float] | None
    error: str | None = None


def _serve(
    inbox: multiprocessing.Queue[_Request | None],
    outbox: multiprocessing.Queue[_Reply],
) -> None:
    """The child's loop: one request at a time until a None (or the parent's end)."""
    _start_child()
    while True:
        request = inbox.get()
        if request is None:
            return
        if request.work is None:
            outbox.put(_Reply(request.number, None))
            continue
        try:
            outcome = _refine_packed(*request.work)
        except Exception:  # reported to the parent, which logs it and goes on
            outbox.put(_Reply(request.number, None, traceback.format_exc()))
        else:
            outbox.put(_Reply(request.number, outcome))


def _refine_packed(
    packed: PackedRecords,
    settings: IdentityConfig,
    given: dict[tuple[int, int], ViewHomography],
) -> tuple[PackedRecords, Refinement, float]:
    """In the child: the pass over the unpacked tracks, its pieces packed for the way back."""
    started = time.monotonic()
    log = TrackLog()
    log.records = {record.key: record for record in packed.unpack()}
    refinement = refine_identities(log, settings, given)
    pieces = PackedRecords.pack(list(refinement.pieces.values()))
    refinement.pieces = {}
    return pieces, refinement, time.monotonic() - started


def _start_child() -> None:
    """In the child, once: deaf to Ctrl-C (a terminal sends SIGINT to the whole process group;
    the parent stops the child itself, after flushing what is in flight), and below the
    matching loop in CPU priority (a pass is background work; matching and detection are what
    a user waits for)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(10)
    except OSError:  # not permitted here: same priority
        logger.debug("could not lower the identity pass worker's priority")
