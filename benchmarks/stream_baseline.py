"""What every per-stream baseline of ``benchmarks.peers`` (the glue rows, the BoxMOT rows)
shares, so that they differ only in their tracker and ReID: which detector boxes count as
persons, how a box is written to the MTMC file, and the lockstep replay of the cameras that
records processed frames, frame-to-identity latencies and MTMC lines.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import CrosscamConfig, DetectorConfig
from pipeline.records import Frame
from pipeline.sources import CameraSource, FrameGatherer


def class_thresholds(detector: DetectorConfig) -> np.ndarray:
    """float32 ``(max class + 1,)`` confidence threshold per class (the config's rules)."""
    classes = [*detector.person_classes, *detector.class_confidence]
    thresholds = np.full(max(classes) + 1, detector.confidence, dtype=np.float32)
    for class_id, threshold in detector.class_confidence.items():
        thresholds[class_id] = threshold
    return thresholds


def kept_boxes(
    boxes: Any, thresholds: np.ndarray, min_box_height: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The person boxes crosscam's detector would keep from ultralytics ``Boxes``.

    Returns:
        ``(xyxy, confidence, keep)``: float ``(N, 4)`` pixels and float ``(N,)`` of every box,
        and the bool ``(N,)`` mask of those above their class threshold and ``min_box_height``.
    """
    xyxy = boxes.xyxy.cpu().numpy()
    confidence = boxes.conf.cpu().numpy()
    classes = boxes.cls.cpu().numpy().astype(np.int64)
    keep = (confidence >= thresholds[classes]) & (xyxy[:, 3] - xyxy[:, 1] >= min_box_height)
    return xyxy, confidence, keep


def mtmc_line(camera_id: int, global_id: int, frame_index: int, box: Sequence[float]) -> str:
    """One AI City MTMC row: ``camera id frame x y width height -1 -1`` (pixels, rounded)."""
    x1, y1, x2, y2 = box
    return (
        f"{camera_id} {global_id} {frame_index} {round(x1)} {round(y1)} {round(x2 - x1)} "
        f"{round(y2 - y1)} -1 -1"
    )


class StreamReplay:
    """The config's cameras replayed for one baseline run: ``for frame in replay.frames()``.

    Per frame it notes ``(camera id, frame index)`` in ``processed`` and, once the loop body
    is done with the frame, its frame-to-identity latency (ms, from ``captured_at``) in
    ``latencies_ms``; :meth:`record` keeps a frame's boxes with their global ids for the MTMC
    file. ``wall_seconds`` covers starting the readers to the last frame.
    """

    def __init__(self, config: CrosscamConfig) -> None:
        self.sources = [CameraSource(camera) for camera in config.cameras]
        self.processed: list[tuple[int, int]] = []
        self.latencies_ms: list[float] = []
        self.wall_seconds = 0.0
        self._lines: list[tuple[int, int, int, str]] = []

    def frames(self) -> Iterator[Frame]:
        """Every frame of every camera in lockstep; the readers are stopped at the end."""
        gatherer = FrameGatherer(self.sources)
        started = time.monotonic()
        for source in self.sources:
            source.start()
        try:
            while batch := gatherer.gather():
                for frame in batch:
                    self.processed.append((frame.camera_id, frame.frame_index))
                    yield frame
                    self.latencies_ms.append((time.monotonic() - frame.captured_at) * 1000.0)
        finally:
            self.wall_seconds = time.monotonic() - started
            for source in self.sources:
                source.stop()

    def record(
        self, frame: Frame, boxes: Sequence[Sequence[float]], global_ids: Sequence[int]
    ) -> None:
        """Keep ``boxes`` (xyxy pixels) of ``frame`` with their global ids for the MTMC file."""
        for box, global_id in zip(boxes, global_ids, strict=True):
            text = mtmc_line(frame.camera_id, global_id, frame.frame_index, box)
            self._lines.append((frame.camera_id, frame.frame_index, global_id, text))

    def write_mtmc(self, path: Path) -> None:
        """Write the recorded boxes, in camera, frame and identity order."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line[3] + "\n" for line in sorted(self._lines)))
