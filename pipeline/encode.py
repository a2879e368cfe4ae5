"""Clip encoding with dynamic batching across cameras.

Clips from every camera go into one queue. A worker thread takes the first waiting clip, then
gathers more until ``max_batch`` clips or ``max_wait_ms`` have passed, runs the engine once on
the batch, and hands each embedding back with its clip. Clips of different lengths (``all``
sampling) are batched separately. Each batch is assembled in one reused host buffer
(``pipeline/clip_batch.py``; page-locked when the encoder runs on CUDA), in the input the
engine's model file says it takes: float RGB clips converted on the CPU, or the uint8 BGR
crops as they are for a graph that converts them itself (``engines.export_onnx``,
``input_format: uint8_bgr``).

Overload: at most ``max_pending_clips`` clips wait (a clip is about 0.8 MB; unbounded, an
overloaded pipeline's memory and latency grow without limit). What happens beyond that is the
``overflow`` policy:

- ``block`` (file replay as fast as possible): ``submit`` waits for room, so the slowest stage
  paces the run and no clip is ever lost;
- ``shed`` (live cameras and real-time replay, which cannot wait): the oldest waiting *refresh*
  clip is dropped, since its track is still live and will emit a newer one; a track's final
  clip is never dropped. Drops are counted in ``clips_dropped`` and logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

import numpy as np

from engines.base import Engine, EngineSpec, engine_input_format, load_engine
from pipeline.clip_batch import ClipBatchBuffer
from pipeline.clips import Clip
from pipeline.config import EncoderConfig
from pipeline.identity import EmbeddedClip
from reid_models.clip_input import crops_to_clips

logger = logging.getLogger(__name__)


def load_encoder_engine(config: EncoderConfig) -> Engine:
    """The engine of the configured encoder (model, weights, backbone, backend, device)."""
    return load_engine(
        config.backend,
        EngineSpec(
            model=config.model,
            weights=config.weights,
            device=config.device,
            options={"backbone": config.backbone, "input_format": config.input_format},
        ),
    )


def clips_to_batch(clips: list[Clip]) -> np.ndarray:
    """Stack clips into the encoder input contract.

    Returns:
        float32 ``(batch, T, 3, H, W)``, RGB, values in ``[0, 1]``.
    """
    return crops_to_clips(np.stack([clip.crops for clip in clips]))  # (B, T, H, W, 3) BGR


class BatchingEncoder:
    """Encodes clips on a worker thread in dynamic batches.

    ``submit`` never blocks; ``collect`` returns the clips encoded so far.
    ``on_batch`` (if given) receives ``(batch_size, latency_ms)`` after each engine call.
    ``max_pending_clips`` (default ``4 * max_batch``) bounds the waiting clips and ``overflow``
    (``block`` or ``shed``) says what happens beyond it (module docstring); ``clips_dropped``
    counts the clips shed. ``pinned``: the batches' host buffer is page-locked memory (an
    engine on CUDA). The buffer hands on what ``engine`` takes
    (``engines.base.engine_input_format``: float clips, or uint8 crops unconverted).
    """

    def __init__(
        self,
        engine: Engine,
        max_batch: int,
        max_wait_ms: float,
        on_batch: Callable[[int, float], None] | None = None,
        max_pending_clips: int | None = None,
        overflow: Literal["block", "shed"] = "block",
        pinned: bool = False,
    ) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.max_wait_seconds = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self.max_pending_clips = max(
            max_batch, 4 * max_batch if max_pending_clips is None else max_pending_clips
        )
        self.overflow = overflow
        self.clips_encoded = 0
        self.clips_dropped = 0
        self.batches_run = 0
        self.host_buffer = ClipBatchBuffer(max_batch, pinned, engine_input_format(engine))
        self._inbox: deque[Clip] = deque()
        self._outbox: queue.Queue[EmbeddedClip] = queue.Queue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._idle = threading.Condition(self._pending_lock)
        self._waiting = threading.Condition(self._pending_lock)
        self._room = threading.Condition(self._pending_lock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="encoder", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Clips submitted but not yet collected-ready."""
        with self._pending_lock:
            return self._pending

    @property
    def waiting(self) -> int:
        """Clips submitted and not yet taken into a batch."""
        with self._pending_lock:
            return len(self._inbox)

    def submit(self, clips: list[Clip]) -> None:
        dropped = 0
        with self._pending_lock:
            for clip in clips:
                if self.overflow == "block":
                    while len(self._inbox) >= self.max_pending_clips and self._thread.is_alive():
                        self._waiting.notify()
                        self._room.wait(timeout=0.1)
                self._inbox.append(clip)
                self._pending += 1
                if len(self._inbox) > self.max_pending_clips and self._shed_one():
                    dropped += 1
            self._waiting.notify()
        if dropped and (
            self.clips_dropped == dropped
            or self.clips_dropped // 100 > (self.clips_dropped - dropped) // 100
        ):
            logger.warning(
                "encoder overloaded: %d clips dropped so far (oldest refresh clips first; "
                "lower fps_cap, add a GPU, or use backend onnxruntime/tensorrt)",
                self.clips_dropped,
            )

    def _shed_one(self) -> bool:
        """Drop the oldest refresh clip other than the newest clip, if any (lock held)."""
        newest = self._inbox[-1]
        victim = next((c for c in self._inbox if not c.final and c is not newest), None)
        if victim is None:
            return False
        self._inbox.remove(victim)
        self._pending -= 1
        self.clips_dropped += 1
        self._idle.notify_all()
        return True

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
            batch = self._gather()
            for group in _group_by_length(batch):
                self._encode(group)

    def _gather(self) -> list[Clip]:
        """Wait (up to 50 ms) for a first clip, then up to ``max_wait_ms`` for a full batch."""
        with self._waiting:
            if not self._inbox:
                self._waiting.wait(timeout=0.05)
            if not self._inbox:
                return []
            deadline = time.monotonic() + self.max_wait_seconds
            while len(self._inbox) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    break
                self._waiting.wait(timeout=remaining)
            count = min(self.max_batch, len(self._inbox))
            batch = [self._inbox.popleft() for _ in range(count)]
            self._room.notify_all()
            return batch

    def _encode(self, clips: list[Clip]) -> None:
        started = time.monotonic()
        try:
            embeddings = self.engine.infer(self.host_buffer.fill(clips))
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
