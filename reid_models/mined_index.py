"""The tracklet dataset written by ``python -m training.mine``: records, rules, index file.

A mined tracklet is one stretch of one camera track (long tracks are cut into segments). Its
pseudo-label is the track: every segment of camera ``c`` track ``t`` has identity ``"c<c>t<t>"``
(one identity per tracklet per camera). Tracklets of *different* tracks that share a frame of
the same camera are certain negatives (two boxes in one frame are two people); that is kept as
``co_occurring``. ``split`` is ``train`` for the earlier part of every camera's footage and
``test`` for the later part (the later-in-time split; ``test`` tracklets are never trained on).
``person`` is a ground-truth label by box overlap when the miner was given a ground-truth file.

Index file (JSON)::

    {"made_by": {...how it was mined...},
     "tracklets": [{"name": "c0t7s1", "identity": "c0t7", "camera": 0, "track": 7,
                    "segment": 1, "split": "train", "images": ["crops/c0/t00007/f000150.jpg", ...],
                    "frames": [150, 155, ...], "timestamps": [6.0, 6.2, ...],
                    "boxes": [[x1, y1, x2, y2], ...], "confidences": [0.91, ...],
                    "co_occurring": ["c0t3s0", ...], "person": "p2", "person_share": 1.0}, ...]}

Image paths are relative to the index file. ``reid_models.datasets.load_tracklet_index`` reads
the same file for training (``test`` entries are held out there).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reid_models.datasets import Tracklet


@dataclass
class MinedTracklet:
    """One segment of one camera track.

    Attributes:
        camera: the camera's configured id.
        track: the tracker's local id in that camera.
        segment: 0-based index of this piece of the track.
        split: ``train`` or ``test`` (later in time).
        images: crop files in temporal order, relative to the index folder.
        frames: source frame index of each crop.
        timestamps: seconds (media time) of each crop.
        boxes: xyxy pixels of each crop in its frame.
        confidences: detector confidence of each box.
        co_occurring: names of other tracks' tracklets sharing a frame of this camera.
        person: ground-truth person label, or ``None``.
        person_share: fraction of this tracklet's matched GT boxes that carry ``person``.
    """

    camera: int
    track: int
    segment: int
    split: str
    images: list[str]
    frames: list[int]
    timestamps: list[float]
    boxes: list[list[float]]
    confidences: list[float]
    co_occurring: list[str] = field(default_factory=list)
    person: str | None = None
    person_share: float = 0.0

    @property
    def name(self) -> str:
        return f"c{self.camera}t{self.track}s{self.segment}"

    @property
    def identity(self) -> str:
        """The pseudo-label: the camera track."""
        return f"c{self.camera}t{self.track}"

    @property
    def mean_confidence(self) -> float:
        return sum(self.confidences) / max(1, len(self.confidences))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "identity": self.identity, **asdict(self)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> MinedTracklet:
        fields = {key: value for key, value in raw.items() if key not in ("name", "identity")}
        return cls(**fields)


@dataclass(frozen=True)
class MinedIndex:
    """A loaded index: the tracklets and the folder their image paths are relative to."""

    folder: Path
    made_by: dict[str, Any]
    tracklets: list[MinedTracklet]

    def image_paths(self, tracklet: MinedTracklet) -> tuple[Path, ...]:
        return tuple(self.folder / image for image in tracklet.images)

    def as_tracklets(
        self, tracklets: Iterable[MinedTracklet], label: str = "identity"
    ) -> list[Tracklet]:
        """Dataset records; ``label`` ``identity`` (pseudo) or ``person`` (GT, must be set).

        Identities are numbered in sorted label order; cameras keep their ids.
        """
        chosen = list(tracklets)
        labels = sorted({str(getattr(tracklet, label)) for tracklet in chosen})
        codes = {text: code for code, text in enumerate(labels)}
        return [
            Tracklet(
                self.image_paths(tracklet), codes[str(getattr(tracklet, label))], tracklet.camera
            )
            for tracklet in chosen
        ]


def split_segments(
    frames: Sequence[int], timestamps: Sequence[float], max_segment_seconds: float
) -> list[tuple[int, int]]:
    """Cut one track's crops into ``[start, end)`` runs spanning at most ``max_segment_seconds``.

    Args:
        frames: frame index of each crop (increasing).
        timestamps: seconds of each crop (increasing).
        max_segment_seconds: longest span of one segment.
    """
    if len(frames) != len(timestamps):
        raise ValueError("frames and timestamps must have the same length")
    runs: list[tuple[int, int]] = []
    start = 0
    for position in range(1, len(timestamps) + 1):
        if position == len(timestamps) or timestamps[position] - timestamps[start] > (
            max_segment_seconds
        ):
            runs.append((start, position))
            start = position
    return runs


def mark_co_occurring(tracklets: Sequence[MinedTracklet]) -> None:
    """Fill ``co_occurring``: tracklets of other tracks that share a frame in the same camera."""
    by_frame: dict[tuple[int, int], set[int]] = {}
    for position, tracklet in enumerate(tracklets):
        for frame in tracklet.frames:
            by_frame.setdefault((tracklet.camera, frame), set()).add(position)
    neighbours: dict[int, set[int]] = {position: set() for position in range(len(tracklets))}
    for positions in by_frame.values():
        for position in positions:
            neighbours[position].update(
                other for other in positions if tracklets[other].track != tracklets[position].track
            )
    for position, tracklet in enumerate(tracklets):
        tracklet.co_occurring = sorted(tracklets[other].name for other in neighbours[position])


def write_index(path: Path, tracklets: Sequence[MinedTracklet], made_by: dict[str, Any]) -> None:
    """Write the index JSON (image paths in the records are already relative to its folder)."""
    payload = {"made_by": made_by, "tracklets": [tracklet.to_dict() for tracklet in tracklets]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")


def read_index(path: Path) -> MinedIndex:
    """Read an index written by :func:`write_index`.

    Raises:
        ValueError: the file is missing, not JSON, or not a mined index, with the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"tracklet index not found: {path} (make it with python -m training.mine)")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(raw, dict) or "tracklets" not in raw:
        raise ValueError(f"{path}: not a mined tracklet index (no 'tracklets' list)")
    return MinedIndex(
        path.parent,
        dict(raw.get("made_by", {})),
        [MinedTracklet.from_dict(entry) for entry in raw["tracklets"]],
    )
