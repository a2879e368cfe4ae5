"""Person-identity ground truth: typed records, MTMC predictions, and box matching.

A ground-truth file (JSON, e.g. ``benchmarks/ground_truth/terrace1.json``) holds boxes sampled
every N frames in every camera, each with a person label (``p1``, ``p2``, …) that is the same
person in every camera and at every time::

    {"sequence": "epfl_terrace1", "videos": ["…-c0.mp4", "…-c1.mp4"], "fps": 25,
     "sampling": "every 50 frames", "made_by": "…", "persons": {"p1": "…", …},
     "boxes": [{"camera": 0, "frame": 0, "person": "p1", "xyxy": [x1, y1, x2, y2]}, …]}

``camera`` is the index into ``videos``; ``xyxy`` are pixels of the video frame. A box drawn by
hand (a person the detector missed) also carries ``"source": "by hand"``; boxes without
``source`` come from the detector's proposals. Both count the same in every metric.

Predictions come from a pipeline MTMC file (``camera_id obj_id frame_id xmin ymin width
height xworld yworld``, see ``pipeline/mtmc.py``). :func:`match_boxes` pairs predicted and GT
boxes one to one per (camera, frame) with the Hungarian method on IoU, keeping pairs with
IoU >= 0.5; :func:`person_of_identity` gives each predicted identity the person it overlaps
most often.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from trackers.eval import box_iou

MIN_MATCH_IOU = 0.5
"""Predicted and GT boxes match when their IoU is at least this (the MOT convention)."""

DETECTOR_SOURCE = "detector"
"""``source`` of a box that is a labelled detector proposal (the default)."""
HAND_SOURCE = "by hand"
"""``source`` of a box drawn by hand for a person the detector missed."""


class GroundTruthError(ValueError):
    """A ground-truth file that cannot be read or is not self-consistent."""


@dataclass(frozen=True)
class GroundTruthBox:
    """One labelled person box. ``xyxy`` in pixels, ``camera`` an index into the videos;
    ``source`` is ``"detector"`` (a labelled proposal) or ``"by hand"`` (drawn by a person)."""

    camera: int
    frame: int
    person: str
    xyxy: tuple[float, float, float, float]
    source: str = "detector"


@dataclass(frozen=True)
class PredictedBox:
    """One box of the pipeline's MTMC output: ``identity`` is the global id."""

    camera: int
    frame: int
    identity: int
    xyxy: tuple[float, float, float, float]


@dataclass(frozen=True)
class BoxMatch:
    """A GT box matched to a predicted box (same camera and frame, IoU >= threshold)."""

    camera: int
    frame: int
    person: str
    identity: int
    iou: float


@dataclass
class GroundTruth:
    """A whole ground-truth file."""

    sequence: str
    videos: list[str]
    fps: float
    sampling: str
    made_by: str
    persons: dict[str, str]
    boxes: list[GroundTruthBox]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_every_frames(self) -> int:
        """N of ``"every N frames"``."""
        return parse_sampling(self.sampling)

    @property
    def cameras(self) -> list[int]:
        """Camera indices, ``0 .. len(videos) - 1``."""
        return list(range(len(self.videos)))

    def sample_frames(self) -> list[int]:
        """Every frame index that has a box in some camera, sorted."""
        return sorted({box.frame for box in self.boxes})

    def boxes_at(self, camera: int, frame: int) -> list[GroundTruthBox]:
        """The boxes of one camera at one frame."""
        return [box for box in self.boxes if box.camera == camera and box.frame == frame]


def parse_sampling(sampling: str) -> int:
    """``"every 50 frames"`` → 50."""
    found = re.fullmatch(r"\s*every\s+(\d+)\s+frames?\s*", sampling)
    if found is None or int(found.group(1)) < 1:
        raise GroundTruthError(f"sampling must read 'every N frames', got {sampling!r}")
    return int(found.group(1))


