"""The learned view homography against one fitted to labelled feet (the ground truth's check).

    python -m benchmarks.homography_check --calibration calibration.yaml \
        --gt benchmarks/ground_truth/terrace1.json [--write-hand-fit hand.yaml]

The ground truth labels the same person in both cameras on its sampled frames; their feet
(bottom centres of the boxes) are correspondences a person made. A homography fitted to them
(RANSAC, 3 px, OpenCV: the "hand fit") is the reference. Printed and written to
``benchmarks/results/accuracy/homography.md``: the median transfer error of the learned and
of the hand-fitted homography on those labelled pairs (pixels of the second view), and the
median distance between where the two put the labelled feet of the first view.
``--write-hand-fit`` also saves the hand fit as a calibration file (the accuracy table's
"user calibration" row).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.config import ConfigError
from pipeline.identity import load_calibration, save_calibration
from pipeline.identity.homography import ViewHomography, fit_homography, project
from pipeline.identity.trajectories import foot_points
from tools.ground_truth import GroundTruth, GroundTruthError, load_ground_truth

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
REPORT = REPOSITORY_ROOT / "benchmarks" / "results" / "accuracy" / "homography.md"


def labelled_feet(
    ground_truth: GroundTruth, first: int, second: int
) -> tuple[np.ndarray, np.ndarray]:
    """Foot points ``(N, 2)`` of one person in camera ``first`` and ``second`` on the same
    sampled frame, for every such labelled pair."""
    boxes = {(box.camera, box.frame, box.person): box.xyxy for box in ground_truth.boxes}
    sources, targets = [], []
    for (camera, frame, person), xyxy in sorted(boxes.items()):
        other = boxes.get((second, frame, person))
        if camera == first and other is not None:
            sources.append(xyxy)
            targets.append(other)
    return foot_points(np.asarray(sources)), foot_points(np.asarray(targets))


def compare(
    learned: ViewHomography, source: np.ndarray, target: np.ndarray, tolerance_px: float = 3.0
) -> dict[str, float]:
    """Median errors of the learned and the hand-fitted homography on the labelled pairs."""
    fitted = fit_homography(source, target, tolerance_px)
    if fitted is None:
        raise ValueError("the labelled feet do not fit a homography")
    hand, inliers = fitted
    learned_error = np.linalg.norm(project(learned.matrix, source) - target, axis=1)
    hand_error = np.linalg.norm(project(hand, source) - target, axis=1)
    between = np.linalg.norm(project(learned.matrix, source) - project(hand, source), axis=1)
    return {
        "pairs": len(source),
        "hand_fit_inliers": int(inliers.sum()),
        "learned_median_px": float(np.median(learned_error)),
        "hand_fit_median_px": float(np.median(hand_error)),
        "learned_vs_hand_median_px": float(np.median(between)),
        "hand_matrix": hand.tolist(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.homography_check")
    parser.add_argument("--calibration", type=Path, required=True, help="crosscam calibrate's file")
    parser.add_argument("--gt", type=Path, required=True, help="ground-truth JSON file")
    parser.add_argument("--write-hand-fit", type=Path, default=None, help="save the hand fit")
    parser.add_argument("--out", type=Path, default=REPORT, help="markdown report")
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        views = load_calibration(arguments.calibration)
        ground_truth = load_ground_truth(arguments.gt)
    except (ConfigError, GroundTruthError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    lines = [
        "# Learned view homography vs a fit to labelled feet",
        "",
        f"Calibration `{arguments.calibration.name}` (learned by `crosscam calibrate`, no "
        f"labels) against the ground truth `{arguments.gt.name}`: the feet of one person "
        "labelled in both cameras on the same frame. Errors in pixels of the second view "
        "(360x288 here).",
        "",
        "| cameras | labelled pairs | learned: median error | hand fit: median error "
        "| learned vs hand fit | learned inliers (track pairs) |",
        "|---|---|---|---|---|---|",
    ]
    hand_views: dict[tuple[int, int], ViewHomography] = {}
    for (first, second), view in sorted(views.items()):
        if first > second:
            continue
        source, target = labelled_feet(ground_truth, first, second)
        if len(source) < 4:
            continue
        result = compare(view, source, target)
        hand = np.asarray(result["hand_matrix"])
        hand_views[(first, second)] = ViewHomography(
            first, second, hand, int(result["hand_fit_inliers"]), int(result["pairs"]), 0,
            result["hand_fit_median_px"], [],
        )  # fmt: skip
        lines.append(
            f"| {first} -> {second} | {result['pairs']} | {result['learned_median_px']:.1f} px "
            f"| {result['hand_fit_median_px']:.1f} px "
            f"| {result['learned_vs_hand_median_px']:.1f} px "
            f"| {view.inliers} of {view.correspondences} ({view.track_pairs}) |"
        )
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(text)
    if arguments.write_hand_fit is not None:
        save_calibration(arguments.write_hand_fit, hand_views, [])
    return 0


if __name__ == "__main__":
    sys.exit(main())
