"""The committed terrace1 ground truth, its loader, and box matching."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPOSITORY_ROOT
from tools.ground_truth import (
    HAND_SOURCE,
    BoxMatch,
    GroundTruth,
    GroundTruthBox,
    GroundTruthError,
    PredictedBox,
    consistency_problems,
    dump_ground_truth,
    ground_truth_to_dict,
    load_ground_truth,
    load_mtmc,
    match_boxes,
    match_frame,
    parse_sampling,
    person_of_identity,
)
from tools.propose_ground_truth import ProposalBox, build, load_proposals

GROUND_TRUTH_DIRECTORY = REPOSITORY_ROOT / "benchmarks" / "ground_truth"
TERRACE1 = GROUND_TRUTH_DIRECTORY / "terrace1.json"
FRAME_WIDTH, FRAME_HEIGHT = 360, 288


@pytest.fixture(scope="module")
def terrace1() -> GroundTruth:
    return load_ground_truth(TERRACE1)


def test_terrace1_loads_and_is_self_consistent(terrace1: GroundTruth) -> None:
    assert consistency_problems(terrace1) == []
    assert terrace1.sampling == "every 50 frames"
    assert terrace1.fps == 25.0
    assert [Path(video).name for video in terrace1.videos] == [
        "epfl_terrace1-c0.mp4",
        "epfl_terrace1-c1.mp4",
    ]
    assert all((REPOSITORY_ROOT / video).is_file() for video in terrace1.videos)
    assert terrace1.made_by.strip()


def test_terrace1_frames_are_multiples_of_50(terrace1: GroundTruth) -> None:
    frames = {box.frame for box in terrace1.boxes}
    assert all(frame % 50 == 0 and 0 <= frame < 3000 for frame in frames)
    assert len(frames) >= 55  # people are on the terrace from frame 100 on


def test_terrace1_no_person_twice_in_one_camera_and_frame(terrace1: GroundTruth) -> None:
    counts = Counter((box.camera, box.frame, box.person) for box in terrace1.boxes)
    assert max(counts.values()) == 1


def test_terrace1_labels_are_consistent_across_cameras(terrace1: GroundTruth) -> None:
    persons = set(terrace1.persons)
    assert {box.person for box in terrace1.boxes} == persons
    assert 4 <= len(persons) <= 9
    for person in persons:  # everybody is seen by both cameras at some point
        assert {box.camera for box in terrace1.boxes if box.person == person} == {0, 1}
    assert all(description.strip() for description in terrace1.persons.values())


def test_terrace1_boxes_lie_in_the_frame(terrace1: GroundTruth) -> None:
    xyxy = np.asarray([box.xyxy for box in terrace1.boxes])
    assert (xyxy[:, 0] >= 0).all() and (xyxy[:, 1] >= 0).all()
    assert (xyxy[:, 2] <= FRAME_WIDTH).all() and (xyxy[:, 3] <= FRAME_HEIGHT).all()
    heights = xyxy[:, 3] - xyxy[:, 1]
    assert heights.min() >= 40  # nothing smaller than a far-away person was labelled


def test_terrace1_is_rebuilt_exactly_from_proposals_and_labels(terrace1: GroundTruth) -> None:
    proposals, boxes = load_proposals(GROUND_TRUTH_DIRECTORY / "terrace1_proposals.json")
    labels = json.loads((GROUND_TRUTH_DIRECTORY / "terrace1_labels.json").read_text())
    result = build(proposals, boxes, labels)
    assert result.undecided == [] and result.duplicates == []
    assert dump_ground_truth(result.ground_truth) == TERRACE1.read_text()


def test_terrace1_boxes_by_hand_are_loaded_and_marked(terrace1: GroundTruth) -> None:
    labels = json.loads((GROUND_TRUTH_DIRECTORY / "terrace1_labels.json").read_text())
    by_hand = [box for box in terrace1.boxes if box.source == HAND_SOURCE]
    assert len(by_hand) == len(labels["added"]) >= 1
    assert {(b.camera, b.frame, b.person) for b in by_hand} == {
        (added["camera"], added["frame"], added["person"]) for added in labels["added"]
    }
    assert {box.source for box in terrace1.boxes} == {"detector", HAND_SOURCE}
    assert "by hand" in terrace1.made_by


def _toy_proposals() -> tuple[dict[str, object], list[ProposalBox]]:
    proposal = ProposalBox("c0f50b0", 0, 50, [10.0, 10.0, 40.0, 100.0], 0.9, 0, 1)
    data: dict[str, object] = {
        "videos": ["a.mp4", "b.mp4"], "fps": 25.0, "frame_counts": [300, 300], "every": 50,
    }  # fmt: skip
    return data, [proposal]


def _toy_labels(*added: dict[str, object]) -> dict[str, object]:
    return {
        "sequence": "toy", "made_by": "test", "persons": {"p1": "one", "p2": "two"},
        "boxes": {"c0f50b0": "p1"}, "added": list(added),
    }  # fmt: skip


def _hand(**changes: object) -> dict[str, object]:
    added: dict[str, object] = {
        "camera": 1, "frame": 100, "person": "p2", "xyxy": [5, 6, 30, 90], "source": "by hand",
    }  # fmt: skip
    added.update(changes)
    return {key: value for key, value in added.items() if value is not None}


def test_build_keeps_boxes_by_hand_and_round_trips_their_source(tmp_path: Path) -> None:
    data, proposals = _toy_proposals()
    result = build(data, proposals, _toy_labels(_hand(note="behind p1")))
    assert result.duplicates == []
    assert result.ground_truth["boxes"] == [
        {"camera": 0, "frame": 50, "person": "p1", "xyxy": [10.0, 10.0, 40.0, 100.0]},
        {"camera": 1, "frame": 100, "person": "p2", "xyxy": [5.0, 6.0, 30.0, 90.0],
         "source": "by hand"},
    ]  # fmt: skip
    path = tmp_path / "gt.json"
    path.write_text(dump_ground_truth(result.ground_truth))
    loaded = load_ground_truth(path)
    assert [box.source for box in loaded.boxes] == ["detector", HAND_SOURCE]
    assert dump_ground_truth(ground_truth_to_dict(loaded)) == path.read_text()


@pytest.mark.parametrize(
    ("added", "message"),
    [
        ("not a box", "expected an object"),
        (_hand(xyxy=None), r"missing keys \['xyxy'\]"),
        (_hand(colour="red"), r"unknown keys \['colour'\]"),
        (_hand(source="detector"), "source must be 'by hand'"),
        (_hand(camera=2), "camera must index the videos"),
        (_hand(frame=125), "frame must be a multiple of 50 below 300"),
        (_hand(frame=300), "frame must be a multiple of 50 below 300"),
        (_hand(person="p9"), "'p9' is not described"),
        (_hand(xyxy=[5, 6, 30]), "xyxy must be 4 numbers"),
        (_hand(xyxy=[5, 6, "30", 90]), "xyxy must be 4 numbers"),
        (_hand(xyxy=[30, 6, 5, 90]), "0 <= x1 < x2"),
        (_hand(xyxy=[-1, 6, 30, 90]), "0 <= x1 < x2"),
        (_hand(camera=0, frame=50, xyxy=[11, 12, 41, 98]), "repeats the box of p1"),
    ],
)
def test_bad_boxes_by_hand_are_refused_with_a_clear_error(added: object, message: str) -> None:
    data, proposals = _toy_proposals()
    labels = _toy_labels(_hand(frame=150), added)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message) as error:
        build(data, proposals, labels)
    assert str(error.value).startswith("labels 'added'[1]")


def test_a_box_by_hand_for_a_person_already_boxed_there_is_a_duplicate() -> None:
    data, proposals = _toy_proposals()
    result = build(
        data, proposals, _toy_labels(_hand(camera=0, frame=50, person="p1", xyxy=[200, 6, 230, 90]))
    )
    assert any("two boxes" in problem for problem in result.duplicates)


def test_an_unknown_source_is_a_consistency_problem() -> None:
    box = GroundTruthBox(0, 0, "p1", (0.0, 0.0, 10.0, 30.0), source="guessed")
    assert "source must be" in consistency_problems(_ground_truth([box]))[0]


def _box(camera: int, frame: int, person: str, x: float = 0.0) -> GroundTruthBox:
    return GroundTruthBox(camera, frame, person, (x, 0.0, x + 10.0, 30.0))


def _ground_truth(boxes: list[GroundTruthBox]) -> GroundTruth:
    return GroundTruth(
        sequence="toy",
        videos=["a.mp4", "b.mp4"],
        fps=25.0,
        sampling="every 50 frames",
        made_by="test",
        persons={"p1": "one", "p2": "two"},
        boxes=boxes,
    )


def test_consistency_problems_are_found() -> None:
    problems = consistency_problems(
        _ground_truth(
            [
                _box(0, 0, "p1"),
                _box(0, 0, "p1", x=50),  # same person twice in one camera and frame
                _box(0, 75, "p2"),  # not a multiple of 50
                _box(2, 50, "p2"),  # no third video
                _box(1, 50, "p9"),  # not described
                GroundTruthBox(1, 100, "p2", (5.0, 5.0, 5.0, 20.0)),  # no area
            ]
        )
    )
    assert len(problems) == 5
    assert "two boxes" in problems[0]
    assert "multiple of 50" in problems[1]
    assert "index 'videos'" in problems[2]
    assert "not described" in problems[3]
    assert "no area" in problems[4]
    assert consistency_problems(_ground_truth([_box(0, 0, "p1"), _box(1, 0, "p1")])) == []


def test_load_rejects_bad_files(tmp_path: Path) -> None:
    good = ground_truth_to_dict(_ground_truth([_box(0, 0, "p1"), _box(1, 50, "p2")]))
    path = tmp_path / "gt.json"
    path.write_text(dump_ground_truth(good))
    assert len(load_ground_truth(path).boxes) == 2
    duplicated = dict(good, boxes=good["boxes"] + [good["boxes"][0]])
    path.write_text(json.dumps(duplicated))
    with pytest.raises(GroundTruthError, match="two boxes"):
        load_ground_truth(path)
    path.write_text(json.dumps({key: value for key, value in good.items() if key != "fps"}))
    with pytest.raises(GroundTruthError, match="malformed"):
        load_ground_truth(path)
    path.write_text("{not json")
    with pytest.raises(GroundTruthError, match="cannot read"):
        load_ground_truth(path)
    with pytest.raises(GroundTruthError):
        parse_sampling("every other frame")


def test_match_frame_maximises_total_iou_above_threshold() -> None:
    truths = np.array([[0, 0, 10, 10], [3, 0, 13, 10]], dtype=float)
    predictions = np.array([[2, 0, 12, 10], [5, 0, 15, 10], [100, 100, 110, 110]], dtype=float)
    # IoU: truth 0 / prediction 0 = 8/12, truth 1 / prediction 0 = 9/11 (the best pair),
    # truth 1 / prediction 1 = 8/12, truth 0 / prediction 1 = 5/15 (below 0.5). Greedy takes
    # the best pair and leaves truth 0 unmatched; the Hungarian method matches both.
    matches = match_frame(truths, predictions)
    assert sorted((row, column) for row, column, _ in matches) == [(0, 0), (1, 1)]
    assert [round(iou, 3) for _, _, iou in sorted(matches)] == [0.667, 0.667]
    # Below the threshold nothing matches, even when it is the only candidate.
    assert match_frame(truths[:1], np.array([[4.0, 0, 14, 10]])) == []
    assert match_frame(truths, np.zeros((0, 4))) == []


def test_match_boxes_per_camera_and_frame() -> None:
    truths = [_box(0, 0, "p1"), _box(1, 0, "p1"), _box(0, 50, "p2")]
    predicted = [
        PredictedBox(0, 0, 7, (0.0, 0.0, 10.0, 30.0)),
        PredictedBox(1, 0, 7, (1.0, 0.0, 11.0, 30.0)),
        PredictedBox(1, 50, 8, (0.0, 0.0, 10.0, 30.0)),  # right box, wrong camera
        PredictedBox(0, 25, 9, (0.0, 0.0, 10.0, 30.0)),  # not a GT frame
    ]
    matches = match_boxes(truths, predicted)
    assert [(m.camera, m.frame, m.person, m.identity) for m in matches] == [
        (0, 0, "p1", 7),
        (1, 0, "p1", 7),
    ]


def test_person_of_identity_by_majority() -> None:
    matches = [
        BoxMatch(0, 0, "p1", 7, 1.0),
        BoxMatch(0, 50, "p1", 7, 1.0),
        BoxMatch(1, 50, "p2", 7, 1.0),
        BoxMatch(1, 0, "p2", 8, 1.0),
        BoxMatch(1, 100, "p10", 9, 1.0),
        BoxMatch(1, 150, "p2", 9, 1.0),
    ]
    assert person_of_identity(matches) == {7: "p1", 8: "p2", 9: "p2"}


def test_load_mtmc_converts_width_height(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("0 3 150 10 20 30 40 -1 -1\n\n1 4 200 0 0 5 6 -1 -1\n")
    assert load_mtmc(path) == [
        PredictedBox(0, 150, 3, (10.0, 20.0, 40.0, 60.0)),
        PredictedBox(1, 200, 4, (0.0, 0.0, 5.0, 6.0)),
    ]
    path.write_text("0 3 150\n")
    with pytest.raises(ValueError, match="7 fields"):
        load_mtmc(path)
