"""What every per-stream baseline of ``benchmarks.peers`` (the glue rows, the BoxMOT rows)
shares, so that they differ only in their tracker and ReID: which detector boxes count as
persons, and how a box is written to the MTMC file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.config import DetectorConfig


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
