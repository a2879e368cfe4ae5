"""Operations endpoint: Prometheus metrics (``/metrics``) and health (``/healthz``, ``/livez``).

One small HTTP server on its own thread, bound to ``metrics.host`` (127.0.0.1 unless configured).
Nearly everything is read from the running :class:`~pipeline.runner.Pipeline` at scrape time by a
custom collector (the hot path does no extra work); only the stage latency histograms are fed as
samples arrive, through :class:`ExportingLatencyRecorder`. Labels carry camera ids and names,
never URIs with credentials (``crosscam_camera_info`` has the redacted URI).

Health (JSON body, both endpoints):

- live: the pipeline loop ticked within ``liveness_seconds`` (or has not started yet, is
  shutting down, or no camera delivers frames to tick on); ``/livez`` answers 200 when live,
  else 503.
- ready: live, Redis reachable, and at least one camera running; ``/healthz`` answers 200 when
  ready, else 503 (a load balancer or ``systemd``/k8s probe reads the code, a person the body).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.config import MetricsConfig
from pipeline.redaction import redact_url
from pipeline.sources import CameraSource, SourceState
from pipeline.stats import LatencyRecorder

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from pipeline.runner import Pipeline

logger = logging.getLogger(__name__)

LATENCY_BUCKETS_SECONDS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


CAMERA_METRICS: dict[str, tuple[str, str]] = {
    "crosscam_source_up": ("gauge", "1 while a source delivers frames"),
    "crosscam_camera_fps": ("gauge", "processed frames per second"),
    "crosscam_frames_read": ("counter", "frames decoded by the source"),
    "crosscam_frames_processed": ("counter", "frames through detect and track"),
    "crosscam_frames_dropped": ("counter", "frames dropped because the source queue was full"),
    "crosscam_source_reconnects": ("counter", "reconnections of a live source after a loss"),
    "crosscam_source_resolution_changes": ("counter", "frame size changes within a stream"),
    "crosscam_source_frame_width": ("gauge", "pixels, newest frame"),
    "crosscam_source_frame_height": ("gauge", "pixels, newest frame"),
    "crosscam_source_queue_depth": ("gauge", "frames waiting in the source queue"),
    "crosscam_tracks_active": ("gauge", "tracks active in the clip buffer"),
}
"""Per-camera metrics (label ``camera``): name → (kind, help)."""


def _camera_value(pipeline: Pipeline, source: CameraSource, name: str) -> float:
    camera_id = source.camera.id
    counters = pipeline.totals.cameras.get(camera_id)
    buffer = pipeline.buffers.get(camera_id)
    width, height = source.resolution or (0, 0)
    values = {
        "crosscam_source_up": float(source.state is SourceState.RUNNING),
        "crosscam_camera_fps": counters.frames_per_second() if counters else 0.0,
        "crosscam_frames_read": source.counters.frames_read,
        "crosscam_frames_processed": counters.frames if counters else 0,
        "crosscam_frames_dropped": source.counters.frames_dropped,
        "crosscam_source_reconnects": source.counters.reconnects,
        "crosscam_source_resolution_changes": source.counters.resolution_changes,
        "crosscam_source_frame_width": width,
        "crosscam_source_frame_height": height,
        "crosscam_source_queue_depth": source.frames.qsize(),
        "crosscam_tracks_active": len(buffer.active_track_ids) if buffer else 0,
    }
    return float(values[name])


class ExportingLatencyRecorder(LatencyRecorder):
    """A :class:`LatencyRecorder` that also feeds the ``crosscam_stage_latency_seconds``
    histogram (label ``stage``)."""

    def __init__(self, histogram: Histogram, capacity: int = 20_000) -> None:
        super().__init__(capacity)
        self.histogram = histogram

    def record(self, stage: str, latency_ms: float) -> None:
        super().record(stage, latency_ms)
        self.histogram.labels(stage=stage).observe(latency_ms / 1000.0)


class PipelineCollector(Collector):
    """Reads a pipeline's counters at scrape time."""

    def __init__(self, pipeline: Pipeline, health: HealthState) -> None:
        self.pipeline = pipeline
        self.health = health

    def collect(self) -> Iterator[Metric]:
        pipeline = self.pipeline
        sources = list(pipeline.sources)
        info = GaugeMetricFamily(
            "crosscam_camera_info",
            "configured cameras (URI redacted)",
            labels=["camera", "name", "uri"],
        )
        state = GaugeMetricFamily(
            "crosscam_source_state",
            "1 for the current state of each source",
            labels=["camera", "state"],
        )
        for source in sources:
            camera = source.camera
            info.add_metric([str(camera.id), camera.display_name, redact_url(camera.uri)], 1.0)
            for known in SourceState:
                state.add_metric([str(camera.id), known.value], float(source.state is known))
        for camera_id in list(pipeline.removed_cameras):
            state.add_metric([str(camera_id), SourceState.REMOVED.value], 1.0)
        yield info
        yield state
        for name, (kind, documentation) in CAMERA_METRICS.items():
            family_class = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            family = family_class(name, documentation, labels=["camera"])
            for source in sources:
                family.add_metric([str(source.camera.id)], _camera_value(pipeline, source, name))
            yield family

        yield GaugeMetricFamily(
            "crosscam_encoder_queue_depth", "clips submitted and not yet encoded",
            value=float(pipeline.encoder.pending),
        )  # fmt: skip
        yield CounterMetricFamily(
            "crosscam_clips_encoded", "clips embedded", value=float(pipeline.encoder.clips_encoded)
        )
        yield CounterMetricFamily(
            "crosscam_clips_dropped",
            "refresh clips shed by an overloaded encoder (live cameras only)",
            value=float(pipeline.encoder.clips_dropped),
        )
        matcher = pipeline.matcher
        yield GaugeMetricFamily(
            "crosscam_identities",
            "global identities in the gallery",
            value=float(len(matcher.identities)),
        )
        yield GaugeMetricFamily(
            "crosscam_identities_multi_camera", "identities seen in two or more cameras",
            value=float(matcher.multi_camera_count()),
        )  # fmt: skip
        publisher = pipeline.publisher
        yield CounterMetricFamily(
            "crosscam_events_published", "events that reached Redis",
            value=float(publisher.counters.events_published),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "crosscam_events_buffered", "events waiting for Redis (memory and spool)",
            value=float(publisher.buffered_events),
        )  # fmt: skip
        yield CounterMetricFamily(
            "crosscam_events_dropped", "events dropped (buffer full)",
            value=float(publisher.counters.events_dropped),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "crosscam_redis_up", "1 while Redis answers", value=1.0 if publisher.connected else 0.0
        )
        yield GaugeMetricFamily(
            "crosscam_loop_tick_age_seconds", "seconds since the pipeline loop last ticked",
            value=self.health.tick_age_seconds(),
        )  # fmt: skip