def load_ground_truth(path: Path | str) -> GroundTruth:
    """Read and check a ground-truth JSON file.

    Raises:
        GroundTruthError: unreadable file, missing keys, or a problem listed by
            :func:`consistency_problems`.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise GroundTruthError(f"{path}: cannot read ground truth ({error})") from None
    try:
        ground_truth = ground_truth_from_dict(raw)
    except (KeyError, TypeError, ValueError) as error:
        raise GroundTruthError(f"{path}: malformed ground truth ({error!r})") from None
    problems = consistency_problems(ground_truth)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise GroundTruthError(f"{path}: {problems[0]}{more}")
    return ground_truth


def ground_truth_from_dict(raw: Mapping[str, Any]) -> GroundTruth:
    """Typed records from the parsed JSON (no consistency checks)."""
    known = {"sequence", "videos", "fps", "sampling", "made_by", "persons", "boxes"}
    return GroundTruth(
        sequence=str(raw["sequence"]),
        videos=[str(video) for video in raw["videos"]],
        fps=float(raw["fps"]),
        sampling=str(raw["sampling"]),
        made_by=str(raw["made_by"]),
        persons={str(label): str(text) for label, text in raw["persons"].items()},
        boxes=[
            GroundTruthBox(
                camera=int(box["camera"]),
                frame=int(box["frame"]),
                person=str(box["person"]),
                xyxy=_four_floats(box["xyxy"]),
                source=str(box.get("source", DETECTOR_SOURCE)),
            )
            for box in raw["boxes"]
        ],
        extra={key: value for key, value in raw.items() if key not in known},
    )


def ground_truth_to_dict(ground_truth: GroundTruth) -> dict[str, Any]:
    """The JSON layout of a ground truth (boxes sorted by camera, frame, person)."""
    boxes = sorted(ground_truth.boxes, key=lambda b: (b.camera, b.frame, _label_key(b.person)))
    return {
        "sequence": ground_truth.sequence,
        "videos": ground_truth.videos,
        "fps": ground_truth.fps,
        "sampling": ground_truth.sampling,
        "made_by": ground_truth.made_by,
        **ground_truth.extra,
        "persons": dict(sorted(ground_truth.persons.items(), key=lambda kv: _label_key(kv[0]))),
        "boxes": [_box_to_dict(box) for box in boxes],
    }


def _box_to_dict(box: GroundTruthBox) -> dict[str, Any]:
    """One box in the JSON layout; ``source`` is written only when it is not the detector."""
    written: dict[str, Any] = {
        "camera": box.camera,
        "frame": box.frame,
        "person": box.person,
        "xyxy": [round(value, 1) for value in box.xyxy],
    }
    if box.source != DETECTOR_SOURCE:
        written["source"] = box.source
    return written


def dump_ground_truth(data: Mapping[str, Any]) -> str:
    """JSON text of a mapping with a ``boxes`` list (a ground truth, or the proposals it was
    made from), one box per line so that diffs stay readable."""
    head = {key: value for key, value in data.items() if key != "boxes"}
    text = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    boxes = ",\n  ".join(json.dumps(box, ensure_ascii=False) for box in data.get("boxes", []))
    return f'{text},\n "boxes": [\n  {boxes}\n ]\n}}\n'


def consistency_problems(ground_truth: GroundTruth) -> list[str]:
    """Everything that makes a ground truth unusable, as one line each (empty: fine).

    Checked: sampling readable; every frame a multiple of it; cameras index ``videos``; boxes
    have positive size; every label is described in ``persons``; no person twice in one
    camera and frame; ``source`` is the detector or by hand.
    """
    problems: list[str] = []
    try:
        every = parse_sampling(ground_truth.sampling)
    except GroundTruthError as error:
        return [str(error)]
    seen: set[tuple[int, int, str]] = set()
    for index, box in enumerate(ground_truth.boxes):
        where = f"box {index} (camera {box.camera}, frame {box.frame}, {box.person})"
        if box.frame < 0 or box.frame % every:
            problems.append(f"{where}: frame is not a multiple of {every}")
        if box.camera not in ground_truth.cameras:
            problems.append(
                f"{where}: camera must index 'videos' (0..{len(ground_truth.videos) - 1})"
            )
        x1, y1, x2, y2 = box.xyxy
        if not (x2 > x1 and y2 > y1):
            problems.append(f"{where}: box {list(box.xyxy)} has no area")
        if box.source not in (DETECTOR_SOURCE, HAND_SOURCE):
            problems.append(
                f"{where}: source must be {DETECTOR_SOURCE!r} or {HAND_SOURCE!r}, "
                f"got {box.source!r}"
            )
        if box.person not in ground_truth.persons:
            problems.append(f"{where}: person {box.person!r} is not described in 'persons'")
        key = (box.camera, box.frame, box.person)
        if key in seen:
            problems.append(f"{where}: the person has two boxes in this camera and frame")
        seen.add(key)
    return problems


def load_mtmc(path: Path | str) -> list[PredictedBox]:
    """Read a pipeline MTMC file (AI City format, boxes as ``x y width height``)."""
    boxes: list[PredictedBox] = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 7:
            raise ValueError(f"{path} line {number}: expected at least 7 fields, got {line!r}")
        camera, identity, frame = (int(float(value)) for value in fields[:3])
        x, y, width, height = (float(value) for value in fields[3:7])
        boxes.append(PredictedBox(camera, frame, identity, (x, y, x + width, y + height)))
    return boxes


def match_frame(
    ground_truth_xyxy: np.ndarray, predicted_xyxy: np.ndarray, min_iou: float = MIN_MATCH_IOU
) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(gt index, predicted index, iou)`` maximising the total IoU.

    ``ground_truth_xyxy`` ``(N, 4)`` and ``predicted_xyxy`` ``(M, 4)`` are pixel boxes of one
    camera at one frame; pairs below ``min_iou`` are never matched.
    """
    if len(ground_truth_xyxy) == 0 or len(predicted_xyxy) == 0:
        return []
    iou = box_iou(
        np.asarray(ground_truth_xyxy, dtype=np.float64), np.asarray(predicted_xyxy, np.float64)
    )
    score = np.where(iou >= min_iou, iou, 0.0)
    rows, columns = linear_sum_assignment(score, maximize=True)
    return [
        (int(row), int(column), float(iou[row, column]))
        for row, column in zip(rows, columns, strict=True)
        if iou[row, column] >= min_iou
    ]


