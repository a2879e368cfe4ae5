"""Camera faults against a real RTSP server on 127.0.0.1 (``tests/rtsp_server.py``), at the
source level: each fault gives one clear log line and a state in the metrics, never a crash.

Time bounds are asserted; the whole module takes about 40 s.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from pipeline.config import CameraConfig
from pipeline.metrics import HealthState, PipelineCollector
from pipeline.publish import PublisherCounters
from pipeline.sources import CameraSource, ReconnectPolicy, SourceState
from tests.conftest import ASSETS
from tests.rtsp_server import RtspCameras, prepare_segment, rtsp_available

pytestmark = pytest.mark.skipif(
    not rtsp_available(), reason="needs ffmpeg and GStreamer's RTSP server: run `make rtsp-deps`"
)

FAST_POLICY = ReconnectPolicy(
    initial_delay_seconds=0.25, max_delay_seconds=1.0, open_timeout_ms=3000, read_timeout_ms=1500
)
STREAM_FPS = 25.0


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("segments")
    videos = ASSETS / "videos"
    return {
        "c0": prepare_segment(videos / "epfl_terrace1-c0.mp4", folder / "c0.mp4", 40, 20),
        "c1": prepare_segment(videos / "epfl_terrace1-c1.mp4", folder / "c1.mp4", 40, 20),
        "c0_small": prepare_segment(
            videos / "epfl_terrace1-c0.mp4", folder / "c0_small.mp4", 40, 10, size=(180, 144)
        ),
    }


class Drain:
    """Consumes the queues of sources on a thread, keeping each frame's arrival time."""

    def __init__(self, sources: list[CameraSource]) -> None:
        self.sources = sources
        self.arrivals: dict[int, list[float]] = {source.camera.id: [] for source in sources}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Drain:
        for source in self.sources:
            source.start()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for source in self.sources:
            source.request_stop()
        for source in self.sources:
            source.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            idle = True
            for source in self.sources:
                try:
                    source.frames.get_nowait()
                except queue.Empty:
                    continue
                idle = False
                self.arrivals[source.camera.id].append(time.monotonic())
            if idle:
                time.sleep(0.005)

    def rate(self, camera_id: int, start: float, end: float) -> float:
        """Frames per second that arrived in ``[start, end)``."""
        count = sum(1 for arrived in self.arrivals[camera_id] if start <= arrived < end)
        return count / (end - start)

    def first_after(self, camera_id: int, moment: float, timeout_seconds: float) -> float:
        """Seconds from ``moment`` to the first frame after it (waits up to the timeout)."""
        deadline = moment + timeout_seconds
        while time.monotonic() < deadline:
            later = [arrived for arrived in self.arrivals[camera_id] if arrived > moment]
            if later:
                return later[0] - moment
            time.sleep(0.02)
        raise AssertionError(f"camera {camera_id}: no frame within {timeout_seconds} s")


def wait_for(condition, timeout_seconds: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout_seconds:
        if condition():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout_seconds} s: {what}")


def metrics_text(sources: list[CameraSource]) -> str:
    """What ``/metrics`` shows for these sources (the collector on a minimal pipeline)."""
    pipeline = SimpleNamespace(
        sources=sources,
        totals=SimpleNamespace(cameras={}),
        buffers={},
        removed_cameras={},
        encoder=SimpleNamespace(pending=0, clips_encoded=0, clips_dropped=0),
        matcher=SimpleNamespace(identities={}, multi_camera_count=lambda: 0),
        publisher=SimpleNamespace(counters=PublisherCounters(), buffered_events=0, connected=True),
        stopping=False,
    )
    registry = CollectorRegistry()
    registry.register(PipelineCollector(pipeline, HealthState(30.0)))  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def rtsp_source(camera_id: int, url: str) -> CameraSource:
    return CameraSource(CameraConfig(id=camera_id, uri=url), FAST_POLICY)


def warnings_about(caplog: pytest.LogCaptureFixture, camera_id: int, text: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.WARNING
        and record.getMessage().startswith(f"camera {camera_id}:")
        and text in record.getMessage()
    ]


@pytest.fixture
def two_servers(segments: dict[str, Path]) -> Iterator[tuple[RtspCameras, RtspCameras]]:
    with (
        RtspCameras({"cam0": segments["c0"]}) as first,
        RtspCameras({"cam1": segments["c1"]}) as second,
    ):
        yield first, second


def test_server_killed_and_restarted_camera_resumes_within_5_s_others_keep_rate(
    two_servers: tuple[RtspCameras, RtspCameras], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="pipeline.sources")
    first, second = two_servers
    sources = [rtsp_source(0, first.url("cam0")), rtsp_source(1, second.url("cam1"))]
    with Drain(sources) as drain:
        wait_for(lambda: all(len(drain.arrivals[c]) > 10 for c in (0, 1)), 15, "both streaming")
        time.sleep(4.5)  # past the burst a client gets on connecting
        killed = time.monotonic()
        baseline = drain.rate(1, killed - 3.5, killed)
        first.server.kill()
        wait_for(lambda: sources[0].state is SourceState.RECONNECTING, 5, "camera 0 reconnecting")
        assert 'crosscam_source_state{camera="0",state="reconnecting"} 1.0' in metrics_text(sources)
        time.sleep(1.5)
        first.server.start()
        restarted = time.monotonic()
        resumed_after = drain.first_after(0, restarted, timeout_seconds=5.0)
        time.sleep(0.5)
        during = drain.rate(1, killed, time.monotonic())

    assert resumed_after < 5.0
    assert sources[0].counters.reconnects == 1
    assert abs(during - baseline) <= 0.1 * baseline, (baseline, during)
    assert abs(baseline - STREAM_FPS) <= 0.15 * STREAM_FPS, baseline
    assert len(warnings_about(caplog, 0, "stream closed")) == 1
    assert any("camera 0: reconnected after" in r.getMessage() for r in caplog.records)
    assert 'crosscam_source_reconnects_total{camera="0"} 1.0' in metrics_text(sources)
    print(f"camera 0 resumed {resumed_after:.2f} s after the restart; camera 1 {baseline:.1f} fps")
    print(f"before, {during:.1f} fps during the outage")


