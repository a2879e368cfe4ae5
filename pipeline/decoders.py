"""Video decoders behind the part of ``cv2.VideoCapture`` that the camera sources use.

``camera.decoder`` picks one: ``opencv`` (OpenCV's FFmpeg backend, the default), ``pyav`` (the
FFmpeg libraries bundled with the ``av`` wheel, on the CPU) or ``nvdec`` (PyAV with FFmpeg's
CUDA hwaccel: NVDEC decodes on an NVIDIA GPU and each frame is copied back to host memory).
Every capture offers ``isOpened()``, ``read() -> (ok, image)``, ``get`` of
``CAP_PROP_FPS``/``CAP_PROP_FRAME_COUNT``, ``set(CAP_PROP_POS_FRAMES, index)`` and
``release()``; images are BGR ``uint8`` arrays of shape (height, width, 3). Network streams
get the same open/read timeouts and RTSP-over-TCP transport whichever decoder reads them;
webcams are always read by OpenCV. PyAV is imported only when a camera asks for it.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from pipeline.config import CameraConfig
from pipeline.native_logs import quiet_video_libraries
from pipeline.redaction import redact_url

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.packet import Packet
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

logger = logging.getLogger(__name__)

os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
quiet_video_libraries()  # retries of an unreachable camera are crosscam's debug lines only


class VideoCapture(Protocol):
    """What the camera sources call on a capture (``cv2.VideoCapture`` has it all)."""

    def isOpened(self) -> bool: ...  # noqa: N802 (OpenCV's name)

    def read(self) -> tuple[bool, Any]:
        """``(True, image)`` with a BGR uint8 (height, width, 3) image, or ``(False, None)``."""
        ...

    def get(self, property_id: int, /) -> float: ...

    def set(self, property_id: int, value: float, /) -> bool: ...

    def release(self) -> None: ...


class PyAvCapture:
    """Reads a video file or a network stream with PyAV, on the CPU or on NVDEC.

    A capture that cannot be opened is not an exception: ``isOpened()`` is False,
    ``open_error`` says why, and ``decoder_error`` is set when the decoder itself (PyAV, or
    NVDEC) could not start, as opposed to the video. ``read`` returns ``(False, None)`` at the
    end of a file and when a stream breaks or stalls past ``read_timeout_ms``.
    """

    def __init__(
        self,
        uri: str,
        nvdec: bool = False,
        open_timeout_ms: int | None = None,
        read_timeout_ms: int | None = None,
    ) -> None:
        """``nvdec``: decode with FFmpeg's CUDA hwaccel, without falling back to the CPU.
        ``open_timeout_ms``/``read_timeout_ms``: give up opening or waiting for data after
        that long (network streams; None waits forever)."""
        self.uri = uri
        self.nvdec = nvdec
        self.open_error = ""
        """Why the capture is not opened (PyAV's error, shortened); empty when it is."""
        self.decoder_error = ""
        """One line when PyAV is missing or NVDEC could not start (no usable CUDA device or
        driver), with the fix; empty otherwise."""
        self._container: InputContainer | None = None
        self._stream: VideoStream | None = None
        self._packets: Iterator[Packet[VideoStream]] = iter(())
        self._pending: deque[VideoFrame] = deque()
        """Decoded frames not yet returned by ``read`` (a packet may decode to several)."""
        self._frame_rate = Fraction(0)
        """Frames per second (0 when unknown)."""
        self._time_base = Fraction(0)
        """Seconds per timestamp tick of the video stream (0 when unknown)."""
        self._frame_count = 0
        self._first_timestamp: int | None = None
        """Presentation timestamp of the first frame, in stream time base (found on a seek)."""
        self._open(open_timeout_ms, read_timeout_ms)

    def _open(self, open_timeout_ms: int | None, read_timeout_ms: int | None) -> None:
        try:
            import av
            from av.codec.hwaccel import HWAccel
        except ImportError:
            self.open_error = "PyAV is not installed"
            self.decoder_error = (
                "PyAV is not installed: `pip install av`, or set `decoder: opencv` for this camera"
            )
            return

        options = {"rtsp_transport": "tcp"} if self.uri.lower().startswith("rtsp") else {}
        timeout = None
        if open_timeout_ms is not None or read_timeout_ms is not None:
            timeout = (
                None if open_timeout_ms is None else open_timeout_ms / 1000.0,
                None if read_timeout_ms is None else read_timeout_ms / 1000.0,
            )
        hwaccel = HWAccel(device_type="cuda", allow_software_fallback=False) if self.nvdec else None
        try:
            container = av.open(
                self.uri, mode="r", options=options, timeout=timeout, hwaccel=hwaccel
            )
        except av.FFmpegError as error:
            self.open_error = _error_text(error)
            nvdec_error = _nvdec_start_error() if self.nvdec else ""
            if nvdec_error:
                self.decoder_error = (
                    f"NVDEC could not start (PyAV: {nvdec_error}); set `decoder: pyav` (CPU) "
                    f"or `decoder: opencv` for this camera"
                )
            return
        if not container.streams.video:
            container.close()
            self.open_error = "no video stream"
            return
        stream = container.streams.video[0]
        if not self.nvdec:
            stream.thread_type = "AUTO"  # frame and slice threads, as OpenCV's FFmpeg backend
        self._container, self._stream = container, stream
        self._packets = container.demux(stream)
        self._frame_rate = stream.guessed_rate or stream.average_rate or Fraction(0)
        self._time_base = stream.time_base or Fraction(0)
        self._frame_count = stream.frames or self._frame_count_from_duration()

    def _frame_count_from_duration(self) -> int:
        """The frame count OpenCV reports when the header has none: duration × frame rate."""
        assert self._container is not None and self._stream is not None
        if self._container.duration:
            seconds = Fraction(self._container.duration, 1_000_000)
        elif self._stream.duration:
            seconds = self._stream.duration * self._time_base
        else:
            return 0
        return int(seconds * self._frame_rate + Fraction(1, 2))

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self._container is not None

    def read(self) -> tuple[bool, np.ndarray | None]:
        """The next frame as ``(True, BGR uint8 (height, width, 3))``, else ``(False, None)``."""
        import av

        try:
            frame = self._next_frame()
        except av.FFmpegError as error:
            logger.debug("%s: read failed: %s", redact_url(self.uri), _error_text(error))
            return False, None
        if frame is None:
            return False, None
        # contiguous like OpenCV's images (PyAV's rows may be padded)
        return True, np.ascontiguousarray(frame.to_ndarray(format="bgr24"))

    def get(self, property_id: int, /) -> float:
        """``CAP_PROP_FPS`` or ``CAP_PROP_FRAME_COUNT`` (0 for a live stream); others are 0."""
        if property_id == cv2.CAP_PROP_FPS:
            return float(self._frame_rate)
        if property_id == cv2.CAP_PROP_FRAME_COUNT:
            return float(self._frame_count)
        return 0.0

    def set(self, property_id: int, value: float, /) -> bool:
        """``CAP_PROP_POS_FRAMES``: the next ``read`` returns frame ``value`` (0-based), found
        like OpenCV does: seek to the key frame before it, then decode forward, counting."""
        if property_id != cv2.CAP_PROP_POS_FRAMES or self._container is None:
            return False
        if not (self._frame_rate and self._time_base):
            return False
        import av

        try:
            return self._seek_to_frame(max(0, int(value)))
        except av.FFmpegError as error:
            logger.debug("%s: seek failed: %s", redact_url(self.uri), _error_text(error))
            return False

    def release(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container, self._stream = None, None
        self._packets = iter(())
        self._pending.clear()

    def _next_frame(self) -> VideoFrame | None:
        """The next decoded frame in presentation order; None at the end of the video."""
        import av

        while not self._pending:
            packet = next(self._packets, None)
            if packet is None:
                return None
            try:
                self._pending.extend(packet.decode())  # the final empty packet flushes
            except av.InvalidDataError as error:  # one damaged packet: skip it, as OpenCV
                logger.debug("%s: skipped a packet: %s", redact_url(self.uri), error)
        return self._pending.popleft()

    def _seek_to_frame(self, index: int) -> bool:
        """Position on frame ``index``. The frame number of the first frame decoded after a
        seek comes from its timestamp; later ones are counted (AVI timestamps of reordered
        frames are unreliable). A seek that lands past ``index`` is retried earlier."""
        first_timestamp = self._find_first_timestamp()
        if first_timestamp is None:
            return False
        frames_back = 0
        while True:
            start = max(0, index - frames_back)
            self._seek_to_timestamp(first_timestamp + self._frames_to_ticks(start))
            frame = self._next_frame()
            if frame is None:
                return False
            position = self._frame_number(frame, first_timestamp, fallback=start)
            if position <= index or start == 0:
                break
            frames_back = max(1, frames_back * 2)
        while position < index:
            frame = self._next_frame()
            if frame is None:
                return False
            position += 1
        self._pending.appendleft(frame)
        return True

    def _find_first_timestamp(self) -> int | None:
        if self._first_timestamp is None and self._stream is not None:
            self._seek_to_timestamp(self._stream.start_time or 0)
            frame = self._next_frame()
            if frame is None:
                return None
            self._first_timestamp = _timestamp(frame) or 0
        return self._first_timestamp

    def _seek_to_timestamp(self, timestamp: int) -> None:
        """Seek to the key frame at or before ``timestamp`` (stream time base); PyAV flushes
        the decoder."""
        assert self._container is not None and self._stream is not None
        self._container.seek(timestamp, stream=self._stream, backward=True, any_frame=False)
        self._packets = self._container.demux(self._stream)
        self._pending.clear()

    def _frames_to_ticks(self, frames: int) -> int:
        return round(frames / self._frame_rate / self._time_base)

    def _frame_number(self, frame: VideoFrame, first_timestamp: int, fallback: int) -> int:
        timestamp = _timestamp(frame)
        if timestamp is None:
            return fallback
        return round((timestamp - first_timestamp) * self._time_base * self._frame_rate)


def open_capture(
    camera: CameraConfig,
    open_timeout_ms: int | None = None,
    read_timeout_ms: int | None = None,
) -> VideoCapture:
    """A capture of ``camera`` with its configured decoder (webcams: always OpenCV).

    ``open_timeout_ms``/``read_timeout_ms`` apply to network streams only. The capture may
    not be opened: check ``isOpened()``, and :func:`decoder_failure` for why.
    """
    if camera.is_webcam:
        return cv2.VideoCapture(int(camera.uri))
    live = camera.is_network
    if camera.decoder == "opencv":
        if not live:
            return cv2.VideoCapture(camera.uri)
        parameters = []
        if open_timeout_ms is not None:
            parameters += [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_timeout_ms]
        if read_timeout_ms is not None:
            parameters += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_timeout_ms]
        return cv2.VideoCapture(camera.uri, cv2.CAP_FFMPEG, parameters)
    return PyAvCapture(
        camera.uri,
        nvdec=camera.decoder == "nvdec",
        open_timeout_ms=open_timeout_ms if live else None,
        read_timeout_ms=read_timeout_ms if live else None,
    )


def decoder_failure(capture: VideoCapture) -> str:
    """One line saying why the decoder itself, not the video, could not start; '' if it did.

    Retrying such a capture cannot help, so the source fails instead of reconnecting.
    """
    return capture.decoder_error if isinstance(capture, PyAvCapture) else ""


def _nvdec_start_error() -> str:
    """PyAV's error when it cannot create a CUDA decoding device, '' when it can."""
    import av
    from av.codec.hwaccel import HWAccel

    try:
        HWAccel(device_type="cuda", allow_software_fallback=False).create(av.Codec("h264", "r"))
    except av.FFmpegError as error:
        return _error_text(error)
    return ""


def _error_text(error: Exception) -> str:
    """PyAV's message without the file name (it may be a URL with a password)."""
    text = getattr(error, "strerror", None) or str(error)
    return f"{type(error).__name__}: {text}"


def _timestamp(frame: VideoFrame) -> int | None:
    return frame.pts if frame.pts is not None else frame.dts
