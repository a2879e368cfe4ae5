"""Annotated videos, one per camera: boxes labelled with global identities.

A box reads ``id 7`` once its track has a global identity, and ``t3 pending`` (local track 3,
no identity yet) until its first clip is matched. This is the only module that draws; trackers
and matchers never do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import supervision as sv

from pipeline.frame_rate import DEFAULT_FRAME_RATE
from pipeline.records import FrameDetections, select


def box_label(global_id: int, track_id: int) -> str:
    """``id 7`` for a track with a global identity; ``t3 pending`` before it has one (a
    negative ``global_id``), so a local track id never reads as an identity."""
    return f"id {global_id}" if global_id >= 0 else f"t{track_id} pending"


class AnnotatedVideoWriter:
    """Writes ``<directory>/camera_<id>.mp4`` for each camera, frame by frame."""

    def __init__(self, directory: Path, frame_rates: dict[int, float]) -> None:
        self.directory = directory
        self.frame_rates = frame_rates
        self._writers: dict[int, cv2.VideoWriter] = {}
        self._boxes = sv.BoxAnnotator(thickness=2, color_lookup=sv.ColorLookup.TRACK)
        self._labels = sv.LabelAnnotator(
            text_scale=0.4, text_padding=3, color_lookup=sv.ColorLookup.TRACK
        )

    def update(
        self, frame_detections: FrameDetections, global_id_of: Callable[[int, int], int]
    ) -> None:
        """Draw one frame's tracked boxes and append it to its camera's video."""
        frame = frame_detections.frame
        detections = frame_detections.detections
        image = frame.image.copy()
        if len(detections) and detections.tracker_id is not None:
            global_ids = [global_id_of(frame.camera_id, int(t)) for t in detections.tracker_id]
            labels = [
                box_label(g, int(t)) for g, t in zip(global_ids, detections.tracker_id, strict=True)
            ]
            colored = select(detections, np.ones(len(detections), dtype=bool))
            colored.tracker_id = np.asarray(
                [
                    g if g >= 0 else 10_000 + int(t)
                    for g, t in zip(global_ids, detections.tracker_id, strict=True)
                ]
            )
            image = self._boxes.annotate(image, colored)
            image = self._labels.annotate(image, colored, labels=labels)
        self._writer(frame.camera_id, image).write(image)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.release()
        self._writers.clear()

    def _writer(self, camera_id: int, image: object) -> cv2.VideoWriter:
        if camera_id not in self._writers:
            self.directory.mkdir(parents=True, exist_ok=True)
            height, width = image.shape[:2]  # type: ignore[attr-defined]
            self._writers[camera_id] = cv2.VideoWriter(
                str(self.directory / f"camera_{camera_id}.mp4"),
                cv2.VideoWriter.fourcc(*"mp4v"),
                self.frame_rates.get(camera_id, DEFAULT_FRAME_RATE),
                (width, height),
            )
        return self._writers[camera_id]
