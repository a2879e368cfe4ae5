"""Synthetic edge messages for the matcher benchmark: people walking on ground planes.

Cameras come in overlapping pairs (0 and 1, 2 and 3, …; an odd last camera sees its own
ground alone): the first camera of a pair sees its ground plane with image pixels as ground
coordinates, the second through :data:`VIEW` (a known view-to-view homography). Each walk is
one person (not walking elsewhere at the time) crossing one pair's ground in a straight line
for ``walk_seconds``, seen as one track in each camera of the pair (one track for a lone
camera). A track sends what an edge
sends (``pipeline/clip_messages.py``): ``started``; a clip every ``clip_every_seconds`` of
footage with the track's boxes since its previous message; at the end ``ended`` with the last
boxes, then the final clip. Embeddings are drawn around per-person centres (cosine about
0.75 within a person). Messages come in the order of their footage time, as a live edge
would send them.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from pipeline.clip_messages import clip_message, ended_message, started_message
from pipeline.clips import Clip, TrackEvent
from pipeline.identity import EmbeddedClip
from pipeline.identity.homography import ViewHomography, project
from pipeline.track_boxes import TrackBoxes

VIEW = np.array([[0.8, -0.3, 120.0], [0.05, 0.6, 40.0], [0.0004, -0.0011, 1.0]])
"""Ground pixels of a pair's first camera → its second camera's pixels."""

GROUND = ((60.0, 560.0), (160.0, 380.0))
"""x and y ranges (pixels of the first camera) walks start in."""


@dataclass
class SceneSettings:
    """What the synthetic scene looks like (lengths in pixels, times in seconds)."""

    cameras: int = 8
    people: int = 200
    walks_per_second: float = 1.0
    """New walks per second of footage, over all camera pairs."""
    walk_seconds: float = 12.0
    clip_every_seconds: float = 4.0
    fps: float = 10.0
    dimension: int = 512
    with_boxes: bool = True
    """False: messages of an edge that sends no boxes (nothing for the passes)."""


@dataclass
class SyntheticStream:
    """Edge messages (stream fields, in footage order) and who each track follows."""

    messages: list[dict[str, str]]
    person_of_track: dict[tuple[int, int], int]
    cameras: int


def synthetic_messages(clips: int, settings: SceneSettings, seed: int = 0) -> SyntheticStream:
    """Edge messages of walks until there are at least ``clips`` clips."""
    generator = np.random.default_rng(seed)
    centres = generator.normal(size=(settings.people, settings.dimension)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    timed: list[tuple[float, int, dict[str, str]]] = []
    person_of_track: dict[tuple[int, int], int] = {}
    track_id = 0
    count = 0
    start = 0.0
    groups = [
        list(range(first, min(first + 2, settings.cameras)))
        for first in range(0, settings.cameras, 2)
    ]
    busy_until = np.zeros(settings.people)
    while count < clips:
        idle = np.flatnonzero(busy_until <= start)  # nobody walks in two places at once
        person = int(generator.choice(idle)) if len(idle) else int(np.argmin(busy_until))
        busy_until[person] = start + settings.walk_seconds + 1.5
        cameras = groups[int(generator.integers(len(groups)))]
        feet = _walk(generator, settings, start)
        for position, camera in enumerate(cameras):
            track_id += 1
            person_of_track[(camera, track_id)] = person
            view_feet = feet if position == 0 else project(VIEW, feet)
            track = _track_messages(
                camera, track_id, start, view_feet, centres[person], generator, settings
            )
            for moment, fields in track:
                timed.append((moment, len(timed), fields))
                count += fields["kind"] == "clip"
        start += 1.0 / settings.walks_per_second
    ordered = sorted(timed, key=lambda item: (item[0], item[1]))
    return SyntheticStream([fields for _, _, fields in ordered], person_of_track, settings.cameras)


def true_views(cameras: int) -> dict[tuple[int, int], ViewHomography]:
    """The scene's overlapping pairs with their homography (what a calibration would say)."""
    return {
        (first, first + 1): ViewHomography(first, first + 1, VIEW / VIEW[2, 2], 0, 0, 0, 0.0, [])
        for first in range(0, cameras - 1, 2)
    }


