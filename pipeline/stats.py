"""Latency samples per pipeline stage and counters for the status line and the summary."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

STAGES = ("detect", "track", "clips", "encode", "match", "publish", "frame_to_event")
"""Stages in data-flow order. ``detect`` and ``encode`` are per batch; ``frame_to_event`` is
from a frame being read to its event reaching Redis."""


class LatencyRecorder:
    """Keeps the newest ``capacity`` samples (milliseconds) of each stage."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._samples: dict[str, deque[float]] = {}

    def record(self, stage: str, latency_ms: float) -> None:
        self._samples.setdefault(stage, deque(maxlen=self.capacity)).append(latency_ms)

    def percentiles(self, stage: str, quantiles: tuple[float, ...] = (50, 95)) -> list[float]:
        """Percentiles of a stage's samples; NaN when it has none."""
        samples = self._samples.get(stage)
        if not samples:
            return [float("nan")] * len(quantiles)
        return [float(value) for value in np.percentile(np.asarray(samples), quantiles)]

    def samples(self, stage: str) -> list[float]:
        """The kept samples of a stage (milliseconds), oldest first."""
        return list(self._samples.get(stage, ()))

    def count(self, stage: str) -> int:
        return len(self._samples.get(stage, ()))

    def stages(self) -> list[str]:
        known = [stage for stage in STAGES if stage in self._samples]
        return known + sorted(set(self._samples) - set(STAGES))


@dataclass
class CameraCounters:
    """Per-camera progress for the status line."""

    frames: int = 0
    tracks: int = 0
    recent_frame_times: deque[float] = field(default_factory=lambda: deque(maxlen=50))

    def frames_per_second(self) -> float:
        times = self.recent_frame_times
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])


@dataclass
class RunTotals:
    """Whole-run counters for the summary."""

    frames: int = 0
    tracks: int = 0
    clips_emitted: int = 0
    clips_encoded: int = 0
    events: int = 0
    cameras: dict[int, CameraCounters] = field(default_factory=dict)


TIMELINE_STAGES = ("capture", "detect", "track", "clip", "encode", "match", "publish")
"""Per-frame stamps in data-flow order. ``clip`` … ``publish`` exist only for frames that
closed a clip (a clip is stamped under its newest frame, ``Clip.last_frame_index``)."""

FrameKey = tuple[int, int]
"""``(camera_id, frame_index)``."""


class FrameTimeline:
    """Monotonic stage times per frame: the one place the pipeline stamps frames.

    ``stamp`` is called by the runner after each stage (from the loop and the detection
    thread, ``pipeline/stages.py``); a benchmark reads ``rows()`` at the end. Memory is
    bounded: past ``capacity`` frames the oldest are forgotten.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._frames: dict[FrameKey, dict[str, float]] = {}
        self._lock = threading.Lock()

    def stamp(self, stage: str, keys: Iterable[FrameKey], at: float) -> None:
        """Record that ``stage`` finished at monotonic time ``at`` for every frame of ``keys``;
        a stage already stamped for a frame keeps its first time."""
        with self._lock:
            for key in keys:
                stamps = self._frames.get(key)
                if stamps is None:
                    if len(self._frames) >= self.capacity:
                        del self._frames[next(iter(self._frames))]
                    stamps = self._frames[key] = {}
                stamps.setdefault(stage, at)

    def rows(self) -> list[tuple[FrameKey, dict[str, float]]]:
        """Every frame's stamps, in first-stamped order."""
        with self._lock:
            return list(self._frames.items())

    def __len__(self) -> int:
        return len(self._frames)
