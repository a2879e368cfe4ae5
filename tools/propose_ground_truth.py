"""Helper for making a person-identity ground truth by eye (used for EPFL terrace1).

The ground truth is made in four steps; only step 3 needs a person::

    # 1. proposals: detector boxes at the sample frames, linked over time by the pipeline's
    #    own ByteTrack run on every frame (about 5 min per camera on 2 CPU cores)
    python -m tools.propose_ground_truth detect \
        --videos assets/videos/epfl_terrace1-c0.mp4 assets/videos/epfl_terrace1-c1.mp4 \
        --out benchmarks/ground_truth/terrace1_proposals.json
    # 2. pictures to look at: each sample frame of all cameras side by side with numbered
    #    boxes ("box index:track"), and one contact sheet of crops per camera track
    python -m tools.propose_ground_truth render \
        --proposals benchmarks/ground_truth/terrace1_proposals.json --out runs/ground_truth/terrace1
    # 3. by hand: write the decisions into a labels file (format below) while viewing the PNGs
    # 4. build the ground truth, then render it per person to check it by eye again
    python -m tools.propose_ground_truth build \
        --proposals benchmarks/ground_truth/terrace1_proposals.json \
        --labels benchmarks/ground_truth/terrace1_labels.json \
        --out benchmarks/ground_truth/terrace1.json
    python -m tools.propose_ground_truth review \
        --gt benchmarks/ground_truth/terrace1.json --out runs/ground_truth/terrace1/review

Proposal boxes are named ``c<camera>f<frame>b<index>`` (index in that frame, by confidence) and
carry the camera-local ``track`` id of the full-frame-rate tracker, or -1. The proposals used
for terrace1 are committed next to the labels, so ``build`` reproduces the ground truth exactly
without running the detector (a re-run of ``detect`` with other library versions may number
boxes differently, and the labels refer to box names).

The labels file (JSON) records every decision taken by eye::

    {
      "persons": {"p1": "short description of clothing, hair, bags", ...},
      "tracks": {"0:7": "p1", ...},         # camera:track -> label for all its proposal boxes
      "boxes": {"c0f1500b3": "p2", "c1f100b4": null, ...},  # per box: relabel, null = drop
      "edits": {"c0f1500b3": [x1, y1, x2, y2], ...},        # per box: corrected coordinates
      "added": [{"camera": 0, "frame": 1500, "person": "p4", "xyxy": [x1, y1, x2, y2],
                 "source": "by hand", "note": "behind p2, head and legs visible"}, ...],
      "notes": ["free text: doubts, what was checked", ...]
    }

``added`` holds the boxes drawn by hand for people the detector missed (no proposal to label):
camera, sample frame, a person of ``persons``, pixel ``xyxy`` read off a zoomed frame,
``"source": "by hand"``, and an optional ``note``. ``build`` checks each one (see
:func:`added_box`) and keeps ``"source": "by hand"`` on it in the ground truth.

Proposal boxes that end up with no label (no track label, no box label) are left out; the
``build`` step lists them so that none is forgotten.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import supervision as sv

from pipeline.frame_rate import DEFAULT_FRAME_RATE, frame_rate_or_default
from tools.ground_truth import dump_ground_truth

os.environ.setdefault("YOLO_OFFLINE", "1")

logger = logging.getLogger("propose_ground_truth")

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPOSITORY_ROOT / "assets/weights/yolov8_person_hfd.pt"
SAMPLE_EVERY_FRAMES = 50
RENDER_SCALE = 2
PALETTE = sv.ColorPalette.DEFAULT


@dataclass
class ProposalBox:
    """One detector box at a sample frame."""

    name: str
    camera: int
    frame: int
    xyxy: list[float]
    confidence: float
    detector_class: int
    track: int


def sample_frames(frame_count: int, every: int = SAMPLE_EVERY_FRAMES) -> list[int]:
    """The sampled frame indices ``0, every, 2 * every, …`` below ``frame_count``."""
    return list(range(0, frame_count, every))


def read_frames(video: Path) -> Iterator[tuple[int, np.ndarray]]:
    """Every frame of a video as ``(index, BGR uint8 image)``."""
    capture = cv2.VideoCapture(str(video))
    index = 0
    try:
        while True:
            ok, image = capture.read()
            if not ok or image is None:
                return
            yield index, image
            index += 1
    finally:
        capture.release()


def read_frame(video: Path, frame: int) -> np.ndarray:
    """One frame of a video (BGR uint8)."""
    capture = cv2.VideoCapture(str(video))
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, frame)
        ok, image = capture.read()
    finally:
        capture.release()
    if not ok or image is None:
        raise ValueError(f"{video}: cannot read frame {frame}")
    return np.asarray(image)


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of every pair of ``(N, 4)`` and ``(M, 4)`` xyxy boxes, shape ``(N, M)``."""
    if len(boxes_a) == 0 or len(boxes_b) == 0:
        return np.zeros((len(boxes_a), len(boxes_b)))
    return np.asarray(sv.box_iou_batch(boxes_a, boxes_b), dtype=np.float64)