def match_boxes(
    ground_truth: Sequence[GroundTruthBox],
    predicted: Iterable[PredictedBox],
    min_iou: float = MIN_MATCH_IOU,
) -> list[BoxMatch]:
    """Match predicted to GT boxes per (camera, frame); only frames with GT boxes count."""
    by_key: dict[tuple[int, int], list[GroundTruthBox]] = {}
    for box in ground_truth:
        by_key.setdefault((box.camera, box.frame), []).append(box)
    predicted_by_key: dict[tuple[int, int], list[PredictedBox]] = {}
    for prediction in predicted:
        if (prediction.camera, prediction.frame) in by_key:
            predicted_by_key.setdefault((prediction.camera, prediction.frame), []).append(
                prediction
            )
    matches: list[BoxMatch] = []
    for (camera, frame), truths in sorted(by_key.items()):
        guesses = predicted_by_key.get((camera, frame), [])
        pairs = match_frame(_xyxy(truths), _xyxy(guesses), min_iou)
        matches += [
            BoxMatch(camera, frame, truths[row].person, guesses[column].identity, iou)
            for row, column, iou in pairs
        ]
    return matches


def person_of_identity(matches: Iterable[BoxMatch]) -> dict[int, str]:
    """Each predicted identity's person: the one its boxes match most often (ties: by label)."""
    votes: dict[int, Counter[str]] = {}
    for match in matches:
        votes.setdefault(match.identity, Counter())[match.person] += 1
    return {
        identity: min(counter.items(), key=lambda kv: (-kv[1], _label_key(kv[0])))[0]
        for identity, counter in votes.items()
    }


def _xyxy(boxes: Sequence[GroundTruthBox] | Sequence[PredictedBox]) -> np.ndarray:
    return np.asarray([box.xyxy for box in boxes], dtype=np.float64).reshape(-1, 4)


def _four_floats(values: Sequence[Any]) -> tuple[float, float, float, float]:
    if len(values) != 4:
        raise ValueError(f"xyxy needs 4 numbers, got {values!r}")
    x1, y1, x2, y2 = (float(value) for value in values)
    return x1, y1, x2, y2


def _label_key(label: str) -> tuple[str, int]:
    """Sort ``p2`` before ``p10``."""
    found = re.fullmatch(r"(\D*)(\d+)", label)
    return (found.group(1), int(found.group(2))) if found else (label, -1)
