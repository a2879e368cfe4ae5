"""The pipeline loop: sources → detect → track → clips → encode → match → publish.

Each tick takes at most one frame per camera, detects persons in all of them with one batched
forward, tracks and buffers per camera, hands finished clips to the batching encoder (its own
thread) and matches whatever clips it has embedded since the last tick
(``pipeline/batch_step.py``). Events are handed to the publisher in the same tick: to its own
thread (``stages.publish_async``, the default; ``pipeline/publish_thread.py``), or sent to
Redis in the loop. Pipelined (``stages.pipelined``, the default), the gather and detection of
tick ``n + 1`` run on a thread of their own (``pipeline/stages.py``) while tick ``n`` is
handled here; the serial loop does one after the other, with the same outputs on file replay.
Before the loop, the run reads the stored gallery and continues track ids after earlier runs
(``pipeline/run_startup.py``). ``stop()`` (called from a signal handler) ends the loop; the
shutdown path (``pipeline/run_shutdown.py``) then flushes clip buffers, encodes and matches
what is in flight, publishes it and closes outputs, and returns a
:class:`~pipeline.run_summary.RunResult`. ``request_reload()`` (SIGHUP) makes the loop re-read
the config between ticks and stop, start or restart the cameras that changed
(``pipeline/camera_changes.py``, ``pipeline/reload.py``). What the loop produces goes to its
sink (``pipeline/sinks.py``): matched here (the single process), or sent to the matchers (an
edge). :class:`Pipeline` wires the components of a run (declared in ``pipeline/run_state.py``)
and runs the loop; the rest of the run is in those parts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline.camera_changes import CameraChanges
from pipeline.config import CrosscamConfig
from pipeline.detect import PersonDetector
from pipeline.encode import BatchingEncoder, load_encoder_engine
from pipeline.frame_rate import frame_rate_or_default
from pipeline.identity import IdentityService, OnlineRefinement, TrackLog, known_homographies
from pipeline.mtmc import MtmcRecorder
from pipeline.publish import build_publisher
from pipeline.publish_thread import AsyncPublisher
from pipeline.reconnect import ReconnectWatcher
from pipeline.refresh_policy import RefreshPolicy
from pipeline.run_shutdown import RunShutdown
from pipeline.run_startup import RunStartup
from pipeline.run_summary import RunResult
from pipeline.sinks import ClipStream, LocalIdentity
from pipeline.sources import CameraSource, FrameGatherer
from pipeline.stages import DetectionAhead
from pipeline.stats import LatencyRecorder, RunTotals
from pipeline.visualize import AnnotatedVideoWriter

__all__ = ["Pipeline", "RunResult"]

logger = logging.getLogger(__name__)


class Pipeline(CameraChanges, RunStartup, RunShutdown):
    """One crosscam run over the configured cameras, publishing to the Redis at ``redis_url``.

    Its attributes are declared, with their docs, in :class:`~pipeline.run_state.RunState`;
    detection and the per-batch step are :class:`~pipeline.batch_step.BatchStep`'s, camera
    changes :class:`~pipeline.camera_changes.CameraChanges`', the start against Redis
    :class:`~pipeline.run_startup.RunStartup`'s and the shutdown
    :class:`~pipeline.run_shutdown.RunShutdown`'s.
    """

    def __init__(
        self,
        config: CrosscamConfig,
        redis_url: str,
        run_id: str,
        run_directory: Path,
        on_tick: Callable[[Pipeline], None] | None = None,
        edge_name: str | None = None,
    ) -> None:
        """``edge_name`` set: run as an edge, sending clip embeddings to the clip stream for
        distributed matchers instead of matching here (``--role edge``)."""
        self.config = config
        self.edge_name = edge_name
        self.run_id = run_id
        self.run_directory = run_directory
        self.redis_url = redis_url
        self.on_tick = on_tick
        self.latency = LatencyRecorder()
        self.timeline = None
        self.sources = []
        self.trackers = {}
        self.buffers = {}
        self.removed_cameras = {}
        self.config_loader = None
        self._highest_track_id = {}
        self.totals = RunTotals()
        for camera in config.cameras:
            self._add_camera(camera)
        self.detector = PersonDetector(config.detector)
        frame_rates = {
            camera.id: frame_rate_or_default(camera.fps_cap) for camera in config.cameras
        }
        engine = load_encoder_engine(config.encoder)
        self.encoder = BatchingEncoder(
            engine,
            config.encoder.max_batch,
            config.encoder.max_wait_ms,
            on_batch=lambda size, ms: self.latency.record("encode", ms),
            overflow=self._encoder_overflow(),
            pinned=config.encoder.device.startswith("cuda"),
        )
        # the matcher gets its own copy: re-association is widened after a camera reconnects
        self.identity = IdentityService(config.matching.model_copy())
        self.reconnects = ReconnectWatcher()
        self.matcher = self.identity.matcher
        self.sink = (
            ClipStream(edge_name)
            if edge_name is not None
            else LocalIdentity(self.identity, redis_url, config.redis)
        )
        clips_config = config.clips
        if edge_name is not None:  # the identities live in the matchers: refresh as configured
            clips_config = clips_config.model_copy(update={"refresh_policy": "always"})
        self.refresh_policy = RefreshPolicy(clips_config)
        publisher = build_publisher(config, redis_url, run_id, edge_name)
        self.publisher = (
            AsyncPublisher(publisher, self._record_sent, config.stages.publish_queue_batches)
            if config.stages.publish_async
            else publisher
        )
        self.mtmc = MtmcRecorder() if config.outputs.save_mtmc else None
        self.track_log = self._track_log()
        self.online_refinement = (
            OnlineRefinement(config.identity, known_homographies(config))
            if self.track_log is not None and self.sink.matches
            else None
        )
        self.video = (
            AnnotatedVideoWriter(config.outputs.save_video, frame_rates)
            if config.outputs.save_video
            else None
        )
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.started_at = time.monotonic()
        self.gallery_read = True

    def _track_log(self) -> TrackLog | None:
        """A log for the end-of-run pass (MTMC output), the online passes, or to save; file
        replays keep every track, live cameras the last ``identity.window_seconds``."""
        config = self.config
        online = config.identity.refine_every_seconds > 0 and self.sink.matches
        if not (online or config.outputs.save_mtmc or config.outputs.save_track_log):
            return None
        files = all(source.lockstep for source in self.sources)
        return TrackLog(None if files else config.identity.window_seconds)

    def stop(self) -> None:
        """Ask the loop to end after the current tick (safe from a signal handler)."""
        self._stop.set()

    def request_reload(self) -> None:
        """Ask the loop to re-read the config before its next tick (safe from a signal
        handler)."""
        self._reload.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> RunResult:
        """Run until every source ends, ``max_seconds`` pass, or :meth:`stop` is called."""
        self.publisher.describe_run(
            {
                "cameras": ",".join(str(camera.id) for camera in self.config.cameras),
                "encoder": self.config.encoder.model,
                "started_unix": f"{time.time():.3f}",
            }
        )
        self.started_at = time.monotonic()  # the time limit covers waiting for Redis too
        self.gallery_read = self._restore_gallery()
        if self.gallery_read:
            self._continue_tracks()
            for source in self.sources:
                source.start()
        try:
            if self.gallery_read and self.config.stages.pipelined:
                self._run_pipelined()
            elif self.gallery_read:
                self._run_serial()
        finally:
            result = self._shutdown()
        return result

    def _run_serial(self) -> None:
        """Gather, detect and handle one batch after the other (``stages.pipelined: false``)."""
        gatherer = FrameGatherer(self.sources, should_stop=self._interrupted)
        while not self._stop.is_set():
            if self._out_of_time():
                logger.info("max_seconds reached; stopping")
                break
            if self._reload.is_set():
                self._reload.clear()
                self.apply_reload()
            frames = gatherer.gather()
            if not frames:
                if self._reload.is_set() and not self._stop.is_set():
                    continue
                self._log_end(gatherer)
                break
            self._handle_reconnects()
            self._tick(self.detector_stage(frames))
            if self.on_tick is not None:
                self.on_tick(self)

    def _run_pipelined(self) -> None:
        """Detect the next batch on a thread of its own while this one handles the previous
        (``pipeline/stages.py``): same batches in the same order, same reload and end points
        as :meth:`_run_serial`. A stop lets the batches already detected through."""
        gatherer = FrameGatherer(self.sources)
        ahead = DetectionAhead(
            gatherer.gather,
            self.detector_stage,
            self._interrupted,
            self.config.stages.detect_ahead_batches,
        )
        gatherer.should_stop = ahead.should_stop_gathering
        ahead.start()
        try:
            while True:
                detected = ahead.next()
                if detected is None:  # paused: every camera ended, or interrupted
                    if self._stop.is_set() or self._out_of_time():
                        self._log_end(gatherer)
                        break
                    if self._reload.is_set():
                        self._reload.clear()
                        self.apply_reload()
                        ahead.resume()
                        continue
                    self._log_end(gatherer)
                    break
                self._handle_reconnects()
                self._tick(detected)
                if self.on_tick is not None:
                    self.on_tick(self)
        finally:
            ahead.close()

    def _log_end(self, gatherer: FrameGatherer) -> None:
        """Say why the loop ends (a stop request needs no line)."""
        if self._stop.is_set():
            return
        if gatherer.finished:
            logger.info(
                "every camera has ended or failed (%s); stopping", _describe_states(self.sources)
            )
        elif self._out_of_time():
            logger.info("max_seconds reached; stopping")

    def _handle_reconnects(self) -> None:
        """Widen re-association after a camera reconnect: here, or, as an edge, in the
        matchers, which get a ``reconnected`` message ahead of the new tracks' clips."""
        records = self.sink.reconnected(self.reconnects.poll(self.sources))
        if records:
            self._publish(records)

    def _interrupted(self) -> bool:
        """Stop waiting for frames: a stop or reload request, or the time limit passed (which
        must hold whatever the cameras do)."""
        return self._stop.is_set() or self._reload.is_set() or self._out_of_time()


def _describe_states(sources: Iterable[CameraSource]) -> str:
    """``camera 0 ended, camera 1 failed`` for the line that ends a run."""
    return ", ".join(f"camera {source.camera.id} {source.state.value}" for source in sources)
