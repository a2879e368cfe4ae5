"""Person detection: one batched ultralytics YOLO forward for the frames of all cameras.

Weights are always a local file; ultralytics is told it is offline so it never tries the
network. ``backend: onnx`` or ``tensorrt`` runs an ultralytics export of those weights, made
once into the engine cache (``engines.detector_export``); ``torch`` runs the ``.pt`` itself;
``auto`` (the default) picks one for the device and falls back to torch, logged, when the
export cannot be made.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import supervision as sv

from pipeline.config import DetectorConfig
from pipeline.native_logs import import_yolo
from pipeline.records import Frame, FrameDetections, select

logger = logging.getLogger(__name__)


class PersonDetector:
    """Detect persons in a batch of frames.

    ``class_id`` of the returned detections is always 0 (person); the detector's own class is
    kept in ``detections.data["detector_class"]``.
    """

    def __init__(self, config: DetectorConfig) -> None:
        yolo = import_yolo()
        self.config = config
        self.backend, model_path = _detector_model_path(config)
        self.model = yolo(str(model_path), task="detect", verbose=False)
        self._threshold_by_class = np.full(
            max([*config.person_classes, *config.class_confidence], default=0) + 1,
            config.confidence,
            dtype=np.float32,
        )
        for class_id, threshold in config.class_confidence.items():
            self._threshold_by_class[class_id] = threshold

    def detect(self, frames: list[Frame]) -> list[FrameDetections]:
        """Run one forward pass over ``frames`` (BGR uint8 images of any sizes)."""
        if not frames:
            return []
        results = self.model.predict(
            [frame.image for frame in frames],
            imgsz=self.config.image_size,
            conf=float(min(self._threshold_by_class.min(), self.config.confidence)),
            classes=self.config.person_classes,
            device=self.config.device,
            verbose=False,
        )
        return [
            FrameDetections(frame=frame, detections=self._filter(sv.Detections.from_ultralytics(r)))
            for frame, r in zip(frames, results, strict=True)
        ]

    def _filter(self, detections: sv.Detections) -> sv.Detections:
        if len(detections) == 0:
            return _empty_detections()
        class_ids = np.asarray(detections.class_id, dtype=np.int64)
        confidence = np.asarray(detections.confidence, dtype=np.float32)
        heights = detections.xyxy[:, 3] - detections.xyxy[:, 1]
        keep = (confidence >= self._threshold_by_class[class_ids]) & (
            heights >= self.config.min_box_height
        )
        kept = select(detections, keep)
        return sv.Detections(
            xyxy=kept.xyxy.astype(np.float32),
            confidence=np.asarray(kept.confidence, dtype=np.float32),
            class_id=np.zeros(len(kept), dtype=np.int64),
            data={"detector_class": np.asarray(kept.class_id, dtype=np.int64)},
        )


def _detector_model_path(config: DetectorConfig) -> tuple[str, Path]:
    """The runtime the detector runs on and the file ``YOLO(...)`` loads for it."""
    from engines.detector_export import export_detector, resolve_detector_backend

    backend, reason = resolve_detector_backend(config.backend, config.device)
    if config.backend == "auto":
        logger.info("detector backend auto: %s (%s)", backend, reason)
    if backend == "torch":
        return backend, config.weights
    try:
        return backend, export_detector(
            config.weights, backend, config.image_size, device=config.device
        )
    except Exception as error:  # an explicit backend fails loudly; auto falls back to torch
        if config.backend != "auto":
            raise
        logger.warning("detector backend auto: %s export failed (%s); using torch", backend, error)
        return "torch", config.weights


def _empty_detections() -> sv.Detections:
    return sv.Detections(
        xyxy=np.zeros((0, 4), dtype=np.float32),
        confidence=np.zeros(0, dtype=np.float32),
        class_id=np.zeros(0, dtype=np.int64),
        data={"detector_class": np.zeros(0, dtype=np.int64)},
    )
