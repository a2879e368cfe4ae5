"""Clip encoding with dynamic batching across cameras.

Clips from every camera go into one queue. A worker thread takes the first waiting clip, then
gathers more until ``max_batch`` clips or ``max_wait_ms`` have passed, runs the engine once on
the batch, and hands each embedding back with its clip. Clips of different lengths (``all``
sampling) are batched separately.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import numpy as np

from engines.base import Engine
from pipeline.clips import Clip
from pipeline.matching import EmbeddedClip

logger = logging.getLogger(__name__)


def clips_to_batch(clips: list[Clip]) -> np.ndarray:
    """Stack clips into the encoder input contract.

    Returns:
        float32 ``(batch, T, 3, H, W)``, RGB, values in ``[0, 1]``.
    """
    crops = np.stack([clip.crops for clip in clips])  # (B, T, H, W, 3) uint8 BGR
    rgb = crops[..., ::-1].transpose(0, 1, 4, 2, 3)
    return np.ascontiguousarray(rgb, dtype=np.float32) / np.float32(255.0)


class BatchingEncoder:
    """Encodes clips on a worker thread in dynamic batches.

    ``submit`` never blocks; ``collect`` returns the clips encoded so far.
    ``on_batch`` (if given) receives ``(batch_size, latency_ms)`` after each engine call.
    """

    def __init__(
        self,
        engine: Engine,
        max_batch: int,
        max_wait_ms: float,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.max_wait_seconds = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self.clips_encoded = 0
        self.batches_run = 0
        self._inbox: queue.Queue[Clip] = queue.Queue()
        self._outbox: queue.Queue[EmbeddedClip] = queue.Queue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._idle = threading.Condition(self._pending_lock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="encoder", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Clips submitted but not yet collected-ready."""
        with self._pending_lock:
            return self._pending

    def submit(self, clips: list[Clip]) -> None:
        with self._pending_lock:
            self._pending += len(clips)
        for clip in clips:
            self._inbox.put(clip)

    def collect(self) -> list[EmbeddedClip]:
        """Every embedded clip finished since the last call, in completion order."""
        ready: list[EmbeddedClip] = []
        while True:
            try:
                ready.append(self._outbox.get_nowait())
            except queue.Empty:
                return ready

    def drain(self, timeout_seconds: float = 30.0) -> list[EmbeddedClip]:
        """Wait until every submitted clip is encoded, then collect them."""
        deadline = time.monotonic() + timeout_seconds
        with self._idle:
            while self._pending and time.monotonic() < deadline:
                self._idle.wait(timeout=0.05)
        return self.collect()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._inbox.get(timeout=0.05)
            except queue.Empty:
                continue
            batch = self._gather(first)
            for group in _group_by_length(batch):
                self._encode(group)

    def _gather(self, first: Clip) -> list[Clip]:
        batch = [first]
        deadline = time.monotonic() + self.max_wait_seconds
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                batch.append(
                    self._inbox.get(timeout=remaining)
                    if remaining > 0
                    else self._inbox.get_nowait()
                )
            except queue.Empty:
                break
        return batch

    def _encode(self, clips: list[Clip]) -> None:
        started = time.monotonic()
        try:
            embeddings = self.engine.infer(clips_to_batch(clips))
            if len(embeddings) != len(clips):  # checked here: a raise below would end the worker
                raise ValueError(f"{len(embeddings)} embeddings for {len(clips)} clips")
        except Exception:
            logger.exception("encoder failed on a batch of %d clips; they are skipped", len(clips))
            embeddings = None
        finished = time.monotonic()
        if embeddings is not None:
            for clip, embedding in zip(clips, embeddings, strict=True):
                self._outbox.put(EmbeddedClip(clip, embedding.astype(np.float32), finished))
            self.clips_encoded += len(clips)
            self.batches_run += 1
            if self.on_batch is not None:
                self.on_batch(len(clips), (finished - started) * 1000.0)
        with self._idle:
            self._pending -= len(clips)
            self._idle.notify_all()


def _group_by_length(clips: list[Clip]) -> list[list[Clip]]:
    groups: dict[int, list[Clip]] = {}
    for clip in clips:
        groups.setdefault(len(clip.crops), []).append(clip)
    return list(groups.values())