def pair_scores(
    truth: dict[tuple[int, int], int], found: dict[tuple[int, int], int]
) -> tuple[float, float]:
    """Precision and recall over pairs of tracks: pairs given one identity that follow one
    person, and pairs following one person given one identity (``-1``: a track of its own)."""
    found = {
        key: found.get(key, -1) if found.get(key, -1) >= 0 else -1 - index
        for index, key in enumerate(truth)
    }

    def pairs(groups: Counter[object]) -> int:
        return sum(count * (count - 1) // 2 for count in groups.values())

    together = pairs(Counter((truth[key], found[key]) for key in truth))
    predicted, actual = pairs(Counter(found.values())), pairs(Counter(truth.values()))
    return together / max(predicted, 1), together / max(actual, 1)


def _walk(generator: np.random.Generator, settings: SceneSettings, start: float) -> np.ndarray:
    """float64 ``(N, 2)`` foot points of one walk, one per frame (first camera's pixels): a
    curving path at a steady pace, with a pixel of detector jitter (straight lines at constant
    speed would let any views' tracks fit some homography)."""
    (x_low, x_high), (y_low, y_high) = GROUND
    origin = np.array([generator.uniform(x_low, x_high), generator.uniform(y_low, y_high)])
    times = np.arange(int(settings.walk_seconds * settings.fps)) / settings.fps
    turn = generator.uniform(-0.4, 0.4)  # radians per second
    sway = generator.uniform(0.3, 0.8) * np.sin(2 * np.pi * times / generator.uniform(3, 8))
    heading = generator.uniform(0, 2 * np.pi) + turn * times + sway
    speed = generator.uniform(10.0, 25.0)  # pixels per second
    steps = np.stack([np.cos(heading), np.sin(heading)], axis=1) * speed / settings.fps
    feet = origin + np.cumsum(steps, axis=0) - steps[0]
    return feet + generator.normal(0.0, 1.0, size=feet.shape)


def _track_messages(
    camera: int,
    track_id: int,
    start: float,
    feet: np.ndarray,
    centre: np.ndarray,
    generator: np.random.Generator,
    settings: SceneSettings,
) -> list[tuple[float, dict[str, str]]]:
    """One track's messages with the footage time each is sent at."""
    count = len(feet)
    timestamps = start + np.arange(count) / settings.fps
    frames = np.round(timestamps * settings.fps).astype(np.int64)
    height = 90.0 if camera % 2 == 0 else 70.0
    xyxy = np.stack(
        [feet[:, 0] - height / 4, feet[:, 1] - height, feet[:, 0] + height / 4, feet[:, 1]], axis=1
    ).astype(np.float32)
    confidences = np.full(count, 0.85, dtype=np.float32)

    def event(row: int) -> TrackEvent:
        return TrackEvent(
            camera, track_id, int(frames[row]), float(timestamps[row]), xyxy[row], 0.85, 0.0
        )

    def boxes(rows: slice) -> TrackBoxes | None:
        if not settings.with_boxes:
            return None
        return TrackBoxes(frames[rows], timestamps[rows], xyxy[rows], confidences[rows])

    def clip(row: int, final: bool) -> EmbeddedClip:
        embedding = centre + 0.025 * generator.normal(size=len(centre)).astype(np.float32)
        embedding /= np.linalg.norm(embedding)
        made = Clip(
            camera, track_id, np.zeros((0, 1, 1, 3), np.uint8), frames[max(row - 7, 0) : row + 1],
            0.8, final, start, float(timestamps[row]), int(frames[row]), xyxy[row],
            time.monotonic(), first_box=xyxy[0],
        )  # fmt: skip
        return EmbeddedClip(made, embedding)

    messages = [(float(timestamps[0]), started_message("bench", event(0)).to_fields())]
    sent = 0
    every = max(round(settings.clip_every_seconds * settings.fps), 1)
    for row in range(every - 1, count - 1, every):
        fields = clip_message("bench", clip(row, False), boxes(slice(sent, row + 1))).to_fields()
        messages.append((float(timestamps[row]), fields))
        sent = row + 1
    last = count - 1
    ending = float(timestamps[last]) + 1.5  # the edge's track_end_seconds
    ended = ended_message("bench", event(last), True, boxes(slice(sent, count)))
    messages.append((ending, ended.to_fields()))
    messages.append((ending, clip_message("bench", clip(last, True)).to_fields()))
    return messages
