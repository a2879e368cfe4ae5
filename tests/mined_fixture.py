"""A tiny mined-tracklet dataset written on the fly: colour-coded persons in two cameras.

Every person has its own shirt colour; each (camera, person) is one track of ``frames`` crops
(uniform noise around the colour), cut into two segments; the second half in time is the
``test`` split. Written with the real index writer, so it is what ``training.mine`` makes.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from reid_models.mined_index import MinedTracklet, mark_co_occurring, write_index

CROP_SIZE = (256, 128)


def person_colour(person: int) -> np.ndarray:
    """A distinct BGR colour per person."""
    hue = (person * 37) % 180
    pixel = np.uint8([[[hue, 200, 220]]])
    return cv2.cvtColor(pixel, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def write_mined_fixture(
    folder: Path, persons: int = 6, cameras: int = 2, frames: int = 16, seed: int = 0
) -> Path:
    """Write crops and ``index.json`` under ``folder``; returns the index path."""
    generator = np.random.default_rng(seed)
    tracklets = []
    for camera in range(cameras):
        for person in range(persons):
            track = 10 * camera + person
            images = []
            for frame in range(frames):
                noise = generator.normal(0, 12, (*CROP_SIZE, 3))
                crop = np.clip(person_colour(person) + noise, 0, 255).astype(np.uint8)
                crop[: CROP_SIZE[0] // 5] = 40  # a dark head band, the same for everyone
                relative = f"crops/c{camera}/t{track:05d}/f{frame:06d}.jpg"
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(folder / relative), crop)
                images.append(relative)
            half = frames // 2
            for segment, (start, end, split) in enumerate(
                [(0, half, "train"), (half, frames, "test")]
            ):
                tracklets.append(
                    MinedTracklet(
                        camera=camera,
                        track=track,
                        segment=segment,
                        split=split,
                        images=images[start:end],
                        frames=list(range(start, end)),
                        timestamps=[frame / 10 for frame in range(start, end)],
                        boxes=[[0.0, 0.0, 64.0, 128.0]] * (end - start),
                        confidences=[0.9] * (end - start),
                        person=f"p{person + 1}",
                        person_share=1.0,
                    )
                )
    mark_co_occurring(tracklets)
    index = folder / "index.json"
    write_index(index, tracklets, {"command": "tests/mined_fixture.py"})
    return index
