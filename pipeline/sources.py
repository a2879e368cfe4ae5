"""Camera sources: one reader thread per camera feeding a bounded queue.

Files replayed ``fast`` are read in lockstep with the pipeline (the reader blocks when its
queue is full, so no frame is lost and cameras stay time-aligned). Live sources (RTSP, HTTP,
webcams) and files replayed ``realtime`` drop the oldest frame when the queue is full, so a slow
pipeline sees fresh frames. Video is decoded by the camera's ``decoder`` (``pipeline/decoders.py``:
OpenCV's FFmpeg backend by default, PyAV on the CPU, or NVDEC); network streams use TCP
transport and reconnect with exponential backoff; a broken camera never stalls the others.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import cv2

from pipeline.config import CameraConfig, ReplayMode
from pipeline.decoders import VideoCapture, decoder_failure, open_capture
from pipeline.frame_rate import frame_rate_or_default
from pipeline.records import Frame
from pipeline.redaction import redact_url

logger = logging.getLogger(__name__)


class SourceState(StrEnum):
    """Life cycle of a camera source."""

    CONNECTING = "connecting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"
    STOPPED = "stopped"
    REMOVED = "removed"
    """Taken out of the config by a reload (``pipeline/reload.py``)."""


@dataclass(frozen=True)
class ReconnectPolicy:
    """Exponential backoff between reconnection attempts of live sources."""

    initial_delay_seconds: float = 0.5
    max_delay_seconds: float = 2.0
    """Short, so a restarted camera is back within ~3.5 s (an open attempt every 2 s, ~1 s to
    open); a dead camera costs one connection attempt per 2 s."""
    multiplier: float = 2.0
    open_timeout_ms: int = 5000
    read_timeout_ms: int = 5000

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (0-based)."""
        return min(self.max_delay_seconds, self.initial_delay_seconds * self.multiplier**attempt)


@dataclass
class SourceCounters:
    """What a source did so far, for status lines and metrics."""

    frames_read: int = 0
    frames_dropped: int = 0
    reconnects: int = 0
    resolution_changes: int = 0


