"""Mined tracklet datasets: segment cutting, co-occurrence negatives, splits, index files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from pipeline.records import Frame, FrameDetections
from reid_models.datasets import load_tracklet_index
from reid_models.mined_index import (
    MinedTracklet,
    mark_co_occurring,
    read_index,
    split_segments,
    write_index,
)
from training.mine import MiningRules, TrackletCollector


def _tracklet(camera: int, track: int, frames: list[int], segment: int = 0) -> MinedTracklet:
    return MinedTracklet(
        camera=camera,
        track=track,
        segment=segment,
        split="train",
        images=[f"f{frame}.jpg" for frame in frames],
        frames=frames,
        timestamps=[frame / 10 for frame in frames],
        boxes=[[0, 0, 10, 20]] * len(frames),
        confidences=[0.9] * len(frames),
    )


def test_split_segments_cuts_at_the_longest_span() -> None:
    timestamps = [0.0, 1.0, 2.0, 3.0, 4.5, 5.0, 9.0]
    runs = split_segments(list(range(7)), timestamps, max_segment_seconds=3.0)
    assert runs == [(0, 4), (4, 6), (6, 7)]
    assert split_segments([0, 1], [0.0, 0.1], 100.0) == [(0, 2)]


def test_co_occurring_tracklets_of_one_camera_are_negatives() -> None:
    first = _tracklet(0, 1, [0, 1, 2])
    second = _tracklet(0, 2, [2, 3])
    later_piece_of_first = _tracklet(0, 1, [3, 4], segment=1)
    other_camera = _tracklet(1, 5, [0, 1, 2])
    mark_co_occurring([first, second, later_piece_of_first, other_camera])
    assert first.co_occurring == ["c0t2s0"]
    assert second.co_occurring == ["c0t1s0", "c0t1s1"]
    assert later_piece_of_first.co_occurring == ["c0t2s0"]  # never its own track
    assert other_camera.co_occurring == []  # overlapping views: not a certain negative


def _frame_detections(
    frame: int, boxes: list[list[float]], tracks: list[int], confidence: float
) -> FrameDetections:
    image = np.full((240, 320, 3), 90, dtype=np.uint8)
    detections = sv.Detections(
        xyxy=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        confidence=np.full(len(boxes), confidence, dtype=np.float32),
        class_id=np.zeros(len(boxes), dtype=int),
        tracker_id=np.array(tracks, dtype=np.int64),
    )
    return FrameDetections(Frame(0, frame, frame / 10.0, image, 0.0), detections)


def test_collector_keeps_tracks_by_the_rules_and_holds_out_the_later_part(
    tmp_path: Path,
) -> None:
    collector = TrackletCollector(tmp_path, (64, 32))
    for frame in range(100):  # 10 s at 10 fps
        boxes, tracks = [[10, 10, 60, 130]], [1]  # tall, confident, whole time
        if frame < 5:
            boxes.append([100, 10, 150, 130])
            tracks.append(2)  # too short
        if 20 <= frame < 40:
            boxes.append([200, 10, 220, 40])
            tracks.append(3)  # too small
        collector.update(_frame_detections(frame, boxes, tracks, 0.9))
    rules = MiningRules(min_frames=8, min_box_height=48, segment_seconds=3.0, test_fraction=0.3)
    tracklets = collector.tracklets(rules)
    assert {tracklet.track for tracklet in tracklets} == {1}
    train = [t for t in tracklets if t.split == "train"]
    test = [t for t in tracklets if t.split == "test"]
    boundary = 0.7 * 9.9
    assert max(time for t in train for time in t.timestamps) < boundary
    assert min(time for t in test for time in t.timestamps) >= boundary
    assert all(t.timestamps[-1] - t.timestamps[0] <= 3.0 for t in tracklets)
    assert sorted(t.segment for t in tracklets) == list(range(len(tracklets)))
    crop = tmp_path / tracklets[0].images[0]
    assert crop.is_file()


def test_collector_drops_unconfident_tracks(tmp_path: Path) -> None:
    collector = TrackletCollector(tmp_path, (64, 32))
    for frame in range(20):
        collector.update(_frame_detections(frame, [[10, 10, 60, 130]], [1], 0.3))
    assert collector.tracklets(MiningRules(min_confidence=0.5)) == []


def test_index_round_trip_and_training_loader_holds_out_test(tmp_path: Path) -> None:
    train_piece = _tracklet(0, 1, [0, 1, 2])
    test_piece = _tracklet(0, 1, [8, 9], segment=1)
    test_piece.split = "test"
    write_index(tmp_path / "index.json", [train_piece, test_piece], {"command": "test"})
    index = read_index(tmp_path / "index.json")
    assert index.made_by == {"command": "test"}
    assert [t.name for t in index.tracklets] == ["c0t1s0", "c0t1s1"]
    assert index.tracklets[1].frames == [8, 9]
    raw = json.loads((tmp_path / "index.json").read_text())
    assert raw["tracklets"][0]["identity"] == "c0t1"
    split = load_tracklet_index(tmp_path / "index.json")
    assert len(split.train) == 1 and split.query == () and split.gallery == ()


def test_read_index_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"training\.mine"):
        read_index(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_index(tmp_path / "bad.json")
