"""Ground-plane homographies between overlapping camera views, learned from the footage.

No labels and no manual calibration: tracks of two cameras that are visible at the same time
and look alike (mutual best appearance match) are taken as the same person, their foot points
at common timestamps (:mod:`pipeline.identity.trajectories`) become correspondences, and
RANSAC (OpenCV) fits the view-to-view homography. The fit is then revised: every pair of
simultaneous tracks is scored by how well the homography carries one's feet onto the other's,
the geometrically consistent pairs (one-to-one, Hungarian) replace the appearance seeds, and
the homography is fitted again. A camera pair whose views do not overlap yields too few
consistent pairs and inliers, or a fit that does not hold for people it was not made from (a
fit on one half of the footage must pair people of the other half who look alike):
:func:`learn_view_homography` returns ``None`` for it (its transition windows stay the job of
:mod:`pipeline.identity.topology`).

Thresholds are relative to the people in the images: the RANSAC tolerance is a fraction of the
median box height in the target view, so the same setting serves 360x288 and 4K cameras.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import mannwhitneyu

from pipeline.config import HomographyConfig
from pipeline.identity.gallery import TrackKey
from pipeline.identity.trajectories import PairSamples, Trajectory


@dataclass
class ViewHomography:
    """Foot points of ``from_camera`` → foot points of ``to_camera`` (image pixels).

    Attributes:
        matrix: float64 ``(3, 3)``, normalised so ``matrix[2, 2] == 1``.
        inliers / correspondences: RANSAC inliers among the correspondences of the last fit.
        track_pairs: track pairs that gave inliers.
        median_error_px: median reprojection error of the inliers, target pixels.
        pairs: the track pairs (from key, to key) behind the last fit.
    """

    from_camera: int
    to_camera: int
    matrix: np.ndarray
    inliers: int
    correspondences: int
    track_pairs: int
    median_error_px: float
    pairs: list[tuple[TrackKey, TrackKey]]

    def project(self, points: np.ndarray) -> np.ndarray:
        """float64 ``(N, 2)`` points of ``from_camera`` in ``to_camera`` pixels."""
        return project(self.matrix, points)

    def inverse(self) -> ViewHomography:
        """The same relation from ``to_camera`` to ``from_camera``."""
        inverse = np.linalg.inv(self.matrix)
        return ViewHomography(
            self.to_camera,
            self.from_camera,
            inverse / inverse[2, 2],
            self.inliers,
            self.correspondences,
            self.track_pairs,
            self.median_error_px,
            [(second, first) for first, second in self.pairs],
        )


def project(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a ``(3, 3)`` homography to float ``(N, 2)`` points; returns float64 ``(N, 2)``."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(points) == 0:
        return points
    homogeneous = np.hstack([points, np.ones((len(points), 1))]) @ np.asarray(matrix).T
    depth = homogeneous[:, 2:3]
    depth = np.where(np.abs(depth) < 1e-12, 1e-12, depth)
    return homogeneous[:, :2] / depth


def fit_homography(
    source: np.ndarray, target: np.ndarray, tolerance_px: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray] | None:
    """RANSAC homography from float ``(N, 2)`` ``source`` to ``target`` points: OpenCV's
    USAC_ACCURATE (graph-cut RANSAC with local optimisation), which on the learned views'
    correspondences finds as many inliers as plain RANSAC in about a sixth of the time (most
    of a view's fits are on pairs that do not overlap, where plain RANSAC runs all its
    iterations). Deterministic for a given ``seed``.

    Returns ``(matrix (3, 3) float64, inlier mask (N,) bool)``, or ``None`` when fewer than 4
    points or no fit (degenerate: all points on a line).
    """
    if len(source) < 4:
        return None
    cv2.setRNGSeed(seed)
    matrix, mask = cv2.findHomography(
        np.asarray(source, dtype=np.float32),
        np.asarray(target, dtype=np.float32),
        cv2.USAC_ACCURATE,
        float(tolerance_px),
        maxIters=2000,
        confidence=0.995,
    )
    if matrix is None or abs(matrix[2, 2]) < 1e-12:
        return None
    return matrix / matrix[2, 2], mask.ravel().astype(bool)


def learn_view_homography(
    first_tracks: Sequence[Trajectory],
    second_tracks: Sequence[Trajectory],
    appearance: Mapping[TrackKey, np.ndarray],
    settings: HomographyConfig | None = None,
) -> ViewHomography | None:
    """Learn the homography from the first camera's view to the second's.

    Args:
        first_tracks / second_tracks: trajectories of one camera each.
        appearance: unit float ``(D,)`` embedding per track key (tracks without one are only
            used once a homography exists).
        settings: thresholds; defaults when ``None``.

    Returns:
        The fit, or ``None`` when the views do not (visibly) overlap.
    """
    settings = settings or HomographyConfig()
    candidates = _candidate_pairs(first_tracks, second_tracks, settings.min_common_seconds)
    if not candidates:
        return None
    samples = PairSamples.build(candidates, first_tracks, second_tracks)
    fit = _fit_rounds(samples, first_tracks, second_tracks, appearance, settings)
    if fit is None or fit.inliers < settings.min_inliers:
        return None
    if fit.track_pairs < settings.min_track_pairs:
        return None
    if not _holds_out_of_sample(candidates, first_tracks, second_tracks, appearance, settings):
        return None
    return fit


def _fit_rounds(
    samples: PairSamples,
    first_tracks: Sequence[Trajectory],
    second_tracks: Sequence[Trajectory],
    appearance: Mapping[TrackKey, np.ndarray],
    settings: HomographyConfig,
) -> ViewHomography | None:
    """Fit on the appearance seeds among the candidate pairs of ``samples``, then
    ``rounds - 1`` times on the pairs the last fit carries onto each other."""
    pairs = _appearance_seeds(samples.pairs, first_tracks, second_tracks, appearance)
    fit: ViewHomography | None = None
    for round_index in range(settings.rounds):
        attempt = _fit_pairs(pairs, samples, first_tracks, second_tracks, settings, round_index)
        if attempt is None:
            break
        fit = attempt
        pairs = _geometric_pairs(fit.matrix, samples, settings)
        if not pairs:
            break
    return fit


def _holds_out_of_sample(
    candidates: list[tuple[int, int]],
    first_tracks: Sequence[Trajectory],
    second_tracks: Sequence[Trajectory],
    appearance: Mapping[TrackKey, np.ndarray],
    settings: HomographyConfig,
) -> bool:
    """Whether a homography fitted on one half of the footage pairs people of the other half
    who look more alike than the other simultaneous pairs there, beyond chance.

    Two views that do not overlap still show people at the same time, and RANSAC can map a few
    of their trajectories onto each other (a trajectory is nearly a line). Those few were
    picked because they look alike (the appearance seeds), so their likeness proves nothing;
    people the fit was not made from do. The candidate pairs are split in time (at the median
    middle of their common stretch); a fit on each half picks, by geometry alone, pairs of the
    other half. If it is the ground, they are the same people, and their appearance
    similarities rank above those of the other candidate pairs of that half and of tracks seen
    together in one camera (two people): a one-sided Mann-Whitney test at
    ``appearance_significance`` (tracks without embeddings left out)."""
    middles = np.array(
        [
            (
                max(first_tracks[row].start, second_tracks[column].start)
                + min(first_tracks[row].end, second_tracks[column].end)
            )
            / 2.0
            for row, column in candidates
        ]
    )
    split = float(np.median(middles))
    halves = [
        [
            pair
            for pair, middle in zip(candidates, middles, strict=True)
            if below == (middle < split)
        ]
        for below in (True, False)
    ]
    fitted: list[float] = []
    others: list[float] = []
    for fitting, testing in ((halves[0], halves[1]), (halves[1], halves[0])):
        if not fitting or not testing:
            continue
        samples = PairSamples.build(fitting, first_tracks, second_tracks)
        fit = _fit_rounds(samples, first_tracks, second_tracks, appearance, settings)
        if fit is None:
            continue
        held_out = PairSamples.build(testing, first_tracks, second_tracks)
        chosen = set(_geometric_pairs(fit.matrix, held_out, settings))
        for row, column in testing:
            first = appearance.get(first_tracks[row].key)
            second = appearance.get(second_tracks[column].key)
            if first is not None and second is not None:
                value = float(np.dot(first, second))
                (fitted if (row, column) in chosen else others).append(value)
    others += _simultaneous_similarities(first_tracks, appearance)
    others += _simultaneous_similarities(second_tracks, appearance)
    if not fitted or not others:
        return False
    test = mannwhitneyu(fitted, others, alternative="greater")
    return bool(test.pvalue < settings.appearance_significance)


def _simultaneous_similarities(
    tracks: Sequence[Trajectory], appearance: Mapping[TrackKey, np.ndarray]
) -> list[float]:
    """Appearance similarities of the tracks of one camera seen at the same time."""
    return [
        float(np.dot(appearance[first.key], appearance[second.key]))
        for index, first in enumerate(tracks)
        for second in tracks[index + 1 :]
        if first.key in appearance
        and second.key in appearance
        and first.overlap_seconds(second) > 0
    ]


def _candidate_pairs(
    first_tracks: Sequence[Trajectory], second_tracks: Sequence[Trajectory], min_seconds: float
) -> list[tuple[int, int]]:
    return [
        (row, column)
        for row, first in enumerate(first_tracks)
        for column, second in enumerate(second_tracks)
        if first.overlap_seconds(second) >= min_seconds
    ]


def _appearance_seeds(
    candidates: list[tuple[int, int]],
    first_tracks: Sequence[Trajectory],
    second_tracks: Sequence[Trajectory],
    appearance: Mapping[TrackKey, np.ndarray],
) -> list[tuple[int, int]]:
    """Candidate pairs that are each other's best appearance match among simultaneous tracks,
    and more alike than the median candidate pair (most candidate pairs are two people)."""
    similarity: dict[tuple[int, int], float] = {}
    for row, column in candidates:
        first = appearance.get(first_tracks[row].key)
        second = appearance.get(second_tracks[column].key)
        if first is not None and second is not None:
            similarity[(row, column)] = float(np.dot(first, second))
    if not similarity:
        return []
    floor = float(np.median(list(similarity.values())))
    best_of_row: dict[int, tuple[float, int]] = {}
    best_of_column: dict[int, tuple[float, int]] = {}
    for (row, column), value in similarity.items():
        if value > best_of_row.get(row, (-np.inf, -1))[0]:
            best_of_row[row] = (value, column)
        if value > best_of_column.get(column, (-np.inf, -1))[0]:
            best_of_column[column] = (value, row)
    return [
        (row, column)
        for row, (value, column) in best_of_row.items()
        if best_of_column[column][1] == row and value >= floor
    ]


def _geometric_pairs(
    matrix: np.ndarray, samples: PairSamples, settings: HomographyConfig
) -> list[tuple[int, int]]:
    """One-to-one pairs (Hungarian on transfer error) among the candidate pairs of
    ``samples`` whose feet the homography carries onto each other within twice the RANSAC
    tolerance."""
    rows = sorted({row for row, _ in samples.pairs})
    columns = sorted({column for _, column in samples.pairs})
    row_of = {row: position for position, row in enumerate(rows)}
    column_of = {column: position for position, column in enumerate(columns)}
    cost = np.full((len(rows), len(columns)), 1e6)
    errors = np.minimum(samples.medians(samples.distances(matrix)), 1e6)
    cost[
        [row_of[row] for row, _ in samples.pairs],
        [column_of[column] for _, column in samples.pairs],
    ] = errors
    chosen_rows, chosen_columns = linear_sum_assignment(cost)
    limit = 2.0 * settings.tolerance_heights
    return [
        (rows[r], columns[c])
        for r, c in zip(chosen_rows, chosen_columns, strict=True)
        if cost[r, c] <= limit
    ]


def _fit_pairs(
    pairs: list[tuple[int, int]],
    samples: PairSamples,
    first_tracks: Sequence[Trajectory],
    second_tracks: Sequence[Trajectory],
    settings: HomographyConfig,
    seed: int,
) -> ViewHomography | None:
    sources, targets, owners, heights = [], [], [], []
    position = {pair: index for index, pair in enumerate(samples.pairs)}
    for index, (row, column) in enumerate(pairs):
        source, target = samples.of(position[(row, column)])
        if len(source) == 0:
            continue
        keep = np.unique(np.linspace(0, len(source) - 1, settings.max_points_per_pair).round())
        sources.append(source[keep.astype(int)])
        targets.append(target[keep.astype(int)])
        owners.append(np.full(len(keep), index))
        heights.append(np.median(second_tracks[column].heights))
    if not sources:
        return None
    source, target, owner = np.concatenate(sources), np.concatenate(targets), np.concatenate(owners)
    tolerance_px = settings.tolerance_heights * float(np.median(heights))
    fitted = fit_homography(source, target, tolerance_px, seed)
    if fitted is None:
        return None
    matrix, inliers = fitted
    errors = np.linalg.norm(project(matrix, source[inliers]) - target[inliers], axis=1)
    first_camera = first_tracks[pairs[0][0]].camera_id
    second_camera = second_tracks[pairs[0][1]].camera_id
    return ViewHomography(
        first_camera,
        second_camera,
        matrix,
        int(inliers.sum()),
        len(source),
        len(np.unique(owner[inliers])),
        float(np.median(errors)) if len(errors) else float("inf"),
        [(first_tracks[row].key, second_tracks[column].key) for row, column in pairs],
    )
