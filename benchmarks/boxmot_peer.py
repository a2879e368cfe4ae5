"""One BoxMOT peer run, inside BoxMOT's own virtual environment (``make boxmot-venv``).

    .venv-boxmot/bin/python -m benchmarks.boxmot_peer --config run.yaml --tracker botsort \
        --reid-weights osnet_x0_25_msmt17.pt --mtmc out.txt --report out.json

Started as a subprocess by ``python -m benchmarks.peers --boxmot``: BoxMOT pins an OpenCV
below 5, so it cannot share crosscam's environment (``.venv-boxmot`` sees crosscam's packages
after its own, so torch, ultralytics and crosscam's ``pipeline`` are the same). On the same
readers as the glue rows (lockstep file replay of ``--config``), per stream: the ``.pt``
detector through ``YOLO.predict`` with the config's image size, classes and thresholds, then a
BoxMOT tracker (BoT-SORT, DeepOCSORT or StrongSORT) with its OSNet ReID on ``--reid-weights``
(a local file: nothing is downloaded), then the glue's
:class:`benchmarks.naive_matcher.NaiveCrossCameraMatcher` on the embeddings the tracker computed
for its tracked boxes (no second ReID pass). Writes the MTMC file and a JSON report (timing,
processed frames, resources) that ``benchmarks.peers`` scores like every other row.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.naive_matcher import NaiveCrossCameraMatcher
from benchmarks.pipeline import ResourceSampler, first_frames
from benchmarks.stream_baseline import StreamReplay, class_thresholds, kept_boxes
from pipeline.config import CrosscamConfig, load_config

logger = logging.getLogger("benchmarks.boxmot_peer")

TRACKERS = {
    "botsort": ("boxmot.trackers.box.botsort.tracker", "BotSort"),
    "deepocsort": ("boxmot.trackers.box.deepocsort.tracker", "DeepOcSort"),
    "strongsort": ("boxmot.trackers.box.strongsort.tracker", "StrongSort"),
}
"""``--tracker`` name -> BoxMOT module and class."""


def build_tracker(name: str, reid_weights: Path, device: str, frame_rate: float) -> Any:
    """A BoxMOT tracker whose ReID embeddings of the current frame are kept on
    ``tracker.last_embeddings`` (float32 ``(detections, D)``) after each ``update``."""
    import importlib

    module_name, class_name = TRACKERS[name]
    tracker_class = getattr(importlib.import_module(module_name), class_name)
    options: dict[str, Any] = {"reid_weights": reid_weights, "device": device, "half": False}
    if name == "botsort":
        options["frame_rate"] = round(frame_rate)
    tracker = tracker_class(**options)
    resolve = tracker._resolve_input_embeddings  # BoxMOT computes the embeddings here

    def keep_embeddings(**arguments: Any) -> np.ndarray | None:
        embeddings = resolve(**arguments)
        tracker.last_embeddings = embeddings
        return embeddings

    tracker._resolve_input_embeddings = keep_embeddings
    tracker.last_embeddings = None
    return tracker


def run(config: CrosscamConfig, tracker_name: str, reid_weights: Path, mtmc: Path) -> dict:
    """Track every camera of ``config`` with BoxMOT, match across cameras; the report dict."""
    from ultralytics import YOLO

    from pipeline.frame_rate import frame_rate_or_default

    detector = config.detector
    thresholds = class_thresholds(detector)
    predict_arguments: dict[str, Any] = {
        "imgsz": detector.image_size,
        "conf": float(min(thresholds.min(), detector.confidence)),
        "classes": detector.person_classes,
        "device": detector.device,
        "verbose": False,
    }
    models = {camera.id: YOLO(str(detector.weights), task="detect") for camera in config.cameras}
    trackers = {
        camera.id: build_tracker(
            tracker_name, reid_weights, detector.device, frame_rate_or_default(camera.fps_cap)
        )
        for camera in config.cameras
    }
    warm = first_frames(config, count=1)[0].image
    for model in models.values():
        for _ in range(2):
            model.predict(warm, **predict_arguments)
    for tracker in trackers.values():  # loads its ReID model; reset() keeps the model
        for _ in range(2):
            tracker.update(np.array([[10, 10, 60, 160, 0.9, 0]], dtype=np.float32), warm)
        tracker.reset()
    matcher = NaiveCrossCameraMatcher(config.matching.similarity_threshold)
    replay = StreamReplay(config)
    with ResourceSampler() as sampler:
        for frame in replay.frames():
            results: Any = models[frame.camera_id].predict(frame.image, **predict_arguments)
            boxes = results[0].boxes
            xyxy, confidence, keep = kept_boxes(boxes, thresholds, detector.min_box_height)
            detections = np.column_stack(
                [xyxy[keep], confidence[keep], np.zeros(int(keep.sum()))]
            ).astype(np.float32)  # one class: every kept box is a person
            tracker = trackers[frame.camera_id]
            tracks = tracker.update(detections, frame.image)
            embeddings = tracker.last_embeddings
            if len(tracks) and embeddings is not None and len(embeddings):
                track_ids = tracks[:, 4].astype(np.int64)
                features = embeddings[tracks[:, 7].astype(np.int64)]
                global_ids = matcher.update(frame.camera_id, track_ids, features)
                replay.record(frame, tracks[:, :4].tolist(), global_ids.tolist())
    replay.write_mtmc(mtmc)
    import boxmot

    return {
        "wall_seconds": replay.wall_seconds,
        "frames": len(replay.processed),
        "latency_ms": replay.latencies_ms,
        "processed_frames": replay.processed,
        "resources": sampler.summary(),
        "identities": matcher.identity_count,
        "boxmot_version": boxmot.__version__,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.boxmot_peer")
    parser.add_argument("--config", type=Path, required=True, help="prepared crosscam YAML")
    parser.add_argument("--tracker", choices=sorted(TRACKERS), required=True)
    parser.add_argument("--reid-weights", type=Path, required=True, help="local OSNet .pt")
    parser.add_argument("--mtmc", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not arguments.reid_weights.is_file():
        sys.stderr.write(f"error: ReID weights not found: {arguments.reid_weights}\n")
        return 2
    report = run(
        load_config(arguments.config), arguments.tracker, arguments.reid_weights, arguments.mtmc
    )
    arguments.report.write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