class CameraSource:
    """Reads one camera on its own thread into a bounded queue of :class:`Frame`."""

    def __init__(self, camera: CameraConfig, reconnect: ReconnectPolicy | None = None) -> None:
        self.camera = camera
        self.reconnect = reconnect or ReconnectPolicy()
        self.lockstep = camera.is_file and camera.replay is ReplayMode.FAST
        self.state = SourceState.CONNECTING
        self.error = ""
        self.counters = SourceCounters()
        self.resolution: tuple[int, int] | None = None
        """(width, height) of the newest frame."""
        self.last_outage_seconds = 0.0
        """Live sources: seconds from the last frame before the latest loss to the reconnect."""
        self.frames: queue.Queue[Frame] = queue.Queue(maxsize=camera.queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"source-{camera.id}", daemon=True)

    @property
    def finished(self) -> bool:
        """True once the source will deliver no more frames (ended, failed or stopped)."""
        return self.state in {
            SourceState.ENDED,
            SourceState.FAILED,
            SourceState.STOPPED,
            SourceState.REMOVED,
        }

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the reader to stop without waiting (stop many sources at once, then join)."""
        self._stop.set()

    def stop(self) -> None:
        """Ask the reader to stop and wait briefly for it."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        if not self.finished:
            self.state = SourceState.STOPPED

    def _run(self) -> None:
        try:
            if self.camera.is_file:
                self._read_file()
            else:
                self._read_live()
        except Exception as error:  # a reader thread must never take the process down
            self._fail(f"reader crashed: {error}")
        if self.state not in {SourceState.FAILED, SourceState.ENDED}:
            self.state = SourceState.STOPPED

    def _fail(self, message: str) -> None:
        self.error = message
        self.state = SourceState.FAILED
        logger.error("camera %s (%s): %s", self.camera.id, self.camera.display_name, message)

    def _read_file(self) -> None:
        camera = self.camera
        loop_count = 0
        while not self._stop.is_set():
            capture = open_capture(camera)
            if not capture.isOpened():
                capture.release()
                self._fail(
                    decoder_failure(capture)
                    or f"cannot open video file {camera.uri}: not a readable video"
                )
                return
            fps = frame_rate_or_default(capture.get(cv2.CAP_PROP_FPS))
            first_index = round(camera.start_seconds * fps)
            if first_index:
                capture.set(cv2.CAP_PROP_POS_FRAMES, first_index)
            last_index = int(camera.end_seconds * fps) if camera.end_seconds else None
            frames_before = self.counters.frames_read
            self.state = SourceState.RUNNING
            self._replay(capture, fps, first_index, last_index, loop_count)
            capture.release()
            if self.state is SourceState.FAILED or self._stop.is_set():
                return
            if self.counters.frames_read == frames_before:
                self._fail(f"video file {camera.uri} has no decodable frame (corrupt?)")
                return
            if not camera.loop:
                self.state = SourceState.ENDED
                logger.info("camera %s: end of video file", camera.id)
                return
            loop_count += 1

    def _replay(
        self,
        capture: VideoCapture,
        fps: float,
        first_index: int,
        last_index: int | None,
        loop_count: int,
    ) -> None:
        """Read one pass over a file segment, pacing and capping as configured."""
        segment_frames = (last_index or int(capture.get(cv2.CAP_PROP_FRAME_COUNT))) - first_index
        index = first_index
        started = time.monotonic()
        next_media_time = 0.0
        while not self._stop.is_set() and (last_index is None or index < last_index):
            ok, image = capture.read()
            if not ok or image is None:
                expected_end = first_index + segment_frames
                if index < expected_end - 1:  # the header promised more frames
                    logger.warning(
                        "camera %s: video file %s ends at frame %d of %d (truncated?)",
                        self.camera.id,
                        self.camera.uri,
                        index,
                        expected_end,
                    )
                return
            media_time = (index - first_index) / fps
            index += 1
            if self.camera.fps_cap and media_time + 1e-9 < next_media_time:
                continue
            if self.camera.fps_cap:
                next_media_time += 1.0 / self.camera.fps_cap
            if self.camera.replay is ReplayMode.REALTIME:
                delay = started + media_time - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
            offset = loop_count * max(segment_frames, 1)
            self._deliver(
                Frame(
                    camera_id=self.camera.id,
                    frame_index=index - 1 + offset,
                    timestamp=(index - 1 + offset) / fps,
                    image=image,
                    captured_at=time.monotonic(),
                )
            )

    def _read_live(self) -> None:
        camera = self.camera
        attempt = 0
        frame_index = 0
        next_time = 0.0
        lost_at: float | None = None  # when a running stream broke, until it is back
        last_frame_at = time.monotonic()
        while not self._stop.is_set():
            capture = self._open_live(log=attempt == 0)
            if self.state is SourceState.FAILED:
                return
            if capture is None:
                self.state = SourceState.RECONNECTING
                self._stop.wait(self.reconnect.delay(attempt))
                attempt += 1
                continue
            if lost_at is not None:
                self.last_outage_seconds = time.monotonic() - last_frame_at
                self.counters.reconnects += 1
                logger.info(
                    "camera %s: reconnected after %.1f s", camera.id, time.monotonic() - lost_at
                )
            attempt = 0
            self.state = SourceState.RUNNING
            self.error = ""
            last_frame_at = time.monotonic()
            while not self._stop.is_set():
                ok, image = capture.read()
                if not ok or image is None:
                    lost_at = time.monotonic()
                    silent = lost_at - last_frame_at
                    reason = (
                        f"no frame for {silent:.1f} s (stalled; read timeout)"
                        if silent * 1000.0 >= self.reconnect.read_timeout_ms
                        else "stream closed"
                    )
                    self.error = f"{redact_url(camera.uri)}: {reason}"
                    logger.warning("camera %s: %s; reconnecting", camera.id, self.error)
                    break
                last_frame_at = time.monotonic()
                now = time.time()
                if camera.fps_cap and now < next_time:
                    continue
                next_time = now + 1.0 / camera.fps_cap if camera.fps_cap else 0.0
                self._deliver(Frame(camera.id, frame_index, now, image, time.monotonic()))
                frame_index += 1
            capture.release()
            self.state = SourceState.RECONNECTING

    def _open_live(self, log: bool = True) -> VideoCapture | None:
        """Open the stream; ``log``: warn on failure (the first of a series; later ones are
        debug lines, so an unreachable camera gives one warning, not one per attempt). A
        decoder that cannot start (NVDEC without a GPU) fails the source: retrying won't help."""
        camera = self.camera
        capture = open_capture(
            camera,
            open_timeout_ms=self.reconnect.open_timeout_ms,
            read_timeout_ms=self.reconnect.read_timeout_ms,
        )
        if capture.isOpened():
            return capture
        capture.release()
        failure = decoder_failure(capture)
        if failure:
            self._fail(failure)
            return None
        self.error = f"cannot open {redact_url(camera.uri)}"
        logger.log(
            logging.WARNING if log else logging.DEBUG,
            "camera %s: %s; retrying with backoff (up to every %g s)",
            camera.id,
            self.error,
            self.reconnect.max_delay_seconds,
        )
        return None

    def _deliver(self, frame: Frame) -> None:
        """Queue a frame: block in lockstep mode, else drop the oldest when full."""
        self.counters.frames_read += 1
        height, width = frame.image.shape[:2]
        if self.resolution != (width, height):
            if self.resolution is not None:
                self.counters.resolution_changes += 1
                logger.warning(
                    "camera %s: resolution changed from %dx%d to %dx%d at frame %d",
                    self.camera.id,
                    *self.resolution,
                    width,
                    height,
                    frame.frame_index,
                )
            self.resolution = (width, height)
        if self.lockstep:
            while not self._stop.is_set():
                try:
                    self.frames.put(frame, timeout=0.1)
                    return
                except queue.Full:
                    continue
            return
        while True:
            try:
                self.frames.put_nowait(frame)
                return
            except queue.Full:
                try:
                    self.frames.get_nowait()
                    self.counters.frames_dropped += 1
                except queue.Empty:
                    pass


