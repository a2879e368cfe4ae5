"""Identity accuracy of MTMC output against a person ground truth.

Two families of numbers:

- Tracking metrics per camera and over all cameras together (IDF1/IDP/IDR, HOTA, MOTA),
  computed by the ``trackers`` package's eval module (TrackEval parity) on the GT sample frames
  only. Predicted ids are the pipeline's global ids, so the all-cameras IDF1 is the MTMC IDF1
  (one id per person across cameras).
- Pair precision/recall/F1 over the matched boxes (:func:`pair_scores`): for every pair of GT
  boxes that both matched a predicted box, "predicted same identity" is compared with "same
  GT person". Pairs across cameras (at any two sample frames) measure cross-camera identity;
  pairs within one camera are reported separately. Pairs in the same camera and frame are GT
  different persons by construction, so they can only be false positives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from trackers.eval import (
    box_iou,
    compute_clear_metrics,
    compute_hota_metrics,
    compute_identity_metrics,
)

from tools.ground_truth import MIN_MATCH_IOU, BoxMatch, GroundTruthBox, PredictedBox


@dataclass(frozen=True)
class PairScores:
    """Pair counts and scores. ``true_positive``: same GT person and same predicted identity;
    ``predicted_same`` = TP + FP, ``ground_truth_same`` = TP + FN. Precision (recall) is 1.0
    when there is no predicted (GT) same pair to get wrong."""

    true_positive: int
    predicted_same: int
    ground_truth_same: int
    pairs: int

    @property
    def false_positive(self) -> int:
        return self.predicted_same - self.true_positive

    @property
    def false_negative(self) -> int:
        return self.ground_truth_same - self.true_positive

    @property
    def precision(self) -> float:
        return self.true_positive / self.predicted_same if self.predicted_same else 1.0

    @property
    def recall(self) -> float:
        return self.true_positive / self.ground_truth_same if self.ground_truth_same else 1.0

    @property
    def f1(self) -> float:
        total = self.predicted_same + self.ground_truth_same
        return 2 * self.true_positive / total if total else 1.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            **asdict(self),
            "false_positive": self.false_positive,
            "false_negative": self.false_negative,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


def _same_pairs(groups: Iterable[Hashable]) -> int:
    """Number of unordered pairs of items that share a group."""
    return sum(count * (count - 1) // 2 for count in Counter(groups).values())


def pair_scores(matches: Sequence[BoxMatch]) -> dict[str, PairScores]:
    """Pair scores over ``matches``: ``cross_camera``, ``within_camera`` and ``all`` pairs.

    Counted in closed form from group sizes (no loop over the O(n²) pairs): the pairs sharing
    a key in all cameras minus those sharing it within one camera are the cross-camera ones.
    """
    persons = [match.person for match in matches]
    identities = [match.identity for match in matches]
    both = list(zip(persons, identities, strict=True))
    cameras = [match.camera for match in matches]
    count = len(matches)
    total = {
        "ground_truth": _same_pairs(persons),
        "predicted": _same_pairs(identities),
        "both": _same_pairs(both),
        "pairs": count * (count - 1) // 2,
    }
    within = {
        "ground_truth": _same_pairs(zip(cameras, persons, strict=True)),
        "predicted": _same_pairs(zip(cameras, identities, strict=True)),
        "both": _same_pairs(zip(cameras, both, strict=True)),
        "pairs": _same_pairs(cameras),
    }

    def scores(counts: dict[str, int]) -> PairScores:
        return PairScores(
            true_positive=counts["both"],
            predicted_same=counts["predicted"],
            ground_truth_same=counts["ground_truth"],
            pairs=counts["pairs"],
        )

    cross = {key: total[key] - within[key] for key in total}
    return {"cross_camera": scores(cross), "within_camera": scores(within), "all": scores(total)}


@dataclass
class TrackingInput:
    """Per-frame arrays in the layout of ``trackers.eval`` (ids remapped to 0..n-1)."""

    gt_ids: list[np.ndarray]
    tracker_ids: list[np.ndarray]
    similarity_scores: list[np.ndarray]


def tracking_input(
    ground_truth: Sequence[GroundTruthBox],
    predicted: Sequence[PredictedBox],
    frames: Sequence[tuple[int, int]],
) -> TrackingInput:
    """Arrays for ``frames`` (``(camera, frame)`` keys, in time order): GT person ids,
    predicted global ids, and their IoU matrices."""
    wanted = set(frames)
    truths: dict[tuple[int, int], list[GroundTruthBox]] = {key: [] for key in frames}
    guesses: dict[tuple[int, int], list[PredictedBox]] = {key: [] for key in frames}
    for box in ground_truth:
        if (box.camera, box.frame) in wanted:
            truths[box.camera, box.frame].append(box)
    for prediction in predicted:
        if (prediction.camera, prediction.frame) in wanted:
            guesses[prediction.camera, prediction.frame].append(prediction)
    person_index = {person: i for i, person in enumerate(sorted({b.person for b in ground_truth}))}
    identity_index = {
        identity: i for i, identity in enumerate(sorted({p.identity for p in predicted}))
    }
    data = TrackingInput([], [], [])
    for key in frames:
        gt_boxes = np.asarray([b.xyxy for b in truths[key]], dtype=np.float64).reshape(-1, 4)
        pr_boxes = np.asarray([p.xyxy for p in guesses[key]], dtype=np.float64).reshape(-1, 4)
        data.gt_ids.append(np.asarray([person_index[b.person] for b in truths[key]], np.int64))
        data.tracker_ids.append(
            np.asarray([identity_index[p.identity] for p in guesses[key]], np.int64)
        )
        if len(gt_boxes) and len(pr_boxes):
            data.similarity_scores.append(box_iou(gt_boxes, pr_boxes))
        else:
            data.similarity_scores.append(np.zeros((len(gt_boxes), len(pr_boxes))))
    return data


IDENTITY_KEYS = ("IDF1", "IDP", "IDR", "IDTP", "IDFP", "IDFN")
CLEAR_KEYS = ("MOTA", "MOTP", "CLR_Re", "CLR_Pr", "CLR_TP", "CLR_FP", "CLR_FN", "IDSW")
HOTA_KEYS = ("HOTA", "DetA", "AssA")


def tracking_metrics(
    ground_truth: Sequence[GroundTruthBox],
    predicted: Sequence[PredictedBox],
    frames: Sequence[tuple[int, int]],
    threshold: float = MIN_MATCH_IOU,
    clear: bool = True,
) -> dict[str, Any]:
    """IDF1/IDP/IDR, HOTA and (``clear``) MOTA from ``trackers.eval`` over ``frames``.

    IDF1 and HOTA do not depend on the order of ``frames``, so they are also meaningful over
    the (camera, frame) samples of several cameras together. CLEAR (MOTA, IDSW) counts
    switches between consecutive samples, which is only meaningful within one camera.
    """
    data = tracking_input(ground_truth, predicted, frames)
    arrays = (data.gt_ids, data.tracker_ids, data.similarity_scores)
    identity = compute_identity_metrics(*arrays, threshold=threshold)
    hota = compute_hota_metrics(*arrays)
    metrics: dict[str, Any] = {key: identity[key] for key in IDENTITY_KEYS}
    if clear:
        clear_metrics = compute_clear_metrics(*arrays, threshold=threshold)
        metrics |= {key: clear_metrics[key] for key in CLEAR_KEYS}
    metrics |= {key: float(hota[key]) for key in HOTA_KEYS}
    metrics["frames"] = len(frames)
    metrics["gt_boxes"] = int(sum(len(ids) for ids in data.gt_ids))
    metrics["predicted_boxes"] = int(sum(len(ids) for ids in data.tracker_ids))
    metrics["gt_persons"] = len({b.person for b in ground_truth if (b.camera, b.frame) in frames})
    metrics["predicted_identities"] = len(
        {p.identity for p in predicted if (p.camera, p.frame) in set(frames)}
    )
    return metrics
