"""Pair precision/recall and tracking metrics of the accuracy harness, on hand-made cases."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.accuracy import (
    RunOutput,
    camera_mapping,
    evaluated_frames,
    markdown_report,
    score,
    write_index,
)
from benchmarks.accuracy_metrics import PairScores, pair_scores, tracking_metrics
from pipeline.config import CameraConfig, CrosscamConfig
from tests.conftest import ASSETS, REPOSITORY_ROOT
from tools.ground_truth import BoxMatch, GroundTruth, GroundTruthBox, PredictedBox


def _match(camera: int, person: str, identity: int, frame: int = 0) -> BoxMatch:
    return BoxMatch(camera=camera, frame=frame, person=person, identity=identity, iou=1.0)


# Seven matched boxes. Camera 0: A/1, A/1, B/2. Camera 1: A/1, B/1, B/2, A/1 (person/identity).
HAND_CASE = [
    _match(0, "A", 1),
    _match(0, "A", 1, frame=50),
    _match(0, "B", 2),
    _match(1, "A", 1),
    _match(1, "B", 1),
    _match(1, "B", 2, frame=50),
    _match(1, "A", 1, frame=100),
]


def test_cross_camera_pairs_by_hand() -> None:
    # The 3 x 4 = 12 cross-camera pairs (c0 box, c1 box):
    #   TP (same person, same id): (A1,A1) x 2 c0 boxes x 2 c1 boxes = 4, plus (B2, B2) = 5
    #   FP (same id, other person): c0 A/1 with c1 B/1 = 2
    #   FN (same person, other id): c0 B/2 with c1 B/1 = 1
    scores = pair_scores(HAND_CASE)["cross_camera"]
    assert (scores.true_positive, scores.false_positive, scores.false_negative) == (5, 2, 1)
    assert scores.pairs == 12
    assert scores.precision == pytest.approx(5 / 7)
    assert scores.recall == pytest.approx(5 / 6)
    assert scores.f1 == pytest.approx(10 / 13)


def test_within_camera_pairs_by_hand() -> None:
    # Camera 0 (3 pairs): (A1, A1) TP. Camera 1 (6 pairs): (A1, A1) TP; (A1, B1) twice FP;
    # (B1, B2) FN; the two (A1, B2) pairs are true negatives.
    scores = pair_scores(HAND_CASE)["within_camera"]
    assert (scores.true_positive, scores.false_positive, scores.false_negative) == (2, 2, 1)
    assert scores.pairs == 9
    assert scores.precision == pytest.approx(0.5)
    assert scores.recall == pytest.approx(2 / 3)
    everything = pair_scores(HAND_CASE)["all"]
    assert (everything.true_positive, everything.predicted_same) == (7, 11)
    assert everything.ground_truth_same == 9
    assert everything.pairs == 21


def test_perfect_and_merged_identities() -> None:
    perfect = [_match(c, p, i) for c, p, i in [(0, "A", 1), (1, "A", 1), (0, "B", 2), (1, "B", 2)]]
    scores = pair_scores(perfect)["cross_camera"]
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 1.0, 1.0)
    # Everybody under one identity: recall stays 1, precision falls to 2 TP of 4 predicted.
    merged = [BoxMatch(m.camera, m.frame, m.person, 7, 1.0) for m in perfect]
    scores = pair_scores(merged)["cross_camera"]
    assert scores.recall == 1.0
    assert scores.precision == pytest.approx(0.5)
    # Every box its own identity: no predicted pair, precision undefined → 1, recall 0.
    split = [BoxMatch(m.camera, m.frame, m.person, n, 1.0) for n, m in enumerate(perfect)]
    scores = pair_scores(split)["cross_camera"]
    assert (scores.true_positive, scores.recall, scores.f1) == (0, 0.0, 0.0)


def test_empty_matches() -> None:
    scores = pair_scores([])["cross_camera"]
    assert scores == PairScores(0, 0, 0, 0)
    assert scores.f1 == 1.0


def _brute_force(matches: list[BoxMatch], cross: bool) -> tuple[int, int, int]:
    tp = predicted = truth = 0
    for a, b in itertools.combinations(matches, 2):
        if (a.camera != b.camera) != cross:
            continue
        predicted += a.identity == b.identity
        truth += a.person == b.person
        tp += a.identity == b.identity and a.person == b.person
    return tp, predicted, truth


def test_closed_form_counts_equal_brute_force() -> None:
    generator = np.random.default_rng(3)
    for _ in range(20):
        matches = [
            _match(int(c), f"p{int(p)}", int(i))
            for c, p, i in generator.integers(
                0, [3, 4, 5], size=(int(generator.integers(0, 25)), 3)
            )
        ]
        scores = pair_scores(matches)
        for cross, kind in ((True, "cross_camera"), (False, "within_camera")):
            got = scores[kind]
            assert (got.true_positive, got.predicted_same, got.ground_truth_same) == (
                _brute_force(matches, cross)
            )


def _box(camera: int, frame: int, person: str, x: float) -> GroundTruthBox:
    return GroundTruthBox(camera, frame, person, (x, 10.0, x + 20.0, 60.0))


def _guess(camera: int, frame: int, identity: int, x: float) -> PredictedBox:
    return PredictedBox(camera, frame, identity, (x, 10.0, x + 20.0, 60.0))


def test_tracking_metrics_swap_by_hand() -> None:
    # Two persons, two frames; the predicted ids swap at the second frame.
    truths = [_box(0, 0, "p1", 0), _box(0, 0, "p2", 100), _box(0, 50, "p1", 0)]
    truths.append(_box(0, 50, "p2", 100))
    guesses = [_guess(0, 0, 1, 0), _guess(0, 0, 2, 100), _guess(0, 50, 2, 0)]
    guesses.append(_guess(0, 50, 1, 100))
    metrics = tracking_metrics(truths, guesses, [(0, 0), (0, 50)])
    # Best one-to-one id assignment keeps 1 box per person: IDTP 2, IDFP 2, IDFN 2.
    assert (metrics["IDTP"], metrics["IDFP"], metrics["IDFN"]) == (2, 2, 2)
    assert metrics["IDF1"] == pytest.approx(0.5)
    # Every box detected, two identity switches: MOTA = (4 - 0 - 2) / 4.
    assert metrics["IDSW"] == 2
    assert metrics["MOTA"] == pytest.approx(0.5)
    perfect = tracking_metrics(truths, guesses[:2] + [_guess(0, 50, 1, 0)], [(0, 0), (0, 50)])
    assert perfect["IDSW"] == 0
    assert perfect["IDFN"] == 1  # p2 missed in the second frame
    assert perfect["IDF1"] == pytest.approx(3 / 3.5)


def test_frame_without_predictions_counts_as_missed() -> None:
    truths = [_box(1, 0, "p1", 0), _box(1, 50, "p1", 0)]
    metrics = tracking_metrics(truths, [_guess(1, 0, 5, 0)], [(1, 0), (1, 50)])
    assert (metrics["IDTP"], metrics["IDFN"], metrics["CLR_FN"]) == (1, 1, 1)
    assert metrics["frames"] == 2


def _ground_truth() -> GroundTruth:
    boxes = [
        _box(0, 0, "p1", 0),
        _box(0, 0, "p2", 100),
        _box(1, 0, "p1", 30),
        _box(0, 50, "p1", 5),
        _box(1, 50, "p2", 40),
        _box(1, 100, "p1", 40),
    ]
    return GroundTruth(
        sequence="toy",
        videos=["videos/epfl_terrace1-c0.mp4", "videos/epfl_terrace1-c1.mp4"],
        fps=25.0,
        sampling="every 50 frames",
        made_by="test",
        persons={"p1": "one", "p2": "two"},
        boxes=boxes,
        extra={"frame_count": 150},
    )


def _config(*, swap_ids: bool = False, fps_cap: float | None = None) -> CrosscamConfig:
    videos = ASSETS / "videos"
    ids = (5, 3) if swap_ids else (0, 1)
    return CrosscamConfig(
        cameras=[
            CameraConfig(id=ids[0], uri=str(videos / "epfl_terrace1-c0.mp4"), fps_cap=fps_cap),
            CameraConfig(id=ids[1], uri=str(videos / "epfl_terrace1-c1.mp4"), end_seconds=3.0),
        ]
    )


def test_cameras_pair_by_video_name_and_frames_follow_the_run() -> None:
    config = _config(swap_ids=True)
    assert camera_mapping(config, _ground_truth()) == {5: 0, 3: 1}
    # Without a record of processed frames: the configured segment (camera 1 ends at 3 s).
    assert evaluated_frames(config, _ground_truth(), None) == [
        (0, 0),
        (0, 50),
        (0, 100),
        (1, 0),
        (1, 50),
    ]
    assert evaluated_frames(config, _ground_truth(), {(5, 50), (3, 0), (3, 100)}) == [
        (0, 50),
        (1, 0),
        (1, 100),
    ]


def test_score_and_reports(tmp_path: Path) -> None:
    mtmc = tmp_path / "run.mtmc.txt"
    # Camera 0 (config id 5): p1 → identity 7 at frames 0 and 50, p2 → 8. Camera 1 (id 3):
    # p1 → 7 at frame 0, p2 → 7 at frame 50 (a wrong cross-camera merge), p1 → 9 at frame 100.
    mtmc.write_text(
        "5 7 0 0 10 20 50 -1 -1\n5 8 0 100 10 20 50 -1 -1\n3 7 0 30 10 20 50 -1 -1\n"
        "5 7 50 5 10 20 50 -1 -1\n3 7 50 40 10 20 50 -1 -1\n3 9 100 40 10 20 50 -1 -1\n"
        "5 7 25 0 10 20 50 -1 -1\n"  # not a GT frame: ignored
    )
    config = _config(swap_ids=True)
    metrics = score(config, _ground_truth(), RunOutput(mtmc, None))
    assert metrics["gt_boxes"] == metrics["gt_boxes_matched"] == 5
    assert metrics["gt_frames_not_evaluated"] == 1  # camera 1 frame 100: it stops at 3 s
    # Matched: c0 p1/7, p2/8, p1/7; c1 p1/7, p2/7 (frame 100 of camera 1 is past its end).
    cross = metrics["pairs"]["cross_camera"]
    # c0 × c1 pairs: (p1/7, p1/7) x 2 TP; (p1/7, p2/7) x 2 FP; (p2/8, p2/7) FN.
    assert (cross["true_positive"], cross["false_positive"], cross["false_negative"]) == (2, 2, 1)
    assert metrics["identities_per_person"] == {"p1": 1, "p2": 1}
    assert "MOTA" in metrics["per_camera"]["0"] and "MOTA" not in metrics["all_cameras"]
    report = {
        "name": "toy",
        "sequence": "toy",
        "ground_truth": "gt.json",
        "config_file": "cams.yaml",
        "overrides": ["encoder.model=tp"],
        "config": config.model_dump(mode="json"),
        "machine": {"summary": "test machine"},
        "git_commit": "0123456789abcdef",
        "run": {"mtmc": str(mtmc), "wall_seconds": None},
        "metrics": metrics,
    }
    markdown = markdown_report(report)
    assert "| cross camera | 50.0 | 66.7 | 57.1 | 2 | 2 | 1 |" in markdown
    (tmp_path / "toy.json").write_text(json.dumps(report))
    index = write_index(tmp_path).read_text()
    assert "[toy](toy.md)" in index
    assert "50.0 / 66.7 / 57.1" in index


@pytest.mark.slow
def test_harness_on_full_terrace1(tmp_path: Path) -> None:
    from benchmarks.accuracy import main

    ground_truth = REPOSITORY_ROOT / "benchmarks" / "ground_truth" / "terrace1.json"
    config = REPOSITORY_ROOT / "benchmarks" / "configs" / "terrace1.yaml"
    code = main(
        ["--streams", str(config), "--gt", str(ground_truth), "--out", str(tmp_path)]
        + ["--name", "slow-test"]
    )
    assert code == 0
    report = json.loads((tmp_path / "slow-test.json").read_text())
    metrics = report["metrics"]
    assert metrics["gt_frames_not_evaluated"] == 0
    assert metrics["gt_boxes_matched"] > 0.7 * metrics["gt_boxes"]
    assert metrics["all_cameras"]["IDF1"] > 0.2