class FrameGatherer:
    """Collects, per pipeline tick, at most one frame from each camera.

    Lockstep sources are waited for (so file cameras stay aligned); live sources contribute
    whatever they have. ``gather`` returns an empty list only when every source is finished.
    """

    def __init__(
        self,
        sources: list[CameraSource],
        poll_seconds: float = 0.05,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        """``should_stop``: when it returns True, ``gather`` returns what it has (maybe
        nothing) instead of waiting on cameras that deliver nothing (all reconnecting, or a
        file camera that stopped delivering); the runner passes its stop, reload and time
        limit checks."""
        self.sources = sources
        self.poll_seconds = poll_seconds
        self.should_stop = should_stop

    @property
    def finished(self) -> bool:
        return all(source.finished and source.frames.empty() for source in self.sources)

    def gather(self) -> list[Frame]:
        """Block until at least one frame is ready (or all sources are finished)."""
        while True:
            frames: list[Frame] = []
            for source in self.sources:
                frame = self._take(source)
                if frame is not None:
                    frames.append(frame)
            if frames or self.finished or (self.should_stop is not None and self.should_stop()):
                return frames
            time.sleep(self.poll_seconds / 5)

    def _take(self, source: CameraSource) -> Frame | None:
        if not source.lockstep:
            try:
                return source.frames.get_nowait()
            except queue.Empty:
                return None
        while True:
            finished = source.finished  # a finished source is drained, never waited for
            try:
                if finished:
                    frame = source.frames.get_nowait()
                else:
                    frame = source.frames.get(timeout=self.poll_seconds)
            except queue.Empty:
                if finished or (self.should_stop is not None and self.should_stop()):
                    return None
                continue
            frame.captured_at = time.monotonic()  # read-ahead is not latency in lockstep
            return frame
