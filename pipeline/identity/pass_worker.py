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

import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.pool import AsyncResult, Pool

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
    finished pass once (None while it runs); ``close()`` at the end."""

    def __init__(self, finish_timeout_seconds: float = 30.0) -> None:
        self.finish_timeout_seconds = finish_timeout_seconds
        """How long ``collect(wait=True)`` waits (a child killed from outside never answers)."""
        self._pool: Pool | None = None
        self._future: AsyncResult[tuple[PackedRecords, Refinement, float]] | None = None
        self._submitted: tuple[float, bool] = (0.0, False)

    def start(self, wait: bool = False) -> None:
        """Start the child now (else at the first pass); ``wait``: until it is ready (its
        imports done), as a long-running matcher's is before its first pass."""
        if self._pool is None:
            self._pool = multiprocessing.get_context("spawn").Pool(
                processes=1, initializer=_start_child
            )
        if wait:
            self._pool.apply(_ready)

    @property
    def idle(self) -> bool:
        """No pass in flight (a finished one not yet collected counts as in flight)."""
        return self._future is None

    @property
    def finished(self) -> bool:
        """The pass in flight has ended (:meth:`collect` returns it without waiting)."""
        return self._future is not None and self._future.ready()

    def submit(
        self,
        window: TrackLog,
        settings: IdentityConfig,
        given: dict[tuple[int, int], ViewHomography],
        newest: float,
        relearn: bool,
    ) -> None:
        """Start a pass over ``window``'s tracks (``given``: homographies not to learn)."""
        if self._future is not None:
            raise RuntimeError("a whole-track pass is already in flight")
        self.start()
        assert self._pool is not None
        packed = PackedRecords.pack(list(window.records.values()))
        self._future = self._pool.apply_async(_refine_packed, (packed, settings, given))
        self._submitted = (newest, relearn)

    def collect(self, wait: bool = False) -> PassResult | None:
        """The finished pass (once), or None while it runs (``wait``: block until it ends, at
        most ``finish_timeout_seconds``). A pass that failed in the child, or did not end in
        time (its child killed from outside), is logged and dropped."""
        future = self._future
        if future is None:
            return None
        if wait:
            future.wait(self.finish_timeout_seconds)
        if not future.ready():
            if wait:
                logger.warning(
                    "the identity pass in flight did not end within %.0f s; dropped",
                    self.finish_timeout_seconds,
                )
                self._future = None
            return None
        self._future = None
        try:
            packed_pieces, refinement, seconds = future.get()
        except Exception:
            logger.exception("the identity pass failed in its worker process; skipped")
            return None
        pieces = packed_pieces.unpack()
        refinement.pieces = {piece.piece_key: piece for piece in pieces}
        newest, relearn = self._submitted
        return PassResult(refinement, newest, relearn, seconds)

    def discard(self) -> None:
        """Forget the pass in flight (the child still finishes it; its result is dropped)."""
        self._future = None

    def close(self) -> None:
        """Stop the child at once (a pass still in flight is dropped, not waited for)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        self._future = None


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


def _ready() -> bool:
    return True
