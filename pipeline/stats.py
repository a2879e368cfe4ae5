"""Latency samples per pipeline stage and counters for the status line and the summary."""

from __future__ import annotations

from collections import deque
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
