"""Mine a tracklet dataset from video with the pipeline's own detector and tracker.

    python -m training.mine --streams configs/train/mine_bundled.yaml --out runs/mined/bundled \
        [--gt benchmarks/ground_truth/terrace1.json] [--set cameras.0.fps_cap=5]

This is crosscam's label-free training data ("self-train on your site"): the cameras of a
streams config (files are replayed as fast as possible, in lockstep, no frame dropped) go
through :class:`pipeline.detect.PersonDetector` and one :class:`pipeline.track.CameraTracker`
per camera, exactly as in a pipeline run; every tracked box is cropped and resized to the
encoder input size (the pipeline's crop, ``pipeline.clips.crop_box``) and written as a JPEG.
At the end tracks are turned into tracklets (``reid_models.mined_index``):

- pseudo-labels: one identity per track per camera;
- tracks shorter than ``--min-frames`` crops, with a mean confidence below
  ``--min-confidence`` or with boxes lower than ``--min-box-height`` pixels on average are
  dropped (fragments and false positives teach the wrong thing);
- tracks are cut into segments of at most ``--segment-seconds`` (several temporally distinct
  positives per identity for the PK sampler);
- the last ``--test-fraction`` of every camera's footage is the ``test`` split (tracks crossing
  the boundary are cut there), never trained on;
- tracklets of different tracks sharing a frame are recorded as certain negatives;
- with ``--gt``, each tracklet gets the person label its boxes overlap most (IoU >= 0.5 at the
  GT sample frames, ``tools.ground_truth``), for evaluation only.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.config import ConfigError, CrosscamConfig, ReplayMode, load_config
from pipeline.frame_rate import frame_rate_or_default
from pipeline.records import FrameDetections
from reid_models.factory import current_git_commit
from reid_models.mined_index import (
    MinedTracklet,
    mark_co_occurring,
    split_segments,
    write_index,
)

os.environ.setdefault("YOLO_OFFLINE", "1")

logger = logging.getLogger("training.mine")

JPEG_QUALITY = 92


@dataclass(frozen=True)
class MiningRules:
    """Which tracks become tracklets and how they are cut.

    Attributes:
        min_frames: fewest crops a kept segment has.
        min_confidence: lowest mean detector confidence of a kept track.
        min_box_height: lowest mean box height in pixels of a kept track.
        segment_seconds: longest span of one tracklet.
        test_fraction: the later part of every camera's footage that is held out.
    """

    min_frames: int = 8
    min_confidence: float = 0.4
    min_box_height: float = 48.0
    segment_seconds: float = 8.0
    test_fraction: float = 0.3


@dataclass
class _TrackRecord:
    camera: int
    track: int
    images: list[str] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)


class TrackletCollector:
    """Stateful stage ``update(tracked detections)``: writes crops, remembers every track.

    Args:
        out: dataset folder; crops go to ``out/crops/c<camera>/t<track>/f<frame>.jpg``.
        crop_size: ``(height, width)`` of the written crops.
    """

    def __init__(self, out: Path, crop_size: tuple[int, int]) -> None:
        self.out = out
        self.crop_size = crop_size
        self.tracks: dict[tuple[int, int], _TrackRecord] = {}
        self.first_timestamp: dict[int, float] = {}
        self.last_timestamp: dict[int, float] = {}

    def update(self, tracked: FrameDetections) -> None:
        """Record one frame's tracked boxes (``tracker_id`` set) and write their crops."""
        from pipeline.clips import crop_box

        camera = tracked.camera_id
        self.first_timestamp.setdefault(camera, tracked.timestamp)
        self.last_timestamp[camera] = tracked.timestamp
        detections = tracked.detections
        if detections.tracker_id is None:
            return
        confidences = (
            np.ones(len(detections))
            if detections.confidence is None
            else np.asarray(detections.confidence)
        )
        for box, track, confidence in zip(
            detections.xyxy, detections.tracker_id, confidences, strict=True
        ):
            record = self.tracks.setdefault((camera, int(track)), _TrackRecord(camera, int(track)))
            relative = Path("crops", f"c{camera}", f"t{int(track):05d}")
            relative = relative / f"f{tracked.frame_index:06d}.jpg"
            (self.out / relative).parent.mkdir(parents=True, exist_ok=True)
            crop = crop_box(tracked.frame.image, box, self.crop_size)
            cv2.imwrite(str(self.out / relative), crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            record.images.append(relative.as_posix())
            record.frames.append(tracked.frame_index)
            record.timestamps.append(round(float(tracked.timestamp), 4))
            record.boxes.append([round(float(value), 1) for value in box])
            record.confidences.append(round(float(confidence), 4))

    def tracklets(self, rules: MiningRules) -> list[MinedTracklet]:
        """Kept tracks as segments with their split (co-occurrence not yet marked)."""
        tracklets: list[MinedTracklet] = []
        for (camera, track), record in sorted(self.tracks.items()):
            heights = [box[3] - box[1] for box in record.boxes]
            if (
                len(record.frames) < rules.min_frames
                or float(np.mean(record.confidences)) < rules.min_confidence
                or float(np.mean(heights)) < rules.min_box_height
            ):
                continue
            start, end = self.first_timestamp[camera], self.last_timestamp[camera]
            boundary = start + (1.0 - rules.test_fraction) * (end - start)
            segment = 0
            for split, selected in _split_at(record.timestamps, boundary):
                if not selected:
                    continue
                times = [record.timestamps[position] for position in selected]
                frames = [record.frames[position] for position in selected]
                for run_start, run_end in split_segments(frames, times, rules.segment_seconds):
                    chosen = selected[run_start:run_end]
                    if len(chosen) < rules.min_frames:
                        continue
                    tracklets.append(
                        MinedTracklet(
                            camera=camera,
                            track=track,
                            segment=segment,
                            split=split,
                            images=[record.images[position] for position in chosen],
                            frames=[record.frames[position] for position in chosen],
                            timestamps=[record.timestamps[position] for position in chosen],
                            boxes=[record.boxes[position] for position in chosen],
                            confidences=[record.confidences[position] for position in chosen],
                        )
                    )
                    segment += 1
        mark_co_occurring(tracklets)
        return tracklets


def _split_at(timestamps: Sequence[float], boundary: float) -> list[tuple[str, list[int]]]:
    train = [position for position, time in enumerate(timestamps) if time < boundary]
    test = [position for position, time in enumerate(timestamps) if time >= boundary]
    return [("train", train), ("test", test)]


def label_with_ground_truth(
    tracklets: Sequence[MinedTracklet], config: CrosscamConfig, gt_path: Path
) -> None:
    """Set ``person``/``person_share`` from a ground-truth file by box overlap."""
    from benchmarks.accuracy import camera_mapping
    from tools.ground_truth import PredictedBox, load_ground_truth, match_boxes

    ground_truth = load_ground_truth(gt_path)
    gt_camera = camera_mapping(config, ground_truth)
    predicted = [
        PredictedBox(gt_camera[tracklet.camera], frame, number, (box[0], box[1], box[2], box[3]))
        for number, tracklet in enumerate(tracklets)
        if tracklet.camera in gt_camera
        for frame, box in zip(tracklet.frames, tracklet.boxes, strict=True)
    ]
    votes: dict[int, dict[str, int]] = {}
    for match in match_boxes(ground_truth.boxes, predicted):
        counts = votes.setdefault(match.identity, {})
        counts[match.person] = counts.get(match.person, 0) + 1
    for number, counts in votes.items():
        person, count = min(counts.items(), key=lambda item: (-item[1], item[0]))
        tracklets[number].person = person
        tracklets[number].person_share = round(count / sum(counts.values()), 3)


def mine(
    config: CrosscamConfig,
    out: Path,
    rules: MiningRules,
    gt_path: Path | None = None,
    made_by: dict[str, Any] | None = None,
) -> list[MinedTracklet]:
    """Run detector and trackers over the config's cameras and write ``out/index.json``."""
    from pipeline.detect import PersonDetector
    from pipeline.sources import CameraSource, FrameGatherer
    from pipeline.track import CameraTracker

    for camera in config.cameras:
        if camera.loop:
            raise ConfigError(f"camera {camera.display_name}: loop must be off for mining")
        if camera.is_file:
            camera.replay = ReplayMode.FAST
    detector = PersonDetector(config.detector)
    trackers = {
        camera.id: CameraTracker(config.tracker, frame_rate_or_default(camera.fps_cap))
        for camera in config.cameras
    }
    collector = TrackletCollector(out, (config.clips.crop_height, config.clips.crop_width))
    sources = [CameraSource(camera) for camera in config.cameras]
    for source in sources:
        source.start()
    started = time.monotonic()
    try:
        gatherer = FrameGatherer(sources)
        with tqdm(desc="mining", unit="frame") as progress:
            while frames := gatherer.gather():
                for detections in detector.detect(frames):
                    collector.update(trackers[detections.camera_id].update(detections))
                progress.update(len(frames))
                progress.set_postfix(tracks=len(collector.tracks))
    finally:
        for source in sources:
            source.stop()
    tracklets = collector.tracklets(rules)
    if gt_path is not None:
        label_with_ground_truth(tracklets, config, gt_path)
    record = {
        **(made_by or {}),
        "rules": rules.__dict__,
        "cameras": {str(camera.id): camera.uri for camera in config.cameras},
        "detector_weights": str(config.detector.weights),
        "ground_truth": None if gt_path is None else str(gt_path),
        "git_commit": current_git_commit(),
        "seconds": round(time.monotonic() - started, 1),
    }
    write_index(out / "index.json", tracklets, record)
    return tracklets


def summary_lines(tracklets: Sequence[MinedTracklet]) -> list[str]:
    """Counts per camera and split, for the console."""
    lines = []
    for camera in sorted({tracklet.camera for tracklet in tracklets}):
        for split in ("train", "test"):
            chosen = [t for t in tracklets if t.camera == camera and t.split == split]
            identities = len({tracklet.identity for tracklet in chosen})
            crops = sum(len(tracklet.images) for tracklet in chosen)
            labelled = sum(tracklet.person is not None for tracklet in chosen)
            lines.append(
                f"camera {camera} {split:5s}: {len(chosen):4d} tracklets, {identities:4d} "
                f"identities, {crops:6d} crops, {labelled:4d} with a GT person"
            )
    return lines


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    defaults = MiningRules()
    parser = argparse.ArgumentParser(
        prog="python -m training.mine", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("--streams", type=Path, required=True, help="streams YAML (cameras)")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    parser.add_argument("--gt", type=Path, help="ground-truth JSON for person labels")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--min-frames", type=int, default=defaults.min_frames)
    parser.add_argument("--min-confidence", type=float, default=defaults.min_confidence)
    parser.add_argument("--min-box-height", type=float, default=defaults.min_box_height)
    parser.add_argument("--segment-seconds", type=float, default=defaults.segment_seconds)
    parser.add_argument("--test-fraction", type=float, default=defaults.test_fraction)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not 0.0 <= arguments.test_fraction < 1.0:
        logger.error("--test-fraction must be in [0, 1), got %s", arguments.test_fraction)
        return 2
    if arguments.gt is not None and not arguments.gt.is_file():
        logger.error("ground truth not found: %s (pass an existing --gt file)", arguments.gt)
        return 2
    try:
        config = load_config(arguments.streams, arguments.set)
    except ConfigError as error:
        logger.error("%s", error)
        return 2
    if arguments.out.joinpath("index.json").exists():
        logger.error("%s already holds a dataset; choose another --out or remove it", arguments.out)
        return 2
    rules = MiningRules(
        arguments.min_frames,
        arguments.min_confidence,
        arguments.min_box_height,
        arguments.segment_seconds,
        arguments.test_fraction,
    )
    command = ["python", "-m", "training.mine", *(argv or sys.argv[1:])]
    tracklets = mine(config, arguments.out, rules, arguments.gt, {"command": " ".join(command)})
    for line in summary_lines(tracklets):
        logger.info("%s", line)
    logger.info("wrote %s", arguments.out / "index.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
