"""Detection ahead of the loop: the next batch is gathered and detected on a thread of its own.

The loop (``pipeline/runner.py``; the per-batch step in ``pipeline/batch_step.py``) tracks,
clips, matches and publishes batch ``n`` while this thread gathers and detects batch ``n + 1``
(ONNX Runtime, TensorRT and torch release the GIL during inference, so the two overlap in one
process). At most ``depth`` detected batches wait in a bounded queue (each holds at most one
frame per camera), and they come out in the order they were gathered, so every camera's frames
keep their order and the loop sees exactly the batches the serial loop would.

The thread pauses when gathering gives nothing (every camera ended) or when ``interrupted``
says so before a gather (a stop or reload request, the time limit): it hands the loop a pause
(``next() -> None``) behind the batches already detected, and waits. The loop then ends the
run, or applies the reload while no frame is being gathered and calls :meth:`resume`: the
same decisions, at the same points of the frame sequence, as the serial loop.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.records import Frame, FrameDetections

logger = logging.getLogger(__name__)


@dataclass
class _Paused:
    """The thread stopped gathering until :meth:`DetectionAhead.resume`."""


@dataclass
class _Failed:
    """Gathering or detection raised; the loop raises it again."""

    error: BaseException


class DetectionAhead:
    """``next() -> list[FrameDetections] | None``: detected batches in gathering order, None
    where the thread paused (see the module docstring).

    Args:
        gather: one batch of frames, at most one per camera (``FrameGatherer.gather``); empty
            when every camera ended or gathering was interrupted.
        detect: frames -> their detections, one :class:`FrameDetections` per frame, in order.
        interrupted: True when the thread should pause instead of gathering again.
        depth: detected batches waiting for the loop, at most.
    """

    def __init__(
        self,
        gather: Callable[[], list[Frame]],
        detect: Callable[[list[Frame]], list[FrameDetections]],
        interrupted: Callable[[], bool],
        depth: int,
    ) -> None:
        self._gather = gather
        self._detect = detect
        self._interrupted = interrupted
        self._queue: queue.Queue[list[FrameDetections] | _Paused | _Failed] = queue.Queue(
            maxsize=max(1, depth)
        )
        self._resumed = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="detect-ahead", daemon=True)

    def start(self) -> DetectionAhead:
        self._thread.start()
        return self

    def should_stop_gathering(self) -> bool:
        """For the gatherer's ``should_stop``: the loop's own checks, or this thread closing."""
        return self._closing.is_set() or self._interrupted()

    def next(self) -> list[FrameDetections] | None:
        """The next detected batch (blocks until there is one), or None at a pause."""
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    return None  # closed
                continue
            if isinstance(item, _Failed):
                raise item.error
            return None if isinstance(item, _Paused) else item

    def resume(self) -> None:
        """Gather again after a pause."""
        self._resumed.set()

    def close(self, timeout_seconds: float = 30.0) -> None:
        """Stop the thread (it finishes the batch it is detecting) and drop what waits."""
        self._closing.set()
        self._resumed.set()
        self._thread.join(timeout=timeout_seconds)
        if self._thread.is_alive():
            logger.warning("detection thread still busy %.0f s after close", timeout_seconds)
        while not self._queue.empty():
            self._queue.get_nowait()

    def _run(self) -> None:
        try:
            while not self._closing.is_set():
                frames = [] if self._interrupted() else self._gather()
                if not frames:
                    self._resumed.clear()
                    self._put(_Paused())
                    while not self._resumed.wait(timeout=0.1):
                        pass
                    continue
                detected = self._detect(frames)
                self._put(detected)
        except BaseException as error:  # handed to the loop, which raises it again
            self._put(_Failed(error))

    def _put(self, item: list[FrameDetections] | _Paused | _Failed) -> None:
        while not self._closing.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