# ---------------------------------------------------------------------------- step 1: detect


def detect(
    videos: Sequence[Path],
    weights: Path,
    proposal_image_size: int,
    proposal_confidence: float,
    every: int,
) -> dict[str, Any]:
    """Proposal boxes at the sample frames of each video, with track ids from a full-rate run.

    The tracking pass uses the pipeline's own detector and ByteTrack settings (image size 416,
    every frame); the proposals come from a second, more permissive detector pass (larger
    image, lower confidence, both classes) at the sample frames only. A proposal takes the
    track id of the tracked box it overlaps most (IoU >= 0.5).
    """
    from ultralytics import YOLO

    from pipeline.config import DetectorConfig, TrackerConfig
    from pipeline.detect import PersonDetector
    from pipeline.records import Frame
    from pipeline.track import CameraTracker

    model = YOLO(str(weights), task="detect")
    detector = PersonDetector(DetectorConfig(weights=weights))
    boxes: list[ProposalBox] = []
    frame_counts: list[int] = []
    fps_values: list[float] = []
    for camera, video in enumerate(videos):
        capture = cv2.VideoCapture(str(video))
        fps = frame_rate_or_default(capture.get(cv2.CAP_PROP_FPS))
        frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.release()
        fps_values.append(fps)
        frame_counts.append(frame_count)
        tracker = CameraTracker(TrackerConfig(), frame_rate=fps)
        for index, image in read_frames(video):
            frame = Frame(camera, index, index / fps, image, 0.0)
            tracked = tracker.update(detector.detect([frame])[0]).detections
            if index % every:
                continue
            results = model.predict(
                image, imgsz=proposal_image_size, conf=proposal_confidence, verbose=False
            )
            proposals = sv.Detections.from_ultralytics(next(iter(results)))
            order = np.argsort(-np.asarray(proposals.confidence))
            overlap = iou_matrix(proposals.xyxy[order], tracked.xyxy)
            for rank, proposal in enumerate(order):
                track = -1
                if overlap.shape[1] and overlap[rank].max() >= 0.5:
                    track = int(np.asarray(tracked.tracker_id)[int(overlap[rank].argmax())])
                boxes.append(
                    ProposalBox(
                        name=f"c{camera}f{index}b{rank}",
                        camera=camera,
                        frame=index,
                        xyxy=[round(float(v), 1) for v in proposals.xyxy[proposal]],
                        confidence=round(float(np.asarray(proposals.confidence)[proposal]), 3),
                        detector_class=int(np.asarray(proposals.class_id)[proposal]),
                        track=track,
                    )
                )
            if index % 500 == 0:
                logger.info("camera %d: frame %d/%d", camera, index, frame_count)
    return {
        "videos": [str(video) for video in videos],
        "fps": fps_values[0] if fps_values else DEFAULT_FRAME_RATE,
        "frame_counts": frame_counts,
        "every": every,
        "proposal_image_size": proposal_image_size,
        "proposal_confidence": proposal_confidence,
        "boxes": [vars(box) for box in boxes],
    }


def load_proposals(path: Path) -> tuple[dict[str, Any], list[ProposalBox]]:
    """The proposals file and its boxes."""
    data = json.loads(path.read_text())
    return data, [ProposalBox(**box) for box in data["boxes"]]


# ---------------------------------------------------------------------------- step 2: render


