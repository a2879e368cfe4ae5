"""The libraries' own output, kept out of crosscam's: FFmpeg and OpenCV lines on stderr, and
ultralytics' lines on stdout.

An unreachable RTSP camera makes OpenCV's FFmpeg backend write ``[tcp @ 0x…] Connection …
refused`` and OpenCV itself ``[ WARN:0@…] … can't be used to capture by name`` straight to file
descriptor 2 at every retry, and ultralytics prints ``Loading … for ONNX Runtime inference``
on stdout among the status lines. crosscam reports those faults itself (one warning per camera
fault, retries as debug lines), and a raw line breaks ``--log-format json``, so:

- FFmpeg inside OpenCV logs nothing (``OPENCV_FFMPEG_LOGLEVEL=-8``, read when OpenCV opens its
  first FFmpeg capture) and OpenCV only its errors, unless the environment already sets
  ``OPENCV_FFMPEG_LOGLEVEL`` / ``OPENCV_LOG_LEVEL`` (``OPENCV_FFMPEG_LOGLEVEL=32`` shows
  FFmpeg's warnings again when debugging a camera);
- ultralytics' logger loses its stdout handler and goes through crosscam's logging (text or
  JSON, stderr) at WARNING and above.
"""

from __future__ import annotations

import logging
import os
from typing import Any

FFMPEG_QUIET = "-8"
"""FFmpeg's ``AV_LOG_QUIET``."""


def quiet_video_libraries() -> None:
    """Silence FFmpeg inside OpenCV and OpenCV's own warnings; call before opening a capture.
    Values the environment sets win."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", FFMPEG_QUIET)
    if "OPENCV_LOG_LEVEL" in os.environ:
        return
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def import_yolo() -> Any:
    """ultralytics' ``YOLO`` class, offline, its log routed into crosscam's (warnings and up,
    nothing on stdout)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    route_ultralytics_logs()
    return YOLO


def route_ultralytics_logs() -> None:
    """Drop the stdout handler ultralytics installs at import and let its records reach the
    root logger's handlers, from WARNING up."""
    ultralytics_logger = logging.getLogger("ultralytics")
    for handler in list(ultralytics_logger.handlers):
        ultralytics_logger.removeHandler(handler)
    ultralytics_logger.propagate = True
    ultralytics_logger.setLevel(logging.WARNING)
