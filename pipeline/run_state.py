"""What one run holds: the components and counters the parts of a run share.

:class:`~pipeline.runner.Pipeline` is built from small parts, one concept each: the per-batch
step (``pipeline/batch_step.py``), camera changes and reloads (``pipeline/camera_changes.py``),
the start-up against Redis (``pipeline/run_startup.py``) and the shutdown
(``pipeline/run_shutdown.py``). :class:`RunState` declares the attributes they share;
``Pipeline.__init__`` (``pipeline/runner.py``) wires and assigns them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.clips import ClipBuffer
from pipeline.config import CameraConfig, CrosscamConfig
from pipeline.detect import PersonDetector
from pipeline.encode import BatchingEncoder
from pipeline.identity import IdentityMatcher, IdentityService, OnlineRefinement, TrackLog
from pipeline.mtmc import MtmcRecorder
from pipeline.publish import RedisPublisher
from pipeline.publish_thread import AsyncPublisher
from pipeline.reconnect import ReconnectWatcher
from pipeline.refresh_policy import RefreshPolicy
from pipeline.reload import TrackerLike
from pipeline.sinks import TrackSink
from pipeline.sources import CameraSource
from pipeline.stats import FrameTimeline, LatencyRecorder, RunTotals
from pipeline.visualize import AnnotatedVideoWriter

if TYPE_CHECKING:
    from pipeline.runner import Pipeline


class RunState:
    """The attributes of a :class:`~pipeline.runner.Pipeline`, declared for its parts."""

    config: CrosscamConfig
    edge_name: str | None
    """Set: run as an edge, sending clip embeddings to the clip stream (``--role edge``)."""
    run_id: str
    run_directory: Path
    redis_url: str
    on_tick: Callable[[Pipeline], None] | None
    latency: LatencyRecorder
    timeline: FrameTimeline | None
    """Per-frame stage stamps; set by benchmarks (``benchmarks/pipeline.py``), else off."""
    sources: list[CameraSource]
    """Running cameras; changed in place by reloads (the frame gatherer holds this list)."""
    trackers: dict[int, TrackerLike]
    buffers: dict[int, ClipBuffer]
    removed_cameras: dict[int, CameraConfig]
    """Cameras a reload removed (metrics show them as ``removed``)."""
    config_loader: Callable[[], CrosscamConfig | None] | None
    """Reads the config again for ``Pipeline.request_reload``; None after an error (logged)."""
    _highest_track_id: dict[int, int]
    totals: RunTotals
    detector: PersonDetector
    encoder: BatchingEncoder
    identity: IdentityService
    reconnects: ReconnectWatcher
    matcher: IdentityMatcher
    sink: TrackSink
    """Where tracks and embedded clips go: matched here, or sent to the matchers."""
    refresh_policy: RefreshPolicy
    """Which refresh clips get encoded (``clips.refresh_policy``)."""
    publisher: RedisPublisher | AsyncPublisher
    mtmc: MtmcRecorder | None
    track_log: TrackLog | None
    """Whole tracks for the identity passes (``pipeline.identity.refine``)."""
    online_refinement: OnlineRefinement | None
    video: AnnotatedVideoWriter | None
    _stop: threading.Event
    _reload: threading.Event
    started_at: float
    gallery_read: bool

    def _out_of_time(self) -> bool:
        limit = self.config.max_seconds
        return limit is not None and time.monotonic() - self.started_at >= limit