class HealthState:
    """Liveness and readiness of one pipeline, from its loop ticks and component states."""

    def __init__(self, liveness_seconds: float) -> None:
        self.liveness_seconds = liveness_seconds
        self.pipeline: Pipeline | None = None
        self._last_tick: float | None = None

    def tick(self) -> None:
        self._last_tick = time.monotonic()

    def tick_age_seconds(self) -> float:
        return 0.0 if self._last_tick is None else time.monotonic() - self._last_tick

    def report(self) -> dict[str, Any]:
        """The ``/healthz`` body: ``live``, ``ready``, per-camera states, Redis."""
        pipeline = self.pipeline
        if pipeline is None:
            return {"status": "starting", "live": True, "ready": False, "cameras": {}}
        cameras = {
            str(source.camera.id): {"state": source.state.value, "error": source.error}
            for source in list(pipeline.sources)
        }
        stopping = pipeline.stopping
        running = any(source.state is SourceState.RUNNING for source in pipeline.sources)
        # waiting for cameras that deliver nothing is not a wedged loop
        ticking = self.tick_age_seconds() <= self.liveness_seconds
        live = stopping or ticking or not running
        redis_up = bool(pipeline.publisher.connected)
        ready = live and running and redis_up and not stopping
        if stopping:
            status = "stopping"
        elif not live:
            status = "stalled"
        else:
            status = "ok" if ready else "degraded"
        return {
            "status": status,
            "live": live,
            "ready": ready,
            "redis": "up" if redis_up else "down",
            "loop_tick_age_seconds": round(self.tick_age_seconds(), 3),
            "cameras": cameras,
        }


class OperationsServer:
    """``/metrics``, ``/healthz`` and ``/livez`` on ``config.host:config.port``.

    ``start`` never raises: a port in use gives one warning and the run goes on without it.
    """

    def __init__(self, config: MetricsConfig) -> None:
        self.config = config
        self.registry = CollectorRegistry()
        self.histogram = Histogram(
            "crosscam_stage_latency_seconds",
            "per-stage latency (detect/encode per batch; frame_to_event per event)",
            labelnames=["stage"],
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.health = HealthState(config.liveness_seconds)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int | None:
        return None if self._server is None else int(self._server.server_address[1])

    def attach(self, pipeline: Pipeline) -> None:
        """Export this pipeline: its counters at scrape time, its latencies as histograms."""
        pipeline.latency = ExportingLatencyRecorder(self.histogram)
        self.health.pipeline = pipeline
        self.registry.register(PipelineCollector(pipeline, self.health))

    def start(self) -> OperationsServer:
        handler = _handler_class(self.registry, self.health)
        try:
            self._server = ThreadingHTTPServer((self.config.host, self.config.port), handler)
        except OSError as error:
            logger.warning(
                "metrics: cannot listen on %s:%d (%s); running without /metrics and /healthz",
                self.config.host,
                self.config.port,
                error.strerror or error,
            )
            return self
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="operations-http", daemon=True
        )
        self._thread.start()
        logger.info(
            "metrics on http://%s:%d/metrics, health on /healthz", self.config.host, self.port
        )
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _handler_class(
    registry: CollectorRegistry, health: HealthState
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path in {"/healthz", "/livez"}:
                report = health.report()
                ok = report["ready"] if path == "/healthz" else report["live"]
                body = json.dumps(report, sort_keys=True).encode()
                self._answer(200 if ok else 503, "application/json", body)
            else:
                self._answer(404, "text/plain", b"try /metrics, /healthz or /livez\n")

        def _answer(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("operations http: " + format, *args)

    return Handler