def color_of(key: int) -> tuple[int, int, int]:
    """A BGR colour for a track or person number (-1: grey)."""
    if key < 0:
        return (160, 160, 160)
    return PALETTE.by_idx(key).as_bgr()


def draw_boxes(
    image: np.ndarray,
    boxes: Sequence[tuple[list[float], str, int]],
    scale: int = RENDER_SCALE,
) -> np.ndarray:
    """``image`` enlarged ``scale`` times with each ``(xyxy, text, colour key)`` drawn on it."""
    canvas = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    for xyxy, text, key in boxes:
        x1, y1, x2, y2 = (round(v * scale) for v in xyxy)
        color = color_of(key)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, 2)
        (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)
        top = max(y1 - height - 6, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + width + 4, top + height + 6), color, -1)
        cv2.putText(
            canvas, text, (x1 + 2, top + height + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
            (0, 0, 0), 1, cv2.LINE_AA,
        )  # fmt: skip
    return canvas


def side_by_side(images: Sequence[np.ndarray], caption: str) -> np.ndarray:
    """Images of equal height in one row, with a caption bar on top."""
    row = np.concatenate([*images], axis=1) if images else np.zeros((10, 10, 3), np.uint8)
    bar = np.full((28, row.shape[1], 3), 255, dtype=np.uint8)
    cv2.putText(bar, caption, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, row], axis=0)


def crop(image: np.ndarray, xyxy: Sequence[float], height: int) -> np.ndarray:
    """The box region resized to ``height`` pixels (width follows, at least 8 pixels)."""
    image_height, image_width = image.shape[:2]
    x1, y1 = max(int(xyxy[0]), 0), max(int(xyxy[1]), 0)
    x2, y2 = min(math.ceil(xyxy[2]), image_width), min(math.ceil(xyxy[3]), image_height)
    region = image[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)]
    width = max(8, round(region.shape[1] * height / max(region.shape[0], 1)))
    return np.asarray(cv2.resize(region, (width, height), interpolation=cv2.INTER_CUBIC))


def contact_sheet(
    rows: Sequence[tuple[str, Sequence[tuple[np.ndarray, str]]]], height: int = 128
) -> np.ndarray:
    """One row per ``(title, [(crop, caption), …])``; crops must be ``height`` pixels high."""
    rendered: list[np.ndarray] = []
    for title, crops in rows:
        tiles = [_titled(np.full((height, 90, 3), 255, np.uint8), title)]
        tiles += [_titled(image, caption) for image, caption in crops]
        rendered.append(np.concatenate(tiles, axis=1))
    width = max(row.shape[1] for row in rendered)
    padded = [np.pad(row, ((0, 4), (0, width - row.shape[1]), (0, 0))) for row in rendered]
    return np.concatenate(padded, axis=0)


