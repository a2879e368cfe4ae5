"""The matcher benchmark's synthetic scene (benchmarks/matcher_scene.py)."""

from __future__ import annotations

from benchmarks.matcher_scene import SceneSettings, pair_scores, synthetic_messages
from pipeline.clip_messages import parse_message


def test_every_tracked_box_reaches_the_stream_once_in_footage_order():
    settings = SceneSettings(cameras=3, people=20, walk_seconds=6.0)
    stream = synthetic_messages(40, settings)
    messages = [parse_message(fields) for fields in stream.messages]
    assert sum(message.kind == "clip" for message in messages) >= 40
    frames: dict[tuple[int, int], list[int]] = {}
    for message in messages:
        if message.boxes is not None:
            key = (message.track.camera_id, message.track.track_id)
            frames.setdefault(key, []).extend(message.boxes.frame_indices.tolist())
    assert set(frames) == set(stream.person_of_track)
    per_track = int(settings.walk_seconds * settings.fps)
    for indices in frames.values():
        assert len(indices) == per_track and indices == sorted(set(indices))
    sent = [float(fields["timestamp"]) for fields in stream.messages if fields["kind"] == "started"]
    assert sent == sorted(sent)


def test_pair_scores():
    truth = {(0, 1): 5, (1, 2): 5, (0, 3): 6}
    assert pair_scores(truth, {(0, 1): 1, (1, 2): 1, (0, 3): 2}) == (1.0, 1.0)
    assert pair_scores(truth, {(0, 1): 1, (1, 2): 2, (0, 3): -1}) == (0.0, 0.0)
    assert pair_scores(truth, {(0, 1): 1, (1, 2): 1, (0, 3): 1}) == (1 / 3, 1.0)