def test_url_that_never_answers_gives_one_warning_and_reconnecting_state(
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.INFO, logger="pipeline.sources")
    with socket.socket() as black_hole:  # accepts TCP connections (backlog), never answers
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(16)
        url = f"rtsp://user:secret@127.0.0.1:{black_hole.getsockname()[1]}/never"
        policy = ReconnectPolicy(0.1, 0.2, open_timeout_ms=800, read_timeout_ms=800)
        source = CameraSource(CameraConfig(id=3, uri=url), policy)
        source.start()
        try:
            wait_for(lambda: source.error.startswith("cannot open"), 5, "first open failed")
            time.sleep(2.0)  # several more attempts
            assert source.state is SourceState.RECONNECTING
            text = metrics_text([source])
        finally:
            source.stop()
    lines = warnings_about(caplog, 3, "cannot open")
    assert len(lines) == 1, lines
    assert "secret" not in lines[0] and "***@" in lines[0]
    assert 'crosscam_source_state{camera="3",state="reconnecting"} 1.0' in text
    assert "secret" not in text


def test_stalled_stream_times_out_then_recovers(
    segments: dict[str, Path], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="pipeline.sources")
    with RtspCameras({"cam0": segments["c0"]}) as rtsp:
        source = rtsp_source(0, rtsp.url("cam0"))
        with Drain([source]) as drain:
            wait_for(lambda: len(drain.arrivals[0]) > 10, 15, "streaming")
            rtsp.publishers["cam0"].pause()
            # OpenCV's FFmpeg backend gives up after about 3 read timeouts (retries inside).
            noticed = wait_for(
                lambda: source.state is SourceState.RECONNECTING, 10, "stall detected"
            )
            text = metrics_text([source])
            rtsp.publishers["cam0"].resume()
            resumed_after = drain.first_after(0, time.monotonic(), timeout_seconds=8.0)
    assert noticed < 3 * FAST_POLICY.read_timeout_ms / 1000 + 2.0, noticed
    assert 'crosscam_source_up{camera="0"} 0.0' in text
    lines = warnings_about(caplog, 0, "stalled; read timeout")
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    assert source.counters.reconnects == 1
    print(f"stall noticed after {noticed:.1f} s; streaming again {resumed_after:.1f} s after")


def test_resolution_change_is_logged_and_counted(
    segments: dict[str, Path], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="pipeline.sources")
    with RtspCameras({"cam0": segments["c0"]}) as rtsp:
        source = rtsp_source(0, rtsp.url("cam0"))
        with Drain([source]) as drain:
            wait_for(lambda: len(drain.arrivals[0]) > 10, 15, "streaming")
            assert source.resolution == (360, 288)
            # A camera reconfigured to another size restarts its RTSP session. (Within one
            # session OpenCV's FFmpeg backend scales frames to the session's first size.)
            rtsp.publishers["cam0"].replace(segments["c0_small"])
            rtsp.server.restart()
            wait_for(lambda: source.resolution == (180, 144), 10, "new resolution")
            frames_then = len(drain.arrivals[0])
            wait_for(lambda: len(drain.arrivals[0]) > frames_then + 10, 5, "still streaming")
            text = metrics_text([source])
    lines = warnings_about(caplog, 0, "resolution changed from 360x288 to 180x144")
    assert len(lines) == 1, lines
    assert source.counters.resolution_changes == 1
    assert 'crosscam_source_frame_width{camera="0"} 180.0' in text
    assert 'crosscam_source_resolution_changes_total{camera="0"} 1.0' in text


def test_truncated_file_gives_one_line_and_a_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="pipeline.sources")
    truncated = tmp_path / "truncated.mp4"
    original = ASSETS / "videos" / "epfl_terrace1-c0.mp4"
    shutil.copyfile(original, truncated)
    with truncated.open("r+b") as handle:
        handle.truncate(original.stat().st_size // 20)
    source = CameraSource(CameraConfig(id=5, uri=str(truncated)))
    source.start()
    deadline = time.monotonic() + 20
    while not (source.finished and source.frames.empty()) and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            source.frames.get(timeout=0.1)  # lockstep replay waits for its queue to empty
    source.stop()
    lines = warnings_about(caplog, 5, "truncated") + [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
    ]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    assert "truncated.mp4" in lines[0]
    state = source.state.value
    assert f'crosscam_source_state{{camera="5",state="{state}"}} 1.0' in metrics_text([source])
    assert source.state in {SourceState.ENDED, SourceState.FAILED}