def _titled(image: np.ndarray, caption: str) -> np.ndarray:
    bar = np.full((16, max(image.shape[1], 8 * len(caption)), 3), 255, np.uint8)
    cv2.putText(bar, caption, (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    body = np.pad(image, ((0, 0), (0, bar.shape[1] - image.shape[1]), (0, 0)), constant_values=255)
    return np.pad(np.concatenate([bar, body], axis=0), ((0, 0), (0, 3), (0, 0)))


def load_sample_images(
    videos: Sequence[Path], frames: Sequence[int]
) -> dict[tuple[int, int], np.ndarray]:
    """The images at ``frames`` of each video, keyed by ``(camera, frame)``."""
    wanted = set(frames)
    images: dict[tuple[int, int], np.ndarray] = {}
    for camera, video in enumerate(videos):
        for index, image in read_frames(video):
            if index in wanted:
                images[camera, index] = image
            if index > max(wanted):
                break
    return images


def render(proposals_path: Path, out: Path, frames_per_page: int = 2) -> None:
    """Frames with numbered proposal boxes, and per-track contact sheets of crops."""
    data, boxes = load_proposals(proposals_path)
    videos = [resolve_video(video) for video in data["videos"]]
    frames = sorted(
        {box.frame for box in boxes} | set(sample_frames(min(data["frame_counts"]), data["every"]))
    )
    images = load_sample_images(videos, frames)
    by_frame: dict[tuple[int, int], list[ProposalBox]] = defaultdict(list)
    for box in boxes:
        by_frame[box.camera, box.frame].append(box)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    for page_start in range(0, len(frames), frames_per_page):
        page = []
        for frame in frames[page_start : page_start + frames_per_page]:
            drawn = [
                draw_boxes(
                    images[camera, frame],
                    [
                        (box.xyxy, f"{box.name.rsplit('b', 1)[1]}:t{box.track}", box.track)
                        for box in by_frame[camera, frame]
                    ],
                )
                for camera in range(len(videos))
            ]
            page.append(side_by_side(drawn, f"frame {frame}: cameras 0 | 1   (box:track)"))
        cv2.imwrite(
            str(out / "frames" / f"frame_{frames[page_start]:04d}.png"), np.concatenate(page)
        )
    (out / "tracks").mkdir(parents=True, exist_ok=True)
    for camera in range(len(videos)):
        by_track: dict[int, list[ProposalBox]] = defaultdict(list)
        for box in boxes:
            if box.camera == camera and box.track >= 0:
                by_track[box.track].append(box)
        rows = [
            (
                f"c{camera} t{track}",
                [
                    (crop(images[camera, box.frame], box.xyxy, 128), f"f{box.frame}")
                    for box in sorted(members, key=lambda b: b.frame)
                ],
            )
            for track, members in sorted(by_track.items())
        ]
        for page_start in range(0, len(rows), 8):
            sheet = contact_sheet(rows[page_start : page_start + 8])
            name = f"camera{camera}_tracks_{page_start // 8:02d}.png"
            cv2.imwrite(str(out / "tracks" / name), sheet)
    logger.info("rendered %d frames and the track sheets under %s", len(frames), out)


def resolve_video(video: str | Path) -> Path:
    """A video path as stored in a file: absolute, or relative to the repository root."""
    path = Path(video)
    return path if path.is_absolute() else REPOSITORY_ROOT / path


# ---------------------------------------------------------------------------- step 4: build


@dataclass
class BuildResult:
    """The ground truth and what the labels file left open."""

    ground_truth: dict[str, Any]
    undecided: list[ProposalBox]
    duplicates: list[str]


def build(
    proposals: dict[str, Any], boxes: Sequence[ProposalBox], labels: dict[str, Any]
) -> BuildResult:
    """Apply the decisions of a labels file to the proposal boxes.

    A box takes its ``boxes`` entry if it has one (``null``: dropped), else the label of its
    ``camera:track``; coordinates come from ``edits`` if given. ``added`` boxes (by hand) are
    checked by :func:`added_box` and appended. Boxes with no decision are returned as
    ``undecided``; two boxes of one person in one camera and frame as ``duplicates``.
    """
    from tools.ground_truth import (
        GroundTruth,
        GroundTruthBox,
        consistency_problems,
        ground_truth_to_dict,
    )

    track_labels: dict[str, str | None] = labels.get("tracks", {})
    box_labels: dict[str, str | None] = labels.get("boxes", {})
    edits: dict[str, list[float]] = labels.get("edits", {})
    known = {box.name for box in boxes}
    unknown = (set(box_labels) | set(edits)) - known
    if unknown:
        raise ValueError(f"labels name boxes that are not proposals: {sorted(unknown)[:5]}")
    result: list[GroundTruthBox] = []
    undecided: list[ProposalBox] = []
    for box in boxes:
        if box.name in box_labels:
            person = box_labels[box.name]
        else:
            person = track_labels.get(f"{box.camera}:{box.track}") if box.track >= 0 else None
            if person is None and f"{box.camera}:{box.track}" not in track_labels:
                undecided.append(box)
        if person is None:
            continue
        xyxy = edits.get(box.name, box.xyxy)
        result.append(GroundTruthBox(box.camera, box.frame, person, _four(xyxy)))
    for index, added in enumerate(labels.get("added", [])):
        result.append(added_box(index, added, proposals, labels["persons"], result))
    ground_truth = GroundTruth(
        sequence=labels["sequence"],
        videos=proposals["videos"],
        fps=float(proposals["fps"]),
        sampling=f"every {proposals['every']} frames",
        made_by=labels["made_by"],
        persons=labels["persons"],
        boxes=result,
        extra={"frame_count": min(proposals["frame_counts"]), "notes": labels.get("notes", [])},
    )
    problems = consistency_problems(ground_truth)
    return BuildResult(ground_truth_to_dict(ground_truth), undecided, problems)


ADDED_KEYS = frozenset({"camera", "frame", "person", "xyxy", "source"})
ADDED_OPTIONAL_KEYS = frozenset({"note"})


def added_box(
    index: int,
    added: Any,
    proposals: dict[str, Any],
    persons: dict[str, str],
    boxes: Sequence[Any],
) -> Any:
    """The ground-truth box of entry ``index`` of a labels file's ``added`` list.

    Raises:
        ValueError: naming the entry, when it is not a mapping of exactly the keys
            ``camera, frame, person, xyxy, source`` (and optionally ``note``), ``source`` is not
            ``"by hand"``, the camera is not one of the videos, the frame is not a sample frame
            of the footage, the person is not in ``persons``, ``xyxy`` is not four numbers
            with ``0 <= x1 < x2`` and ``0 <= y1 < y2``, or the box repeats a box of ``boxes``
            (same camera and frame, IoU >= 0.5: label that proposal instead).
    """
    from tools.ground_truth import HAND_SOURCE, GroundTruthBox

    where = f"labels 'added'[{index}]"
    if not isinstance(added, dict):
        raise ValueError(f"{where}: expected an object, got {added!r}")
    missing, unknown = ADDED_KEYS - set(added), set(added) - ADDED_KEYS - ADDED_OPTIONAL_KEYS
    if missing or unknown:
        raise ValueError(
            f"{where}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)} "
            f"(expected {sorted(ADDED_KEYS)}, optionally {sorted(ADDED_OPTIONAL_KEYS)})"
        )
    if added["source"] != HAND_SOURCE:
        raise ValueError(f"{where}: source must be {HAND_SOURCE!r}, got {added['source']!r}")
    camera, frame, person = added["camera"], added["frame"], added["person"]
    where += f" (camera {camera}, frame {frame}, {person})"
    if not isinstance(camera, int) or not 0 <= camera < len(proposals["videos"]):
        raise ValueError(
            f"{where}: camera must index the videos (0..{len(proposals['videos']) - 1})"
        )
    every, frame_count = int(proposals["every"]), min(proposals["frame_counts"])
    if not isinstance(frame, int) or frame % every or not 0 <= frame < frame_count:
        raise ValueError(f"{where}: frame must be a multiple of {every} below {frame_count}")
    if person not in persons:
        raise ValueError(f"{where}: person {person!r} is not described in 'persons'")
    xyxy = added["xyxy"]
    if (
        not isinstance(xyxy, list)
        or len(xyxy) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in xyxy)
    ):
        raise ValueError(f"{where}: xyxy must be 4 numbers [x1, y1, x2, y2], got {xyxy!r}")
    x1, y1, x2, y2 = _four(xyxy)
    if not (0 <= x1 < x2 and 0 <= y1 < y2):
        raise ValueError(f"{where}: xyxy {xyxy} needs 0 <= x1 < x2 and 0 <= y1 < y2 (pixels)")
    same_frame = [box for box in boxes if (box.camera, box.frame) == (camera, frame)]
    if same_frame:
        overlap = iou_matrix(
            np.asarray([xyxy], np.float64), np.asarray([b.xyxy for b in same_frame])
        )
        if overlap.max() >= 0.5:
            twin = same_frame[int(overlap.argmax())]
            raise ValueError(
                f"{where}: repeats the box of {twin.person} there (IoU {overlap.max():.2f}); "
                "label that proposal in 'boxes' instead"
            )
    return GroundTruthBox(camera, frame, person, (x1, y1, x2, y2), HAND_SOURCE)


def _four(values: Sequence[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(value) for value in values)
    return x1, y1, x2, y2


# ---------------------------------------------------------------------------- review


def review(gt_path: Path, out: Path, frames_per_page: int = 2) -> None:
    """Frames with the GT person labels drawn, and one contact sheet per person.

    The person sheets put every box of one person (both cameras, in time order) side by
    side: a crop that does not look like its neighbours is a labelling mistake.
    """
    from tools.ground_truth import load_ground_truth

    ground_truth = load_ground_truth(gt_path)
    videos = [resolve_video(video) for video in ground_truth.videos]
    frames = sample_frames(int(ground_truth.extra["frame_count"]), ground_truth.sample_every_frames)
    images = load_sample_images(videos, frames)
    number = {label: index for index, label in enumerate(ground_truth.persons)}
    (out / "frames").mkdir(parents=True, exist_ok=True)
    for page_start in range(0, len(frames), frames_per_page):
        page = []
        for frame in frames[page_start : page_start + frames_per_page]:
            drawn = [
                draw_boxes(
                    images[camera, frame],
                    [
                        (list(box.xyxy), box.person, number[box.person])
                        for box in ground_truth.boxes_at(camera, frame)
                    ],
                )
                for camera in ground_truth.cameras
            ]
            page.append(side_by_side(drawn, f"GT frame {frame}: cameras 0 | 1"))
        name = f"gt_frame_{frames[page_start]:04d}.png"
        cv2.imwrite(str(out / "frames" / name), np.concatenate(page))
    (out / "persons").mkdir(parents=True, exist_ok=True)
    for person in ground_truth.persons:
        rows = []
        for camera in ground_truth.cameras:
            mine = sorted(
                (b for b in ground_truth.boxes if b.person == person and b.camera == camera),
                key=lambda b: b.frame,
            )
            for chunk in range(0, len(mine), 20):
                rows.append(
                    (
                        f"{person} c{camera}",
                        [
                            (crop(images[camera, b.frame], b.xyxy, 96), f"{b.frame}")
                            for b in mine[chunk : chunk + 20]
                        ],
                    )
                )
        if rows:
            cv2.imwrite(str(out / "persons" / f"{person}.png"), contact_sheet(rows, height=96))
    logger.info("review pictures under %s", out)


# ---------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.propose_ground_truth", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    detect_parser = commands.add_parser("detect", help="proposal boxes with track ids")
    detect_parser.add_argument("--videos", type=Path, nargs="+", required=True)
    detect_parser.add_argument("--out", type=Path, required=True)
    detect_parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    detect_parser.add_argument("--image-size", type=int, default=640)
    detect_parser.add_argument("--confidence", type=float, default=0.15)
    detect_parser.add_argument("--every", type=int, default=SAMPLE_EVERY_FRAMES)
    render_parser = commands.add_parser("render", help="numbered boxes and track sheets")
    render_parser.add_argument("--proposals", type=Path, required=True)
    render_parser.add_argument("--out", type=Path, required=True)
    build_parser = commands.add_parser("build", help="ground truth from proposals + labels")
    build_parser.add_argument("--proposals", type=Path, required=True)
    build_parser.add_argument("--labels", type=Path, required=True)
    build_parser.add_argument("--out", type=Path, required=True)
    review_parser = commands.add_parser("review", help="pictures of a ground truth")
    review_parser.add_argument("--gt", type=Path, required=True)
    review_parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if arguments.command == "detect":
        data = detect(
            arguments.videos,
            arguments.weights,
            arguments.image_size,
            arguments.confidence,
            arguments.every,
        )
        arguments.out.parent.mkdir(parents=True, exist_ok=True)
        arguments.out.write_text(dump_ground_truth(data))
        logger.info("%d proposal boxes written to %s", len(data["boxes"]), arguments.out)
    elif arguments.command == "render":
        render(arguments.proposals, arguments.out)
    elif arguments.command == "build":
        data, boxes = load_proposals(arguments.proposals)
        try:
            result = build(data, boxes, json.loads(arguments.labels.read_text()))
        except ValueError as error:
            logger.error("%s: %s", arguments.labels, error)
            return 1
        for box in result.undecided:
            logger.warning(
                "undecided: %s (track %d, confidence %.2f)", box.name, box.track, box.confidence
            )
        for problem in result.duplicates:
            logger.error("%s", problem)
        if result.duplicates:
            return 1
        arguments.out.write_text(dump_ground_truth(result.ground_truth))
        logger.info(
            "%d boxes of %d persons written to %s",
            len(result.ground_truth["boxes"]),
            len(result.ground_truth["persons"]),
            arguments.out,
        )
    elif arguments.command == "review":
        review(arguments.gt, arguments.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
